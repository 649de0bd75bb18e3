-- name: events_since
-- An instance's events after a given event id, oldest first.
SELECT id, kind, node_id, data, at FROM postgit.events
WHERE instance_id = %(instance_id)s AND id > %(after)s ORDER BY id LIMIT %(limit)s;

-- name: list_interruptions
-- An instance's interruptions, oldest first: leases that expired (their worker stopped) and the step attempts cut off.
SELECT kind, node_id, data, at FROM postgit.events
WHERE instance_id = %(instance_id)s AND kind IN ('step_interrupted', 'lease_expired') ORDER BY id;
