"""The virtual clock: the system's time plus an offset that only moves forward.

The engine reads the time in two places: its Python asks a :class:`~postgit.clock.Clock`, its SQL calls ``now()``.
The kit's database has a ``now()`` of its own (in the schema :data:`CLOCK_SCHEMA`, first on the database's
``search_path``) that adds the same offset, kept in one row of ``postgit_testing.clock``. Moving the clock is
writing that row and the Python offset together, so that both sides of the engine see one time.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

CLOCK_SCHEMA = "postgit_testing"

SETUP_STATEMENTS = (
    f"CREATE SCHEMA IF NOT EXISTS {CLOCK_SCHEMA}",
    f"CREATE TABLE IF NOT EXISTS {CLOCK_SCHEMA}.clock (offset_seconds double precision NOT NULL)",
    f"INSERT INTO {CLOCK_SCHEMA}.clock SELECT 0 WHERE NOT EXISTS (SELECT FROM {CLOCK_SCHEMA}.clock)",
    # pg_catalog.now() by name: the function shadows it for every statement of the database, itself included
    f"""CREATE OR REPLACE FUNCTION {CLOCK_SCHEMA}.now() RETURNS timestamptz LANGUAGE sql STABLE AS $$
        SELECT pg_catalog.now() + make_interval(secs => (SELECT offset_seconds FROM {CLOCK_SCHEMA}.clock))
    $$""",
)
"""Make a database's ``now()`` the virtual clock (with ``search_path`` set to :data:`SEARCH_PATH`)."""

SEARCH_PATH = f"{CLOCK_SCHEMA}, pg_catalog, public"
"""``pg_catalog`` named after the clock's schema: PostgreSQL then finds the clock's ``now()`` first."""

SET_OFFSET = f"UPDATE {CLOCK_SCHEMA}.clock SET offset_seconds = %(offset)s"


class VirtualClock:
    """The kit's clock (a :class:`~postgit.clock.Clock`): the system's time plus :attr:`offset` seconds."""

    def __init__(self, offset: float = 0.0):
        self._offset = offset
        self._lock = threading.Lock()

    @property
    def offset(self) -> float:
        """How many seconds this clock is ahead of the system's."""
        return self._offset

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self._offset)

    def offset_for(self, moment: datetime) -> float:
        """The offset at which this clock shows ``moment`` now (never less than the current one)."""
        with self._lock:
            return max(self._offset, self._offset + (moment - self.now()).total_seconds())

    def set_offset(self, offset: float) -> None:
        """Move the clock to ``offset`` seconds ahead of the system's; it never goes back."""
        with self._lock:
            self._offset = max(self._offset, offset)
