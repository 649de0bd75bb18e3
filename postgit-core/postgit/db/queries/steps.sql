-- name: list_steps
-- The latest `limit` recorded attempts of the steps of an instance, in the order they started; their logs if `logs`.
SELECT * FROM (
    SELECT run_key, node_id, attempt, status, params, output, error, worker_id, started_at, finished_at, due_at,
           wait_event, wait_key, CASE WHEN %(logs)s THEN logs END AS logs
    FROM postgit.steps WHERE instance_id = %(instance_id)s
    ORDER BY started_at DESC, run_key DESC, attempt DESC LIMIT %(limit)s
) latest ORDER BY started_at, run_key, attempt;

-- name: count_steps
-- How many attempts of steps an instance has recorded.
SELECT count(*) AS steps FROM postgit.steps WHERE instance_id = %(instance_id)s;

-- name: latest_attempts
-- The latest attempt of each leaf run of an instance: what the decider reads.
SELECT DISTINCT ON (run_key) run_key, attempt, status, output, error, due_at, resume, wait_event, wait_key
FROM postgit.steps WHERE instance_id = %(instance_id)s ORDER BY run_key, attempt DESC;

-- name: list_runs
-- The control runs of an instance: decisions and recorded completions.
SELECT run_key, node_id, decision, status, output FROM postgit.runs WHERE instance_id = %(instance_id)s;
