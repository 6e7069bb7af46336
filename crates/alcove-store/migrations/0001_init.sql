-- Alcove relay schema, version 1 (PostgreSQL backend).
--
-- Every table that grows with users is keyed by the device address first,
-- so that it can be distributed by address (Citus: the distribution column
-- is `address`; see docs/operations.md). The key log is one global,
-- append-only sequence and stays a single (reference) table.

CREATE TABLE devices (
    address          BYTEA  PRIMARY KEY,
    registered_at_ms BIGINT NOT NULL,
    identity         BYTEA  NOT NULL,
    signed_prekey    BYTEA  NOT NULL,
    log_index        BIGINT NOT NULL,
    epoch            BIGINT NOT NULL
);

CREATE TABLE keylog (
    idx           BIGINT PRIMARY KEY,
    address       BYTEA  NOT NULL,
    epoch         BIGINT NOT NULL,
    salt          BYTEA  NOT NULL,
    logged_at_ms  BIGINT NOT NULL,
    identity      BYTEA  NOT NULL,
    signed_prekey BYTEA  NOT NULL
);

CREATE TABLE one_time_prekeys (
    address BYTEA  NOT NULL,
    id      BIGINT NOT NULL,
    prekey  BYTEA  NOT NULL,
    PRIMARY KEY (address, id)
);

CREATE TABLE mailbox_heads (
    address  BYTEA  PRIMARY KEY,
    last_seq BIGINT NOT NULL,
    depth    BIGINT NOT NULL
);

CREATE TABLE mailboxes (
    address           BYTEA  NOT NULL,
    seq               BIGINT NOT NULL,
    received_at_ms    BIGINT NOT NULL,
    client_message_id BYTEA  NOT NULL,
    envelope          BYTEA  NOT NULL,
    PRIMARY KEY (address, seq)
);

CREATE TABLE dedupe (
    address           BYTEA  NOT NULL,
    client_message_id BYTEA  NOT NULL,
    seq               BIGINT NOT NULL,
    received_at_ms    BIGINT NOT NULL,
    PRIMARY KEY (address, client_message_id)
);
CREATE INDEX dedupe_received ON dedupe (received_at_ms);

CREATE TABLE blobs (
    id            BYTEA   PRIMARY KEY,
    finished      BOOLEAN NOT NULL,
    size          BIGINT  NOT NULL,
    chunks        INTEGER NOT NULL,
    expires_at_ms BIGINT  NOT NULL
);
CREATE INDEX blobs_expiry ON blobs (expires_at_ms);

CREATE TABLE blob_chunks (
    id   BYTEA   NOT NULL,
    idx  INTEGER NOT NULL,
    data BYTEA   NOT NULL,
    PRIMARY KEY (id, idx)
);

CREATE TABLE meta (
    name  TEXT  PRIMARY KEY,
    value BYTEA NOT NULL
);
