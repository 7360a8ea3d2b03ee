"""A throwaway PgBouncer (Debian package ``pgbouncer``) in front of a ``LocalPostgres``, for tests.

``LocalPgBouncer(pg, pool_mode="transaction").start()`` writes ``pgbouncer.ini`` and
``userlist.txt`` into a fresh short-named directory, starts ``pgbouncer`` on ``127.0.0.1`` and a
free port (as OS user ``postgres`` when this process is root: PgBouncer refuses to run as root)
and waits until a login through it works. Every database of the server is reachable through it
(``* = host=... port=...``), as the superuser with the server's password (SCRAM through the pooler,
as in production). The configuration is PgBouncer's defaults otherwise: in particular it refuses
the ``options`` startup parameter (``ignore_startup_parameters`` names only ``extra_float_digits``,
what LiteLLM's own in-container PgBouncer allows too), which is what a client of it must cope with.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Self

import psycopg

from litemaas_hooks_sandbox.cluster import LocalPostgres, _free_port

PoolMode = Literal["session", "transaction"]
ConfigFunc = Callable[[Path, int], tuple[str, str, str]]


class PgBouncerStartError(RuntimeError):
    """PgBouncer is missing or did not start (the message has its log's tail and the fix)."""


def find_pgbouncer() -> str:
    for candidate in (shutil.which("pgbouncer"), "/usr/sbin/pgbouncer"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise PgBouncerStartError(
        "pgbouncer not found: apt-get install -y pgbouncer (scripts/bootstrap.sh does)"
    )


class LocalPgBouncer:
    """A private PgBouncer in front of ``pg``; see the module docstring."""

    def __init__(
        self, pg: LocalPostgres, *, pool_mode: PoolMode = "transaction", pool_size: int = 5
    ) -> None:
        self.pg = pg
        self.pool_mode = pool_mode
        self.pool_size = pool_size
        self._root: Path | None = None
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise PgBouncerStartError("LocalPgBouncer is not started")
        return self._port

    def dsn(self, dbname: str, **params: str) -> str:
        """``postgresql://postgres:PASSWORD@127.0.0.1:PORT/dbname[?params]`` through the pooler."""
        query = "&".join(f"{k}={v}" for k, v in params.items())
        url = f"postgresql://{self.pg.user}:{self.pg.password}@127.0.0.1:{self.port}/{dbname}"
        return f"{url}?{query}" if query else url

    def through(self, direct_dsn: str, **params: str) -> str:
        """The pooled URL of the database ``direct_dsn`` (a ``LocalPostgres.dsn``) names, its query
        parameters kept."""
        dbname, _, query = direct_dsn.rsplit("/", 1)[1].partition("?")
        url = self.dsn(dbname, **params)
        return f"{url}{'&' if '?' in url else '?'}{query}" if query else url

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = 30.0, *, config: ConfigFunc | None = None) -> Self:
        """Start it; ``config(root, port)`` may supply the files instead of ours (LiteLLM's own
        in-container PgBouncer config, say): ``(pgbouncer.ini, userlist.txt, a URL to probe)``."""
        binary = find_pgbouncer()
        root = Path(tempfile.mkdtemp(prefix="lmh-pgb-", dir="/tmp"))
        self._root = root
        self._port = _free_port()
        ini, userlist, probe = (config or self._config)(root, self._port)
        (root / "userlist.txt").write_text(userlist)
        (root / "pgbouncer.ini").write_text(
            ini + f"\nlogfile = {root / 'pgbouncer.log'}\npidfile = {root / 'pgbouncer.pid'}\n"
        )
        kwargs: dict[str, Any] = {}
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            for path in (root, *root.iterdir()):
                os.chown(path, account.pw_uid, account.pw_gid)
            kwargs.update(user=account.pw_uid, group=account.pw_gid, extra_groups=[])
        self._log = open(root / "stderr.log", "wb")  # noqa: SIM115 (closed in stop)
        self._proc = subprocess.Popen(  # noqa: S603 (our own arguments)
            [binary, str(root / "pgbouncer.ini")],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=root,
            **kwargs,
        )
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            try:
                with psycopg.connect(probe, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return self
            except psycopg.OperationalError as exc:
                last = exc
                time.sleep(0.05)
        tail = self.log_tail()
        self.stop()
        raise PgBouncerStartError(
            f"pgbouncer did not accept a login within {timeout:g}s ({last}):\n{tail}"
        )

    def _config(self, root: Path, port: int) -> tuple[str, str, str]:
        ini = "\n".join(
            (
                "[databases]",
                f"* = host=127.0.0.1 port={self.pg.port}",
                "",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {port}",
                f"unix_socket_dir = {root}",
                f"auth_file = {root / 'userlist.txt'}",
                "auth_type = scram-sha-256",
                f"pool_mode = {self.pool_mode}",
                f"default_pool_size = {self.pool_size}",
                "max_client_conn = 200",
                "ignore_startup_parameters = extra_float_digits",
            )
        )
        return ini, f'"{self.pg.user}" "{self.pg.password}"\n', self.dsn("postgres")

    def log_tail(self, lines: int = 30) -> str:
        out = []
        for name in ("pgbouncer.log", "stderr.log"):
            with contextlib.suppress(OSError):
                if self._root is not None:
                    out += (self._root / name).read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(out)

    def stop(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGINT)  # immediate shutdown
                try:
                    self._proc.wait(10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(10)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
