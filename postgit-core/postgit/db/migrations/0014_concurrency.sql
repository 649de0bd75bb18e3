-- Concurrency keys and priorities.
--
-- A workflow that declares a concurrency key gives each instance its rendered key (`concurrency_key`, scoped to the
-- workflow), the key's limit and its strategy. An instance either holds one of the key's slots (`holds_slot`) or
-- waits for one (`awaiting_slot`, left out of the claim index: it is never claimed while it waits), in start order
-- (`slot_seq`). The slot belongs to the instance, not to a worker: it is held from its start (or grant) until the
-- instance finishes, across sleeps, waits for events and lease expiries, so a worker that dies leaks nothing.
--
-- Triggers keep the slots, so that every path that starts, finishes, retries or deletes an instance takes part
-- (commits of outcomes, cancels, timeouts, bulk actions, retries): a start takes a free slot or queues (or, by its
-- strategy, is cancelled at once or cancels the oldest holder); a holder that finishes gives its slot to the oldest
-- waiting instance in the same transaction. Every decision about a key is serialised by an advisory lock on the key.
-- Instances without a key fire none of this: each trigger's WHEN clause reads one column of the row.

ALTER TABLE postgit.instances
    ADD COLUMN concurrency_key text,
    ADD COLUMN concurrency_limit integer CHECK (concurrency_limit > 0),
    ADD COLUMN concurrency_strategy text
        CHECK (concurrency_strategy IN ('queue', 'cancel_newest', 'cancel_in_progress')),
    ADD COLUMN holds_slot boolean NOT NULL DEFAULT false,
    ADD COLUMN awaiting_slot boolean NOT NULL DEFAULT false,
    ADD COLUMN slot_seq bigint,
    -- 1 is claimed first, 5 last
    ADD COLUMN priority smallint NOT NULL DEFAULT 3 CHECK (priority BETWEEN 1 AND 5),
    ADD CONSTRAINT instances_one_slot_state CHECK (NOT (holds_slot AND awaiting_slot)),
    ADD CONSTRAINT instances_slot_needs_key
        CHECK (NOT (holds_slot OR awaiting_slot) OR (concurrency_key IS NOT NULL AND concurrency_limit IS NOT NULL)),
    ADD CONSTRAINT instances_slot_only_when_active
        CHECK (NOT (holds_slot OR awaiting_slot) OR status IN ('pending', 'running', 'waiting'));

CREATE SEQUENCE postgit.slot_seq;

-- The claim index: by priority, then by due time; instances waiting for a slot or paused are not in it.
DROP INDEX postgit.instances_due;
CREATE INDEX instances_due ON postgit.instances (priority, run_at)
    WHERE status IN ('pending', 'running', 'waiting') AND paused_at IS NULL AND NOT awaiting_slot;

-- The holders and waiters of each key, in start order.
CREATE INDEX instances_slots ON postgit.instances (workflow, concurrency_key, slot_seq)
    WHERE holds_slot OR awaiting_slot;

CREATE FUNCTION postgit.lock_concurrency_key(p_workflow text, p_key text) RETURNS void
LANGUAGE sql VOLATILE AS $$
    SELECT pg_advisory_xact_lock(hashtextextended('postgit.concurrency ' || p_workflow || ' ' || p_key, 0));
$$;

CREATE FUNCTION postgit.slot_wait_reason(p_key text, p_limit integer) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT format('waiting for a concurrency slot of key %s (limit %s)', p_key, p_limit);
$$;

