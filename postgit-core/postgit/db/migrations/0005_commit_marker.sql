-- Each group commit marks the instance rows it writes with its own random id, so that a worker whose connection
-- died under a commit can find out, once it reconnects, whether that commit happened.
ALTER TABLE postgit.instances ADD COLUMN commit_id bigint;
