-- name: enqueue_mail
-- Park a message in the outbox, once per idempotency key.
INSERT INTO postgit.outbox (idempotency_key, message) VALUES (%(idempotency_key)s, %(message)s::jsonb)
ON CONFLICT (idempotency_key) DO NOTHING;

-- name: list_outbox
-- Parked messages, oldest first.
SELECT id, idempotency_key, message, created_at FROM postgit.outbox ORDER BY id LIMIT %(limit)s;
