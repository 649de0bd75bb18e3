-- name: register_worker
-- Record a worker, the node types it has and the package and version of each, and the queues it serves (null:
-- every queue).
INSERT INTO postgit.workers (id, host, pid, node_types, plugins, queues)
VALUES (%(id)s, %(host)s, %(pid)s, %(node_types)s, %(plugins)s::jsonb, %(queues)s::text[])
ON CONFLICT (id) DO UPDATE SET node_types = excluded.node_types, plugins = excluded.plugins, queues = excluded.queues,
                               heartbeat_at = now();

-- name: heartbeat_worker
-- Mark a worker alive; re-registers it if its row was removed.
INSERT INTO postgit.workers (id, host, pid, node_types, plugins, queues)
VALUES (%(id)s, %(host)s, %(pid)s, %(node_types)s, %(plugins)s::jsonb, %(queues)s::text[])
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now();

-- name: deregister_worker
-- Remove a worker that stopped.
DELETE FROM postgit.workers WHERE id = %(id)s;

-- name: list_live_workers
-- Workers whose last heartbeat is recent enough to count them alive.
SELECT id, host, pid, node_types, queues, plugins, started_at, heartbeat_at,
       extract(epoch FROM now() - heartbeat_at)::float AS seconds_since_heartbeat
FROM postgit.workers WHERE heartbeat_at > now() - make_interval(secs => %(within_seconds)s)
ORDER BY id;

-- name: list_live_workers_in_flight
-- The live workers, each with how many instances it holds a lease on now.
WITH held AS (
    SELECT lease_owner, count(*) AS in_flight FROM postgit.instances
    WHERE status = 'running' AND lease_owner IS NOT NULL GROUP BY lease_owner
)
SELECT w.id, w.host, w.pid, w.node_types, w.queues, w.plugins, w.started_at, w.heartbeat_at,
       extract(epoch FROM now() - w.heartbeat_at)::float AS seconds_since_heartbeat,
       COALESCE(h.in_flight, 0) AS in_flight
FROM postgit.workers w LEFT JOIN held h ON h.lease_owner = w.id
WHERE w.heartbeat_at > now() - make_interval(secs => %(within_seconds)s)
ORDER BY w.id;
