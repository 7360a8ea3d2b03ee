"""Start a real LiteLLM proxy process on the sandbox's PostgreSQL exactly as LiteMaaS starts it.

:func:`sandbox_proxy` (a context manager) or :func:`start_proxy` (returns a :class:`SandboxProxy` to
``stop()``) run the installed LiteLLM's ``litellm`` CLI as the LiteLLM image does (``litellm --port
N``, LiteLLM 1.81.0 and 1.108.7 alike) with the environment of LiteMaaS's Helm chart and Kustomize
manifests (upstream ``deployment/``) plus ``deploy/``'s plugin patch: ``DATABASE_URL`` (LiteLLM's
database), ``LITELLM_MASTER_KEY``, ``UI_USERNAME``/``UI_PASSWORD``, ``LITELLM_MODE=PRODUCTION``,
``STORE_MODEL_IN_DB=True``, ``DISABLE_SCHEMA_UPDATE=true``, ``LITEMAAS_DATABASE_URL`` and
``CONFIG_FILE_PATH`` pointing at a directory holding ``config.yaml`` (``litellm_settings: callbacks:
["litemaas_hooks.proxy_handler_instance"]``) and the shim ``litemaas_hooks.py`` beside it, as the
ConfigMap of ``deploy/shared/plugin-config`` is mounted. No ``LITELLM_DATABASE_URL``: like
production, the CLI rewrites ``DATABASE_URL`` for Prisma (``connection_limit``, ``pool_timeout``,
... appended) before LiteLLM, and our plugin in it, start; :meth:`SandboxProxy.worker_env` shows
what the worker was given. The caller's own environment is not passed on (only ``HOME``, ``LANG``,
... and ``PATH``).

Differences from production that remain, and why none can hide a defect of ours:

* **Prisma client.** LiteLLM's Prisma client needs Prisma's native engines, which cannot be
  downloaded here; LiteLLM gets the psycopg-backed
  :class:`~litemaas_hooks_sandbox.prisma_standin.StandinPrismaClient` instead (1.108: through
  ``LITELLM_WORKER_STARTUP_HOOKS``; 1.81: a ``sitecustomize`` on ``PYTHONPATH`` that patches
  ``ProxyStartupEvent._setup_prisma_client`` on import; see :mod:`.proxy_worker`), connected to the
  same rewritten ``DATABASE_URL``. It is LiteLLM's database access, never ours: our plugin opens its
  own psycopg connections from the environment, and sees LiteLLM's writes only as rows (built and
  encrypted by LiteLLM's own code) in LiteLLM's real tables and through our trigger on them. The
  harness variables are read by LiteLLM or Python, never by our plugin (it reads ``LITEMAAS_*``,
  ``LITELLM_DATABASE_URL``, ``DATABASE_URL``, ``LITELLM_SALT_KEY``, ``LITELLM_MASTER_KEY``).
* **No Prisma CLI.** The schema is LiteLLM's own migration SQL from the ``litellm-proxy-extras``
  wheel (what ``prisma migrate deploy`` applies), loaded by the sandbox. With
  ``DISABLE_SCHEMA_UPDATE=true`` production's CLI only logs a schema diff: 1.108 tries (``python -m
  prisma migrate diff`` cannot install its CLI offline, ``npm_config_offline=true`` makes npm say so
  at once) and goes on, as production does when the diff fails; 1.81 finds no ``prisma`` command
  (directories holding one are left out of ``PATH``) and prints "prisma package not found". Either
  way the CLI rewrote ``DATABASE_URL`` before, and neither step touches the environment. (RHDP sets
  ``DISABLE_SCHEMA_UPDATE=false``: ``prisma migrate deploy`` then applies those same files at each
  start; a migration that rebuilt LiteLLM's model table would drop our trigger, which
  ``litemaas-hooks status`` reports and ``install`` restores.)
* **Network.** When ``unshare`` can make a network namespace (root, or unprivileged user
  namespaces), the proxy runs in one with only loopback (``isolate_network=None`` = when possible;
  True = required), reachable from the host at ``base_url`` through a Unix-socket bridge
  (:mod:`.netns`). It reaches PostgreSQL through the server's Unix socket, so ``DATABASE_URL`` and
  ``LITEMAAS_DATABASE_URL`` read ``postgresql://USER:PASSWORD@/DB?host=SOCKETDIR&port=N`` (a form
  both Prisma and libpq accept), where production has ``@HOST:PORT``: the CLI appends its parameters
  to either form alike. Without a namespace the URLs are the TCP ones given, and the proxy listens
  on 127.0.0.1 only (the image: all interfaces).
* **Offline switches** (``LITELLM_LOCAL_MODEL_COST_MAP`` etc., :data:`OFFLINE_ENV`): LiteLLM's own
  settings; our cost-map lookup follows the same switch as LiteLLM in production too.
* **Image.** The installed LiteLLM wheel (upstream 1.81.0 / 1.108.7, this Python) instead of
  LiteMaaS's fork image; the script installing us into that image is checked by
  ``tests/deploy/test_images.py`` (in a venv holding litellm 1.81.0). No Redis (LiteLLM's cache and
  rate limits; the plugin does not use it). One worker, as the image's command.
* **config.yaml** here also holds the ``model_list`` a test asks for (config-file models); pass
  ``config_dir`` to mount a directory as it is (``tests/integration/test_proxy_metrics.py`` mounts
  ``deploy/``'s ConfigMap files).
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
from litemaas_hooks_sandbox.proxy_worker import SITECUSTOMIZE, WORKER_ENV_FILE

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
# what every LiteMaaS install (Helm, Kustomize) sets on the LiteLLM container besides its secrets
PRODUCTION_ENV: Final[Mapping[str, str]] = {
    "LITELLM_MODE": "PRODUCTION",
    "STORE_MODEL_IN_DB": "True",
    "DISABLE_SCHEMA_UPDATE": "true",
}
# the only variables taken from the caller's environment: the process basics a container has too
_INHERITED_ENV: Final = ("HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME")


_OUTSIDE: Final = (sys.executable, "-m", "litemaas_hooks_sandbox.netns", "outside")


class ProxyStartError(LiteMaaSHooksError):
    """The sandbox proxy did not start (the message ends with the tail of its log)."""


@dataclass
class SandboxProxy:
    """A running sandbox proxy. ``base_url`` is on the host's loopback
    (``http://127.0.0.1:<port>``)."""

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

    def worker_env(self) -> dict[str, Any]:
        """What the LiteLLM worker (where our plugin runs) had in its environment once the CLI
        started it: ``{"pid", "set": [names], "DATABASE_URL": masked}`` (see :mod:`.proxy_worker`);
        ``{}`` before."""
        try:
            record: dict[str, Any] = json.loads((self.workdir / WORKER_ENV_FILE).read_text())
        except FileNotFoundError:
            return {}
        return record

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
        [unshare, "--net", "--", ip, "link", "set", "lo", "up"],
        capture_output=True,
        check=False,
        timeout=30,
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
    """The same database through the server's Unix socket (reachable from another network
    namespace)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        dirs = conn.execute("SHOW unix_socket_directories").fetchone()
        port = conn.execute("SHOW port").fetchone()
    socket_dirs = [d.strip() for d in str(dirs[0] if dirs else "").split(",") if d.strip()]
    if not socket_dirs:
        raise ProxyStartError(
            "the PostgreSQL server has no Unix socket directory (needed across namespaces)"
        )
    params = conninfo_to_dict(dsn)
    user = quote(str(params.get("user", "")), safe="")
    password = quote(str(params.get("password", "")), safe="")
    dbname = quote(str(params.get("dbname", "")), safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    return (
        f"postgresql://{auth}/{dbname}?host={quote(socket_dirs[0], safe='')}"
        f"&port={port[0] if port else 5432}"
    )


def _config_text(
    models: Sequence[Mapping[str, Any]], *, plugin: bool, extra: Mapping[str, Any] | None
) -> str:
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


def _path_without_prisma() -> str:
    """``PATH`` without directories holding a ``prisma`` command: it would need engines (see the
    docstring)."""
    dirs = os.environ.get("PATH", os.defpath).split(os.pathsep)
    return os.pathsep.join(d for d in dirs if d and not (Path(d) / "prisma").exists())


def _proxy_env(
    *,
    database_url: str,
    master_key: str,
    ui_password: str,
    config_path: Path,
    backend_url: str | None,
    harness: Mapping[str, str],
    extra: Mapping[str, str] | None,
) -> dict[str, str]:
    """The LiteLLM container's environment as LiteMaaS sets it, plus the harness's one way in."""
    env = {k: os.environ[k] for k in _INHERITED_ENV if k in os.environ}
    env["PATH"] = _path_without_prisma()
    env.update(OFFLINE_ENV)
    env.update(PRODUCTION_ENV)
    env.update(
        {
            "DATABASE_URL": database_url,
            "LITELLM_MASTER_KEY": master_key,
            "UI_USERNAME": UI_USERNAME,
            "UI_PASSWORD": ui_password,
            "CONFIG_FILE_PATH": str(config_path),  # deploy/: the ConfigMap mounted as a directory
            "PYTHONUNBUFFERED": "1",
        }
    )
    if backend_url is not None:
        env["LITEMAAS_DATABASE_URL"] = backend_url
    env.update(harness)
    env.update(extra or {})
    return env


def start_proxy(
    litellm_dsn: str,
    *,
    backend_dsn: str | None = None,
    master_key: str | None = None,
    models: Sequence[Mapping[str, Any]] = (),
    plugin: bool = True,
    shim: bool = True,
    config_dir: str | os.PathLike[str] | None = None,
    config_extra: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    workdir: str | os.PathLike[str] | None = None,
    port: int | None = None,
    isolate_network: bool | None = None,
    ui_password: str | None = None,
    start_timeout: float = 240.0,
) -> SandboxProxy:
    """Start the proxy and wait until it answers ``/health/liveliness`` (LiteLLM's startup then is
    done).

    ``litellm_dsn``: a database with LiteLLM's schema, given to LiteLLM as ``DATABASE_URL``.
    ``backend_dsn``: the LiteMaaS backend database, given as ``LITEMAAS_DATABASE_URL`` (None: not
    set, as before the plugin is configured). ``models``: ``model_list`` entries of config.yaml;
    ``plugin``: the callback line in it; ``shim``: the shim beside it (False: LiteLLM >= 1.108 finds
    the installed package itself). ``config_dir``: a directory to mount instead (its ``config.yaml``
    and whatever lies beside it, e.g. ``deploy/``'s ConfigMap). ``env``: extra environment (e.g.
    ``LITEMAAS_HOOKS_LOG_LEVEL``). The proxy's output goes to ``<workdir>/proxy.log``; a temporary
    ``workdir`` is removed by ``stop()``.
    """
    master_key = master_key or "sk-" + secrets.token_hex(32)
    ui_password = ui_password or secrets.token_urlsafe(18)
    isolated = can_isolate_network() if isolate_network is None else isolate_network
    if isolated and not can_isolate_network():
        raise ProxyStartError(
            "isolate_network=True but `unshare --net` does not work here (needs root)"
        )
    owned = workdir is None
    root = Path(tempfile.mkdtemp(prefix="lmh-proxy-")) if workdir is None else Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    if config_dir is None:
        mounted = root / "config"
        mounted.mkdir(exist_ok=True)
        config_text = _config_text(models, plugin=plugin, extra=config_extra)
        (mounted / "config.yaml").write_text(config_text, encoding="utf-8")
        if plugin and shim:
            from litemaas_hooks.plugin import (
                write_shim,  # imports litellm: not at module import (offline env)
            )

            write_shim(mounted)
    else:
        mounted = Path(config_dir)
    config_path = mounted / "config.yaml"
    if not config_path.is_file():
        raise ProxyStartError(f"{config_path} does not exist: config_dir must hold a config.yaml")
    log_path = root / "proxy.log"
    port = port or _free_port()

    bindir = Path(sys.executable).parent
    litellm_cli = bindir / "litellm"
    if not litellm_cli.exists():
        raise ProxyStartError(
            f"no litellm CLI next to {sys.executable} (pip install 'litellm[proxy]')"
        )
    # 1.108's schema check runs `python -m prisma migrate diff`, which npm-installs the Prisma CLI
    # first: offline, npm says so at once instead of retrying for a minute (the check then fails
    # soft)
    harness = {"npm_config_offline": "true"}
    if has_worker_startup_hooks():
        harness["LITELLM_WORKER_STARTUP_HOOKS"] = STARTUP_HOOK
    else:  # LiteLLM 1.81: a sitecustomize patches the Prisma client setup on import (proxy_worker)
        site = root / "harness-site"
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
        harness["PYTHONPATH"] = str(site)
    proxy_env = _proxy_env(
        database_url=_socket_dsn(litellm_dsn) if isolated else litellm_dsn,
        master_key=master_key,
        ui_password=ui_password,
        config_path=config_path,
        backend_url=None
        if backend_dsn is None
        else (_socket_dsn(backend_dsn) if isolated else backend_dsn),
        harness=harness,
        extra=env,
    )
    # the LiteLLM image's command (`litellm --port 4000`); on the host's network, loopback only
    command = [str(litellm_cli), "--port", str(port)]
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
    else:
        command += ["--host", "127.0.0.1"]
    started = time.monotonic()
    with log_path.open("wb") as log_file:
        processes.append(
            subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=proxy_env,
                cwd=root,
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
                        f"the sandbox proxy exited ({process.returncode}) during startup; log "
                        f"{proxy.log_path}:\n" + _tail(proxy.log_path)
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
