-- name: record_audit
-- Write one entry of the audit log.
INSERT INTO postgit.audit_log (actor, role, via, action, target, detail, status)
VALUES (%(actor)s, %(role)s, %(via)s, %(action)s, %(target)s, %(detail)s::jsonb, %(status)s);

-- name: list_audit
-- Entries newest first, before the id `before` (a page's keyset), of one actor and action when given.
SELECT id, at, actor, role, via, action, target, detail, status FROM postgit.audit_log
WHERE (%(before)s::bigint IS NULL OR id < %(before)s)
  AND (%(actor)s::text IS NULL OR actor = %(actor)s)
  AND (%(action)s::text IS NULL OR action = %(action)s)
ORDER BY id DESC LIMIT %(limit)s;

-- name: purge_audit
-- Delete up to `limit` audit entries older than the retention.
DELETE FROM postgit.audit_log
WHERE id IN (
    SELECT id FROM postgit.audit_log WHERE at < now() - make_interval(secs => %(retention_seconds)s)
    ORDER BY at LIMIT %(limit)s
)
RETURNING id;
