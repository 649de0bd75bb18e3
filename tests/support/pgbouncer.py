"""PgBouncer in transaction pooling mode in front of the test's PostgreSQL, started by the test itself.

Debian's ``pgbouncer`` binary (``apt-get install pgbouncer``), run in the foreground on a free loopback port with a
configuration written to a temporary directory. Every database of the target server is reachable through it under
its own name (the ``*`` fallback entry), with the client's role: ``url_for(database_url)`` is the same database
through the pooler.

PgBouncer refuses to run as root, so as root it runs as the system user the embedded PostgreSQL runs as
(:data:`postgit_cli.embedded_pg.SERVER_USER`, created when missing), which owns the temporary directory.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from postgit_cli.embedded_pg import SERVER_USER, _ensure_system_user
from tests.support.ports import free_port

HOST = "127.0.0.1"
SEARCH_PATH = ("/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin")


def pgbouncer_binary() -> str | None:
    """The ``pgbouncer`` program (Debian installs it in ``/usr/sbin``, off a non-root ``PATH``), or None."""
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path=os.pathsep.join(SEARCH_PATH))


def pgbouncer_version(binary: str) -> tuple[int, int]:
    """``(1, 18)`` from ``pgbouncer --version``'s first line, ``PgBouncer 1.18.0``."""
    output = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True, timeout=10).stdout
    match = re.search(r"PgBouncer (\d+)\.(\d+)", output)
    assert match, f"unexpected pgbouncer --version output: {output!r}"
    return int(match.group(1)), int(match.group(2))


class PgBouncer:
    """A running PgBouncer (``pool_mode = transaction``) in front of the server of ``target_url``.

    Args:
        target_url: a URL of the PostgreSQL server to pool (any database on it; its role and password are the ones
            PgBouncer logs in with).
        pool_size: ``default_pool_size``, server connections per database and role, fewer than a server's and a
            worker's pools together: clients share them and queue for them, as on a busy production pooler.
        max_prepared_statements: how many protocol-level prepared statements PgBouncer keeps per connection, from
            1.21 on (None leaves its default; 0 is what an earlier PgBouncer does anyway).
    """

    def __init__(self, target_url: str, *, pool_size: int = 10, max_prepared_statements: int | None = None):
        binary = pgbouncer_binary()
        assert binary, "pgbouncer is not installed (apt-get install pgbouncer)"
        self.binary = binary
        self.version = pgbouncer_version(binary)
        self.target = conninfo_to_dict(target_url)
        self.pool_size = pool_size
        self.max_prepared_statements = max_prepared_statements
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="postgit-pgbouncer-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.dir / "pgbouncer.log"

    def url_for(self, database_url: str) -> str:
        """``database_url`` (a database of the target server) through PgBouncer."""
        params = conninfo_to_dict(database_url)
        params.update(host=HOST, port=str(self.port))
        return make_conninfo(**params)

    def config(self) -> str:
        target = f"host={self.target.get('host', HOST)} port={self.target.get('port', '5432')}"
        lines = [
            "[databases]",
            f"* = {target}",
            "",
            "[pgbouncer]",
            f"listen_addr = {HOST}",
            f"listen_port = {self.port}",
            "unix_socket_dir =",
            "auth_type = trust",
            f"auth_file = {self.dir / 'userlist.txt'}",
            "pool_mode = transaction",
            f"default_pool_size = {self.pool_size}",
            # hand server connections out in turn rather than the most recently used first: a client's consecutive
            # transactions land on different server connections, as they do on a busy pooler
            "server_round_robin = 1",
            "max_client_conn = 1000",
            f"logfile = {self.log_path}",
        ]
        if self.version >= (1, 21) and self.max_prepared_statements is not None:
            lines.append(f"max_prepared_statements = {self.max_prepared_statements}")
        else:
            assert not self.max_prepared_statements, f"PgBouncer {self.version} cannot keep prepared statements"
        return "\n".join(lines) + "\n"

    def start(self) -> PgBouncer:
        """Write the configuration, start PgBouncer and wait until it accepts connections."""
        user = self.target.get("user") or "postgres"
        password = self.target.get("password") or ""
        (self.dir / "userlist.txt").write_text(f'"{user}" "{_quoted(password)}"\n', encoding="utf-8")
        config = self.dir / "pgbouncer.ini"
        config.write_text(self.config(), encoding="utf-8")
        identity: dict[str, object] = {}
        if os.geteuid() == 0:  # PgBouncer refuses to run as root
            server_user = _ensure_system_user(SERVER_USER)
            identity = server_user.subprocess_kwargs()
            for path in (self.dir, *self.dir.iterdir()):
                os.chown(path, server_user.uid, server_user.gid)
        with open(self.dir / "stderr.log", "wb") as stderr:
            self.process = subprocess.Popen(
                [self.binary, str(config)],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                **identity,  # type: ignore[arg-type]
            )
        deadline = time.monotonic() + 20
        while not self._accepting():
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = self.output()
                self.stop()
                raise AssertionError(f"pgbouncer did not start on port {self.port}:\n{output}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Shut PgBouncer down at once (SIGTERM, then SIGKILL) and delete its directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def output(self) -> str:
        """PgBouncer's log and standard error."""
        return "\n".join(
            path.read_text(errors="replace") for path in (self.log_path, self.dir / "stderr.log") if path.exists()
        )

    def _accepting(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=0.5):
                return True
        except OSError:
            return False


def _quoted(value: str) -> str:
    return value.replace('"', '""')


@contextmanager
def running_pgbouncer(target_url: str, **options: object) -> Iterator[PgBouncer]:
    """A :class:`PgBouncer` for the duration of the block."""
    bouncer = PgBouncer(target_url, **options)  # type: ignore[arg-type]
    bouncer.start()
    try:
        yield bouncer
    finally:
        bouncer.stop()
