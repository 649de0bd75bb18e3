-- Queues: a leaf node (or its workflow) may name a queue, and a worker serves the queues it is told to
-- (POSTGIT_QUEUES) or every queue. An instance carries the lanes of the runs it waits to run (each run's queue and
-- node type, 'gpu:HitEndpoint'), besides their node types: a worker that serves some queues only takes an instance
-- one of whose runs it can run, never one it would only hand back. '*' (no lane can be '*') is any lane: an
-- instance whose next move needs only the engine, and every instance that was active before this migration (a worker
-- that claims it records its real lanes). A worker records the queues it serves (null: every queue).
--
-- Capped events: the maintenance task replaces the middle of an instance's events by one `events_compacted` event
-- once it has more than POSTGIT_EVENTS_KEEP; it finds the instances to look at among the events written since its
-- last pass (`maintenance_marks`), and the claim finds an instance's compacted stretch through its marker.

ALTER TABLE postgit.instances ADD COLUMN lanes text[] NOT NULL DEFAULT '{*}';

ALTER TABLE postgit.workers ADD COLUMN queues text[];

CREATE TABLE postgit.maintenance_marks (
    name text PRIMARY KEY,
    value bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX events_compacted ON postgit.events (instance_id, id) WHERE kind = 'events_compacted';
