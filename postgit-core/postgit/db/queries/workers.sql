-- name: register_worker
-- Record a worker and the node types it has.
INSERT INTO postgit.workers (id, host, pid, node_types) VALUES (%(id)s, %(host)s, %(pid)s, %(node_types)s)
ON CONFLICT (id) DO UPDATE SET node_types = excluded.node_types, heartbeat_at = now();

-- name: heartbeat_worker
-- Mark a worker alive; re-registers it if its row was removed.
INSERT INTO postgit.workers (id, host, pid, node_types) VALUES (%(id)s, %(host)s, %(pid)s, %(node_types)s)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now();

-- name: deregister_worker
-- Remove a worker that stopped.
DELETE FROM postgit.workers WHERE id = %(id)s;

-- name: list_live_workers
-- Workers whose last heartbeat is recent enough to count them alive.
SELECT id, host, pid, node_types, started_at, heartbeat_at,
       extract(epoch FROM now() - heartbeat_at)::float AS seconds_since_heartbeat
FROM postgit.workers WHERE heartbeat_at > now() - make_interval(secs => %(within_seconds)s)
ORDER BY id;
