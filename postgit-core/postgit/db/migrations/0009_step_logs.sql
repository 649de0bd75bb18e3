-- Step logs and traces. Logs: what a handler logged through ctx.logger, kept with its attempt (at most 64 KB per attempt, written
-- by the engine). Nullable: the previous release writes steps without it.
ALTER TABLE postgit.steps ADD COLUMN logs text;
-- The W3C traceparent of the request that started an instance, if it had one: its steps' spans are its children.
ALTER TABLE postgit.instances ADD COLUMN traceparent text;
