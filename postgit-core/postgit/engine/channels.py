"""NOTIFY channel names, in one place."""

WORK_CHANNEL = "postgit_work"
"""Notified with the node types (comma-separated) of an instance that became runnable now."""

SIGNAL_CHANNEL = "postgit_signal"
"""Notified with the id of an instance held by a worker to which an event was sent."""

CHANGE_CHANNEL = "postgit_change"
"""Notified with the ids (comma-separated) of instances whose rows changed, or ``*`` when too many changed to name;
the console's live views wait on it (see :mod:`postgit.engine.changes`)."""
