"""A throwaway local PostgreSQL server for the demo and the tests.

``LocalPostgres`` runs ``initdb`` into a fresh, short-named directory (the unix socket lives there
and its path must stay under 107 bytes) under ``/dev/shm`` when that is a roomy tmpfs, else ``/tmp``
(see ``default_base_dir``), starts ``postgres`` listening on ``127.0.0.1`` on a free port, and
removes everything again on ``stop()``. The superuser ``postgres`` has a random password and every
connection (TCP and unix socket) needs it (scram-sha-256), so tests can prove passwords never leak.

PostgreSQL refuses to run as root. When this process is root, the server (and ``initdb``) run as the
OS user ``postgres`` and the directory is handed over to that user; otherwise they run as the
current user. Durability is switched off (``fsync``, ``synchronous_commit``, ``full_page_writes``):
the data is thrown away anyway.

Robustness: readiness is polled against a deadline (a real password login), the server log is kept
in ``<dir>/server.log`` and its tail is part of every start error, ``stop()`` always runs to the end
(fast shutdown, then immediate, then SIGKILL) and is registered with ``atexit``. Servers left behind
by a process that was killed (SIGKILL, OOM) are reaped by the next ``start()``.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import psycopg
from psycopg import sql

from litemaas_hooks.errors import LiteMaaSHooksError

__all__ = [
    "HotStandby",
    "LocalPostgres",
    "PostgresNotFoundError",
    "PostgresStartError",
    "find_pg_bindir",
]

BINDIR_ENV = "LITEMAAS_HOOKS_PG_BINDIR"
BASE_DIR_ENV = "LITEMAAS_HOOKS_PG_BASE_DIR"
_SHM_MIN_FREE = 2 * 1024**3
SUPERUSER = "postgres"
DIR_PREFIX = "lmh-"
_OWNER_FILE = "lmh-owner.json"
_SOCKET_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux
_REQUIRED_TOOLS = ("postgres", "initdb")


class PostgresNotFoundError(LiteMaaSHooksError):
    """No PostgreSQL server binaries (``postgres`` + ``initdb``) were found."""


class PostgresStartError(LiteMaaSHooksError):
    """The local PostgreSQL server could not be initialised, started or reached."""


# -- finding the server binaries ------------------------------------------------------------------


def _version_key(path: str) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin -> (15,) ; (9, 6) ; non-numeric versions sort last
    version = Path(path).parent.name
    return tuple(int(part) for part in re.findall(r"\d+", version)) or (-1,)


def _has_server(bindir: Path) -> bool:
    return all(
        os.access(bindir / tool, os.X_OK) and (bindir / tool).is_file() for tool in _REQUIRED_TOOLS
    )


def _pg_config_bindir(pg_config: str) -> Path | None:
    try:
        out = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out) if out else None


def find_pg_bindir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The directory holding ``postgres`` and ``initdb``.

    Searched in order: ``explicit``, ``$LITEMAAS_HOOKS_PG_BINDIR``, ``/usr/lib/postgresql/*/bin``
    (newest version first), ``pg_config --bindir``, then ``$PATH``. Raises ``PostgresNotFoundError``
    listing every place searched and how to install the server.
    """
    searched: list[str] = []

    def check(place: str, bindir: Path | None) -> Path | None:
        if bindir is None:
            searched.append(f"{place}: nothing there")
            return None
        if _has_server(bindir):
            return bindir
        searched.append(f"{place}: {bindir} has no executable {' + '.join(_REQUIRED_TOOLS)}")
        return None

    candidates: list[tuple[str, Path | None]] = []
    if explicit is not None:
        candidates.append(("explicit bindir argument", Path(explicit)))
    env = os.environ.get(BINDIR_ENV, "").strip()
    if env:
        candidates.append((f"${BINDIR_ENV}", Path(env)))
    else:
        searched.append(f"${BINDIR_ENV}: not set")
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    if debian:
        candidates.extend(("/usr/lib/postgresql/*/bin", Path(p)) for p in debian)
    else:
        searched.append("/usr/lib/postgresql/*/bin: no such directory")
    pg_config = shutil.which("pg_config")
    if pg_config:
        candidates.append((f"`{pg_config} --bindir`", _pg_config_bindir(pg_config)))
    else:
        searched.append("pg_config: not on $PATH")
    on_path = shutil.which("postgres")
    if on_path:
        candidates.append(("postgres on $PATH", Path(on_path).resolve().parent))
    else:
        searched.append("postgres: not on $PATH")

    for place, bindir in candidates:
        found = check(place, bindir)
        if found is not None:
            return found
    raise PostgresNotFoundError(
        "No PostgreSQL server binaries (postgres + initdb) found. Searched:\n  - "
        + "\n  - ".join(searched)
        + "\nFix: install the server, e.g. `apt-get update && apt-get install -y postgresql` "
        "(Debian/Ubuntu; `make venv` does it when run as root), or point "
        f"{BINDIR_ENV} at the directory that holds postgres and initdb."
    )


