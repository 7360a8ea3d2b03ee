"""The real LiteMaaS backend (upstream v0.4.0) as a sandbox part, the way ``cluster`` is PostgreSQL.

Its own TypeScript runs, unchanged, from the upstream tarball (``litemaas-v0.4.0.tar.gz`` in the
read-only ``shared/upstream`` folder beside the repository; ``LITEMAAS_HOOKS_UPSTREAM_DIR``
overrides; a clone without that folder fetches the pinned commit once and checks it, see
:mod:`.upstream`):

* :func:`prepare` unpacks it into the project's gitignored cache (``.cache/litemaas-v0.4.0``;
  ``LITEMAAS_HOOKS_CACHE_DIR`` overrides the ``.cache`` folder) and runs, once,
  ``npm ci --workspace=backend --include-workspace-root --ignore-scripts --no-audit --no-fund``
  (Node.js >= 20: ``scripts/install-node.sh``). A stamp file (tarball checksum + Node version) makes
  the next call free; a file lock serialises concurrent test sessions. It then copies this package's
  ``node/*.ts`` entry scripts into ``<tree>/backend/.lmh/``, so their imports resolve inside the
  tree, and they run with the tree's own ``tsx``.
* :func:`apply_migrations` runs its ``applyMigrations``
  (``backend/src/lib/database-migrations.ts``): the backend schema, exactly as the backend creates
  it at every start (idempotent like it).
* :func:`sync_models` runs its ``ModelSyncService.syncModels`` (``backend/src/services/
  model-sync.service.ts``) once, on a bare Fastify instance with its ``plugins/database.ts``
  registered, against a LiteLLM proxy's ``/model/info`` (``LITELLM_API_URL``/``LITELLM_API_KEY``)
  and, as upstream recommends, ``LITELLM_DATABASE_URL`` (it then processes only names present in
  ``LiteLLM_ProxyModelTable`` and marks every other row unavailable). Returns its result.
* :func:`backend_server` runs the whole server (``tsx src/index.ts``, ``NODE_ENV=production``,
  ``ALLOW_DEV_TOKENS=true``, placeholder OAuth settings) and yields a :class:`BackendServer` with
  its base URL, its log and ``dev_token()``. At start it applies its migrations and runs its own
  model sync in the background (its log line ``Background model sync completed``;
  :meth:`BackendServer.wait_for_log`).

Every child process gets a deadline; a failure raises :class:`BackendRunnerError` with the command's
exit code and the tail of its output, database passwords scrubbed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from litemaas_hooks.errors import LiteMaaSHooksError
from litemaas_hooks.redaction import scrub
from litemaas_hooks_sandbox import upstream

__all__ = [
    "TARBALL",
    "BackendRunnerError",
    "BackendServer",
    "BackendTree",
    "SyncRun",
    "apply_migrations",
    "backend_server",
    "prepare",
    "sync_models",
]

TARBALL = "litemaas-v0.4.0.tar.gz"
TREE_NAME = "litemaas-v0.4.0"
UPSTREAM_DIR_ENV = "LITEMAAS_HOOKS_UPSTREAM_DIR"
CACHE_DIR_ENV = "LITEMAAS_HOOKS_CACHE_DIR"
NPM_CI = [
    "npm",
    "ci",
    "--workspace=backend",
    "--include-workspace-root",
    "--ignore-scripts",
    "--no-audit",
    "--no-fund",
]
SCRIPTS_DIR = ".lmh"  # inside <tree>/backend
_STAMP = ".lmh-npm-ci"
_NPM_CI_TIMEOUT = 900.0
_SCRIPT_TIMEOUT = 600.0


class BackendRunnerError(LiteMaaSHooksError):
    """The real LiteMaaS backend could not be prepared or run (the message says what and how to fix
    it)."""


def _repo_root() -> Path:
    # sandbox/src/litemaas_hooks_sandbox/litemaas_backend.py -> the repository (editable install)
    here = Path(__file__).resolve()
    root = here.parents[3]
    return root if (root / "sandbox" / "pyproject.toml").is_file() else Path.cwd()


_fetch_problem: str | None = None


def upstream_dir() -> Path:
    """Where ``litemaas-v0.4.0.tar.gz`` is: ``$LITEMAAS_HOOKS_UPSTREAM_DIR``, else
    ``shared/upstream`` beside the repository (or beside its parent folder, for git worktrees in
    ``<dir>/wt/<name>``), else the pinned source fetched and checked into the cache
    (:mod:`.upstream`)."""
    explicit = os.environ.get(UPSTREAM_DIR_ENV)
    if explicit:
        return Path(explicit)
    root = _repo_root()
    candidates = [root.parent / "shared" / "upstream", root.parent.parent / "shared" / "upstream"]
    for candidate in candidates:
        if (candidate / TARBALL).is_file():
            return candidate
    global _fetch_problem
    if _fetch_problem is None:  # one try per process
        try:
            return upstream.fetch_litemaas(cache_dir())
        except upstream.UpstreamFetchError as exc:
            _fetch_problem = str(exc)  # prepare() says it; the demo falls back
    return candidates[0]


def cache_dir() -> Path:
    """The gitignored cache folder the tree is unpacked into (``$LITEMAAS_HOOKS_CACHE_DIR`` or
    ``.cache``)."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    return Path(explicit) if explicit else _repo_root() / ".cache"


