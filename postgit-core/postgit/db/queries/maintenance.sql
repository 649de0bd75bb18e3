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

-- name: events_mark
-- The id of the last event the event-compaction pass has looked at (0: none yet).
SELECT COALESCE((SELECT value FROM postgit.maintenance_marks WHERE name = 'events_compaction'), 0) AS after;

-- name: scan_events
-- The next `window` events after `after`, up to the first one written in the last 10 seconds (so that the ids of a
-- transaction still writing are not passed over): the last id read, how many, and the instances among theirs that
-- have more than `keep` events.
WITH next AS (
    SELECT id, instance_id, at FROM postgit.events WHERE id > %(after)s ORDER BY id LIMIT %(window)s
), scanned AS (
    SELECT id, instance_id FROM next
    WHERE id < COALESCE((SELECT min(id) FROM next WHERE at >= now() - interval '10 seconds'), 'Infinity'::numeric)
), candidates AS (
    SELECT DISTINCT instance_id FROM scanned
)
SELECT (SELECT max(id) FROM scanned) AS last_id, (SELECT count(*) FROM scanned) AS scanned,
       ARRAY(SELECT c.instance_id FROM candidates c
             WHERE (SELECT count(*) FROM (SELECT FROM postgit.events e WHERE e.instance_id = c.instance_id
                                          LIMIT %(keep)s + 1) n) > %(keep)s) AS over;

-- name: set_events_mark
-- Record that the event-compaction pass has looked at every event up to `value`.
INSERT INTO postgit.maintenance_marks (name, value) VALUES ('events_compaction', %(value)s)
ON CONFLICT (name) DO UPDATE
SET value = greatest(postgit.maintenance_marks.value, excluded.value), updated_at = now();

-- name: compact_instance_events
-- Replace up to `limit` events of one instance between its first `head` and its latest `tail` by one
-- `events_compacted` event, which takes the place (and the id) of the first event after the head and counts what
-- it stands for: how many events, how many of each kind, from when to when (a later pass adds to it).
-- Interruptions (`step_interrupted`, `lease_expired`) are kept: the instance's status lists them. One process at a
-- time (the maintenance lock); returns how many events were removed, or null when another process holds the lock.
WITH lock AS (
    SELECT pg_try_advisory_xact_lock(%(lock_id)s) AS held
), head_end AS (
    SELECT id FROM postgit.events
    WHERE instance_id = %(id)s AND (SELECT held FROM lock)
    ORDER BY id OFFSET %(head)s - 1 LIMIT 1
), tail_start AS (
    SELECT id FROM postgit.events
    WHERE instance_id = %(id)s AND (SELECT held FROM lock)
    ORDER BY id DESC OFFSET %(tail)s - 1 LIMIT 1
), marker AS (
    SELECT id, kind, data, at FROM postgit.events
    WHERE instance_id = %(id)s AND id > (SELECT id FROM head_end) AND id < (SELECT id FROM tail_start)
      AND kind NOT IN ('step_interrupted', 'lease_expired')
    ORDER BY id LIMIT 1
    FOR UPDATE
), doomed AS (
    SELECT e.id, e.kind, e.at FROM postgit.events e
    WHERE e.instance_id = %(id)s
      AND e.id > (SELECT id FROM marker) AND e.id < (SELECT id FROM tail_start)
      AND e.kind NOT IN ('step_interrupted', 'lease_expired', 'events_compacted')
    ORDER BY e.id LIMIT %(limit)s
    FOR UPDATE
), gone AS (
    DELETE FROM postgit.events e USING doomed d WHERE e.id = d.id RETURNING d.kind, d.at
), counted AS (
    -- the marker stands for itself too when it was an ordinary event
    SELECT kind, at FROM gone
    UNION ALL
    SELECT kind, at FROM marker WHERE kind <> 'events_compacted' AND EXISTS (SELECT FROM gone)
), by_kind AS (
    SELECT kind, count(*) AS n FROM counted GROUP BY kind
), previous AS (
    SELECT CASE WHEN kind = 'events_compacted' THEN data ELSE '{}'::jsonb END AS data FROM marker
), merged AS (
    SELECT COALESCE((p.data ->> 'events')::bigint, 0) + (SELECT count(*) FROM counted) AS events,
           COALESCE(p.data -> 'kinds', '{}'::jsonb)
               || COALESCE((SELECT jsonb_object_agg(b.kind, b.n + COALESCE((p.data -> 'kinds' ->> b.kind)::bigint, 0))
                            FROM by_kind b), '{}'::jsonb) AS kinds,
           COALESCE(p.data -> 'from', to_jsonb((SELECT min(at) FROM counted))) AS first_at,
           to_jsonb((SELECT max(at) FROM counted)) AS last_at
    FROM previous p
), marked AS (
    UPDATE postgit.events e
    SET kind = 'events_compacted', node_id = NULL,
        data = jsonb_build_object('events', m.events, 'kinds', m.kinds, 'from', m.first_at, 'to', m.last_at)
    FROM merged m
    WHERE e.id = (SELECT id FROM marker) AND EXISTS (SELECT FROM gone)
)
SELECT CASE WHEN (SELECT held FROM lock) THEN (SELECT count(*) FROM gone) END AS removed;
