"""Persistence: the connection pool, migrations and the Store that runs every query."""

from postgit.db.migrate import migrate
from postgit.db.pool import open_pool
from postgit.db.store import Store

__all__ = ["Store", "migrate", "open_pool"]
