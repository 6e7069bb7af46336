-- Version 5: clinician credentials in the key log. A key-log row is now
-- either a key record (identity and signed prekey) or a credential record
-- (digest and issuer of the credential a device presents, and its
-- revocation once there is one). The relay never holds a credential
-- itself, only this record.

ALTER TABLE keylog ADD COLUMN credential BYTEA;
ALTER TABLE keylog ALTER COLUMN identity DROP NOT NULL;
ALTER TABLE keylog ALTER COLUMN signed_prekey DROP NOT NULL;
ALTER TABLE keylog ADD CONSTRAINT keylog_one_kind CHECK (
    (credential IS NULL AND identity IS NOT NULL AND signed_prekey IS NOT NULL)
    OR (credential IS NOT NULL AND identity IS NULL AND signed_prekey IS NULL)
);

-- A device's current credential record; `revoked` holds the 32-byte
-- digests of its revoked credentials, one after the other.
CREATE TABLE credentials (
    address   BYTEA  PRIMARY KEY REFERENCES devices (address),
    log_index BIGINT NOT NULL,
    epoch     BIGINT NOT NULL,
    record    BYTEA  NOT NULL,
    revoked   BYTEA  NOT NULL DEFAULT ''::bytea
);
