-- Retention: finished instances are found oldest first, and events sent by key are found by age, without a scan.
CREATE INDEX instances_finished ON postgit.instances (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX signals_keyed_created ON postgit.signals (created_at) WHERE instance_id IS NULL;
