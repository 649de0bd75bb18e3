-- name: create_instance
-- Start an instance at its first node and wake a worker; nothing when the idempotency key was used before.
WITH created AS (
    INSERT INTO postgit.instances (id, workflow, version, status, state, current_node, node_type, run_at,
                                   idempotency_key)
    VALUES (%(id)s, %(workflow)s, %(version)s, 'pending', %(state)s::jsonb, %(current_node)s, %(node_type)s,
            now(), %(idempotency_key)s)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, status
), logged AS (
    INSERT INTO postgit.events (instance_id, kind, data)
    SELECT id, 'instance_created', jsonb_build_object('workflow', %(workflow)s::text, 'version', %(version)s::int)
    FROM created
)
SELECT id, status, pg_notify('postgit_work', %(node_type)s) IS NOT NULL AS notified FROM created;

-- name: get_instance_by_key
-- The instance started earlier with this idempotency key.
SELECT id, status FROM postgit.instances WHERE idempotency_key = %(idempotency_key)s;

-- name: get_instance
-- One instance.
SELECT id, workflow, version, status, state, done, current_node, node_type, attempt, run_at, lease_owner,
       lease_expires_at, idempotency_key, error, wait_reason, created_at, updated_at, finished_at
FROM postgit.instances WHERE id = %(id)s;

-- name: list_instances
-- Instances newest first, optionally filtered by status and workflow, a page at a time.
SELECT id, workflow, version, status, current_node, node_type, attempt, run_at, error, wait_reason,
       created_at, updated_at, finished_at
FROM postgit.instances
WHERE (%(status)s::text IS NULL OR status = %(status)s::text)
  AND (%(workflow)s::text IS NULL OR workflow = %(workflow)s::text)
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s OFFSET %(offset)s;

-- name: claim_instances
-- Lease up to `limit` due instances whose next node type this worker has, skipping rows other workers hold.
WITH due AS (
    SELECT id FROM postgit.instances
    WHERE status IN ('pending', 'running', 'waiting') AND run_at <= now()
      AND node_type = ANY(%(node_types)s::text[])
    ORDER BY run_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE postgit.instances i
    SET status = 'running', lease_owner = %(worker_id)s, lease_token = i.lease_token + 1,
        lease_expires_at = now() + make_interval(secs => %(lease_seconds)s),
        run_at = now() + make_interval(secs => %(lease_seconds)s),
        wait_reason = NULL, updated_at = now()
    FROM due WHERE i.id = due.id
    RETURNING i.id, i.workflow, i.version, i.state, i.done, i.current_node, i.attempt, i.resume, i.lease_token
), logged AS (
    INSERT INTO postgit.events (instance_id, kind, node_id, data)
    SELECT id, 'step_started', current_node,
           CASE WHEN resume IS NULL THEN jsonb_build_object('attempt', attempt)
                ELSE jsonb_build_object('attempt', attempt, 'resumed', true) END
    FROM claimed
)
SELECT * FROM claimed;