@dataclass(frozen=True)
class BackendTree:
    """An unpacked LiteMaaS tree with its backend workspace's npm dependencies installed."""

    root: Path
    npm_ci_seconds: float | None  # None: the cached install was reused

    @property
    def backend(self) -> Path:
        return self.root / "backend"

    @property
    def tsx(self) -> Path:
        return self.root / "node_modules" / ".bin" / "tsx"

    def script(self, name: str) -> Path:
        return self.backend / SCRIPTS_DIR / name


def _node_version() -> str:
    node = shutil.which("node")
    if node is None:
        raise BackendRunnerError(
            "node not found on PATH: the real LiteMaaS backend needs Node.js >= 20 "
            "(run `bash scripts/install-node.sh`, which `scripts/bootstrap.sh` calls)"
        )
    version = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [node, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    match = re.match(r"v(\d+)\.", version)
    if match is None or int(match.group(1)) < 20:
        raise BackendRunnerError(
            f"node {version or '(unknown version)'} is too old: the LiteMaaS backend needs Node.js "
            ">= 20 (run `bash scripts/install-node.sh`)"
        )
    if shutil.which("npm") is None:
        raise BackendRunnerError("npm not found on PATH (run `bash scripts/install-node.sh`)")
    return version


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _install_scripts(tree: BackendTree) -> None:
    target = tree.backend / SCRIPTS_DIR
    target.mkdir(exist_ok=True)
    for entry in resources.files(__package__).joinpath("node").iterdir():
        if entry.name.endswith(".ts"):
            data = entry.read_bytes()
            dest = target / entry.name
            if not dest.is_file() or dest.read_bytes() != data:
                dest.write_bytes(data)


def prepare(*, upstream: Path | None = None, cache: Path | None = None) -> BackendTree:
    """Unpack the tarball and install its backend's npm dependencies, once (cached and locked)."""
    upstream = upstream or upstream_dir()
    cache = cache or cache_dir()
    tarball = upstream / TARBALL
    if not tarball.is_file():
        fetched = f" ({_fetch_problem})" if _fetch_problem else ""
        raise BackendRunnerError(
            f"{tarball} not found{fetched}: the real LiteMaaS backend runs from the upstream "
            f"tarball; set {UPSTREAM_DIR_ENV} to the folder holding {TARBALL}"
        )
    node = _node_version()
    cache.mkdir(parents=True, exist_ok=True)
    want = f"{_sha256(tarball)} {node}"
    root = cache / TREE_NAME
    stamp = root / _STAMP
    with (cache / f".{TREE_NAME}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        seconds: float | None = None
        if not (stamp.is_file() and stamp.read_text().strip() == want):
            if root.exists():
                shutil.rmtree(root)
            with tempfile.TemporaryDirectory(dir=cache, prefix=".unpack-") as tmp:
                with tarfile.open(tarball) as tar:
                    tar.extractall(tmp, filter="data")
                unpacked = Path(tmp) / TREE_NAME
                if not (unpacked / "backend" / "package.json").is_file():
                    raise BackendRunnerError(f"{tarball} holds no {TREE_NAME}/backend/package.json")
                unpacked.rename(root)
            started = time.perf_counter()
            try:
                done = subprocess.run(  # noqa: S603 - fixed argv, no shell
                    NPM_CI,
                    cwd=root,
                    capture_output=True,
                    text=True,
                    timeout=_NPM_CI_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise BackendRunnerError(
                    f"`{' '.join(NPM_CI)}` in {root} took over {_NPM_CI_TIMEOUT:.0f}s (is the npm "
                    "registry reachable?)"
                ) from exc
            if done.returncode != 0:
                raise BackendRunnerError(
                    f"`{' '.join(NPM_CI)}` in {root} failed (exit {done.returncode}); is the npm "
                    "registry "
                    f"reachable (npm config get registry)?\n{_tail(done.stdout + done.stderr)}"
                )
            seconds = time.perf_counter() - started
            stamp.write_text(want + "\n")
        tree = BackendTree(root=root, npm_ci_seconds=seconds)
        if not tree.tsx.is_file():
            raise BackendRunnerError(f"{tree.tsx} missing after npm ci: delete {root} and retry")
        _install_scripts(tree)
    return tree


_tree: BackendTree | None = None


def tree() -> BackendTree:
    """The prepared tree of this process (``prepare()`` on first use)."""
    global _tree
    if _tree is None:
        _tree = prepare()
    return _tree


def node_dsn(dsn: str) -> str:
    """``dsn`` as node-postgres wants it with the backend's production settings: ``sslmode=disable``
    (its ``NODE_ENV=production`` pool asks for TLS, which the sandbox server does not speak)."""
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgresql", "postgres"):
        raise BackendRunnerError(
            "the backend needs a postgresql:// URL (node-postgres), not a key=value DSN"
        )
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "sslmode"] + [("sslmode", "disable")]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _secrets_in(env: Mapping[str, str]) -> list[str]:
    found: list[str] = []
    for key, value in env.items():
        if key.endswith(("_URL", "_KEY", "_SECRET")) and value:
            found.append(value)
            password = urlsplit(value).password if "://" in value else None
            if password:
                found.append(password)
    return found


def _run_script(
    name: str, env: Mapping[str, str], args: list[str] | None = None
) -> tuple[Any, float]:
    t = tree()
    full_env = {
        **os.environ,
        "NODE_ENV": "production",
        "LOG_LEVEL": os.environ.get("LMH_BACKEND_LOG_LEVEL", "warn"),
        **env,
    }
    argv = [str(t.tsx), str(t.script(name)), *(args or [])]
    started = time.perf_counter()
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            argv,
            cwd=t.backend,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=_SCRIPT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BackendRunnerError(
            f"LiteMaaS backend script {name} took over {_SCRIPT_TIMEOUT:.0f}s"
        ) from exc
    wall = time.perf_counter() - started
    hide = _secrets_in(env)
    if done.returncode != 0:
        raise BackendRunnerError(
            f"LiteMaaS backend script {name} failed (exit {done.returncode}):\n"
            + scrub(_tail(done.stderr + done.stdout), hide)
        )
    lines = done.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1]), wall
    except (IndexError, json.JSONDecodeError) as exc:
        raise BackendRunnerError(
            f"LiteMaaS backend script {name} printed no JSON result:\n"
            + scrub(_tail(done.stdout + done.stderr), hide)
        ) from exc


