-- name: record_audit
-- Write entries of the audit log, in their order (a JSON array of objects with the columns below).
INSERT INTO postgit.audit_log (actor, role, via, action, target, detail, status)
SELECT e.actor, e.role, e.via, e.action, e.target, coalesce(e.detail, '{}'::jsonb), e.status
FROM ROWS FROM (jsonb_to_recordset(%(entries)s::jsonb)
    AS (actor text, role text, via text, action text, target text, detail jsonb, status int)) WITH ORDINALITY
    AS e(actor, role, via, action, target, detail, status, n)
ORDER BY e.n;

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
