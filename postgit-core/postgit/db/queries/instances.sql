-- name: start_instances
-- Start one instance per item, log their creation and wake the workers once. An item whose idempotency key an
-- instance visible to this statement holds is not started: that instance comes back (`existing`). An item taken as
-- its workflow's latest version is not started when a newer version was deployed since (`stale`).
WITH items AS (
    SELECT * FROM jsonb_to_recordset(%(items)s::jsonb) AS x(
        id uuid, workflow text, version int, latest boolean, state jsonb, current_node text, node_types text[],
        lanes text[], idempotency_key text, timeout double precision, parent_id uuid, parent_run_key text,
        cancel_with_parent boolean, traceparent text, start_at timestamptz, wait_reason text, priority smallint,
        concurrency_key text, concurrency_limit int, concurrency_strategy text)
), latest AS (
    SELECT name, max(version) AS version FROM postgit.workflows
    WHERE name IN (SELECT workflow FROM items WHERE latest) GROUP BY name
), stale AS (
    SELECT x.id FROM items x JOIN latest l ON l.name = x.workflow WHERE x.latest AND x.version <> l.version
), created AS (
    INSERT INTO postgit.instances (id, workflow, version, status, state, current_node, node_type, node_types, lanes,
                                   run_at, idempotency_key, deadline_at, parent_id, parent_run_key, cancel_with_parent,
                                   traceparent, wait_reason, priority, concurrency_key, concurrency_limit,
                                   concurrency_strategy)
    SELECT x.id, x.workflow, x.version, 'pending', x.state, x.current_node, x.node_types[1], x.node_types,
           COALESCE(x.lanes, '{*}'), greatest(now(), COALESCE(x.start_at, now())), x.idempotency_key,
           greatest(now(), COALESCE(x.start_at, now())) + make_interval(secs => x.timeout), x.parent_id,
           x.parent_run_key, COALESCE(x.cancel_with_parent, true), x.traceparent, x.wait_reason,
           COALESCE(x.priority, 3), x.concurrency_key, x.concurrency_limit, x.concurrency_strategy
    FROM items x WHERE x.id NOT IN (SELECT id FROM stale)
    ON CONFLICT (idempotency_key) DO NOTHING
    -- as the concurrency trigger left it: holding a slot, waiting for one, or cancelled (cancel_newest)
    RETURNING id, workflow, version, status, node_types, run_at, awaiting_slot, error
), logged AS (
    INSERT INTO postgit.events (instance_id, kind, data)
    SELECT c.id, 'instance_created', jsonb_build_object('workflow', c.workflow, 'version', c.version)
        || CASE WHEN c.run_at > now() THEN jsonb_build_object('starts_at', c.run_at) ELSE '{}'::jsonb END
    FROM created c
    UNION ALL
    SELECT c.id, 'instance_cancelled', jsonb_build_object('reason', c.error ->> 'message')
    FROM created c WHERE c.status = 'cancelled'
)
SELECT 'created' AS outcome, id, status, NULL::text AS idempotency_key FROM created
UNION ALL
SELECT 'existing', i.id, i.status, i.idempotency_key FROM postgit.instances i
WHERE i.idempotency_key IN (SELECT idempotency_key FROM items WHERE id NOT IN (SELECT id FROM stale))
UNION ALL
SELECT 'stale', id, NULL, NULL FROM stale
UNION ALL
SELECT 'notified', NULL, NULL, NULL
FROM (SELECT pg_notify('postgit_work', string_agg(DISTINCT node_type, ',')) AS sent
      FROM created, unnest(created.node_types) AS node_type
      WHERE created.run_at <= now() AND NOT created.awaiting_slot HAVING count(*) > 0) notify;

-- name: instances_by_keys
-- The instances started earlier with these idempotency keys.
SELECT id, status, idempotency_key FROM postgit.instances WHERE idempotency_key = ANY(%(keys)s::text[]);

-- name: get_instance
-- One instance, with its whole state (its parts merged).
SELECT id, workflow, version, status, postgit.full_state(id, state, has_state_parts) AS state, current_node,
       node_type, node_types, lanes, attempt, run_at, lease_owner, lease_expires_at, idempotency_key, error,
       wait_reason, deadline_at, parent_id, parent_run_key, paused_at, pause_reason, retries, priority,
       concurrency_key, holds_slot, awaiting_slot, created_at, updated_at, finished_at
