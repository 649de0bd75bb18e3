-- Leave room on each page of instances, so that a step's update of its instance (state, progress) can stay on
-- the same page as a HOT update, which writes no index entry.
ALTER TABLE postgit.instances SET (fillfactor = 70);
