-- name: send_instance_event
-- Store an event for one unfinished instance (once per event id) and wake it: due now when it waits, and its
-- signal_seq bumped (which locks its row) so that a worker parking it at the same moment sees the event.
WITH target AS (
    SELECT id, status FROM postgit.instances WHERE id = %(instance_id)s
), inserted AS (
    INSERT INTO postgit.signals (instance_id, name, event_id, data)
    SELECT id, %(name)s, %(event_id)s, %(data)s::jsonb FROM target
    WHERE status IN ('pending', 'running', 'waiting')
    ON CONFLICT DO NOTHING
    RETURNING id
), woken AS (
    UPDATE postgit.instances i
    SET signal_seq = i.signal_seq + 1, run_at = CASE WHEN i.status = 'waiting' THEN now() ELSE i.run_at END
    FROM inserted WHERE i.id = %(instance_id)s AND i.status IN ('pending', 'running', 'waiting')
    RETURNING i.id, i.status, i.node_types
)
SELECT (SELECT status FROM target) AS status, (SELECT id FROM inserted) AS signal_id,
       (SELECT count(*) FROM woken w
        WHERE pg_notify(CASE WHEN w.status = 'running' THEN 'postgit_signal' ELSE 'postgit_work' END,
                        CASE WHEN w.status = 'running' THEN w.id::text ELSE array_to_string(w.node_types, ',') END)
              IS NOT NULL) AS woken;

-- name: find_instance_event
-- The event stored for an instance under an event id.
SELECT id FROM postgit.signals WHERE instance_id = %(instance_id)s AND event_id = %(event_id)s;

-- name: send_keyed_event
-- Store an event for every instance waiting on a name and key, now or later (once per event id).
INSERT INTO postgit.signals (name, key, event_id, data)
VALUES (%(name)s, %(key)s, %(event_id)s, %(data)s::jsonb)
ON CONFLICT DO NOTHING
RETURNING id;

-- name: find_keyed_event
-- The keyed event stored under an event id.
SELECT id FROM postgit.signals
WHERE instance_id IS NULL AND name = %(name)s AND key = %(key)s AND event_id = %(event_id)s;

-- name: wake_key_waiters
-- Wake every unfinished instance with a run waiting on this event name and key (run after the event committed).
WITH waiting AS (
    SELECT DISTINCT instance_id FROM postgit.steps
    WHERE status = 'suspended' AND wait_event = %(name)s AND wait_key = %(key)s
), woken AS (
    UPDATE postgit.instances i
    SET signal_seq = i.signal_seq + 1, run_at = CASE WHEN i.status = 'waiting' THEN now() ELSE i.run_at END
    FROM waiting w WHERE i.id = w.instance_id AND i.status IN ('pending', 'running', 'waiting')
    RETURNING i.id, i.status, i.node_types
)
SELECT count(*) AS woken FROM woken w
WHERE pg_notify(CASE WHEN w.status = 'running' THEN 'postgit_signal' ELSE 'postgit_work' END,
                CASE WHEN w.status = 'running' THEN w.id::text ELSE array_to_string(w.node_types, ',') END)
      IS NOT NULL;

-- name: wake_instances
-- Make unfinished instances due now (when they wait) and bump their signal_seq, as a sent event does.
WITH woken AS (
    UPDATE postgit.instances i
    SET signal_seq = i.signal_seq + 1, run_at = CASE WHEN i.status = 'waiting' THEN now() ELSE i.run_at END
    WHERE i.id = ANY(%(ids)s::uuid[]) AND i.status IN ('pending', 'running', 'waiting')
    RETURNING i.id, i.status, i.node_types
)
SELECT count(*) AS woken FROM woken w
WHERE pg_notify(CASE WHEN w.status = 'running' THEN 'postgit_signal' ELSE 'postgit_work' END,
                CASE WHEN w.status = 'running' THEN w.id::text ELSE array_to_string(w.node_types, ',') END)
      IS NOT NULL;

-- name: pending_signals
-- Events an instance has not taken yet: sent to it under the given names, or sent by the given (name, key)
-- pairs; with the instance's signal_seq as of the same snapshot.
SELECT (SELECT signal_seq FROM postgit.instances WHERE id = %(instance_id)s) AS signal_seq,
       (SELECT jsonb_agg(x ORDER BY x.id) FROM (
            SELECT s.id, s.name, s.key, s.data, false AS keyed FROM postgit.signals s
            WHERE s.instance_id = %(instance_id)s AND s.name = ANY(%(names)s::text[])
              AND NOT EXISTS (SELECT 1 FROM postgit.deliveries d
                              WHERE d.signal_id = s.id AND d.instance_id = %(instance_id)s)
            UNION ALL
            SELECT s.id, s.name, s.key, s.data, true FROM jsonb_to_recordset(%(keys)s::jsonb) AS k(name text, key text)
            JOIN postgit.signals s ON s.instance_id IS NULL AND s.name = k.name AND s.key = k.key
            WHERE NOT EXISTS (SELECT 1 FROM postgit.deliveries d
                              WHERE d.signal_id = s.id AND d.instance_id = %(instance_id)s)
            LIMIT 1000) x) AS signals;