-- name: commit_steps
-- Write a batch of step outcomes, each fenced by its instance's lease token; returns the ids that were written.
WITH batch AS (
    SELECT * FROM jsonb_to_recordset(%(batch)s::jsonb) AS b(
        id uuid, lease_token bigint, status text, state jsonb, done_node text, current_node text, node_type text,
        attempt int, resume jsonb, run_at timestamptz, run_in double precision, keep_lease boolean,
        error jsonb, wait_reason text, step jsonb, events jsonb)
), updated AS (
    UPDATE postgit.instances i
    SET status = b.status,
        state = COALESCE(b.state, i.state),
        done = CASE WHEN b.done_node IS NULL THEN i.done ELSE i.done || b.done_node END,
        current_node = b.current_node, node_type = b.node_type, attempt = b.attempt, resume = b.resume,
        -- a kept lease is left as it is (the worker renews it): no indexed column changes, so the update can be
        -- a HOT update that touches no index
        run_at = CASE WHEN b.keep_lease THEN i.run_at ELSE COALESCE(b.run_at, now() + make_interval(secs => b.run_in)) END,
        lease_owner = CASE WHEN b.keep_lease THEN i.lease_owner END,
        lease_expires_at = CASE WHEN b.keep_lease THEN i.lease_expires_at END,
        error = b.error, wait_reason = b.wait_reason, updated_at = now(),
        finished_at = CASE WHEN b.status IN ('completed', 'failed') THEN now() END
    FROM batch b
    WHERE i.id = b.id AND i.lease_token = b.lease_token AND i.status = 'running'
    RETURNING i.id, i.status, i.node_type
), written_steps AS (
    INSERT INTO postgit.steps AS s (instance_id, node_id, attempt, status, params, output, error, worker_id,
                                    started_at, finished_at)
    SELECT b.id, r.node_id, r.attempt, r.status, r.params, r.output, r.error, r.worker_id, r.started_at,
           r.finished_at
    FROM batch b JOIN updated u ON u.id = b.id
    CROSS JOIN LATERAL jsonb_to_record(b.step) AS r(
        node_id text, attempt int, status text, params jsonb, output jsonb, error jsonb, worker_id text,
        started_at timestamptz, finished_at timestamptz)
    WHERE b.step IS NOT NULL
    ON CONFLICT (instance_id, node_id, attempt) DO UPDATE
    SET status = excluded.status, params = excluded.params, output = excluded.output, error = excluded.error,
        worker_id = excluded.worker_id, finished_at = excluded.finished_at
), logged AS (
    INSERT INTO postgit.events (instance_id, kind, node_id, data)
    SELECT b.id, e.kind, e.node_id, COALESCE(e.data, '{}'::jsonb)
    FROM batch b JOIN updated u ON u.id = b.id
    CROSS JOIN LATERAL jsonb_to_recordset(b.events) AS e(kind text, node_id text, data jsonb)
)
-- an instance handed back for another worker (its next node type is not this worker's) wakes the others
SELECT id, (CASE WHEN status = 'pending' THEN pg_notify('postgit_work', node_type) END) IS NOT NULL AS notified
FROM updated;

-- name: renew_leases
-- Extend the leases this worker still holds; returns the ids whose lease was renewed.
UPDATE postgit.instances i
SET lease_expires_at = now() + make_interval(secs => %(lease_seconds)s),
    run_at = now() + make_interval(secs => %(lease_seconds)s)
FROM jsonb_to_recordset(%(leases)s::jsonb) AS l(id uuid, lease_token bigint)
WHERE i.id = l.id AND i.lease_token = l.lease_token AND i.status = 'running'
RETURNING i.id;

-- name: release_leases
-- Hand instances back (worker stopping): due again at once for any worker.
WITH released AS (
    UPDATE postgit.instances i
    SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, run_at = now(), updated_at = now()
    FROM jsonb_to_recordset(%(leases)s::jsonb) AS l(id uuid, lease_token bigint)
    WHERE i.id = l.id AND i.lease_token = l.lease_token AND i.status = 'running'
    RETURNING i.id, i.node_type
)
SELECT id, pg_notify('postgit_work', node_type) IS NOT NULL AS notified FROM released;

-- name: cancel_instance
-- Cancel an unfinished instance; bumping the lease token fences off a worker still running its step.
WITH cancelled AS (
    UPDATE postgit.instances
    SET status = 'cancelled', run_at = NULL, lease_owner = NULL, lease_expires_at = NULL,
        lease_token = lease_token + 1, updated_at = now(), finished_at = now()
    WHERE id = %(id)s AND status IN ('pending', 'running', 'waiting')
    RETURNING id, status
), logged AS (
    INSERT INTO postgit.events (instance_id, kind) SELECT id, 'instance_cancelled' FROM cancelled
)
SELECT id, status FROM cancelled;

-- name: next_run_at
-- When the earliest active instance this worker could run is due.
SELECT min(run_at) AS run_at FROM postgit.instances
WHERE status IN ('pending', 'running', 'waiting') AND node_type = ANY(%(node_types)s::text[]);
