-- name: pause_instances
-- Pause the unfinished, unpaused instances of `ids`: no worker claims them until they are resumed (a step
-- running now finishes and is written; its worker then hands the instance back). Returns those it paused.
WITH locked AS (
    SELECT id FROM postgit.instances
    WHERE id = ANY(%(ids)s::uuid[]) AND status IN ('pending', 'running', 'waiting') AND paused_at IS NULL
    ORDER BY id FOR UPDATE
), paused AS (
    UPDATE postgit.instances i
    SET paused_at = now(), pause_reason = %(reason)s, updated_at = now()
    FROM locked WHERE i.id = locked.id AND i.status IN ('pending', 'running', 'waiting') AND i.paused_at IS NULL
    RETURNING i.id, i.status, i.paused_at, i.pause_reason
), logged AS (
    INSERT INTO postgit.events (instance_id, kind, data)
    SELECT id, 'instance_paused', jsonb_build_object('reason', pause_reason) || %(data)s::jsonb FROM paused
)
SELECT id, status, paused_at, pause_reason FROM paused;

-- name: resume_instances
-- Resume the paused unfinished instances of `ids`: claimable again from their due time (at once, unless they
-- wait for a timer or an event). Returns those it resumed.
WITH locked AS (
    SELECT id FROM postgit.instances
    WHERE id = ANY(%(ids)s::uuid[]) AND status IN ('pending', 'running', 'waiting') AND paused_at IS NOT NULL
    ORDER BY id FOR UPDATE
), resumed AS (
    UPDATE postgit.instances i
    SET paused_at = NULL, pause_reason = NULL, updated_at = now()
    FROM locked
    WHERE i.id = locked.id AND i.status IN ('pending', 'running', 'waiting') AND i.paused_at IS NOT NULL
    RETURNING i.id, i.status, i.node_types, i.run_at
), logged AS (
    INSERT INTO postgit.events (instance_id, kind, data) SELECT id, 'instance_resumed', %(data)s::jsonb FROM resumed
)
SELECT id, status,
       (CASE WHEN run_at <= now() THEN pg_notify('postgit_work', array_to_string(node_types, ',')) END) IS NOT NULL
           AS notified
FROM resumed;

-- name: retry_instances
-- Make the failed or cancelled instances of `targets` pending again, each on its `version`: the step rows of
-- the runs it re-runs (its runs `keys`, and every run of its nodes `nodes`) move to retired_steps, so their
-- attempts count from 1 again; the control runs of `nodes` are forgotten (decided again) and those of
-- `ancestors` lose their completion. Every other step row, with its output, is kept. Returns the instances it
-- retried; one that is neither failed nor cancelled is left as it is.
WITH wanted AS (
    SELECT * FROM jsonb_to_recordset(%(targets)s::jsonb)
        AS w(id uuid, version integer, keys text[], nodes text[], ancestors text[], timeout double precision,
             data jsonb)
), target AS (
    SELECT i.id, i.retries + 1 AS retry, w.version, w.keys, w.nodes, w.ancestors, w.timeout, w.data
    FROM postgit.instances i JOIN wanted w ON w.id = i.id
    WHERE i.status IN ('failed', 'cancelled')
    ORDER BY i.id FOR UPDATE OF i
), moved AS (
    DELETE FROM postgit.steps s USING target t
    WHERE s.instance_id = t.id AND (s.run_key = ANY(t.keys) OR s.node_id = ANY(t.nodes))
    RETURNING s.instance_id, s.run_key, s.node_id, s.attempt, s.status, s.params, s.output, s.error, s.worker_id,
              s.started_at, s.finished_at
), retired AS (
    INSERT INTO postgit.retired_steps (instance_id, retry, run_key, node_id, attempt, status, params, output, error,
                                       worker_id, started_at, finished_at)
    SELECT m.instance_id, t.retry, m.run_key, m.node_id, m.attempt, m.status, m.params, m.output, m.error,
           m.worker_id, m.started_at, m.finished_at
    FROM moved m JOIN target t ON t.id = m.instance_id
), forgotten AS (
    DELETE FROM postgit.runs r USING target t WHERE r.instance_id = t.id AND r.node_id = ANY(t.nodes)
), reopened AS (
    UPDATE postgit.runs r SET status = NULL, output = NULL, updated_at = now()
    FROM target t
    WHERE r.instance_id = t.id AND r.node_id = ANY(t.ancestors) AND r.status IS NOT NULL
), retried AS (
    UPDATE postgit.instances i
    SET status = 'pending', version = t.version, run_at = now(), error = NULL, finished_at = NULL,
        wait_reason = NULL, node_types = %(node_types)s::text[], lanes = '{*}', attempt = 1,
        lease_token = i.lease_token + 1,
        lease_owner = NULL, lease_expires_at = NULL, paused_at = NULL, pause_reason = NULL, running_runs = NULL,
        retries = t.retry, updated_at = now(),
        deadline_at = now() + make_interval(secs => t.timeout)
    FROM target t WHERE i.id = t.id
    RETURNING i.id, i.status, i.version, i.node_types, t.retry, t.data
), counted AS (
    SELECT instance_id, count(*) AS steps_retired FROM moved GROUP BY instance_id
), logged AS (
    INSERT INTO postgit.events (instance_id, kind, data)
    SELECT r.id, 'instance_retried',
           r.data || jsonb_build_object('retry', r.retry, 'steps_retired', coalesce(c.steps_retired, 0))
    FROM retried r LEFT JOIN counted c ON c.instance_id = r.id
)
SELECT r.id, r.status, r.version, r.retry, coalesce(c.steps_retired, 0) AS steps_retired,
       pg_notify('postgit_work', array_to_string(r.node_types, ',')) IS NOT NULL AS notified
FROM retried r LEFT JOIN counted c ON c.instance_id = r.id;

-- name: failed_runs
-- The runs whose latest attempt failed for good (no retry due), of each instance of `ids`: where a retry resumes.
SELECT instance_id, run_key FROM (
    SELECT DISTINCT ON (instance_id, run_key) instance_id, run_key, status, due_at
    FROM postgit.steps WHERE instance_id = ANY(%(ids)s::uuid[])
    ORDER BY instance_id, run_key, attempt DESC
) latest
WHERE status = 'failed' AND due_at IS NULL;

-- name: instance_summaries
-- The instances of `ids` that exist, without their state: why an operation left one as it was.
SELECT id, workflow, version, status, paused_at FROM postgit.instances WHERE id = ANY(%(ids)s::uuid[]);

-- name: select_instances
-- The ids of a workflow's instances in one of `statuses` (created since `since`, when given), oldest first: what
-- a bulk action works through.
SELECT id FROM postgit.instances
WHERE workflow = %(workflow)s AND status = ANY(%(statuses)s::text[])
  AND (%(since)s::timestamptz IS NULL OR created_at >= %(since)s::timestamptz)
  AND (%(paused)s::boolean IS NULL OR (paused_at IS NOT NULL) = %(paused)s::boolean)
ORDER BY created_at, id
LIMIT %(limit)s;
