-- Postgit's initial schema: workflows, instances, steps, events, workers and the mail outbox.

CREATE TABLE postgit.workflows (
    name text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'),
    version integer NOT NULL CHECK (version > 0),
    definition jsonb NOT NULL,
    digest text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version),
    UNIQUE (name, digest)
);

CREATE TABLE postgit.instances (
    id uuid PRIMARY KEY,
    workflow text NOT NULL,
    version integer NOT NULL,
    status text NOT NULL
        CHECK (status IN ('pending', 'running', 'waiting', 'completed', 'failed', 'cancelled')),
    state jsonb NOT NULL,
    -- leaf nodes completed so far, in order; the interpreter derives the next node from it
    done text[] NOT NULL DEFAULT '{}',
    current_node text,
    node_type text,
    -- attempt number of current_node: 1 + the failed attempts recorded for it
    attempt integer NOT NULL DEFAULT 1 CHECK (attempt > 0),
    -- data a suspended step asked to get back when it is woken up
    resume jsonb,
    -- when the instance can next be claimed: now for new work, a timer's due time, or a lease's expiry
    run_at timestamptz,
    lease_owner text,
    lease_token bigint NOT NULL DEFAULT 0,
    lease_expires_at timestamptz,
    idempotency_key text UNIQUE,
    error jsonb,
    wait_reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    FOREIGN KEY (workflow, version) REFERENCES postgit.workflows (name, version),
    CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL)),
    CHECK ((status IN ('completed', 'failed', 'cancelled')) = (run_at IS NULL)),
    CHECK (lease_owner IS NULL OR status = 'running')
);

-- The claim index: only active instances, ordered by when they are due, so a backlog of finished instances or
-- of far-future timers costs a claim nothing.
CREATE INDEX instances_due ON postgit.instances (run_at) WHERE status IN ('pending', 'running', 'waiting');
CREATE INDEX instances_created ON postgit.instances (created_at DESC, id DESC);
CREATE INDEX instances_status_created ON postgit.instances (status, created_at DESC, id DESC);
CREATE INDEX instances_workflow_created ON postgit.instances (workflow, created_at DESC, id DESC);

CREATE TABLE postgit.steps (
    instance_id uuid NOT NULL REFERENCES postgit.instances (id) ON DELETE CASCADE,
    node_id text NOT NULL,
    attempt integer NOT NULL CHECK (attempt > 0),
    status text NOT NULL CHECK (status IN ('completed', 'failed', 'suspended')),
    params jsonb,
    output jsonb,
    error jsonb,
    worker_id text,
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    PRIMARY KEY (instance_id, node_id, attempt)
);

CREATE TABLE postgit.events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id uuid NOT NULL,
    kind text NOT NULL,
    node_id text,
    data jsonb NOT NULL DEFAULT '{}',
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_instance ON postgit.events (instance_id, id);

CREATE TABLE postgit.workers (
    id text PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    node_types text[] NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE postgit.outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE,
    message jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
