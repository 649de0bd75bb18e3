-- Plugin versions: the package and version of each node type a worker runs, and those a workflow version was
-- validated against when it was deployed, so that a difference between them can be seen and warned about.
-- {"<node type>": {"package": "<distribution>", "version": "<version>"}}; '{}' for rows written by an earlier release.
ALTER TABLE postgit.workers ADD COLUMN plugins jsonb NOT NULL DEFAULT '{}';
ALTER TABLE postgit.workflows ADD COLUMN plugins jsonb NOT NULL DEFAULT '{}';
