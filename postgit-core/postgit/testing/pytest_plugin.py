"""The pytest plugin of Postgit's testing kit (a ``pytest11`` entry point of ``postgit-core``).

Fixtures:

- ``postgit_env``: a :class:`~postgit.testing.PostgitEnv` per test, on the session's database, emptied first.
- ``postgit_plugins``: plugin objects the env loads besides the installed ones (override it to add yours).
- ``postgit_server_url``: the PostgreSQL server the session's database is created on: ``--postgit-database-url``,
  else ``DATABASE_URL``, else an embedded server (override it in a ``conftest.py`` to choose another).
- ``postgit_database``: the session's database (created once, dropped at the end).

The kit is imported when a fixture is first used, so the plugin costs nothing to a test run that does not use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from postgit.testing import KitDatabase, PostgitEnv


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--postgit-database-url``."""
    group = parser.getgroup("postgit", "Postgit's testing kit")
    group.addoption(
        "--postgit-database-url",
        default=None,
        help="PostgreSQL server on which the postgit_env fixture creates its database "
        "(default: DATABASE_URL, else an embedded server)",
    )


@pytest.fixture(scope="session")
def postgit_server_url(request: pytest.FixtureRequest) -> str | None:
    """The server for the session's database; None for ``DATABASE_URL``, else an embedded server."""
    return request.config.getoption("postgit_database_url")


@pytest.fixture(scope="session")
def postgit_database(postgit_server_url: str | None) -> Iterator[KitDatabase]:
    """A database of the kit's own for the session, migrated once and dropped at the end."""
    from postgit.testing import KitDatabase  # loaded on first use only

    database = KitDatabase.create(postgit_server_url)
    yield database
    database.drop()


@pytest.fixture
def postgit_plugins() -> list[object]:
    """Plugin objects (modules with ``@postgit.hookimpl`` functions) to load besides the installed plugins."""
    return []


@pytest.fixture
def postgit_env(postgit_database: KitDatabase, postgit_plugins: list[object]) -> Iterator[PostgitEnv]:
    """A running engine on an emptied database, its clock at the system's time; stopped after the test."""
    from postgit.testing import PostgitEnv  # loaded on first use only

    with PostgitEnv(database=postgit_database, plugins=postgit_plugins) as env:
        yield env