-- Give the key's free slots to its oldest waiting instances, and wake the workers for them.
CREATE FUNCTION postgit.grant_slots(p_workflow text, p_key text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    held integer;
    next_id uuid;
    next_limit integer;
    types text[];
    due timestamptz;
BEGIN
    PERFORM postgit.lock_concurrency_key(p_workflow, p_key);
    SELECT count(*) INTO held FROM postgit.instances
    WHERE workflow = p_workflow AND concurrency_key = p_key AND holds_slot;
    LOOP
        -- a waiting row another transaction is changing is waited for (never skipped: it may stay waiting)
        SELECT id, concurrency_limit INTO next_id, next_limit FROM postgit.instances
        WHERE workflow = p_workflow AND concurrency_key = p_key AND awaiting_slot
        ORDER BY slot_seq LIMIT 1 FOR UPDATE;
        EXIT WHEN NOT FOUND OR held >= next_limit;
        UPDATE postgit.instances
        SET awaiting_slot = false, holds_slot = true, wait_reason = NULL, updated_at = now()
        WHERE id = next_id
        RETURNING node_types, run_at INTO types, due;
        INSERT INTO postgit.events (instance_id, kind, data)
        VALUES (next_id, 'concurrency_slot_granted', jsonb_build_object('key', p_key));
        IF due <= now() THEN
            PERFORM pg_notify('postgit_work', array_to_string(types, ','));
        END IF;
        held := held + 1;
    END LOOP;
END;
$$;

-- Cancel the `p_count` oldest holders of a key (strategy cancel_in_progress), with their descendants started to be
-- cancelled with them, as the cancel API does; a cancelled child signals its parent.
CREATE FUNCTION postgit.cancel_slot_holders(p_workflow text, p_key text, p_count integer, p_by uuid) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    victim record;
    reason text;
    notified bigint;
BEGIN
    reason := format('a newer instance (%s) of concurrency key %s took its slot (strategy cancel_in_progress)',
                     p_by, p_key);
    FOR victim IN
        SELECT id, parent_id FROM postgit.instances
        WHERE workflow = p_workflow AND concurrency_key = p_key AND holds_slot
        ORDER BY slot_seq LIMIT p_count FOR UPDATE
    LOOP
        WITH RECURSIVE tree AS (
            SELECT victim.id AS id
            UNION
            SELECT c.id FROM postgit.instances c JOIN tree t ON c.parent_id = t.id
            WHERE c.cancel_with_parent AND c.status IN ('pending', 'running', 'waiting')
        ), cancelled AS (
            UPDATE postgit.instances i
            SET status = 'cancelled', run_at = NULL, lease_owner = NULL, lease_expires_at = NULL, wait_reason = NULL,
                lease_token = i.lease_token + 1, updated_at = now(), finished_at = now(), paused_at = NULL,
                pause_reason = NULL, running_runs = NULL,
                error = CASE WHEN i.id = victim.id
                             THEN jsonb_build_object('message', reason, 'type', 'ConcurrencyLimit', 'node_id', NULL)
                             ELSE i.error END
            FROM tree WHERE i.id = tree.id AND i.status IN ('pending', 'running', 'waiting')
            RETURNING i.id
        )
        INSERT INTO postgit.events (instance_id, kind, data)
        SELECT id, 'instance_cancelled',
               CASE WHEN id = victim.id THEN jsonb_build_object('reason', reason)
                    ELSE '{"reason": "its parent ended"}'::jsonb END
        FROM cancelled;
        IF victim.parent_id IS NOT NULL THEN
            INSERT INTO postgit.signals (instance_id, name, key, data)
            VALUES (victim.parent_id, 'postgit.child', victim.id::text, '{"status": "cancelled"}'::jsonb);
            WITH woken AS (
                UPDATE postgit.instances p
                SET signal_seq = p.signal_seq + 1,
                    run_at = CASE WHEN p.status = 'waiting' THEN now() ELSE p.run_at END
                WHERE p.id = victim.parent_id AND p.status IN ('pending', 'running', 'waiting')
                RETURNING p.id, p.status, p.node_types
            )
            SELECT count(pg_notify(CASE WHEN status = 'running' THEN 'postgit_signal' ELSE 'postgit_work' END,
                                   CASE WHEN status = 'running' THEN id::text
                                        ELSE array_to_string(node_types, ',') END))
            INTO notified FROM woken;
        END IF;
    END LOOP;
END;
$$;

-- A start with a key: take a free slot, or by the strategy wait for one, be cancelled, or cancel the oldest holder.
CREATE FUNCTION postgit.concurrency_on_insert() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    held integer;
BEGIN
    IF NEW.status NOT IN ('pending', 'running', 'waiting') THEN
        RETURN NEW;
    END IF;
    PERFORM postgit.lock_concurrency_key(NEW.workflow, NEW.concurrency_key);
    NEW.slot_seq := nextval('postgit.slot_seq');
    SELECT count(*) INTO held FROM postgit.instances
    WHERE workflow = NEW.workflow AND concurrency_key = NEW.concurrency_key AND holds_slot;
    IF held >= NEW.concurrency_limit AND NEW.concurrency_strategy = 'cancel_in_progress' THEN
        PERFORM postgit.cancel_slot_holders(NEW.workflow, NEW.concurrency_key, held - NEW.concurrency_limit + 1,
                                            NEW.id);
        SELECT count(*) INTO held FROM postgit.instances
        WHERE workflow = NEW.workflow AND concurrency_key = NEW.concurrency_key AND holds_slot;
    END IF;
    IF held < NEW.concurrency_limit THEN
        NEW.holds_slot := true;
    ELSIF NEW.concurrency_strategy = 'cancel_newest' THEN
        NEW.status := 'cancelled';
        NEW.run_at := NULL;
        NEW.finished_at := now();
        NEW.wait_reason := NULL;
        NEW.error := jsonb_build_object(
            'message', format('cancelled at its start: the %s slot(s) of concurrency key %s are held '
                              '(strategy cancel_newest)', NEW.concurrency_limit, NEW.concurrency_key),
            'type', 'ConcurrencyLimit', 'node_id', NULL);
    ELSE
        NEW.awaiting_slot := true;
        NEW.wait_reason := postgit.slot_wait_reason(NEW.concurrency_key, NEW.concurrency_limit);
    END IF;
    RETURN NEW;
END;
$$;

-- An instance that finishes gives up its slot (or its place in the queue); one retried after it finished takes a
-- slot again, or queues at the back.
CREATE FUNCTION postgit.concurrency_on_update() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    held integer;
BEGIN
    IF NEW.status IN ('completed', 'failed', 'cancelled') THEN
        NEW.holds_slot := false;
        NEW.awaiting_slot := false;
    ELSIF OLD.status IN ('completed', 'failed', 'cancelled') THEN
        PERFORM postgit.lock_concurrency_key(NEW.workflow, NEW.concurrency_key);
        NEW.slot_seq := nextval('postgit.slot_seq');
        SELECT count(*) INTO held FROM postgit.instances
        WHERE workflow = NEW.workflow AND concurrency_key = NEW.concurrency_key AND holds_slot AND id <> NEW.id;
        IF held < NEW.concurrency_limit THEN
            NEW.holds_slot := true;
        ELSE
            NEW.awaiting_slot := true;
            NEW.wait_reason := postgit.slot_wait_reason(NEW.concurrency_key, NEW.concurrency_limit);
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

CREATE FUNCTION postgit.concurrency_release() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM postgit.grant_slots(OLD.workflow, OLD.concurrency_key);
    RETURN NULL;
END;
$$;

CREATE TRIGGER instances_concurrency_start BEFORE INSERT ON postgit.instances
    FOR EACH ROW WHEN (NEW.concurrency_key IS NOT NULL) EXECUTE FUNCTION postgit.concurrency_on_insert();
CREATE TRIGGER instances_concurrency_status BEFORE UPDATE OF status ON postgit.instances
    FOR EACH ROW WHEN (NEW.concurrency_key IS NOT NULL AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION postgit.concurrency_on_update();
CREATE TRIGGER instances_concurrency_release AFTER UPDATE ON postgit.instances
    FOR EACH ROW WHEN (OLD.holds_slot AND NOT NEW.holds_slot) EXECUTE FUNCTION postgit.concurrency_release();
CREATE TRIGGER instances_concurrency_delete AFTER DELETE ON postgit.instances
    FOR EACH ROW WHEN (OLD.holds_slot) EXECUTE FUNCTION postgit.concurrency_release();

-- Rate limits of nodes (`rateLimit`), per rendered key, across every worker: the time the key's next token is due
-- (the generic cell rate algorithm). A step takes a token before it runs, reserving the earliest free one.
CREATE TABLE postgit.rate_limits (
    key text PRIMARY KEY,
    next_at timestamptz NOT NULL
);
