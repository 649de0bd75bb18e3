-- Console sessions ended by logging out. A session cookie is signed, not stored, so a copy of it would stay valid
-- until it expires: its session id here makes every server process refuse it from the logout on. A row is kept as
-- long as the cookie could still be valid (postgit_server.console.access.SESSION_SECONDS), then deleted by the
-- next logout.
CREATE TABLE postgit.console_logouts (
    sid text PRIMARY KEY,
    ended_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX console_logouts_ended_at ON postgit.console_logouts (ended_at);
