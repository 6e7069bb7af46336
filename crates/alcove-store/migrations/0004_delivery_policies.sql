-- Version 4: who may deliver to a device (unidentified sending). A row
-- holds the SHA-256 verifier of the device's delivery key, or NULL for a
-- device that accepts anyone; a device without a row accepts anyone too.
-- Nothing here names a sender.

CREATE TABLE delivery_policies (
    address  BYTEA PRIMARY KEY REFERENCES devices (address),
    verifier BYTEA CHECK (verifier IS NULL OR length(verifier) = 32)
);
