-- Schedules: workflows started on a cron spec. A schedule row is claimed by one process at a time (FOR UPDATE SKIP
-- LOCKED on the due rows, then a short claim on the row while the process fires it), and each start's idempotency
-- key is the schedule's name and the nominal time, so a nominal time is fired once however many servers and
-- workers look.

CREATE TABLE postgit.schedules (
    name text PRIMARY KEY,
    workflow text NOT NULL,
    cron text NOT NULL,
    timezone text NOT NULL,
    input jsonb,
    overlap text NOT NULL CHECK (overlap IN (
        'skip', 'buffer_one', 'buffer_all', 'cancel_other', 'terminate_other', 'allow_all')),
    catchup_window double precision NOT NULL CHECK (catchup_window > 0),
    paused boolean NOT NULL DEFAULT false,
    -- the next nominal time not yet handled: due once it has passed
    next_fire_at timestamptz NOT NULL,
    -- nominal times waiting for the running instance to finish (buffer_one, buffer_all), oldest first
    buffered timestamptz[] NOT NULL DEFAULT '{}',
    -- the instance this schedule started last: the one an overlap policy looks at
    last_instance_id uuid,
    -- while a process fires the schedule: no other takes it until then (or until the claim lapses, if it died)
    claimed_until timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- the schedules due next, soonest first
CREATE INDEX schedules_due ON postgit.schedules (next_fire_at) WHERE NOT paused;

-- What became of each nominal time: started (with its instance), skipped (a range: the overlap policy), missed (a
-- range: older than the catch-up window when handled), buffered, or failed (the start was refused).
CREATE TABLE postgit.schedule_fires (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schedule text NOT NULL REFERENCES postgit.schedules (name) ON DELETE CASCADE,
    nominal_at timestamptz NOT NULL,
    last_nominal_at timestamptz NOT NULL,
    fires integer NOT NULL DEFAULT 1,
    kind text NOT NULL CHECK (kind IN ('scheduled', 'trigger', 'backfill')),
    outcome text NOT NULL CHECK (outcome IN ('started', 'skipped', 'missed', 'buffered', 'failed')),
    instance_id uuid,
    detail text,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (schedule, nominal_at)
);

CREATE INDEX schedule_fires_latest ON postgit.schedule_fires (schedule, id);
