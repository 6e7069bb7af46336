-- Version 6: the notification of a send names its sequence as well as its
-- mailbox, as "<address in hex>:<sequence>" (it was the address alone).
-- A relay hears its own sends echoed by the database; with the sequence it
-- can tell that its subscribers already have the envelope (it hands the
-- envelopes it accepted to them from memory) and need not read the store.
-- Relays of an earlier version still parse the address and ignore the rest;
-- a notification without a sequence still makes subscribers read the store.
-- The function is otherwise version 3's, step for step.

CREATE OR REPLACE FUNCTION alcove_enqueue(
    p_address BYTEA,
    p_client_message_id BYTEA,
    p_envelope BYTEA,
    p_received_at_ms BIGINT,
    p_max_depth BIGINT,
    p_channel TEXT,
    OUT out_seq BIGINT,
    OUT out_duplicate BOOLEAN,
    OUT out_full BOOLEAN
) LANGUAGE plpgsql AS $$
DECLARE
    head_last BIGINT;
    head_depth BIGINT;
BEGIN
    INSERT INTO mailbox_heads (address, last_seq, depth) VALUES (p_address, 0, 0)
        ON CONFLICT (address) DO NOTHING;
    SELECT h.last_seq, h.depth INTO head_last, head_depth
        FROM mailbox_heads h WHERE h.address = p_address FOR UPDATE;

    SELECT d.seq INTO out_seq FROM dedupe d
        WHERE d.address = p_address AND d.client_message_id = p_client_message_id;
    IF FOUND THEN
        out_duplicate := true;
        out_full := false;
        RETURN;
    END IF;
    out_duplicate := false;

    IF head_depth >= p_max_depth THEN
        out_full := true;
        out_seq := NULL;
        RETURN;
    END IF;
    out_full := false;

    out_seq := head_last + 1;
    INSERT INTO mailboxes (address, seq, received_at_ms, client_message_id, envelope)
        VALUES (p_address, out_seq, p_received_at_ms, p_client_message_id, p_envelope);
    UPDATE mailbox_heads SET last_seq = out_seq, depth = depth + 1
        WHERE address = p_address;
    INSERT INTO dedupe (address, client_message_id, seq, received_at_ms)
        VALUES (p_address, p_client_message_id, out_seq, p_received_at_ms);
    PERFORM pg_notify(p_channel, encode(p_address, 'hex') || ':' || out_seq);
END
$$;
