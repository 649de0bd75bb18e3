-- name: insert_schedule
-- Create a schedule; nothing comes back when one of that name exists.
INSERT INTO postgit.schedules (name, workflow, cron, timezone, input, overlap, catchup_window, paused, next_fire_at)
VALUES (%(name)s, %(workflow)s, %(cron)s, %(timezone)s, %(input)s::jsonb, %(overlap)s, %(catchup_window)s,
        %(paused)s, %(next_fire_at)s)
ON CONFLICT (name) DO NOTHING
RETURNING name;

-- name: get_schedule
-- One schedule, with the status of the instance it started last.
SELECT s.name, s.workflow, s.cron, s.timezone, s.input, s.overlap, s.catchup_window, s.paused, s.next_fire_at,
       s.buffered, s.last_instance_id, i.status AS last_instance_status, s.created_at, s.updated_at
FROM postgit.schedules s LEFT JOIN postgit.instances i ON i.id = s.last_instance_id
WHERE s.name = %(name)s;

-- name: list_schedules
-- Every schedule by name, with the status of the instance it started last.
SELECT s.name, s.workflow, s.cron, s.timezone, s.input, s.overlap, s.catchup_window, s.paused, s.next_fire_at,
       s.buffered, s.last_instance_id, i.status AS last_instance_status, s.created_at, s.updated_at
FROM postgit.schedules s LEFT JOIN postgit.instances i ON i.id = s.last_instance_id
ORDER BY s.name;

-- name: get_schedule_now
-- One schedule, with the database's time (what a trigger or a backfill starts from).
SELECT name, workflow, cron, timezone, input, overlap, paused, next_fire_at, now() AS now
FROM postgit.schedules WHERE name = %(name)s;

-- name: set_schedule_paused
-- Pause or resume a schedule; resuming sets the next nominal time (none is fired for the time it was paused).
UPDATE postgit.schedules
SET paused = %(paused)s, next_fire_at = COALESCE(%(next_fire_at)s, next_fire_at), updated_at = now()
WHERE name = %(name)s
RETURNING name;

-- name: delete_schedule
-- Delete a schedule and its fire history; the instances it started are left alone.
DELETE FROM postgit.schedules WHERE name = %(name)s RETURNING name;

-- name: list_schedule_fires
-- A schedule's latest fire records, newest first.
SELECT nominal_at, last_nominal_at, fires, kind, outcome, instance_id, detail, recorded_at
FROM postgit.schedule_fires WHERE schedule = %(name)s
ORDER BY id DESC LIMIT %(limit)s;

-- name: claim_due_schedules
-- Claim for `claim_seconds` up to `limit` unpaused schedules that are due (their next nominal time comes within
-- `ahead` seconds) or that hold buffered fires while the instance they started last has finished, skipping rows
-- another process holds or has claimed; with the database's time, which every process shares.
WITH due AS (
    SELECT s.name FROM postgit.schedules s LEFT JOIN postgit.instances i ON i.id = s.last_instance_id
    WHERE NOT s.paused AND (s.claimed_until IS NULL OR s.claimed_until < now())
      AND (s.next_fire_at <= now() + make_interval(secs => %(ahead)s)
           OR (cardinality(s.buffered) > 0 AND (i.id IS NULL OR i.status NOT IN ('pending', 'running', 'waiting'))))
    ORDER BY s.next_fire_at
    LIMIT %(limit)s
    FOR UPDATE OF s SKIP LOCKED
), claimed AS (
    UPDATE postgit.schedules s SET claimed_until = now() + make_interval(secs => %(claim_seconds)s)
    FROM due WHERE s.name = due.name
    RETURNING s.name, s.workflow, s.cron, s.timezone, s.input, s.overlap, s.catchup_window, s.next_fire_at,
              s.buffered, s.last_instance_id
)
SELECT c.*, i.status AS last_instance_status, now() AS now
FROM claimed c LEFT JOIN postgit.instances i ON i.id = c.last_instance_id
ORDER BY c.next_fire_at;

-- name: database_clock
-- The database's clock as the statement runs (not the transaction's start, which now() gives).
SELECT clock_timestamp() AS now;

-- name: release_schedule_claims
-- Give up the claims of a firing pass that failed, so that the next pass takes the schedules at once.
UPDATE postgit.schedules SET claimed_until = NULL WHERE name = ANY(%(names)s::text[]);

-- name: record_schedule_fires
-- Store what a firing pass, a trigger or a backfill did: each schedule's next nominal time, buffer and last
-- instance (a null `next_fire_at` or `buffered` keeps the stored one), the end of a pass's claim (`release`), and
-- one record per fire or range of fires.
-- A record for a nominal time already recorded replaces it, unless that one started an instance and this one
-- did not.
WITH changes AS (
    SELECT * FROM jsonb_to_recordset(%(schedules)s::jsonb) AS x(
        name text, next_fire_at timestamptz, buffered timestamptz[], last_instance_id uuid, release boolean)
), updated AS (
    UPDATE postgit.schedules s
    SET next_fire_at = COALESCE(c.next_fire_at, s.next_fire_at), buffered = COALESCE(c.buffered, s.buffered),
        last_instance_id = COALESCE(c.last_instance_id, s.last_instance_id),
        claimed_until = CASE WHEN c.release THEN NULL ELSE s.claimed_until END, updated_at = now()
    FROM changes c WHERE s.name = c.name
    RETURNING s.name
), recorded AS (
    INSERT INTO postgit.schedule_fires (schedule, nominal_at, last_nominal_at, fires, kind, outcome, instance_id,
                                        detail)
    SELECT f.schedule, f.nominal_at, COALESCE(f.last_nominal_at, f.nominal_at), COALESCE(f.fires, 1), f.kind,
           f.outcome, f.instance_id, f.detail
    FROM jsonb_to_recordset(%(fires)s::jsonb) AS f(
        schedule text, nominal_at timestamptz, last_nominal_at timestamptz, fires integer, kind text, outcome text,
        instance_id uuid, detail text)
    WHERE f.schedule IN (SELECT name FROM postgit.schedules)
    ON CONFLICT (schedule, nominal_at) DO UPDATE
    SET last_nominal_at = EXCLUDED.last_nominal_at, fires = EXCLUDED.fires, kind = EXCLUDED.kind,
        outcome = EXCLUDED.outcome, instance_id = EXCLUDED.instance_id, detail = EXCLUDED.detail,
        recorded_at = now()
    WHERE schedule_fires.instance_id IS NULL OR EXCLUDED.instance_id IS NOT NULL
    RETURNING 1
)
SELECT (SELECT count(*) FROM updated) AS schedules, (SELECT count(*) FROM recorded) AS fires;

-- name: next_schedule_wait
-- Seconds until the soonest unpaused schedule is due (negative when one is overdue); null when there is none.
SELECT extract(epoch FROM min(next_fire_at) - clock_timestamp())::double precision AS wait
FROM postgit.schedules WHERE NOT paused;

-- name: prune_schedule_fires
-- Keep each schedule's latest `keep` fire records; the older ones are deleted.
DELETE FROM postgit.schedule_fires f
USING (
    SELECT s.name, (SELECT x.id FROM postgit.schedule_fires x WHERE x.schedule = s.name
                    ORDER BY x.id DESC OFFSET %(keep)s LIMIT 1) AS cut
    FROM postgit.schedules s
) c
WHERE f.schedule = c.name AND f.id <= c.cut;
