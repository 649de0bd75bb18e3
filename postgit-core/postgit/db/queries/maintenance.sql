-- name: purge_finished
-- Delete up to `limit` instances finished longer ago than their workflow's retention (or `retention_seconds`),
-- with their steps, runs, deliveries, signals and events; one process at a time (a transaction-scoped advisory
-- lock, so it also holds through a transaction pooler). Returns how many were deleted, or null when another
-- process holds the lock.
WITH lock AS (
    SELECT pg_try_advisory_xact_lock(%(lock_id)s) AS held
), doomed AS (
    SELECT i.id FROM postgit.instances i
    JOIN postgit.workflows w ON w.name = i.workflow AND w.version = i.version
    WHERE (SELECT held FROM lock) AND i.finished_at IS NOT NULL
      AND i.finished_at < now() - make_interval(
          secs => COALESCE((w.definition->>'retention')::double precision, %(retention_seconds)s))
    ORDER BY i.finished_at
    LIMIT %(limit)s
    FOR UPDATE OF i SKIP LOCKED
), gone_events AS (
    DELETE FROM postgit.events e USING doomed d WHERE e.instance_id = d.id
), gone_signals AS (
    DELETE FROM postgit.signals s USING doomed d WHERE s.instance_id = d.id
), gone AS (
    DELETE FROM postgit.instances i USING doomed d WHERE i.id = d.id RETURNING i.id
)
SELECT CASE WHEN (SELECT held FROM lock) THEN (SELECT count(*) FROM gone) END AS purged;

-- name: purge_keyed_signals
-- Delete up to `limit` events sent by key (to every instance waiting on a name and key) older than the retention.
DELETE FROM postgit.signals
WHERE id IN (
    SELECT id FROM postgit.signals
    WHERE instance_id IS NULL AND created_at < now() - make_interval(secs => %(retention_seconds)s)
    ORDER BY created_at LIMIT %(limit)s
)
RETURNING id;

-- name: delete_instance
-- Delete one finished instance with everything recorded of it; returns its status, or nothing when it does not
-- exist or has not finished (so nothing is deleted).
WITH doomed AS (
    SELECT id, status FROM postgit.instances
    WHERE id = %(id)s AND status IN ('completed', 'failed', 'cancelled')
    FOR UPDATE
), gone_events AS (
    DELETE FROM postgit.events e USING doomed d WHERE e.instance_id = d.id
), gone_signals AS (
    DELETE FROM postgit.signals s USING doomed d WHERE s.instance_id = d.id
), gone AS (
    DELETE FROM postgit.instances i USING doomed d WHERE i.id = d.id RETURNING i.id, d.status
)
SELECT id, status FROM gone;
