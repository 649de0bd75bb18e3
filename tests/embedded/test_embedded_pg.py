"""The embedded PostgreSQL of ``pst dev`` and the test suite: lifecycle, persistence, crash recovery, users."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from postgit_cli.embedded_pg import SERVER_USER, EmbeddedPostgres, EmbeddedPostgresError
from tests.support.ports import free_port
from tests.support.session_pg import session_server, stop_session_servers
from tests.support.waiting import wait_for_sync

IS_ROOT = os.geteuid() == 0


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    """A data directory outside pytest's tmp_path: a pytest session starting meanwhile makes /tmp/pytest-of-<user>
    private again, which would lock the server's own user out when the suite runs as root."""
    base = Path(tempfile.mkdtemp(prefix="postgit-embedded-"))
    try:
        yield base / "pg"
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def handles() -> Iterator[Callable[[EmbeddedPostgres], EmbeddedPostgres]]:
    """Register servers to stop after the test, whatever it left running."""
    started: list[EmbeddedPostgres] = []
    yield lambda pg: started.append(pg) or pg
    for pg in reversed(started):
        pg.stop()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def query(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url, connect_timeout=5) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description else []


def test_first_start_initialises_creates_the_database_and_stop_ends_it(pg_dir, handles):
    pg = handles(EmbeddedPostgres(pg_dir)).start()

    assert (pg_dir / "pgdata" / "PG_VERSION").read_text().strip() == "18"
    assert pg.url == f"postgresql://postgres@127.0.0.1:{pg.port}/postgit"
    assert pg.admin_url == f"postgresql://postgres@127.0.0.1:{pg.port}/postgres"
    assert query(pg.url, "SELECT current_database(), current_user") == [("postgit", "postgres")]
    assert query(pg.url, "SHOW listen_addresses") == [("127.0.0.1",)]
    pid, url = pg.pid, pg.url
    assert pid is not None and pg.running

    pg.stop()

    assert not pg.running and not alive(pid)
    assert not (pg_dir / "pgdata" / "postmaster.pid").exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)


def test_context_manager_uses_the_given_port(pg_dir):
    port = free_port()
    with EmbeddedPostgres(pg_dir, port=port, database="other") as pg:
        assert pg.port == port
        assert query(f"postgresql://postgres@127.0.0.1:{port}/other", "SELECT 1") == [(1,)]
        pid = pg.pid
    assert not alive(pid)


def test_data_survives_a_restart(pg_dir, handles):
    first = handles(EmbeddedPostgres(pg_dir)).start()
    query(first.url, "CREATE TABLE notes AS SELECT 'stays' AS body")
    control_file = (pg_dir / "pgdata" / "global" / "pg_control").stat().st_ino
    first.stop()

    second = handles(EmbeddedPostgres(pg_dir)).start()

    assert query(second.url, "SELECT body FROM notes") == [("stays",)]
    assert (pg_dir / "pgdata" / "global" / "pg_control").stat().st_ino == control_file  # no second initdb


def test_a_sigkilled_postmaster_leaves_a_stale_pid_file_that_the_next_start_recovers_from(pg_dir, handles):
    first = handles(EmbeddedPostgres(pg_dir)).start()
    query(first.url, "CREATE TABLE notes AS SELECT 'committed' AS body")
    old_pid = first.pid
    assert old_pid is not None

    os.kill(old_pid, signal.SIGKILL)
    wait_for_sync(lambda: not alive(old_pid), timeout=10, what="the postmaster to die")
    assert (pg_dir / "pgdata" / "postmaster.pid").exists()

    second = handles(EmbeddedPostgres(pg_dir)).start()

    assert second.pid != old_pid
    assert query(second.url, "SELECT body FROM notes") == [("committed",)]


def test_a_pid_file_naming_some_other_live_process_is_stale(pg_dir, handles):
    pg = handles(EmbeddedPostgres(pg_dir)).start()
    pg.stop()
    pid_file = pg_dir / "pgdata" / "postmaster.pid"
    # As after a reboot or in a container: the recorded pid now belongs to an unrelated process.
    pid_file.write_text(f"{os.getpid()}\n{pg_dir / 'pgdata'}\n0\n5432\n\n127.0.0.1\n0 0\nready\n")

    restarted = handles(EmbeddedPostgres(pg_dir)).start()

    assert restarted.pid != os.getpid()
    assert query(restarted.url, "SELECT 1") == [(1,)]


def test_a_server_still_running_on_the_data_directory_is_adopted(pg_dir, handles):
    first = handles(EmbeddedPostgres(pg_dir)).start()

    second = handles(EmbeddedPostgres(pg_dir)).start()

    assert (second.pid, second.port) == (first.pid, first.port)
    with pytest.raises(EmbeddedPostgresError, match=f"already runs on .* on port {first.port}"):
        EmbeddedPostgres(pg_dir, port=free_port()).start()


def test_an_interrupted_initdb_is_started_over(pg_dir, handles):
    (pg_dir / "pgdata.init" / "base").mkdir(parents=True)
    (pg_dir / "pgdata.init" / "PG_VERSION").write_text("18\n")

    pg = handles(EmbeddedPostgres(pg_dir)).start()

    assert query(pg.url, "SELECT 1") == [(1,)]
    assert not (pg_dir / "pgdata.init").exists()


