-- Version 2: idempotency keys are also forgotten once their message is
-- acknowledged and the mailbox has moved a window of sequences past it
-- (Store::prune_dedupe). The sweep finds them by (address, seq).

CREATE INDEX dedupe_seq ON dedupe (address, seq);
