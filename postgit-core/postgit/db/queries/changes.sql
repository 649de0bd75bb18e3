-- name: notify_changes
-- Announce which instances changed on the change channel, one notification per payload (see postgit.db.changes).
SELECT count(pg_notify('postgit_change', payload)) AS sent FROM unnest(%(payloads)s::text[]) AS payload;
