-- name: lock_workflow_name
-- Serialise deploys of one workflow name for the rest of the transaction.
SELECT pg_advisory_xact_lock(hashtextextended('postgit.workflow:' || %(name)s, 0));

-- name: get_workflow_by_digest
-- The version of a workflow whose definition has this digest, if one was deployed.
SELECT name, version, definition, plugins, created_at
FROM postgit.workflows WHERE name = %(name)s AND digest = %(digest)s;

-- name: insert_workflow_version
-- Store a definition as the workflow's next version, with the plugin versions it was validated against.
INSERT INTO postgit.workflows (name, version, definition, digest, plugins)
SELECT %(name)s, COALESCE(max(version), 0) + 1, %(definition)s::jsonb, %(digest)s, %(plugins)s::jsonb
FROM postgit.workflows WHERE name = %(name)s
RETURNING name, version, definition, plugins, created_at;

-- name: get_workflow
-- One version of a workflow, or its latest when version is null.
SELECT name, version, definition, plugins, created_at
FROM postgit.workflows
WHERE name = %(name)s AND (%(version)s::int IS NULL OR version = %(version)s::int)
ORDER BY version DESC LIMIT 1;

-- name: latest_version
-- The number of a workflow's latest version (null when it has none).
SELECT max(version) AS version FROM postgit.workflows WHERE name = %(name)s;

-- name: list_workflow_versions
-- Every version of a workflow, newest first.
SELECT name, version, created_at FROM postgit.workflows WHERE name = %(name)s ORDER BY version DESC;

-- name: list_workflows
-- Each workflow with its latest version, version count and instance count.
SELECT w.name, max(w.version) AS latest_version, count(*) AS versions,
       min(w.created_at) AS created_at, max(w.created_at) AS updated_at
FROM postgit.workflows w GROUP BY w.name ORDER BY w.name;

-- name: latest_workflow_plugins
-- The plugin versions the latest version of each workflow was validated against ('{}' when none were recorded).
SELECT DISTINCT ON (name) name, version, plugins
FROM postgit.workflows ORDER BY name, version DESC;