def apply_migrations(dsn: str) -> float:
    """Run the backend's own ``applyMigrations`` on database ``dsn`` (a postgresql:// URL); returns
    the seconds the migrations took (the tsx start-up, ~0.5 s, not included)."""
    result, _wall = _run_script("migrate.ts", {"DATABASE_URL": node_dsn(dsn)})
    return float(result["seconds"])


@dataclass(frozen=True)
class SyncRun:
    """One run of the backend's ``syncModels``: its result, the call alone and the process wall
    time."""

    result: dict[str, Any]
    call_seconds: float
    wall_seconds: float

    @property
    def written(self) -> int:
        """Rows it inserted or updated."""
        return int(self.result["newModels"]) + int(self.result["updatedModels"])


def sync_models(
    backend_dsn: str,
    *,
    litellm_url: str,
    litellm_key: str,
    litellm_dsn: str | None = None,
    force_update: bool = False,
    mark_unavailable: bool = True,
    check: bool = True,
) -> SyncRun:
    """Run the backend's own ``ModelSyncService.syncModels`` once (defaults: what it does at
    start-up).

    ``check``: raise :class:`BackendRunnerError` when it reports ``success: false`` or errors."""
    env = {
        "DATABASE_URL": node_dsn(backend_dsn),
        "LITELLM_API_URL": litellm_url,
        "LITELLM_API_KEY": litellm_key,
    }
    if litellm_dsn is not None:
        env["LITELLM_DATABASE_URL"] = node_dsn(litellm_dsn)
    options = json.dumps({"forceUpdate": force_update, "markUnavailable": mark_unavailable})
    out, wall = _run_script("sync-models.ts", env, [options])
    run = SyncRun(result=out["result"], call_seconds=float(out["seconds"]), wall_seconds=wall)
    if check and (not run.result.get("success") or run.result.get("errors")):
        raise BackendRunnerError(
            "the backend's syncModels reported failure: "
            + scrub(json.dumps(run.result), _secrets_in(env))
        )
    return run


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class BackendServer:
    """A running LiteMaaS backend server (``tsx src/index.ts``)."""

    base_url: str
    log_path: Path
    process: subprocess.Popen[bytes]
    _hide: list[str] = field(default_factory=list, repr=False)

    def log_text(self) -> str:
        """Its log so far (stdout and stderr), secrets scrubbed."""
        return scrub(self.log_path.read_text(encoding="utf-8", errors="replace"), self._hide)

    def wait_for_log(self, pattern: str, *, timeout: float = 60.0) -> re.Match[str]:
        """Wait until its log matches regex ``pattern`` (e.g. ``Background model sync
        completed``)."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            match = regex.search(self.log_text())
            if match is not None:
                return match
            if self.process.poll() is not None:
                raise BackendRunnerError(
                    f"the LiteMaaS backend exited ({self.process.returncode}) before its log "
                    f"showed {pattern!r}:\n{_tail(self.log_text())}"
                )
            if time.monotonic() > deadline:
                raise BackendRunnerError(
                    f"no {pattern!r} in the backend log after "
                    f"{timeout:.0f}s:\n{_tail(self.log_text())}"
                )
            time.sleep(0.05)

    def dev_token(self, username: str, roles: list[str] | None = None) -> str:
        """A JWT for an existing user, from its ``POST /api/auth/dev-token``
        (``ALLOW_DEV_TOKENS=true``)."""
        body: dict[str, Any] = {"username": username}
        if roles is not None:
            body["roles"] = roles
        response = httpx.post(f"{self.base_url}/api/auth/dev-token", json=body, timeout=30)
        if response.status_code != 200:
            raise BackendRunnerError(
                f"POST /api/auth/dev-token answered {response.status_code}: {response.text[:500]}"
            )
        return str(response.json()["access_token"])


@contextlib.contextmanager
def backend_server(
    backend_dsn: str,
    *,
    litellm_url: str,
    litellm_key: str,
    litellm_dsn: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    start_timeout: float = 120.0,
    log_path: Path | None = None,
) -> Iterator[BackendServer]:
    """Run the whole backend server until the block ends; yields it once ``/api/v1/health/live``
    answers.

    ``NODE_ENV=production`` with ``ALLOW_DEV_TOKENS=true`` (``dev_token()``), placeholder OAuth
    settings (nothing calls the issuer), a random ``JWT_SECRET``, ``LITELLM_AUTO_SYNC`` off. Its
    start-up model sync runs in the background: wait for it with ``wait_for_log('Background model
    sync completed')``. Its log goes to ``log_path`` when given (kept; the demo's folder), else to a
    temporary file."""
    t = tree()
    port = _free_port()
    env = {
        **os.environ,
        "NODE_ENV": "production",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": os.environ.get("LMH_BACKEND_LOG_LEVEL", "info"),
        "DATABASE_URL": node_dsn(backend_dsn),
        "LITELLM_API_URL": litellm_url,
        "LITELLM_API_KEY": litellm_key,
        "LITELLM_AUTO_SYNC": "false",
        "JWT_SECRET": secrets.token_hex(32),
        "OAUTH_CLIENT_ID": "litemaas-hooks-sandbox",
        "OAUTH_CLIENT_SECRET": secrets.token_hex(16),
        "OAUTH_ISSUER": "http://127.0.0.1:9/oauth-placeholder",
        "OAUTH_CALLBACK_URL": f"http://127.0.0.1:{port}/api/auth/callback",
        "CORS_ORIGIN": f"http://127.0.0.1:{port}",
        "ALLOW_DEV_TOKENS": "true",
        "RATE_LIMIT_MAX": "100000",
        **(extra_env or {}),
    }
    if litellm_dsn is not None:
        env["LITELLM_DATABASE_URL"] = node_dsn(litellm_dsn)
    env.pop("REDIS_HOST", None)
    hide = _secrets_in(
        {
            k: env[k]
            for k in ("DATABASE_URL", "LITELLM_API_KEY", "JWT_SECRET", "OAUTH_CLIENT_SECRET")
        }
    )
    hide += _secrets_in({"LITELLM_DATABASE_URL": env.get("LITELLM_DATABASE_URL", "")})
    with tempfile.TemporaryDirectory(prefix="lmh-backend-") as tmp:
        log_path = log_path or Path(tmp) / "backend.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                [str(t.tsx), "src/index.ts"],
                cwd=t.backend,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = BackendServer(
            base_url=f"http://127.0.0.1:{port}", log_path=log_path, process=proc, _hide=hide
        )
        try:
            _wait_live(server, start_timeout)
            yield server
        finally:
            _stop(proc)


def _wait_live(server: BackendServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    url = f"{server.base_url}/api/v1/health/live"
    while True:
        if server.process.poll() is not None:
            raise BackendRunnerError(
                f"the LiteMaaS backend server exited ({server.process.returncode}) while "
                f"starting:\n{_tail(server.log_text())}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise BackendRunnerError(
                f"the LiteMaaS backend server did not answer {url} within "
                f"{timeout:.0f}s:\n{_tail(server.log_text())}"
            )
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
