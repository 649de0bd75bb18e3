-- State kept per top-level key.
--
-- An instance's input stays in `instances.state`; every other top-level key of its state is a row of
-- `postgit.state_parts`, written only when a step or a control node changes that key, so that a step's write costs
-- what its own output costs however large the rest of the state has grown (a jsonb document is written whole).
-- `has_state_parts` says whether an instance has any, so that reads of an instance without (most of them) merge
-- nothing; `postgit.full_state` merges. A part wins over a key of the same name in `instances.state`: instances
-- started before this migration keep their keys there until a key is written again.

ALTER TABLE postgit.instances ADD COLUMN has_state_parts boolean NOT NULL DEFAULT false;

CREATE TABLE postgit.state_parts (
    instance_id uuid NOT NULL REFERENCES postgit.instances (id) ON DELETE CASCADE,
    key text NOT NULL,
    value jsonb NOT NULL,
    PRIMARY KEY (instance_id, key)
);

CREATE FUNCTION postgit.full_state(instance uuid, inline jsonb, has_parts boolean) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN has_parts
                THEN inline || COALESCE((SELECT jsonb_object_agg(p.key, p.value) FROM postgit.state_parts p
                                         WHERE p.instance_id = instance), '{}'::jsonb)
                ELSE inline END
$$;
