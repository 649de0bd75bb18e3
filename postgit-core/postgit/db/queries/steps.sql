-- name: list_steps
-- Every recorded attempt of every step of an instance, in the order they started.
SELECT node_id, attempt, status, params, output, error, worker_id, started_at, finished_at
FROM postgit.steps WHERE instance_id = %(instance_id)s ORDER BY started_at, attempt;
