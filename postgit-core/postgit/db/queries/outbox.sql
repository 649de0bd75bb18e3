-- name: enqueue_mail
-- Park a message in the outbox, once per idempotency key.
INSERT INTO postgit.outbox (idempotency_key, message) VALUES (%(idempotency_key)s, %(message)s::jsonb)
ON CONFLICT (idempotency_key) DO NOTHING;

-- name: list_outbox
-- Messages oldest first: the parked ones (not sent yet), the sent ones, or all.
SELECT id, idempotency_key, message, created_at, sent_at, sent_via, attempts, last_error FROM postgit.outbox
WHERE (%(which)s::text = 'all' OR (sent_at IS NULL) = (%(which)s::text = 'parked'))
ORDER BY id LIMIT %(limit)s;

-- name: get_outbox_message
-- One message of the outbox, with its delivery.
SELECT id, idempotency_key, message, created_at, sent_at, sent_via, sending_since, attempts, last_error
FROM postgit.outbox WHERE id = %(id)s;

-- name: parked_outbox_ids
-- The ids of parked messages after `after_id`, oldest first: the next ones to send.
SELECT id FROM postgit.outbox WHERE sent_at IS NULL AND id > %(after_id)s ORDER BY id LIMIT %(limit)s;

-- name: take_outbox_message
-- Take a parked message for sending, unless it was sent or another request is sending it (taken less than
-- `stale_seconds` ago: one that took it and stopped frees it after that).
UPDATE postgit.outbox
SET sending_since = now(), attempts = attempts + 1
WHERE id = %(id)s AND sent_at IS NULL
  AND (sending_since IS NULL OR sending_since < now() - make_interval(secs => %(stale_seconds)s))
RETURNING id, idempotency_key, message;

-- name: record_outbox_sent
-- Record a message's delivery.
UPDATE postgit.outbox SET sent_at = now(), sent_via = %(sent_via)s, sending_since = NULL, last_error = NULL
WHERE id = %(id)s
RETURNING id, idempotency_key, message, created_at, sent_at, sent_via, attempts, last_error;

-- name: record_outbox_failure
-- Record why a message could not be sent; it stays parked.
UPDATE postgit.outbox SET sending_since = NULL, last_error = %(error)s WHERE id = %(id)s
RETURNING id, idempotency_key, message, created_at, sent_at, sent_via, attempts, last_error;