FROM postgit.instances WHERE id = %(id)s;

-- name: list_instances
-- Instances newest first, optionally filtered by status and workflow, a page at a time.
SELECT id, workflow, version, status, current_node, node_type, attempt, run_at, error, wait_reason, parent_id,
       paused_at, pause_reason, created_at, updated_at, finished_at
FROM postgit.instances
WHERE (%(status)s::text IS NULL OR status = %(status)s::text)
  AND (%(workflow)s::text IS NULL OR workflow = %(workflow)s::text)
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s OFFSET %(offset)s;

-- name: list_children
-- The instances an instance started (SubWorkflow), oldest first.
SELECT id, workflow, version, status, parent_run_key, created_at, finished_at
FROM postgit.instances WHERE parent_id = %(id)s ORDER BY created_at, id;

-- name: claim_instances
-- Lease up to `limit` due instances that this worker can make progress on (or that are past their deadline),
-- skipping rows other workers hold; a worker that serves some queues only (`lanes` not null: the queue and node
-- type pairs it serves, and '*') takes only the instances with a run it can run. Each comes with the latest attempt
-- of every leaf run, its control runs, and the events sent to it (or by the keys its runs wait on) that no run has
-- taken yet. An instance whose lease
-- expired (its worker stopped) gets a `lease_expired` event, and a `step_interrupted` event for each step whose
-- latest logged attempt started and never ended: that attempt runs again.
WITH due AS (
    -- by priority, then due time: one range of the claim index per priority, read only while the limit is not met
    SELECT d.* FROM unnest('{1,2,3,4,5}'::smallint[]) AS p(priority)
    CROSS JOIN LATERAL (
        SELECT id, lease_owner AS lost_by, lease_expires_at AS lost_at, running_runs, run_at AS due_at
        FROM postgit.instances
        WHERE priority = p.priority AND status IN ('pending', 'running', 'waiting') AND paused_at IS NULL
          AND NOT awaiting_slot AND run_at <= now()
          AND ((node_types && %(node_types)s::text[] AND (%(lanes)s::text[] IS NULL OR lanes && %(lanes)s::text[]))
               OR deadline_at <= now())
        ORDER BY run_at
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) d
    LIMIT %(limit)s
), lapsed AS (
    SELECT id, lost_by, lost_at FROM due WHERE lost_by IS NOT NULL
), interruptions AS (
    -- rare (a worker stopped), so reading the instance's step events here costs the usual claim nothing
    INSERT INTO postgit.events (instance_id, kind, node_id, data)
    SELECT id, 'lease_expired', NULL,
           jsonb_build_object('worker', lost_by, 'lease_expired_at', lost_at, 'taken_over_by', %(worker_id)s::text)
    FROM lapsed
    UNION ALL
    SELECT l.id, 'step_interrupted', s.node_id,
           s.data || jsonb_build_object('worker', l.lost_by, 'lease_expired_at', l.lost_at)
    FROM lapsed l
    CROSS JOIN LATERAL (
        -- the latest event of each attempt of each run
        SELECT DISTINCT ON (e.node_id, e.data -> 'run', e.data -> 'attempt') e.kind, e.node_id, e.data
        FROM postgit.events e
        WHERE e.instance_id = l.id
          -- events before a compacted stretch may have lost their ends in it (see compact_instance_events)
          AND e.id > COALESCE((SELECT max(c.id) FROM postgit.events c
                               WHERE c.instance_id = l.id AND c.kind = 'events_compacted'), 0)
          AND e.kind IN ('step_started', 'step_completed', 'step_failed', 'step_suspended', 'step_cancelled',
                         'step_interrupted')
        ORDER BY e.node_id, e.data -> 'run', e.data -> 'attempt', e.id DESC
    ) s
    WHERE s.kind = 'step_started'
), claimed AS (
    UPDATE postgit.instances i
    SET status = 'running', lease_owner = %(worker_id)s, lease_token = i.lease_token + 1,
        lease_expires_at = now() + make_interval(secs => %(lease_seconds)s),
        run_at = now() + make_interval(secs => %(lease_seconds)s),
        wait_reason = NULL, running_runs = NULL, updated_at = now()
    FROM due WHERE i.id = due.id
    RETURNING i.id, i.workflow, i.version, postgit.full_state(i.id, i.state, i.has_state_parts) AS state,
              i.lease_token, i.deadline_at, i.parent_id, i.signal_seq, i.traceparent, i.priority,
              extract(epoch FROM now() - due.due_at)::float8 AS claim_lag, due.lost_by, due.running_runs
)
-- an instance leased for the first time (its token is 1 now) has no steps and no runs yet (they are written under
-- a lease, fenced by its token), and no events unless one was sent to it (which bumped its signal_seq): its first
-- claim skips their look-ups
SELECT c.*,
       CASE WHEN c.lease_token > 1 THEN (SELECT jsonb_agg(s) FROM (
            SELECT DISTINCT ON (run_key) run_key, attempt, status, output, error, due_at, resume, wait_event, wait_key
            FROM postgit.steps WHERE instance_id = c.id ORDER BY run_key, attempt DESC) s) END AS steps,
       CASE WHEN c.lease_token > 1 THEN (SELECT jsonb_agg(r) FROM (
            SELECT run_key, decision, status, output FROM postgit.runs WHERE instance_id = c.id) r) END AS runs,
       CASE WHEN c.lease_token > 1 OR c.signal_seq > 0 THEN (SELECT jsonb_agg(x ORDER BY x.id) FROM (
            SELECT s.id, s.name, s.key, s.data, false AS keyed FROM postgit.signals s
            WHERE s.instance_id = c.id
              AND NOT EXISTS (SELECT FROM postgit.deliveries d WHERE d.signal_id = s.id AND d.instance_id = c.id)
            UNION ALL
            SELECT s.id, s.name, s.key, s.data, true FROM postgit.steps w
            JOIN postgit.signals s ON s.instance_id IS NULL AND s.name = w.wait_event AND s.key = w.wait_key
            WHERE w.instance_id = c.id AND w.status = 'suspended' AND w.wait_event IS NOT NULL
              AND NOT EXISTS (SELECT FROM postgit.deliveries d WHERE d.signal_id = s.id AND d.instance_id = c.id)
            LIMIT 1000) x) END AS signals
