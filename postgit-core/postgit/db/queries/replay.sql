-- name: latest_finished_instances
-- The latest finished instances of one version of a workflow (by start, newest first), with their state.
SELECT id, status, postgit.full_state(id, state, has_state_parts) AS state, error, created_at, finished_at
FROM postgit.instances
WHERE workflow = %(workflow)s AND version = %(version)s AND status IN ('completed', 'failed', 'cancelled')
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s;

-- name: recorded_runs
-- The latest attempt of each leaf run of an instance, with when the run first started.
SELECT DISTINCT ON (run_key) run_key, node_id, attempt, status, output, error, due_at, resume, wait_event, wait_key,
       min(started_at) OVER (PARTITION BY run_key) AS first_started_at
FROM postgit.steps WHERE instance_id = %(instance_id)s
ORDER BY run_key, attempt DESC;
