"""NOTIFY channel names, in one place."""

WORK_CHANNEL = "postgit_work"
"""Notified with the node type of an instance that became runnable now (started, or handed back)."""
