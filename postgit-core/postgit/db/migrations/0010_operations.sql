-- Operations: delayed starts, pausing instances, retrying failed ones, and charging a step whose worker died.
--
-- A paused instance (`paused_at` set) is left out of the claim index, so it is never claimed however long it stays
-- due. `running_runs` lists the runs the lease holder started and has not written an outcome for (written with the
-- group commit before they start): when its lease expires, the next claimer charges each of them a failed attempt.
-- A retried instance's step rows of the runs it re-runs move to `retired_steps`, so that its attempts start again at
-- 1 while what came before stays readable.

ALTER TABLE postgit.instances
    ADD COLUMN paused_at timestamptz,
    ADD COLUMN pause_reason text,
    ADD COLUMN running_runs jsonb;

DROP INDEX postgit.instances_due;
CREATE INDEX instances_due ON postgit.instances (run_at)
    WHERE status IN ('pending', 'running', 'waiting') AND paused_at IS NULL;

CREATE TABLE postgit.retired_steps (
    instance_id uuid NOT NULL REFERENCES postgit.instances (id) ON DELETE CASCADE,
    retry integer NOT NULL CHECK (retry > 0),
    run_key text NOT NULL,
    node_id text NOT NULL,
    attempt integer NOT NULL,
    status text NOT NULL,
    params jsonb,
    output jsonb,
    error jsonb,
    worker_id text,
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    retired_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance_id, retry, run_key, attempt)
);

-- how many times an instance was retried: the `retry` of the step rows its last retry moved
ALTER TABLE postgit.instances ADD COLUMN retries integer NOT NULL DEFAULT 0;
