"""Settings from the environment: defaults, and one clear error naming the variable for a bad value."""

from __future__ import annotations

import pytest

from postgit.errors import PostgitError
from postgit.settings import WorkerSettings
from postgit_server.settings import ServerSettings

URL = "postgresql://postgres@db:5432/postgit"


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "POSTGIT_DB_POOL_MAX",
        "POSTGIT_DB_TIMEOUT_SECONDS",
        "POSTGIT_WORKER_CONCURRENCY",
        "POSTGIT_DB_PREPARED_STATEMENTS",
        "POSTGIT_LISTEN_DATABASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", URL)
    return monkeypatch


def test_defaults():
    worker, server = WorkerSettings.from_env(), ServerSettings.from_env()
    assert (worker.pool_max_size, server.pool_max_size) == (6, 10)
    assert server.db_timeout_seconds == 5.0
    assert worker.prepared_statements and server.prepared_statements
    assert worker.listen_url == server.listen_url == URL


def test_behind_a_pooler_listen_goes_direct_and_prepared_statements_can_be_turned_off(environment):
    direct = "postgresql://postgres@db-direct:5432/postgit"
    environment.setenv("POSTGIT_LISTEN_DATABASE_URL", direct)
    environment.setenv("DATABASE_URL", "postgresql://postgres@pgbouncer:6432/postgit")
    assert WorkerSettings.from_env().listen_url == ServerSettings.from_env().listen_url == direct
    for value, expected in [("off", False), ("OFF", False), ("false", False), ("0", False), ("on", True), ("", True)]:
        environment.setenv("POSTGIT_DB_PREPARED_STATEMENTS", value)
        assert WorkerSettings.from_env().prepared_statements is expected
        assert ServerSettings.from_env().prepared_statements is expected
    environment.setenv("POSTGIT_DB_PREPARED_STATEMENTS", "sometimes")
    for settings in (WorkerSettings, ServerSettings):
        with pytest.raises(PostgitError, match=r"^POSTGIT_DB_PREPARED_STATEMENTS='sometimes' must be on or off$"):
            settings.from_env()


def test_the_pool_cap_applies_to_server_and_worker(environment):
    environment.setenv("POSTGIT_DB_POOL_MAX", "3")
    assert WorkerSettings.from_env().pool_max_size == 3
    assert ServerSettings.from_env().pool_max_size == 3
    environment.setenv("POSTGIT_DB_POOL_MAX", " ")
    assert WorkerSettings.from_env().pool_max_size == 6


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "POSTGIT_DB_POOL_MAX='0' must be greater than zero"),
        ("-2", "POSTGIT_DB_POOL_MAX='-2' must be greater than zero"),
        ("2.5", "POSTGIT_DB_POOL_MAX='2.5' must be a whole number"),
        ("ten", "POSTGIT_DB_POOL_MAX='ten' is not a number"),
        ("nan", "POSTGIT_DB_POOL_MAX='nan' is not a finite number"),
        ("inf", "POSTGIT_DB_POOL_MAX='inf' is not a finite number"),
        ("1001", "POSTGIT_DB_POOL_MAX='1001' must be at most 1000"),
    ],
)
def test_a_bad_pool_cap_is_refused_naming_the_variable(environment, value, message):
    environment.setenv("POSTGIT_DB_POOL_MAX", value)
    for settings in (WorkerSettings, ServerSettings):
        with pytest.raises(PostgitError) as refused:
            settings.from_env()
        assert str(refused.value) == message


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf"])
def test_a_bad_database_timeout_is_refused_naming_the_variable(environment, value):
    environment.setenv("POSTGIT_DB_TIMEOUT_SECONDS", value)
    with pytest.raises(PostgitError, match=rf"^POSTGIT_DB_TIMEOUT_SECONDS='{value}' "):
        ServerSettings.from_env()


def test_a_fractional_database_timeout_is_fine(environment):
    environment.setenv("POSTGIT_DB_TIMEOUT_SECONDS", "2.5")
    assert ServerSettings.from_env().db_timeout_seconds == 2.5


@pytest.mark.parametrize("value", ["inf", "nan"])
def test_numbers_must_be_finite(environment, value):
    environment.setenv("POSTGIT_WORKER_CONCURRENCY", value)
    with pytest.raises(PostgitError, match="is not a finite number"):
        WorkerSettings.from_env()
