-- name: take_rate_token
-- Reserve the earliest token of `key` (`per_second` tokens a second, up to one second's worth at once) and return
-- when it is due: now, or later when the key's tokens are taken. A reserved token is the caller's, so a step that
-- waits for it takes no other. (The generic cell rate algorithm: `next_at` is the key's theoretical arrival time.)
INSERT INTO postgit.rate_limits AS r (key, next_at)
VALUES (%(key)s, now() + make_interval(secs => 1.0 / %(per_second)s))
ON CONFLICT (key) DO UPDATE
SET next_at = greatest(r.next_at, now()) + make_interval(secs => 1.0 / %(per_second)s)
RETURNING greatest(now(), next_at - make_interval(secs => greatest(1.0, 1.0 / %(per_second)s))) AS due_at;

-- name: purge_rate_limits
-- Delete up to `limit` rate-limit keys whose tokens have all been free for a minute: such a key behaves as a new one.
DELETE FROM postgit.rate_limits
WHERE key IN (
    SELECT key FROM postgit.rate_limits WHERE next_at < now() - interval '1 minute' LIMIT %(limit)s
)
RETURNING key;
