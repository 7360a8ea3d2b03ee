"""Start a real LiteLLM proxy process on the sandbox's PostgreSQL, our plugin mounted as an operator mounts it.

:func:`sandbox_proxy` (a context manager) or :func:`start_proxy` (returns a :class:`SandboxProxy` to
``stop()``) run the installed LiteLLM's own server: its ``litellm`` CLI and uvicorn (LiteLLM >= 1.108) or
``proxy_server.app`` under uvicorn (1.81, see :mod:`litemaas_hooks_sandbox.proxy_worker`), with master-key
and UI-session auth, the Admin UI shipped in the wheel and ``STORE_MODEL_IN_DB=True``. Its database
client is the psycopg-backed :class:`~litemaas_hooks_sandbox.prisma_standin.StandinPrismaClient` (nothing
in LiteLLM's files changes). The plugin is mounted through ``config.yaml``
(``litellm_settings: callbacks: ["litemaas_hooks.proxy_handler_instance"]``) plus the shim written by
:func:`litemaas_hooks.plugin.write_shim`, and reads ``LITELLM_DATABASE_URL`` / ``LITEMAAS_DATABASE_URL``.

Network: when ``unshare`` can make a network namespace (root, or unprivileged user namespaces), the proxy
runs in one with only loopback (``isolate_network=None`` = when possible; True = required), reachable from
the host at ``base_url`` through a Unix-socket bridge (:mod:`litemaas_hooks_sandbox.netns`); it reaches
PostgreSQL through the server's Unix socket directory. Tests and browsers use ``base_url`` as usual.

Offline switches are always set (no cost map, blog posts, beta headers, presets, policy templates or
telemetry fetched).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import httpx
import psycopg
from psycopg.conninfo import conninfo_to_dict

from litemaas_hooks.errors import LiteMaaSHooksError
from litemaas_hooks_sandbox.proxy_worker import DSN_ENV

__all__ = [
    "OFFLINE_ENV",
    "ProxyStartError",
    "SandboxProxy",
    "can_isolate_network",
    "sandbox_proxy",
    "start_proxy",
]

OFFLINE_ENV: Final[Mapping[str, str]] = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_BLOG_POSTS": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True",
    "LITELLM_LOCAL_POLICY_TEMPLATES": "True",
    "LITELLM_TELEMETRY_DISABLED": "True",
}

PLUGIN_CALLBACK: Final = "litemaas_hooks.proxy_handler_instance"
STARTUP_HOOK: Final = "litemaas_hooks_sandbox.proxy_worker:install_standin"
UI_USERNAME: Final = "admin"
# never handed to the proxy: DATABASE_URL makes the `litellm` CLI run prisma's npm install + migrations
_DROPPED_ENV: Final = frozenset({"DATABASE_URL", "DIRECT_URL", "LITELLM_WORKER_STARTUP_HOOKS", "CONFIG_FILE_PATH"})


_OUTSIDE: Final = (sys.executable, "-m", "litemaas_hooks_sandbox.netns", "outside")


class ProxyStartError(LiteMaaSHooksError):
    """The sandbox proxy did not start (the message ends with the tail of its log)."""


@dataclass
class SandboxProxy:
    """A running sandbox proxy. ``base_url`` is on the host's loopback (``http://127.0.0.1:<port>``)."""

    base_url: str
    master_key: str
    ui_username: str
    ui_password: str
    litellm_dsn: str  # as given (host side)
    backend_dsn: str | None
    litellm_version: str
    isolated: bool  # in a network namespace with only loopback
    workdir: Path
    log_path: Path
    config_path: Path
    startup_seconds: float = 0.0
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)
    _owned_workdir: bool = field(default=False, repr=False)

    @property
    def ui_url(self) -> str:
        return f"{self.base_url}/ui"

    @property
    def headers(self) -> dict[str, str]:
        """``Authorization`` with the master key."""
        return {"Authorization": f"Bearer {self.master_key}"}

    @property
    def pid(self) -> int:
        return self._processes[0].pid

    def running(self) -> bool:
        return bool(self._processes) and all(p.poll() is None for p in self._processes)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client on ``base_url`` with the master key."""
        kwargs.setdefault("timeout", 60)
        return httpx.Client(base_url=self.base_url, headers=self.headers, **kwargs)

    def stop(self) -> None:
        for process in self._processes:
            _terminate(process)
        self._processes.clear()
        if self._owned_workdir and os.environ.get("LITEMAAS_SANDBOX_KEEP_WORKDIR") is None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> SandboxProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=20)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def can_isolate_network() -> bool:
    """Whether ``unshare --net`` works here (it needs root or unprivileged user namespaces)."""
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if unshare is None or ip is None:
        return False
    probe = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [unshare, "--net", "--", ip, "link", "set", "lo", "up"], capture_output=True, check=False, timeout=30
    )
    return probe.returncode == 0


def _litellm_proxy_source() -> str:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        raise ProxyStartError("LiteLLM is not installed (pip install 'litellm[proxy]')")
    for location in spec.submodule_search_locations:
        path = Path(location) / "proxy" / "proxy_server.py"
        if path.is_file():
            return path.read_text(encoding="utf-8", errors="replace")
    raise ProxyStartError("LiteLLM's proxy is not installed (pip install 'litellm[proxy]')")


def has_worker_startup_hooks() -> bool:
    """LiteLLM >= 1.108 runs ``LITELLM_WORKER_STARTUP_HOOKS`` before building its Prisma client."""
    return "LITELLM_WORKER_STARTUP_HOOKS" in _litellm_proxy_source()


def _socket_dsn(dsn: str) -> str:
    """The same database through the server's Unix socket (reachable from another network namespace)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        dirs = conn.execute("SHOW unix_socket_directories").fetchone()
        port = conn.execute("SHOW port").fetchone()
    socket_dirs = [d.strip() for d in str(dirs[0] if dirs else "").split(",") if d.strip()]
    if not socket_dirs:
        raise ProxyStartError("the PostgreSQL server has no Unix socket directory (needed across namespaces)")
    params = conninfo_to_dict(dsn)
    user = quote(str(params.get("user", "")), safe="")
    password = quote(str(params.get("password", "")), safe="")
    dbname = quote(str(params.get("dbname", "")), safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    return f"postgresql://{auth}/{dbname}?host={quote(socket_dirs[0], safe='')}&port={port[0] if port else 5432}"


def _config_text(models: Sequence[Mapping[str, Any]], *, plugin: bool, extra: Mapping[str, Any] | None) -> str:
    config: dict[str, Any] = {"model_list": [dict(m) for m in models]}
    if plugin:
        config["litellm_settings"] = {"callbacks": [PLUGIN_CALLBACK]}
    for key, value in (extra or {}).items():
        if isinstance(value, Mapping) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return json.dumps(config, indent=2) + "\n"  # JSON is YAML: LiteLLM reads it with yaml.safe_load


def _tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return ""


def start_proxy(
    litellm_dsn: str,
    *,
    backend_dsn: str | None = None,
    master_key: str | None = None,
    models: Sequence[Mapping[str, Any]] = (),
    plugin: bool = True,
    config_extra: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    workdir: str | os.PathLike[str] | None = None,
    port: int | None = None,
    isolate_network: bool | None = None,
    ui_password: str | None = None,
    start_timeout: float = 240.0,
) -> SandboxProxy:
    """Start the proxy and wait until it answers ``/health/liveliness`` (LiteLLM's startup then is done).

    ``litellm_dsn``: a database with LiteLLM's schema (the stand-in serves it). ``backend_dsn``: the LiteMaaS
    backend database for the plugin (``plugin=True`` requires it). ``models``: ``model_list`` entries of
    config.yaml. ``env``: extra environment for the proxy (e.g. ``LITEMAAS_HOOKS_LOG_LEVEL``). The proxy's
    output goes to ``<workdir>/proxy.log``; a temporary ``workdir`` is removed by ``stop()``.
    """
    if plugin and backend_dsn is None:
        raise ValueError("plugin=True needs backend_dsn (the LiteMaaS backend database)")
    master_key = master_key or "sk-" + secrets.token_hex(32)
    ui_password = ui_password or secrets.token_urlsafe(18)
    isolated = can_isolate_network() if isolate_network is None else isolate_network
    if isolated and not can_isolate_network():
        raise ProxyStartError("isolate_network=True but `unshare --net` does not work here (needs root)")
    owned = workdir is None
    root = Path(tempfile.mkdtemp(prefix="lmh-proxy-")) if workdir is None else Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    config_dir = root / "config"
    config_dir.mkdir(exist_ok=True)
    config_path = config_dir / "config.yaml"
    config_path.write_text(_config_text(models, plugin=plugin, extra=config_extra), encoding="utf-8")
    if plugin:
        from litemaas_hooks.plugin import write_shim  # imports litellm: not at module import (offline env)

        write_shim(config_dir)
    log_path = root / "proxy.log"
    port = port or _free_port()

    inner_litellm = _socket_dsn(litellm_dsn) if isolated else litellm_dsn
    proxy_env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    proxy_env.update(OFFLINE_ENV)
    proxy_env.update(
        {
            "LITELLM_MASTER_KEY": master_key,
            "UI_USERNAME": UI_USERNAME,
            "UI_PASSWORD": ui_password,
            "STORE_MODEL_IN_DB": "True",
            "PYTHONUNBUFFERED": "1",
            DSN_ENV: inner_litellm,
        }
    )
    if plugin:
        assert backend_dsn is not None
        proxy_env["LITELLM_DATABASE_URL"] = inner_litellm
        proxy_env["LITEMAAS_DATABASE_URL"] = _socket_dsn(backend_dsn) if isolated else backend_dsn
    proxy_env.update(env or {})

    bindir = Path(sys.executable).parent
    if has_worker_startup_hooks():
        litellm_cli = bindir / "litellm"
        if not litellm_cli.exists():
            raise ProxyStartError(f"no litellm CLI next to {sys.executable} (pip install 'litellm[proxy]')")
        proxy_env["LITELLM_WORKER_STARTUP_HOOKS"] = STARTUP_HOOK
        command = [str(litellm_cli), "--config", str(config_path), "--host", "127.0.0.1", "--port", str(port)]
    else:
        command = [
            sys.executable,
            "-m",
            "litemaas_hooks_sandbox.proxy_worker",
            "--config",
            str(config_path),
            "--port",
            str(port),
        ]
    processes: list[subprocess.Popen[bytes]] = []
    uds = root / "proxy.sock"
    if isolated:
        command = [
            shutil.which("unshare") or "unshare",
            "--net",
            "--",
            sys.executable,
            "-m",
            "litemaas_hooks_sandbox.netns",
            "inside",
            "--uds",
            str(uds),
            "--port",
            str(port),
            "--",
            *command,
        ]
    started = time.monotonic()
    with log_path.open("wb") as log_file:
        processes.append(
            subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=proxy_env,
                cwd=config_dir,
                start_new_session=True,
            )
        )
        if isolated:
            processes.append(
                subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                    [*_OUTSIDE, "--listen", f"127.0.0.1:{port}", "--uds", str(uds)],
                    stdout=subprocess.DEVNULL,
                    stderr=log_file,
                    start_new_session=True,
                )
            )
    proxy = SandboxProxy(
        base_url=f"http://127.0.0.1:{port}",
        master_key=master_key,
        ui_username=UI_USERNAME,
        ui_password=ui_password,
        litellm_dsn=litellm_dsn,
        backend_dsn=backend_dsn,
        litellm_version=metadata.version("litellm"),
        isolated=isolated,
        workdir=root,
        log_path=log_path,
        config_path=config_path,
        _processes=processes,
        _owned_workdir=owned,
    )
    try:
        _wait_live(proxy, started + start_timeout)
    except BaseException:
        proxy._owned_workdir = False  # keep the log for the error message
        proxy.stop()
        raise
    proxy.startup_seconds = time.monotonic() - started
    return proxy


def _wait_live(proxy: SandboxProxy, deadline: float) -> None:
    with httpx.Client(timeout=5) as client:
        while True:
            for process in proxy._processes:
                if process.poll() is not None:
                    raise ProxyStartError(
                        f"the sandbox proxy exited ({process.returncode}) during startup; log {proxy.log_path}:\n"
                        + _tail(proxy.log_path)
                    )
            try:
                if client.get(f"{proxy.base_url}/health/liveliness").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise ProxyStartError(
                    f"the sandbox proxy did not answer within the deadline; log {proxy.log_path}:\n"
                    + _tail(proxy.log_path)
                )
            time.sleep(0.1)  # polling interval of a condition with a deadline


@contextlib.contextmanager
def sandbox_proxy(litellm_dsn: str, **kwargs: Any) -> Iterator[SandboxProxy]:
    """:func:`start_proxy` as a context manager (stopped on exit). Same arguments."""
    proxy = start_proxy(litellm_dsn, **kwargs)
    try:
        yield proxy
    finally:
        proxy.stop()
