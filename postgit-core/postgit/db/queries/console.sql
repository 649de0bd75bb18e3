-- name: end_console_session
-- Record that a console session logged out; forget sessions ended longer ago than any cookie stays valid.
WITH forgotten AS (
    DELETE FROM postgit.console_logouts WHERE ended_at < now() - make_interval(secs => %(keep_seconds)s)
)
INSERT INTO postgit.console_logouts (sid) VALUES (%(sid)s) ON CONFLICT (sid) DO NOTHING;

-- name: console_session_ended
-- Whether a console session logged out.
SELECT EXISTS (SELECT FROM postgit.console_logouts WHERE sid = %(sid)s) AS ended;
