-- name: ping
-- A round trip to the database, for health checks.
SELECT 1 AS ok;