FROM claimed c;

-- name: committed_instances
-- Which of these instances a commit marked with `commit_id` wrote: it committed when any did (it is one transaction).
SELECT id FROM postgit.instances WHERE id = ANY(%(ids)s::uuid[]) AND commit_id = %(commit_id)s;

-- name: commit_steps
-- Write a batch of outcomes, each fenced by its instance's lease token; returns the `seq` of each item written.
-- An item either updates its instance (its status, state and leases) or, `log_only`, only records events. Keys an
-- item leaves out are null. A finished child instance signals its parent, which wakes up when it waits.
WITH batch AS (
    SELECT * FROM jsonb_to_recordset(%(batch)s::jsonb) AS b(
        seq int, id uuid, parent_id uuid, lease_token bigint, log_only boolean, status text, state jsonb,
        state_parts jsonb,
        current_node text, node_type text, node_types text[], lanes text[], attempt int, run_at timestamptz,
        run_in double precision, keep_lease boolean, signal_seq bigint, error jsonb, wait_reason text, steps jsonb,
        runs jsonb, deliveries jsonb, events jsonb, running jsonb)
), updated AS (
    UPDATE postgit.instances i
    SET status = b.status,
        -- the row holds the input; the other keys that changed are written to state_parts (written_state below)
        state = CASE WHEN b.state IS NULL THEN i.state ELSE i.state || b.state END,
        has_state_parts = i.has_state_parts OR b.state_parts IS NOT NULL,
        current_node = b.current_node, node_type = b.node_type, node_types = b.node_types,
        lanes = COALESCE(b.lanes, i.lanes), attempt = b.attempt,
        -- a kept lease is left as it is (the worker renews it): no indexed column changes, so the update can be
        -- a HOT update that touches no index; an instance parked while an event arrived is due again at once
        run_at = CASE WHEN b.keep_lease THEN i.run_at
                      WHEN b.status IN ('completed', 'failed') THEN NULL
                      WHEN b.status = 'waiting' AND i.signal_seq <> b.signal_seq THEN now()
                      ELSE COALESCE(b.run_at, now() + make_interval(secs => b.run_in)) END,
        lease_owner = CASE WHEN b.keep_lease THEN i.lease_owner END,
        lease_expires_at = CASE WHEN b.keep_lease THEN i.lease_expires_at END,
        error = b.error, wait_reason = b.wait_reason, updated_at = now(), commit_id = %(commit_id)s,
        finished_at = CASE WHEN b.status IN ('completed', 'failed') THEN now() END,
        running_runs = CASE WHEN b.keep_lease THEN b.running END,
        -- a finished instance is not paused any more
        paused_at = CASE WHEN b.status IN ('completed', 'failed') THEN NULL ELSE i.paused_at END,
        pause_reason = CASE WHEN b.status IN ('completed', 'failed') THEN NULL ELSE i.pause_reason END
    FROM batch b
    WHERE i.id = b.id AND i.lease_token = b.lease_token AND i.status = 'running' AND b.log_only IS NOT TRUE
    RETURNING i.id, i.lease_token, i.status, i.node_types, i.parent_id, i.paused_at IS NOT NULL AS paused
), written AS (
    -- the items whose lease held, in the batch's order, each with what it writes besides its instance row; by
    -- lease token too: an item of a lease that ran out may share a batch with one of the instance's new lease
    SELECT b.seq, b.id, b.state_parts, b.steps, b.runs, b.deliveries, b.events FROM batch b
    WHERE (b.log_only IS NOT TRUE AND (b.id, b.lease_token) IN (SELECT id, lease_token FROM updated))
       OR (b.log_only AND EXISTS (SELECT FROM postgit.instances i
                                  WHERE i.id = b.id AND i.lease_token = b.lease_token AND i.status = 'running'))
), written_state AS (
    -- the top-level keys of the state that changed, each its own row (see migration 0015)
    INSERT INTO postgit.state_parts AS p (instance_id, key, value)
    SELECT w.id, c.key, c.value FROM written w CROSS JOIN LATERAL jsonb_each(w.state_parts) AS c(key, value)
    WHERE w.state_parts IS NOT NULL
    ON CONFLICT (instance_id, key) DO UPDATE SET value = excluded.value
), written_steps AS (
    INSERT INTO postgit.steps AS s (instance_id, run_key, node_id, attempt, status, params, output, error, worker_id,
                                    started_at, finished_at, due_at, resume, wait_event, wait_key, logs)
    SELECT w.id, r.run_key, r.node_id, r.attempt, r.status, r.params, r.output, r.error, r.worker_id, r.started_at,
           r.finished_at, r.due_at, r.resume, r.wait_event, r.wait_key, r.logs
    FROM written w
    CROSS JOIN LATERAL jsonb_to_recordset(w.steps) AS r(
        run_key text, node_id text, attempt int, status text, params jsonb, output jsonb, error jsonb,
        worker_id text, started_at timestamptz, finished_at timestamptz, due_at timestamptz, resume jsonb,
        wait_event text, wait_key text, logs text)
    WHERE w.steps IS NOT NULL
    ON CONFLICT (instance_id, run_key, attempt) DO UPDATE
    SET status = excluded.status, params = excluded.params, output = excluded.output, error = excluded.error,
        worker_id = excluded.worker_id, finished_at = excluded.finished_at, due_at = excluded.due_at,
        resume = excluded.resume, wait_event = excluded.wait_event, wait_key = excluded.wait_key,
        -- a resumed attempt's lines follow those it logged before it was suspended
        logs = CASE WHEN s.logs IS NULL THEN excluded.logs WHEN excluded.logs IS NULL THEN s.logs
                    ELSE s.logs || E'\n' || excluded.logs END
), written_runs AS (
    INSERT INTO postgit.runs AS r (instance_id, run_key, node_id, decision, status, output)
    SELECT w.id, c.run_key, c.node_id, c.decision, c.status, c.output
    FROM written w
    CROSS JOIN LATERAL jsonb_to_recordset(w.runs) AS c(run_key text, node_id text, decision jsonb, status text,
                                                       output jsonb)
    WHERE w.runs IS NOT NULL
    ON CONFLICT (instance_id, run_key) DO UPDATE
    SET decision = COALESCE(r.decision, excluded.decision), status = COALESCE(excluded.status, r.status),
        output = COALESCE(excluded.output, r.output), updated_at = now()
), delivered AS (
    INSERT INTO postgit.deliveries (signal_id, instance_id, run_key)
    SELECT d.signal_id, w.id, d.run_key
    FROM written w CROSS JOIN LATERAL jsonb_to_recordset(w.deliveries) AS d(signal_id bigint, run_key text)
    WHERE w.deliveries IS NOT NULL
    ON CONFLICT DO NOTHING
), logged AS (
    -- in the order of the batch and of each item's events, as a SELECT without a sort produces them
    INSERT INTO postgit.events (instance_id, kind, node_id, data)
    SELECT w.id, e.kind, e.node_id, COALESCE(e.data, '{}'::jsonb)
    FROM written w CROSS JOIN LATERAL jsonb_to_recordset(w.events) AS e(kind text, node_id text, data jsonb)
    WHERE w.events IS NOT NULL
), finished_children AS (
    SELECT u.id, u.parent_id, u.status FROM updated u
    WHERE u.parent_id IS NOT NULL AND u.status IN ('completed', 'failed')
), child_signals AS (
    INSERT INTO postgit.signals (instance_id, name, key, data)
    SELECT parent_id, 'postgit.child', id::text, jsonb_build_object('status', status) FROM finished_children
), woken_parents AS (
    -- always locks the parent's row, so a worker parking the parent at the same time sees the signal
    UPDATE postgit.instances p
    SET signal_seq = p.signal_seq + 1, run_at = CASE WHEN p.status = 'waiting' THEN now() ELSE p.run_at END
    FROM finished_children f WHERE p.id = f.parent_id AND p.status IN ('pending', 'running', 'waiting')
    RETURNING p.id, p.status, p.node_types
)
-- an instance handed back for another worker (its next node type is not this worker's) wakes the others
SELECT w.seq, (CASE WHEN u.status = 'pending' THEN pg_notify('postgit_work', array_to_string(u.node_types, ','))
              END) IS NOT NULL AS notified, COALESCE(u.paused, false) AS paused
FROM written w LEFT JOIN updated u ON u.id = w.id
UNION ALL
SELECT NULL, pg_notify(CASE WHEN p.status = 'running' THEN 'postgit_signal' ELSE 'postgit_work' END,
                       CASE WHEN p.status = 'running' THEN p.id::text ELSE array_to_string(p.node_types, ',') END)
             IS NOT NULL, false
FROM woken_parents p;

-- name: renew_leases
-- Extend the leases this worker still holds; returns the ids whose lease was renewed.
-- Rows are locked in id order, so two statements over overlapping instances cannot deadlock over their order.
WITH locked AS (
    SELECT i.id FROM postgit.instances i
    JOIN jsonb_to_recordset(%(leases)s::jsonb) AS l(id uuid, lease_token bigint)
      ON i.id = l.id AND i.lease_token = l.lease_token AND i.status = 'running'
    ORDER BY i.id FOR UPDATE OF i
)
UPDATE postgit.instances i
SET lease_expires_at = now() + make_interval(secs => %(lease_seconds)s),
    run_at = now() + make_interval(secs => %(lease_seconds)s)
FROM locked WHERE i.id = locked.id AND i.status = 'running'
RETURNING i.id;

-- name: release_leases
-- Hand instances back (worker stopping): due again at once for any worker.
WITH locked AS (
    SELECT i.id FROM postgit.instances i
    JOIN jsonb_to_recordset(%(leases)s::jsonb) AS l(id uuid, lease_token bigint)
      ON i.id = l.id AND i.lease_token = l.lease_token AND i.status = 'running'
    ORDER BY i.id FOR UPDATE OF i
), released AS (
    UPDATE postgit.instances i
    SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, run_at = now(), running_runs = NULL,
        updated_at = now()
    FROM locked WHERE i.id = locked.id AND i.status = 'running'
    RETURNING i.id, i.node_types
)
SELECT id, pg_notify('postgit_work', array_to_string(node_types, ',')) IS NOT NULL AS notified FROM released;

-- name: cancel_instances
-- Cancel the unfinished instances of `ids` and, unless they were started to be abandoned, their unfinished
-- descendants; bumping each lease token fences off a worker still running a step. A cancelled instance of `ids`
-- signals its parent, unless the parent is cancelled with it. Returns the instances of `ids` that were cancelled.
WITH RECURSIVE tree AS (
    SELECT id FROM postgit.instances WHERE id = ANY(%(ids)s::uuid[])
    UNION
    SELECT c.id FROM postgit.instances c JOIN tree t ON c.parent_id = t.id
    WHERE c.cancel_with_parent AND c.status IN ('pending', 'running', 'waiting')
), locked AS (
    SELECT i.id FROM postgit.instances i JOIN tree ON i.id = tree.id
    WHERE i.status IN ('pending', 'running', 'waiting')
    ORDER BY i.id FOR UPDATE OF i
), cancelled AS (
    UPDATE postgit.instances i
    SET status = 'cancelled', run_at = NULL, lease_owner = NULL, lease_expires_at = NULL, wait_reason = NULL,
        lease_token = lease_token + 1, updated_at = now(), finished_at = now(), paused_at = NULL,
        pause_reason = NULL, running_runs = NULL
    FROM locked WHERE i.id = locked.id AND i.status IN ('pending', 'running', 'waiting')
    RETURNING i.id, i.status, i.parent_id, i.id = ANY(%(ids)s::uuid[]) AS asked
), logged AS (
    INSERT INTO postgit.events (instance_id, kind, data)
    SELECT id, 'instance_cancelled', CASE WHEN asked THEN %(data)s::jsonb ELSE '{}'::jsonb END FROM cancelled
), signalled AS (
    SELECT c.id, c.parent_id FROM cancelled c
    WHERE c.asked AND c.parent_id IS NOT NULL AND NOT EXISTS (SELECT FROM cancelled p WHERE p.id = c.parent_id)
), parent_signal AS (
    INSERT INTO postgit.signals (instance_id, name, key, data)
    SELECT parent_id, 'postgit.child', id::text, '{"status": "cancelled"}'::jsonb FROM signalled
), woken_parent AS (
    UPDATE postgit.instances p
    SET signal_seq = p.signal_seq + 1, run_at = CASE WHEN p.status = 'waiting' THEN now() ELSE p.run_at END
    FROM (SELECT DISTINCT parent_id FROM signalled) s
    WHERE p.id = s.parent_id AND p.status IN ('pending', 'running', 'waiting')
    RETURNING p.id, p.status, p.node_types
), notified AS (
    SELECT count(*) AS woken FROM woken_parent p
    WHERE pg_notify(CASE WHEN p.status = 'running' THEN 'postgit_signal' ELSE 'postgit_work' END,
                    CASE WHEN p.status = 'running' THEN p.id::text ELSE array_to_string(p.node_types, ',') END)
          IS NOT NULL
)
SELECT c.id, c.status, n.woken FROM cancelled c CROSS JOIN notified n WHERE c.asked;

-- name: cancel_children
-- Cancel the unfinished descendants of a finished instance that were not started to be abandoned.
WITH RECURSIVE tree AS (
    SELECT id FROM postgit.instances WHERE parent_id = %(id)s AND cancel_with_parent
      AND status IN ('pending', 'running', 'waiting')
    UNION
    SELECT c.id FROM postgit.instances c JOIN tree t ON c.parent_id = t.id
    WHERE c.cancel_with_parent AND c.status IN ('pending', 'running', 'waiting')
), cancelled AS (
    UPDATE postgit.instances i
    SET status = 'cancelled', run_at = NULL, lease_owner = NULL, lease_expires_at = NULL, wait_reason = NULL,
        lease_token = lease_token + 1, updated_at = now(), finished_at = now(), paused_at = NULL,
        pause_reason = NULL, running_runs = NULL
    FROM tree WHERE i.id = tree.id AND i.status IN ('pending', 'running', 'waiting')
    RETURNING i.id
), logged AS (
    INSERT INTO postgit.events (instance_id, kind, data)
    SELECT id, 'instance_cancelled', '{"reason": "its parent ended"}'::jsonb FROM cancelled
)
SELECT id FROM cancelled;

-- name: next_run_at
-- When the earliest active instance this worker could claim is due: by its node types and lanes (the claim index,
-- in run_at order per priority), or by its deadline (the earliest deadlines only: a hint for waking up, the fallback
-- poll does the rest).
SELECT least(
    (SELECT min(soonest.run_at) FROM unnest('{1,2,3,4,5}'::smallint[]) AS p(priority)
     CROSS JOIN LATERAL (
        SELECT run_at FROM postgit.instances
        WHERE priority = p.priority AND status IN ('pending', 'running', 'waiting') AND paused_at IS NULL
          AND NOT awaiting_slot AND node_types && %(node_types)s::text[]
          AND (%(lanes)s::text[] IS NULL OR lanes && %(lanes)s::text[])
        ORDER BY run_at LIMIT 1) AS soonest),
    (SELECT min(greatest(run_at, deadline_at)) FROM (
        SELECT run_at, deadline_at FROM postgit.instances
        WHERE status IN ('pending', 'running', 'waiting') AND deadline_at IS NOT NULL AND paused_at IS NULL
          AND NOT awaiting_slot
        ORDER BY deadline_at LIMIT 100) AS soonest)
) AS run_at;

-- name: find_instances
-- A page of instances newest first, after the keyset (created_at, id) when given, each filter optional; every row
-- carries the counts per status of the instances the filters other than status and the keyset match, at a bounded
-- cost: without a workflow filter each status is counted through its index up to `count_cap` rows; with one, the
-- statuses of the workflow's newest `scan_cap` matching instances are counted (`partial` when it has more).
WITH page AS (
    SELECT id, workflow, version, status, current_node, node_type, attempt, error, wait_reason, parent_id,
           idempotency_key, created_at, updated_at, finished_at
    FROM postgit.instances
    WHERE (%(status)s::text IS NULL OR status = %(status)s::text)
      AND (%(workflow)s::text IS NULL OR workflow = %(workflow)s::text)
      AND (%(id)s::uuid IS NULL OR id = %(id)s::uuid)
      AND (%(idempotency_key)s::text IS NULL OR idempotency_key = %(idempotency_key)s::text)
      AND (%(created_from)s::timestamptz IS NULL OR created_at >= %(created_from)s::timestamptz)
      AND (%(created_to)s::timestamptz IS NULL OR created_at < %(created_to)s::timestamptz)
      AND (%(after_created_at)s::timestamptz IS NULL
           OR (created_at, id) < (%(after_created_at)s::timestamptz, %(after_id)s::uuid))
    ORDER BY created_at DESC, id DESC
    LIMIT %(limit)s
), by_status AS (
    SELECT s.status, (
        SELECT count(*) FROM (
            SELECT FROM postgit.instances i
            WHERE i.status = s.status
              AND (%(id)s::uuid IS NULL OR i.id = %(id)s::uuid)
              AND (%(idempotency_key)s::text IS NULL OR i.idempotency_key = %(idempotency_key)s::text)
              AND (%(created_from)s::timestamptz IS NULL OR i.created_at >= %(created_from)s::timestamptz)
              AND (%(created_to)s::timestamptz IS NULL OR i.created_at < %(created_to)s::timestamptz)
            LIMIT %(count_cap)s) AS capped) AS n
    FROM unnest(%(statuses)s::text[]) AS s(status)
    WHERE %(workflow)s::text IS NULL
), of_workflow AS (
    SELECT i.status FROM postgit.instances i
    WHERE i.workflow = %(workflow)s::text
      AND (%(id)s::uuid IS NULL OR i.id = %(id)s::uuid)
      AND (%(idempotency_key)s::text IS NULL OR i.idempotency_key = %(idempotency_key)s::text)
      AND (%(created_from)s::timestamptz IS NULL OR i.created_at >= %(created_from)s::timestamptz)
      AND (%(created_to)s::timestamptz IS NULL OR i.created_at < %(created_to)s::timestamptz)
    ORDER BY i.created_at DESC, i.id DESC
    LIMIT %(scan_cap)s
), counts AS (
    SELECT COALESCE(jsonb_object_agg(c.status, c.n) FILTER (WHERE c.n > 0), '{}'::jsonb) AS counts,
           (SELECT count(*) FROM of_workflow) >= %(scan_cap)s AS partial
    FROM (SELECT status, n FROM by_status
          UNION ALL
          SELECT status, count(*) FROM of_workflow GROUP BY status) AS c
)
SELECT c.counts, c.partial, p.* FROM counts c LEFT JOIN page p ON true
ORDER BY p.created_at DESC NULLS LAST, p.id DESC;
