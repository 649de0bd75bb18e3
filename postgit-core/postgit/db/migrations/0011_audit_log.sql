-- The audit log: every state-changing request to the API (the console's actions call the API too), who sent it (a
-- token's name, or "anonymous" on a server without tokens), what it did, to what, and the status it was answered.
CREATE TABLE postgit.audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    role text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    via text NOT NULL CHECK (via IN ('api', 'console')),
    action text NOT NULL,
    target text,
    detail jsonb NOT NULL DEFAULT '{}'::jsonb,
    status integer NOT NULL CHECK (status BETWEEN 100 AND 599)
);
-- Retention deletes the oldest rows first.
CREATE INDEX audit_log_at ON postgit.audit_log (at);
