-- Attempts interrupted by a worker that stopped (its lease expired and another worker took the instance over) are
-- logged as events; this index finds an instance's few such events without reading all its events.
CREATE INDEX events_interruptions ON postgit.events (instance_id, id)
    WHERE kind IN ('step_interrupted', 'lease_expired');

-- Mail parked in the outbox can be sent later (POST /outbox/send): a message is taken for sending (`sending_since`)
-- so that two requests never send it at once, and its delivery is recorded: when, through which server, and the
-- last failure.
ALTER TABLE postgit.outbox
    ADD COLUMN sent_at timestamptz,
    ADD COLUMN sent_via text,
    ADD COLUMN sending_since timestamptz,
    ADD COLUMN attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN last_error text;
CREATE INDEX outbox_parked ON postgit.outbox (id) WHERE sent_at IS NULL;