def test_a_port_in_use_is_one_line_naming_the_cause_and_the_log(pg_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(EmbeddedPostgresError) as failure:
            EmbeddedPostgres(pg_dir, port=port, start_timeout=20).start()

    message = str(failure.value)
    assert "\n" not in message
    assert message.startswith("embedded PostgreSQL did not start: FATAL:")
    assert 'could not bind IPv4 address "127.0.0.1": Address already in use' in message
    assert f"(log: {pg_dir / 'postgres.log'})" in message


def test_missing_binaries_and_unusable_data_directories_are_clear_errors(pg_dir, tmp_path):
    with pytest.raises(EmbeddedPostgresError, match=r"^no PostgreSQL binaries in .*nowhere$"):
        EmbeddedPostgres(pg_dir, bin_dir=tmp_path / "nowhere").start()
    (tmp_path / "a-file").write_text("")
    with pytest.raises(EmbeddedPostgresError, match=r"^cannot create .*a-file/pg: "):
        EmbeddedPostgres(tmp_path / "a-file" / "pg").start()


def test_session_server_is_one_per_process_and_leaves_nothing_behind(pg_dir):
    base = pg_dir.parent / "sessions"
    first = session_server(base)
    try:
        assert session_server(base) is first
        assert first.data_dir == base / f"session-{os.getpid()}"
        assert query(first.admin_url, "SELECT current_database()") == [("postgres",)]
    finally:
        stop_session_servers(base)
    assert not first.running
    assert not first.data_dir.exists()


def test_what_an_interrupted_delete_left_of_the_cluster_is_moved_aside(pg_dir, handles):
    (pg_dir / "pgdata" / "base").mkdir(parents=True)  # no PG_VERSION: its delete was cut short
    (pg_dir / "pgdata" / "base" / "leftover").write_text("x")

    pg = handles(EmbeddedPostgres(pg_dir)).start()

    assert query(pg.url, "SELECT 1") == [(1,)]
    [aside] = pg_dir.glob("pgdata.incomplete-*")
    assert (aside / "base" / "leftover").read_text() == "x"


def test_a_session_directory_named_after_this_process_that_it_did_not_start_is_a_dead_session_s(pg_dir):
    base = pg_dir.parent / "own-pid"
    stale = base / f"session-{os.getpid()}" / "pgdata"  # a killed session whose pid this process now has
    stale.mkdir(parents=True)
    (stale / "postgresql.conf").write_text("")
    try:
        server = session_server(base)
        assert query(server.admin_url, "SELECT 1") == [(1,)]
        assert not list(server.data_dir.glob("pgdata.incomplete-*")), "reaped, not found in the way"
    finally:
        stop_session_servers(base)
    assert not (base / f"session-{os.getpid()}").exists()


def test_session_server_stops_and_removes_what_dead_sessions_left(pg_dir):
    base = pg_dir.parent / "sessions"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_session = base / f"session-{int(gone.stdout)}"
    orphan = EmbeddedPostgres(dead_session).start()  # as if its pytest process had been killed

    try:
        server = session_server(base)
    finally:
        stop_session_servers(base)
        orphan.stop()

    assert server.data_dir != dead_session
    assert not orphan.running
    assert not dead_session.exists()


@pytest.mark.skipif(not IS_ROOT, reason="only root needs a separate server user")
def test_as_root_the_server_runs_as_its_own_unprivileged_user(pg_dir, handles):
    pg = handles(EmbeddedPostgres(pg_dir)).start()

    server_user = pwd.getpwnam(SERVER_USER)
    assert server_user.pw_uid != 0
    assert os.stat(f"/proc/{pg.pid}").st_uid == server_user.pw_uid
    pgdata = (pg_dir / "pgdata").stat()
    assert (pgdata.st_uid, pgdata.st_mode & 0o777) == (server_user.pw_uid, 0o700)
    assert os.geteuid() == 0


def python_for(user: pwd.struct_passwd) -> list[str] | None:
    """A command that runs this venv's Python code as ``user``.

    This interpreter, or the system's of the same version with the venv's site-packages added when the interpreter
    lives under a home that ``user`` cannot enter.
    """
    site_dir = sysconfig.get_paths()["purelib"]
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for python in (sys.executable, f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"):
        command = [python, "-c", f"import site; site.addsitedir({site_dir!r}); import sys; exec(sys.argv[1])"]
        try:
            probe = subprocess.run(
                [*command, "import postgit_cli.embedded_pg, psycopg"],
                user=user.pw_uid,
                group=user.pw_gid,
                extra_groups=[],
                capture_output=True,
                check=False,
                timeout=60,
            )
        except OSError:
            continue
        if probe.returncode == 0:
            return command
    return None


@pytest.mark.skipif(not IS_ROOT, reason="run as root to try another user; otherwise the whole suite is that case")
def test_as_an_ordinary_user_the_server_runs_as_that_user():
    nobody = pwd.getpwnam("nobody")
    python = python_for(nobody)
    if python is None:
        pytest.skip("user nobody cannot run this venv's Python")
    base = Path(tempfile.mkdtemp(prefix="postgit-embedded-"))
    os.chown(base, nobody.pw_uid, nobody.pw_gid)
    script = (
        "import json, os, sys\n"
        "from pathlib import Path\n"
        "import psycopg\n"
        "from postgit_cli.embedded_pg import EmbeddedPostgres\n"
        "with EmbeddedPostgres(Path(sys.argv[2]) / 'pg') as pg:\n"
        "    with psycopg.connect(pg.url) as conn:\n"
        "        db = conn.execute('SELECT current_database()').fetchone()[0]\n"
        "    print(json.dumps({'server_uid': os.stat(f'/proc/{pg.pid}').st_uid, 'database': db}))\n"
    )
    try:
        result = subprocess.run(
            [*python, script, str(base)],
            user=nobody.pw_uid,
            group=nobody.pw_gid,
            extra_groups=[],
            env={**os.environ, "HOME": str(base), "PYTHONDONTWRITEBYTECODE": "1"},
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"server_uid": nobody.pw_uid, "database": "postgit"}
        assert (base / "pg" / "pgdata").stat().st_uid == nobody.pw_uid
    finally:
        shutil.rmtree(base, ignore_errors=True)