# -- helpers ---------------------------------------------------------------------------------------


def default_base_dir() -> Path:
    """Where the temp dir goes: ``$LITEMAAS_HOOKS_PG_BASE_DIR``, else ``/dev/shm`` when it is a
    writable memory file system with room to spare (creating a database copies hundreds of small
    files, which is ~25x faster on tmpfs than on a disk mounted with ``discard``), else ``/tmp``."""
    env = os.environ.get(BASE_DIR_ENV, "").strip()
    if env:
        return Path(env)
    shm = Path("/dev/shm")  # noqa: S108 - a private 0700 dir is created inside
    try:
        st = os.statvfs(shm)
        if os.access(shm, os.W_OK | os.X_OK) and st.f_bavail * st.f_frsize >= _SHM_MIN_FREE:
            return shm
    except OSError:
        pass
    return Path("/tmp")  # noqa: S108 - a private 0700 dir is created inside


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _proc_start_time(pid: int) -> str | None:
    """Kernel start time of a live process (field 22 of /proc/<pid>/stat), None if it is gone or a
    zombie; comparing it tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in {"Z", "X"}:
        return None
    return fields[19]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no server log: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(server log is empty)"


def _signal_quietly(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def reap_stale_servers(base_dir: str | os.PathLike[str]) -> int:
    """Stop and delete servers whose owning process died without ``stop()`` (SIGKILL, OOM, crash).

    Only directories named ``lmh-*`` that hold this module's owner marker are considered; a server
    whose owner is still alive is left alone. Returns how many directories were removed.
    """
    removed = 0
    for marker in Path(base_dir).glob(f"{DIR_PREFIX}*/{_OWNER_FILE}"):
        root = marker.parent
        try:
            owner = json.loads(marker.read_text())
            owner_pid, owner_start = int(owner["pid"]), str(owner["start"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if _proc_start_time(owner_pid) == owner_start:
            continue  # owner alive: not stale
        pidfile = root / "data" / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            lines = pidfile.read_text().splitlines()
            pm_pid = int(lines[0])
            cmdline = Path(f"/proc/{pm_pid}/cmdline").read_bytes()
            if str(root / "data").encode() in cmdline:
                _signal_quietly(pm_pid, signal.SIGQUIT)
                deadline = time.monotonic() + 5
                while Path(f"/proc/{pm_pid}").exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
                _signal_quietly(pm_pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)
        removed += 1
    return removed


# -- the server ------------------------------------------------------------------------------------


class LocalPostgres:
    """A private PostgreSQL server in a temp dir; see the module docstring.

    >>> with LocalPostgres() as pg:                        # doctest: +SKIP
    ...     pg.create_database("app")
    ...     psycopg.connect(pg.dsn("app"))
    """

    def __init__(
        self,
        *,
        bindir: str | os.PathLike[str] | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        max_connections: int = 200,
        startup_timeout: float = 60.0,
        settings: Mapping[str, str | int] | None = None,
        run_as: str | None = None,
        keep_on_failure: bool = False,
    ) -> None:
        self._explicit_bindir = bindir
        self._base_dir = Path(base_dir) if base_dir is not None else default_base_dir()
        self._max_connections = max_connections
        self._startup_timeout = startup_timeout
        self._extra_settings = dict(settings or {})
        self._run_as = run_as
        self._keep_on_failure = keep_on_failure
        self._password = secrets.token_hex(24)
        self._lock = threading.RLock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._root: Path | None = None
        self._port: int | None = None
        self._bindir: Path | None = None
        self._admin: psycopg.Connection[Any] | None = None
        self._atexit_registered = False
        self.server_version: str | None = None
        self.timings: dict[str, float] = {}

    # -- public properties -------------------------------------------------------------------

    @property
    def password(self) -> str:
        """The superuser's password (random per instance)."""
        return self._password

    @property
    def user(self) -> str:
        return SUPERUSER

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        if self._port is None:
            raise PostgresStartError("LocalPostgres is not started: call start() first")
        return self._port

    @property
    def root_dir(self) -> Path:
        """The temp dir: ``data/``, ``server.log`` and the unix socket live here."""
        if self._root is None:
            raise PostgresStartError("LocalPostgres is not started: call start() first")
        return self._root

    @property
    def data_dir(self) -> Path:
        return self.root_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root_dir

    @property
    def log_path(self) -> Path:
        return self.root_dir / "server.log"

    @property
    def bindir(self) -> Path:
        if self._bindir is None:
            self._bindir = find_pg_bindir(self._explicit_bindir)
        return self._bindir

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __repr__(self) -> str:  # never shows the password
        state = f"127.0.0.1:{self._port}" if self.running else "stopped"
        return f"<LocalPostgres {state} dir={self._root}>"

    def dsn(self, dbname: str = "postgres") -> str:
        """``postgresql://postgres:PASSWORD@127.0.0.1:PORT/dbname``."""
        return f"postgresql://{SUPERUSER}:{self._password}@127.0.0.1:{self.port}/{dbname}"

    def connect(
        self, dbname: str = "postgres", *, autocommit: bool = True
    ) -> psycopg.Connection[Any]:
        """A new superuser connection (the caller closes it)."""
        return psycopg.connect(self.dsn(dbname), autocommit=autocommit, connect_timeout=10)

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Self:
        """initdb + start + wait until a password login works. Idempotent while running."""
        with self._lock:
            if self.running:
                return self
            t0 = time.perf_counter()
            try:
                reap_stale_servers(self._base_dir)
                self._prepare_dir()
                t1 = time.perf_counter()
                self._initdb()
                t2 = time.perf_counter()
                self._launch_and_wait()
                t3 = time.perf_counter()
            except BaseException:
                self._teardown(failed=True)
                raise
            self.timings.update(initdb=t2 - t1, server_start=t3 - t2, total_start=t3 - t0)
            if not self._atexit_registered:
                atexit.register(self.stop)
                self._atexit_registered = True
            return self

    def restart(self, *, immediate: bool = False) -> None:
        """Stop the server and start it again on the same port, data kept: what clients see of a
        restart or a failover (``immediate``: SIGQUIT, as a crash; else a fast shutdown)."""
        with self._lock:
            admin, self._admin = self._admin, None
            if admin is not None:
                with contextlib.suppress(Exception):
                    admin.close()
            proc, self._proc = self._proc, None
            if proc is not None:
                _signal_quietly(proc.pid, signal.SIGQUIT if immediate else signal.SIGINT)
                proc.wait(timeout=30)
            assert self._log_file is not None
            self._log_file.write(f"\n### postgres restarted (port {self._port})\n".encode())
            self._log_file.flush()
            self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                [str(self.bindir / "postgres"), "-D", str(self.data_dir), "-p", str(self._port)],
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._popen_kwargs(),
            )
            if not self._wait_ready(time.monotonic() + self._startup_timeout):
                tail = _tail(self.log_path)
                raise PostgresStartError(f"PostgreSQL did not come back after a restart:\n{tail}")

    def stop(self) -> None:
        """Fast shutdown, then remove the temp dir. Safe to call twice, or after a failed start."""
        with self._lock:
            self._teardown(failed=False)
            if self._atexit_registered:
                atexit.unregister(self.stop)
                self._atexit_registered = False

    # -- databases --------------------------------------------------------------------------------

    def create_database(
        self, name: str, template: str | None = None, *, strategy: str | None = None
    ) -> None:
        """``CREATE DATABASE name [TEMPLATE template] [STRATEGY strategy]`` (strategy: PG15+)."""
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        if strategy is not None:
            if strategy.upper() not in {"WAL_LOG", "FILE_COPY"}:
                raise ValueError(f"strategy must be WAL_LOG or FILE_COPY, got {strategy!r}")
            query += sql.SQL(" STRATEGY {}").format(sql.SQL(strategy.upper()))
        self._admin_execute(query)

    def drop_database(self, name: str) -> None:
        """``DROP DATABASE IF EXISTS name WITH (FORCE)`` (terminates its sessions first)."""
        self._admin_execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )

    def mark_template(self, name: str, *, allow_connections: bool = True) -> None:
        """Flag a database as a template (``IS_TEMPLATE true``) so it can be cloned cheaply."""
        self._admin_execute(
            sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS {}").format(
                sql.Identifier(name), sql.SQL("true" if allow_connections else "false")
            )
        )

    def allow_replication(self) -> None:
        """Let replication connections in (``pg_basebackup``, a standby's WAL receiver) from
        127.0.0.1, with the same password rule as every other connection; reloads the server.
        Idempotent."""
        hba = self.data_dir / "pg_hba.conf"
        line = "host   replication  all  127.0.0.1/32   scram-sha-256\n"
        if line not in hba.read_text():
            with hba.open("a") as fh:  # appending keeps the file's owner (the server's OS user)
                fh.write(line)
        with self.connect() as conn:
            conn.execute("SELECT pg_reload_conf()")

    def _admin_execute(self, query: sql.Composed) -> None:
        with self._lock:
            for attempt in (1, 2):
                conn = self._admin
                if conn is None or conn.closed or conn.broken:
                    conn = self._admin = self.connect("postgres")
                try:
                    conn.execute(query)
                    return
                except psycopg.OperationalError:
                    # a dropped admin session (e.g. server restarted): reconnect once
                    if attempt == 2 or not conn.broken:
                        raise
                    self._admin = None

    # -- internals ---------------------------------------------------------------------------------

    def _os_user(self) -> pwd.struct_passwd | None:
        """The OS account to run the server as, or None for "this process's user"."""
        name = self._run_as
        if name is None:
            if os.geteuid() != 0:
                return None
            name = "postgres"
        try:
            return pwd.getpwnam(name)
        except KeyError:
            raise PostgresStartError(
                f"PostgreSQL refuses to run as root, so the server must run as OS user {name!r}, "
                f"which does not exist. Fix: `apt-get install -y postgresql` (creates it) or "
                f"`useradd --system --home-dir /var/lib/postgresql {name}`."
            ) from None

    def _popen_kwargs(self) -> dict[str, Any]:
        assert self._root is not None
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C",
            "LC_ALL": "C",
            "HOME": str(self._root),
        }
        kwargs: dict[str, Any] = {"cwd": str(self._root), "env": env, "stdin": subprocess.DEVNULL}
        account = self._os_user()
        if account is not None and account.pw_uid != os.geteuid():
            env["USER"] = env["LOGNAME"] = account.pw_name
            kwargs.update(user=account.pw_uid, group=account.pw_gid, extra_groups=[])
        return kwargs

    def _prepare_dir(self) -> None:
        self._base_dir.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix=DIR_PREFIX, dir=self._base_dir))
        self._root = root
        # the socket file is <root>/.s.PGSQL.<port>: check the longest possible name fits
        if len(str(root / ".s.PGSQL.65535").encode()) > _SOCKET_PATH_MAX:
            raise PostgresStartError(
                f"unix socket path under {root} is longer than {_SOCKET_PATH_MAX} bytes; "
                "pass a shorter base_dir (e.g. /tmp)"
            )
        owner = {"pid": os.getpid(), "start": _proc_start_time(os.getpid())}
        (root / _OWNER_FILE).write_text(json.dumps(owner))
        account = self._os_user()
        if account is not None:
            os.chown(root, account.pw_uid, account.pw_gid)
        root.chmod(0o700)
        self._log_file = (root / "server.log").open("ab")

    def _run_tool(self, argv: list[str], what: str) -> None:
        assert self._log_file is not None
        self._log_file.write(f"\n### {what}\n".encode())
        self._log_file.flush()
        try:
            subprocess.run(  # noqa: S603 - fixed argv, no shell
                argv,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=max(self._startup_timeout, 60.0),
                **self._popen_kwargs(),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise PostgresStartError(
                f"{what} failed ({exc.__class__.__name__}: {exc}).\n"
                f"--- tail of {self.log_path} ---\n{_tail(self.log_path)}"
            ) from None

    def _initdb(self) -> None:
        account = self._os_user()
        pwfile = self.root_dir / "pwfile"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self._password + "\n")
        if account is not None:
            os.chown(pwfile, account.pw_uid, account.pw_gid)
        try:
            self._run_tool(
                [
                    str(self.bindir / "initdb"),
                    "--pgdata",
                    str(self.data_dir),
                    "--username",
                    SUPERUSER,
                    "--pwfile",
                    str(pwfile),
                    "--auth",
                    "scram-sha-256",
                    "--encoding",
                    "UTF8",
                    "--locale",
                    "C",
                    "--no-sync",
                ],
                "initdb",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        (self.data_dir / "pg_hba.conf").write_text(
            "# written by litemaas_hooks_sandbox.cluster: a password is always required\n"
            "local  all  all                 scram-sha-256\n"
            "host   all  all  127.0.0.1/32   scram-sha-256\n"
        )
        conf: dict[str, str | int] = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "max_connections": self._max_connections,
            "password_encryption": "'scram-sha-256'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_wal_size": "'256MB'",  # the WAL may live in memory (/dev/shm): keep it small
            "min_wal_size": "'32MB'",
            "shared_buffers": "'128MB'",
            "log_min_messages": "warning",
            "log_line_prefix": "'%m [%p] %q%u@%d '",
        }
        conf.update(self._extra_settings)
        with (self.data_dir / "postgresql.conf").open("a") as fh:
            fh.write("\n# --- litemaas_hooks_sandbox.cluster (throwaway server) ---\n")
            fh.writelines(f"{key} = {value}\n" for key, value in conf.items())
        if account is not None:
            for path in (self.data_dir / "pg_hba.conf", self.data_dir / "postgresql.conf"):
                os.chown(path, account.pw_uid, account.pw_gid)

    def _launch_and_wait(self) -> None:
        """Start postgres on a free port; retry with another port if it was taken meanwhile."""
        deadline = time.monotonic() + self._startup_timeout
        for attempt in range(1, 6):
            self._port = _free_port()
            assert self._log_file is not None
            self._log_file.write(
                f"\n### postgres (port {self._port}, attempt {attempt})\n".encode()
            )
            self._log_file.flush()
            log_offset = self._log_file.tell()
            self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                [str(self.bindir / "postgres"), "-D", str(self.data_dir), "-p", str(self._port)],
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                # a Ctrl-C on the terminal reaches us, we then stop() cleanly
                start_new_session=True,
                **self._popen_kwargs(),
            )
            if self._wait_ready(deadline):
                return
            log = self.log_path.read_bytes()[log_offset:].decode(errors="replace")
            if "could not bind" in log or "Address already in use" in log:
                continue  # lost the race for the port: try another one
            break
        raise PostgresStartError(
            f"PostgreSQL did not become ready within {self._startup_timeout:.0f}s "
            f"(bindir {self.bindir}, data dir {self.data_dir}, port {self._port}; "
            f"server runs as OS user {(self._os_user() or pwd.getpwuid(os.geteuid())).pw_name}).\n"
            f"--- tail of {self.log_path} ---\n{_tail(self.log_path)}"
        )

    def _wait_ready(self, deadline: float) -> bool:
        """Poll with a real password login until it works, the server exits, or the deadline
        passes."""
        assert self._proc is not None
        delay = 0.01
        while True:
            if self._proc.poll() is not None:
                self._proc = None
                return False
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=2) as conn:
                    row = conn.execute("SHOW server_version").fetchone()
                    self.server_version = str(row[0]) if row else None
                return True
            except psycopg.OperationalError:
                if time.monotonic() >= deadline:
                    self._kill_server()
                    return False
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _kill_server(self) -> None:
        """Fast shutdown (SIGINT), then immediate (SIGQUIT), then SIGKILL; always reaps the
        process."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for sig, wait in ((signal.SIGINT, 30.0), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
            if proc.poll() is not None:
                break
            _signal_quietly(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=wait)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    def _teardown(self, *, failed: bool) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            with contextlib.suppress(Exception):
                admin.close()
        try:
            self._kill_server()
        finally:
            if self._log_file is not None:
                with contextlib.suppress(OSError):
                    self._log_file.close()
                self._log_file = None
            root, self._root = self._root, None
            if root is not None and not (failed and self._keep_on_failure):
                shutil.rmtree(root, ignore_errors=True)
            self._port = None


class HotStandby(LocalPostgres):
    """A hot standby (read replica) of a running ``LocalPostgres``: ``pg_basebackup
    --write-recovery-conf`` of the primary instead of ``initdb`` (so ``standby.signal`` and
    ``primary_conninfo`` are written), then started on a port of its own. It streams the primary's
    WAL and answers read-only queries: ``pg_is_in_recovery()`` is true, every write fails with
    25006. The same superuser and password as the primary.

    >>> with HotStandby(primary) as standby:               # doctest: +SKIP
    ...     standby.catch_up()
    ...     psycopg.connect(standby.dsn("app"))
    """

    def __init__(self, primary: LocalPostgres, **kwargs: Any) -> None:
        kwargs.setdefault("bindir", primary.bindir)
        super().__init__(**kwargs)
        self._primary = primary
        self._password = primary.password

    def _initdb(self) -> None:
        primary = self._primary
        primary.allow_replication()
        # the password comes from PGPASSWORD (_popen_kwargs), never in argv or an error message
        conninfo = f"host={primary.host} port={primary.port} user={primary.user}"
        argv = [
            str(self.bindir / "pg_basebackup"),
            "--pgdata",
            str(self.data_dir),
            "--dbname",
            conninfo,
            "--write-recovery-conf",
            "--wal-method=stream",
            "--checkpoint=fast",
            "--no-sync",
        ]
        # the primary's reload (allow_replication) is signalled, not awaited: until its postmaster
        # has re-read pg_hba.conf a replication login is refused; retried until the deadline
        deadline = time.monotonic() + max(self._startup_timeout, 60.0)
        while True:
            try:
                self._run_tool(argv, "pg_basebackup")
                break
            except PostgresStartError:
                if time.monotonic() > deadline or "pg_hba.conf" not in _tail(self.log_path, 5):
                    raise
                shutil.rmtree(self.data_dir, ignore_errors=True)
                time.sleep(0.05)  # poll interval of this deadline loop
        # the primary's postgresql.conf came along: this server's own socket directory wins
        with (self.data_dir / "postgresql.conf").open("a") as fh:
            fh.write(
                "\n# --- litemaas_hooks_sandbox.cluster: hot standby ---\n"
                f"unix_socket_directories = '{self.socket_dir}'\nhot_standby = on\n"
            )

    def _popen_kwargs(self) -> dict[str, Any]:
        kwargs = super()._popen_kwargs()
        kwargs["env"]["PGPASSWORD"] = self._primary.password  # pg_basebackup, the WAL receiver
        return kwargs

    def catch_up(self, timeout: float = 30.0) -> None:
        """Wait until this standby has replayed everything the primary wrote so far."""
        with self._primary.connect() as conn:
            # a marker record of our own, committed and flushed (synchronous_commit is off on these
            # servers): once the standby replayed up to its end, it replayed everything before it.
            # (The primary's insert position is no target: on a page boundary it lies past the end
            # of the last record, and an idle primary writes the next one only ~15 s later.)
            conn.execute("SET synchronous_commit = on")
            row = conn.execute(
                "SELECT pg_logical_emit_message(true, 'litemaas_hooks_sandbox', 'catch-up')::text"
            ).fetchone()
        assert row is not None
        deadline = time.monotonic() + timeout
        with self.connect() as conn:
            while True:
                done = conn.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (row[0],)
                ).fetchone()
                if done and done[0]:
                    return
                if time.monotonic() > deadline:
                    raise PostgresStartError(
                        f"the standby did not replay the primary's WAL up to {row[0]} within "
                        f"{timeout:g}s:\n{_tail(self.log_path)}"
                    )
                time.sleep(0.01)  # poll interval of this deadline loop
