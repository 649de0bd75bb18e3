-- name: limit_statement_time
-- Bound each following statement of this transaction to `ms` milliseconds.
SELECT set_config('statement_timeout', %(ms)s::text, true);

-- name: metrics_snapshot
-- What the database tells Prometheus: instances per status (an index-only count each), the age of the oldest due
-- instance (the claim index's first entry), and the workers whose heartbeat is recent.
SELECT (SELECT jsonb_object_agg(s.status, (SELECT count(*) FROM postgit.instances i WHERE i.status = s.status))
        FROM unnest(%(statuses)s::text[]) AS s(status)) AS instances,
       (SELECT extract(epoch FROM now() - min(run_at))::float8 FROM postgit.instances
        WHERE status IN ('pending', 'running', 'waiting') AND run_at <= now() AND NOT awaiting_slot)
           AS oldest_due_seconds,
       (SELECT count(*) FROM postgit.workers
        WHERE heartbeat_at > now() - make_interval(secs => %(within_seconds)s)) AS live_workers;
