-- name: pause_instance
-- Pause an unfinished instance that is not paused: no worker claims it until it is resumed (a step running now
-- finishes and is written; its worker then hands the instance back). Returns it, or nothing when it was not.
WITH paused AS (
    UPDATE postgit.instances
    SET paused_at = now(), pause_reason = %(reason)s, updated_at = now()
    WHERE id = %(id)s AND status IN ('pending', 'running', 'waiting') AND paused_at IS NULL
    RETURNING id, status, paused_at, pause_reason
), logged AS (
    INSERT INTO postgit.events (instance_id, kind, data)
    SELECT id, 'instance_paused', jsonb_build_object('reason', pause_reason) || %(data)s::jsonb FROM paused
)
SELECT id, status, paused_at, pause_reason FROM paused;

-- name: resume_instance
-- Resume a paused instance: claimable again from its due time (at once, unless it waits for a timer or an event).
WITH resumed AS (
    UPDATE postgit.instances
    SET paused_at = NULL, pause_reason = NULL, updated_at = now()
    WHERE id = %(id)s AND status IN ('pending', 'running', 'waiting') AND paused_at IS NOT NULL
    RETURNING id, status, node_types, run_at
), logged AS (
    INSERT INTO postgit.events (instance_id, kind, data) SELECT id, 'instance_resumed', %(data)s::jsonb FROM resumed
)
SELECT id, status,
       (CASE WHEN run_at <= now() THEN pg_notify('postgit_work', array_to_string(node_types, ',')) END) IS NOT NULL
           AS notified
FROM resumed;

-- name: retry_instance
-- Make a failed or cancelled instance pending again, on `version`: the step rows of the runs it re-runs (the
-- runs `keys`, and every run of the nodes `nodes`) move to retired_steps, so their attempts count from 1 again;
-- the control runs of `nodes` are forgotten (decided again) and those of `ancestors` lose their completion.
-- Every other step row, with its output, is kept. Returns the instance, or nothing when it is not failed or
-- cancelled (then nothing is written).
WITH target AS (
    SELECT id, retries + 1 AS retry FROM postgit.instances
    WHERE id = %(id)s AND status IN ('failed', 'cancelled')
    FOR UPDATE
), moved AS (
    DELETE FROM postgit.steps s USING target t
    WHERE s.instance_id = t.id AND (s.run_key = ANY(%(keys)s::text[]) OR s.node_id = ANY(%(nodes)s::text[]))
    RETURNING s.instance_id, s.run_key, s.node_id, s.attempt, s.status, s.params, s.output, s.error, s.worker_id,
              s.started_at, s.finished_at
), retired AS (
    INSERT INTO postgit.retired_steps (instance_id, retry, run_key, node_id, attempt, status, params, output, error,
                                       worker_id, started_at, finished_at)
    SELECT m.instance_id, t.retry, m.run_key, m.node_id, m.attempt, m.status, m.params, m.output, m.error,
           m.worker_id, m.started_at, m.finished_at
    FROM moved m CROSS JOIN target t
), forgotten AS (
    DELETE FROM postgit.runs r USING target t WHERE r.instance_id = t.id AND r.node_id = ANY(%(nodes)s::text[])
), reopened AS (
    UPDATE postgit.runs r SET status = NULL, output = NULL, updated_at = now()
    FROM target t
    WHERE r.instance_id = t.id AND r.node_id = ANY(%(ancestors)s::text[]) AND r.status IS NOT NULL
), retried AS (
    UPDATE postgit.instances i
    SET status = 'pending', version = %(version)s, run_at = now(), error = NULL, finished_at = NULL,
        wait_reason = NULL, node_types = %(node_types)s::text[], lanes = '{*}', attempt = 1,
        lease_token = i.lease_token + 1,
        lease_owner = NULL, lease_expires_at = NULL, paused_at = NULL, pause_reason = NULL, running_runs = NULL,
        retries = t.retry, updated_at = now(),
        deadline_at = now() + make_interval(secs => %(timeout)s::double precision)
    FROM target t WHERE i.id = t.id
    RETURNING i.id, i.status, i.version, i.node_types, t.retry
), logged AS (
    INSERT INTO postgit.events (instance_id, kind, data)
    SELECT id, 'instance_retried',
           %(data)s::jsonb || jsonb_build_object('retry', retry, 'steps_retired', (SELECT count(*) FROM moved))
    FROM retried
)
SELECT r.id, r.status, r.version, r.retry, (SELECT count(*) FROM moved) AS steps_retired,
       pg_notify('postgit_work', array_to_string(r.node_types, ',')) IS NOT NULL AS notified
FROM retried r;

-- name: select_instances
-- The ids of a workflow's instances in one of `statuses` (created since `since`, when given), oldest first: what
-- a bulk action works through.
SELECT id FROM postgit.instances
WHERE workflow = %(workflow)s AND status = ANY(%(statuses)s::text[])
  AND (%(since)s::timestamptz IS NULL OR created_at >= %(since)s::timestamptz)
  AND (%(paused)s::boolean IS NULL OR (paused_at IS NOT NULL) = %(paused)s::boolean)
ORDER BY created_at, id
LIMIT %(limit)s;
