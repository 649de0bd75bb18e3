-- Control flow: many runs per instance (parallel branches, loop items), each with its own steps, waits and
-- decisions; events sent to instances; parent and child instances.
--
-- Steps are keyed by run (node id and loop iteration, e.g. 'ship[3]') instead of node id, and what a waiting run
-- needs (its due time, the data it resumes with, the event it waits for) moves from the instance row to its step
-- row. Instances that are running keep running: their progress is read from their steps from now on.

ALTER TABLE postgit.instances
    -- the node types a worker must have to make progress on the instance now (any one of them)
    ADD COLUMN node_types text[] NOT NULL DEFAULT '{}',
    -- past it, the instance fails (the workflow's timeout)
    ADD COLUMN deadline_at timestamptz,
    -- bumped by every event sent to the instance, so that a worker parking it knows whether one arrived meanwhile
    ADD COLUMN signal_seq bigint NOT NULL DEFAULT 0,
    ADD COLUMN parent_id uuid,
    ADD COLUMN parent_run_key text,
    ADD COLUMN cancel_with_parent boolean NOT NULL DEFAULT true;

UPDATE postgit.instances SET node_types = ARRAY[node_type] WHERE node_type IS NOT NULL;

CREATE INDEX instances_parent ON postgit.instances (parent_id) WHERE parent_id IS NOT NULL;
-- instances with a deadline, soonest first: what a worker wakes up for to fail them on time
CREATE INDEX instances_deadline ON postgit.instances (deadline_at)
    WHERE deadline_at IS NOT NULL AND status IN ('pending', 'running', 'waiting');

ALTER TABLE postgit.steps
    ADD COLUMN run_key text,
    -- a failed attempt: when the next is due (null: failed for good); a suspended one: when to wake it up
    ADD COLUMN due_at timestamptz,
    ADD COLUMN resume jsonb,
    ADD COLUMN wait_event text,
    ADD COLUMN wait_key text;

UPDATE postgit.steps SET run_key = node_id;

-- An unfinished instance's suspended step: its wake-up time and data were kept on the instance.
UPDATE postgit.steps s
SET due_at = (i.resume ->> 'until')::timestamptz, resume = i.resume
FROM postgit.instances i
WHERE s.instance_id = i.id AND s.node_id = i.current_node AND s.status = 'suspended'
  AND i.status IN ('pending', 'running', 'waiting') AND i.resume IS NOT NULL;

-- An unfinished instance whose current node failed and is to be retried: its latest attempt is not final.
UPDATE postgit.steps s
SET due_at = COALESCE(i.run_at, now())
FROM postgit.instances i
WHERE s.instance_id = i.id AND s.node_id = i.current_node AND s.status = 'failed' AND s.attempt = i.attempt - 1
  AND i.status IN ('pending', 'running', 'waiting');

ALTER TABLE postgit.steps ALTER COLUMN run_key SET NOT NULL;
ALTER TABLE postgit.steps DROP CONSTRAINT steps_pkey;
ALTER TABLE postgit.steps ADD PRIMARY KEY (instance_id, run_key, attempt);

-- Runs waiting for an event by key: what a keyed event looks up.
CREATE INDEX steps_waiting_for_event ON postgit.steps (wait_event, wait_key)
    WHERE status = 'suspended' AND wait_event IS NOT NULL;

-- Control runs: the decision each took (If branch, ForEach items, Parallel winner), recorded once, and the output
-- of those that write to the state, recorded when they complete.
CREATE TABLE postgit.runs (
    instance_id uuid NOT NULL REFERENCES postgit.instances (id) ON DELETE CASCADE,
    run_key text NOT NULL,
    node_id text NOT NULL,
    decision jsonb,
    status text CHECK (status IN ('completed')),
    output jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance_id, run_key)
);

-- Events sent to an instance (instance_id) or to every instance waiting on a name and key (instance_id null).
-- Stored before anything is woken, so an event that arrives before its wait begins is kept for it.
CREATE TABLE postgit.signals (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id uuid,
    name text NOT NULL,
    key text,
    event_id text,
    data jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX signals_instance ON postgit.signals (instance_id, name, id) WHERE instance_id IS NOT NULL;
CREATE INDEX signals_key ON postgit.signals (name, key, id) WHERE instance_id IS NULL;
-- an event sent again with the same event id is applied once
CREATE UNIQUE INDEX signals_instance_event_id ON postgit.signals (instance_id, event_id)
    WHERE instance_id IS NOT NULL AND event_id IS NOT NULL;
CREATE UNIQUE INDEX signals_key_event_id ON postgit.signals (name, key, event_id)
    WHERE instance_id IS NULL AND event_id IS NOT NULL;

-- Which run of which instance took which signal: a signal is taken once per instance.
CREATE TABLE postgit.deliveries (
    signal_id bigint NOT NULL REFERENCES postgit.signals (id) ON DELETE CASCADE,
    instance_id uuid NOT NULL REFERENCES postgit.instances (id) ON DELETE CASCADE,
    run_key text NOT NULL,
    delivered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (signal_id, instance_id)
);
