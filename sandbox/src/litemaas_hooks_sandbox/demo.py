"""``litemaas-hooks demo``: the problem and its fix, on a real LiteLLM proxy and the real LiteMaaS
backend.

1. start PostgreSQL with two databases (LiteLLM's real schema, the LiteMaaS backend schema from the
   backend's own migrations), store two sample models the way LiteLLM does, and start a real LiteLLM
   proxy on them (the sandbox launcher: ``litellm`` CLI, the Prisma stand-in as its DB client, our
   plugin mounted through config.yaml + shim) and the real LiteMaaS backend server (upstream v0.4.0,
   ``tsx src/index.ts``, dev tokens on; its start-up model sync sees the two models);
2. before ``install``: a model added over LiteLLM's HTTP API afterwards has no backend row, and a
   user's ``POST /api/v1/subscriptions`` to it answers 500 (the backend's log:
``subscriptions_model_id_fkey``); 3. ``install`` + ``backfill``: the backend has every model; the
same request now answers 201; 4. live: add, rename and delete models over LiteLLM's HTTP API (master
   key) and print how fast the backend row followed; deleting the subscribed model retires it and
   cascades to the subscription.

Without the backend tree (no Node.js >= 20, or no upstream tarball) the demo says so and falls back:
the backend schema from the same upstream SQL run by psycopg, the subscription as the backend's
final ``INSERT INTO subscriptions``. Our logs, LiteLLM's and the backend's go to files in the demo
folder (printed); ``--keep-running`` leaves the proxy (and the backend) up for the Admin UI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from litemaas_hooks.connections import connect
from litemaas_hooks.migrations import apply_migrations
from litemaas_hooks.reconcile import Reconciler
from litemaas_hooks.settings import Settings, load_settings
from litemaas_hooks_sandbox import litemaas_backend
from litemaas_hooks_sandbox.cluster import LocalPostgres
from litemaas_hooks_sandbox.litellm_schema import apply_litellm_schema
from litemaas_hooks_sandbox.litemaas_schema import (
    apply_litemaas_schema,
    apply_litemaas_schema_without_node,
)
from litemaas_hooks_sandbox.seed import seed_samples

COLUMNS = ("id", "provider", "backend_model_name", "availability", "features", "context_length")


def _print_models(dsn: str, title: str) -> None:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT id, provider, backend_model_name, availability, features, context_length FROM "
            "models ORDER BY id"
        ).fetchall()
    print(f"\n{title}")
    widths = [
        max(len(c), *(len(str(r[i])) for r in rows)) if rows else len(c)
        for i, c in enumerate(COLUMNS)
    ]
    print("  " + "  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    for r in rows:
        print("  " + "  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)))


async def _wait_for(
    check: Callable[[], Awaitable[bool]], what: str, limit_seconds: float = 15.0
) -> float:
    started = time.perf_counter()
    deadline = started + limit_seconds
    while time.perf_counter() < deadline:
        if await check():
            return (time.perf_counter() - started) * 1000
        await asyncio.sleep(0.005)
    raise TimeoutError(f"demo: {what} did not happen within {limit_seconds:.0f}s")


async def _row(dsn: str, model_id: str) -> tuple[Any, ...] | None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT availability, litellm_model_id FROM models WHERE id = %s", (model_id,)
        )
        return await cur.fetchone()


async def _install_and_backfill(settings: Settings) -> None:
    for side in ("backend", "litellm"):
        conn = await connect(settings, side)
        try:
            result = await apply_migrations(conn, side)
        finally:
            await conn.close()
        print(
            f"install ({side} database): applied "
            f"{', '.join(result.applied) or 'nothing (up to date)'}"
        )
    lite, back = await connect(settings, "litellm"), await connect(settings, "backend")
    try:
        report = await Reconciler(settings).converge(lite, back, None)
    finally:
        await lite.close()
        await back.close()
    print(f"backfill: {report.summary()}")


DEMO_USER_ID = "11111111-2222-4333-8444-555555555555"
GRANITE = "granite-8b-code-instruct-128k"
GRANITE_PARAMS = {
    "model": "openai/granite-3-2-8b-instruct",
    "api_base": "http://granite-8b.models.svc.cluster.local:8080/v1",
    "api_key": "sk-demo-upstream-key",
}


def _add_user(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO public.users (id, username, email, full_name, oauth_provider, oauth_id, "
            "roles) VALUES (%s, 'alice', 'alice@example.com', 'Alice', 'openshift', 'oauth-alice', "
            "ARRAY['user']) ON CONFLICT (id) DO NOTHING",
            (DEMO_USER_ID,),
        )


@dataclass
class Subscriber:
    """How alice subscribes: the real backend's ``POST /api/v1/subscriptions`` (``server`` set),
    else the backend's final INSERT straight into its database."""

    backend_dsn: str
    server: litemaas_backend.BackendServer | None = None
    _token: str | None = None

    def subscribe(self, model_id: str) -> str:
        """One attempt; a line saying what happened and how long it took."""
        started = time.perf_counter()
        if self.server is None:
            outcome = _insert_subscription(self.backend_dsn, model_id)
            return f"{outcome} ({(time.perf_counter() - started) * 1000:.0f} ms, direct INSERT)"
        first = self._token is None
        if self._token is None:
            self._token = self.server.dev_token("alice", roles=["user"])
            started = time.perf_counter()
        response = httpx.post(
            f"{self.server.base_url}/api/v1/subscriptions",
            json={"modelId": model_id},
            headers={"Authorization": f"Bearer {self._token}"},
            timeout=30,
        )
        ms = (time.perf_counter() - started) * 1000
        line = f"POST /api/v1/subscriptions -> {response.status_code} in {ms:.0f} ms"
        # the backend's first request for a user looks her up in LiteLLM (3 tries) and creates her
        if first:
            line += " (her first request: the backend also sets alice and her team up in LiteLLM)"
        if response.status_code == 201:
            return f"{line} (subscription {response.json().get('status')})"
        return f"{line}; backend log: {self._fk_error()}"

    def _fk_error(self) -> str:
        assert self.server is not None
        try:
            self.server.wait_for_log("subscriptions_model_id_fkey", timeout=10)
        except litemaas_backend.BackendRunnerError:
            return "(no foreign-key error logged; see the backend log)"
        found = _FK_MESSAGE.search(self.server.log_text())
        return found.group(0).replace('\\"', '"') + '"' if found else "subscriptions_model_id_fkey"


# PostgreSQL's message as the backend logs it (in JSON: its quotes escaped)
_FK_MESSAGE = re.compile(
    r'insert or update on table [^\n]*?constraint \\?"subscriptions_model_id_fkey'
)


def _insert_subscription(dsn: str, model_id: str) -> str:
    """The backend's subscription INSERT for the demo user; 'ok' or the error PostgreSQL gave."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            conn.execute(
                "INSERT INTO public.subscriptions (user_id, model_id, status) VALUES (%s, %s, "
                "'active')",
                (DEMO_USER_ID, model_id),
            )
        except psycopg.errors.ForeignKeyViolation as exc:
            diag = exc.diag
            return f"ERROR {diag.sqlstate}: {diag.message_primary} ({diag.constraint_name})"
    return "ok"


def _subscription_status(dsn: str) -> str | None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT status FROM public.subscriptions WHERE user_id = %s AND model_id = %s",
            (DEMO_USER_ID, GRANITE),
        ).fetchone()
    return None if row is None else str(row[0])


def _backend_row_sync(dsn: str, model_id: str) -> tuple[Any, ...] | None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(
            "SELECT availability, litellm_model_id FROM public.models WHERE id = %s", (model_id,)
        ).fetchone()


def _http(client: Any, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.request(method, path, json=body)
    if response.status_code != 200:
        raise RuntimeError(
            f"demo: {method} {path} answered {response.status_code}: {response.text[:300]}"
        )
    result: dict[str, Any] = response.json()
    return result


async def _live(proxy: Any, litellm_dsn: str, backend_dsn: str) -> None:
    from litemaas_hooks_sandbox.proxy import SandboxProxy

    assert isinstance(proxy, SandboxProxy)

    async def relay_connected() -> bool:
        async with await psycopg.AsyncConnection.connect(litellm_dsn, autocommit=True) as conn:
            cur = await conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
                "'litemaas-hooks[%%]:litellm'"
            )
            row = await cur.fetchone()
            return row is not None and row[0] >= 1

    ms = await _wait_for(
        relay_connected, "the plugin's relay connecting after install", limit_seconds=60
    )
    print(
        f"\n4. live, over LiteLLM's HTTP API (the plugin's relay connected {ms:.0f} ms after "
        "install):"
    )
    with proxy.client() as client:
        params = {
            "model": "openai/phi-3-mini",
            "api_base": "http://phi.models.svc:8080/v1",
            "api_key": "sk-x",
        }
        model_id = _http(
            client, "POST", "/model/new", {"model_name": "phi-3-mini", "litellm_params": params}
        )["model_id"]

        async def present() -> bool:
            return await _row(backend_dsn, "phi-3-mini") is not None

        ms = await _wait_for(present, "the new model reaching the backend")
        print(f"   POST  /model/new phi-3-mini               -> backend row created in {ms:.0f} ms")

        _http(
            client,
            "PATCH",
            f"/model/{model_id}/update",
            {"litellm_params": {"tpm": 100000, "rpm": 600}},
        )

        async def limits() -> bool:
            async with await psycopg.AsyncConnection.connect(backend_dsn, autocommit=True) as conn:
                cur = await conn.execute(
                    "SELECT tpm, rpm FROM public.models WHERE id = 'phi-3-mini'"
                )
                return await cur.fetchone() == (100000, 600)

        ms = await _wait_for(limits, "the TPM/RPM change reaching the backend")
        print(
            f"   PATCH /model/{{id}}/update tpm/rpm          -> backend row updated in {ms:.0f} ms"
        )

        _http(client, "PATCH", f"/model/{model_id}/update", {"model_name": "phi-3-mini-128k"})

        async def renamed() -> bool:
            old, new = (
                await _row(backend_dsn, "phi-3-mini"),
                await _row(backend_dsn, "phi-3-mini-128k"),
            )
            return new is not None and old is not None and old[0] == "unavailable"

        ms = await _wait_for(renamed, "the rename reaching the backend")
        print(
            "   PATCH rename -> phi-3-mini-128k           -> new row created, old one retired in "
            f"{ms:.0f} ms"
        )

        _http(client, "POST", "/model/delete", {"id": model_id})

        async def retired() -> bool:
            row = await _row(backend_dsn, "phi-3-mini-128k")
            return row is not None and row[0] == "unavailable"

        ms = await _wait_for(retired, "the delete reaching the backend")
        print(f"   POST  /model/delete phi-3-mini-128k       -> backend row retired in {ms:.0f} ms")

        granite = _backend_row_sync(backend_dsn, GRANITE)
        assert granite is not None
        _http(client, "POST", "/model/delete", {"id": granite[1]})

        async def granite_retired() -> bool:
            row = await _row(backend_dsn, GRANITE)
            return row is not None and row[0] == "unavailable"

        ms = await _wait_for(granite_retired, "the retire of the subscribed model")

        async def cascaded() -> bool:
            return _subscription_status(backend_dsn) == "inactive"

        # the status line below says what happened either way
        with contextlib.suppress(TimeoutError):
            await _wait_for(cascaded, "the retire cascade", limit_seconds=15)
        print(
            f"\n5. POST /model/delete {GRANITE} -> backend row retired in {ms:.0f} ms; alice's "
            f"subscription is now '{_subscription_status(backend_dsn)}' (the retire cascade)"
        )


@contextlib.contextmanager
def _log_to_file(path: Path) -> Iterator[None]:
    """Our loggers and LiteLLM's write to ``path`` only (not the terminal) until the block ends."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved: list[tuple[logging.Logger, list[logging.Handler], bool]] = []
    for name in (
        "litemaas_hooks",
        "litemaas_hooks_sandbox",
        "LiteLLM",
        "LiteLLM Proxy",
        "LiteLLM Router",
    ):
        logger = logging.getLogger(name)
        saved.append((logger, logger.handlers[:], logger.propagate))
        logger.handlers[:] = [handler]
        logger.propagate = False
    try:
        yield
    finally:
        for logger, handlers, propagate in saved:
            logger.handlers[:] = handlers
            logger.propagate = propagate
        handler.close()


def _keep_running(proxy: Any, backend_dsn: str, subscriber: Subscriber) -> None:
    print("\nthe sandbox stays up (Ctrl-C to stop):")
    print(f"  Admin UI   {proxy.ui_url}   login: {proxy.ui_username} / {proxy.ui_password}")
    print(
        f"  API        curl -H 'Authorization: Bearer {proxy.master_key}' "
        f"{proxy.base_url}/model/info"
    )
    print(
        f"  watch      watch -n1 \"psql '{backend_dsn}' -c 'SELECT id, availability, tpm, rpm FROM "
        "models'\""
    )
    print(
        f"  status     LITEMAAS_DATABASE_URL='{backend_dsn}' "
        f"LITELLM_DATABASE_URL='{proxy.litellm_dsn}' "
        f"LITELLM_MASTER_KEY='{proxy.master_key}' litemaas-hooks status"
    )
    server = subscriber.server
    if server is not None:
        print(
            "  subscribe  curl -X POST -H 'Authorization: Bearer "
            f"{server.dev_token('alice', roles=['user'])}' "
            f"-H 'Content-Type: application/json' -d '{{\"modelId\": \"<model name>\"}}' "
            f"{server.base_url}/api/v1/subscriptions   (LiteMaaS backend, as alice; it caches "
            "LiteLLM's model list for 5 minutes)"
        )
    print(f"  logs       {proxy.log_path}" + (f", {server.log_path}" if server is not None else ""))

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)  # `kill PID` cleans up like Ctrl-C
    try:
        while proxy.running():
            time.sleep(1)  # a person is clicking in the UI; nothing to wait for but Ctrl-C
        print("the proxy exited; see its log")
    except KeyboardInterrupt:
        print("\nstopping")
    finally:
        signal.signal(signal.SIGTERM, previous)


def _prepare_backend(*, real_backend: bool) -> str | None:
    """Why the real backend cannot run here, or None when its tree is ready (the first run on a
    machine unpacks it and runs its ``npm ci``, 10-20 s with a warm npm cache)."""
    if not real_backend:
        return "switched off for this run"
    started = time.perf_counter()
    try:
        tree = litemaas_backend.tree()
    except litemaas_backend.BackendRunnerError as exc:
        return str(exc)
    how = "cached" if tree.npm_ci_seconds is None else f"npm ci {tree.npm_ci_seconds:.1f} s"
    print(
        f"  LiteMaaS backend: upstream v0.4.0 ready in {time.perf_counter() - started:.1f} s "
        f"({how})"
    )
    return None


def _start_backend(
    stack: contextlib.ExitStack, folder: Path, backend_dsn: str, proxy: Any, litellm_dsn: str
) -> litemaas_backend.BackendServer | None:
    started = time.perf_counter()
    try:
        server = stack.enter_context(
            litemaas_backend.backend_server(
                backend_dsn,
                litellm_url=proxy.base_url,
                litellm_key=proxy.master_key,
                litellm_dsn=litellm_dsn,
                log_path=folder / "backend.log",
            )
        )
        server.wait_for_log("Background model sync completed")
    except litemaas_backend.BackendRunnerError as exc:
        print(
            f"   the LiteMaaS backend server did not start ({exc}); falling back to the backend's "
            "INSERT"
        )
        return None
    with psycopg.connect(backend_dsn, autocommit=True) as conn:
        got = conn.execute("SELECT count(*) FROM public.models").fetchone()
    print(
        f"   LiteMaaS backend server up at {server.base_url} in "
        f"{time.perf_counter() - started:.1f} s "
        f"(tsx src/index.ts); its start-up model sync stored {got[0] if got else 0} models"
    )
    return server


async def run_demo(
    *, live: bool = True, keep_running: bool = False, real_backend: bool = True
) -> int:
    """The demo; ``real_backend=False`` takes the no-Node.js path (direct INSERT) on purpose."""
    from litemaas_hooks_sandbox.proxy import OFFLINE_ENV

    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    # the demo shows the retire cascade: a short grace period (the production default is 300 s)
    os.environ.setdefault("LITEMAAS_HOOKS_RETIRE_GRACE_SECONDS", "2")
    master_key = "sk-" + secrets.token_hex(32)
    folder = Path(tempfile.mkdtemp(prefix="litemaas-hooks-demo-"))
    with _log_to_file(folder / "litemaas-hooks.log"):
        return await _run_demo(
            folder, master_key, live=live, keep_running=keep_running, real_backend=real_backend
        )


async def _run_demo(
    folder: Path, master_key: str, *, live: bool, keep_running: bool, real_backend: bool
) -> int:
    from litemaas_hooks_sandbox.proxy import start_proxy

    print(
        "litemaas-hooks demo: throwaway PostgreSQL with a LiteLLM database and a LiteMaaS backend "
        "database"
    )
    print(
        f"  logs: {folder}/litemaas-hooks.log (ours), {folder}/proxy/proxy.log (LiteLLM's), "
        f"{folder}/backend.log (the LiteMaaS backend's)"
    )
    no_backend = _prepare_backend(real_backend=real_backend)
    if no_backend is not None:
        print(f"  LiteMaaS backend: NOT AVAILABLE ({no_backend})")
        print(
            "  falling back: the backend schema from its migration SQL run by psycopg, alice's "
            "subscription "
            "as the backend's final INSERT (the line above says how to get the real one)"
        )
    with LocalPostgres() as pg, contextlib.ExitStack() as stack:
        pg.create_database("litellm_db")
        pg.create_database("litemaas_db")
        litellm_dsn, backend_dsn = pg.dsn("litellm_db"), pg.dsn("litemaas_db")
        apply_litellm_schema(litellm_dsn)
        if no_backend is None:
            apply_litemaas_schema(backend_dsn)
        else:
            apply_litemaas_schema_without_node(backend_dsn)
        _add_user(backend_dsn)
        ids = seed_samples(
            litellm_dsn, key=master_key, exclude=frozenset({GRANITE}) if live else frozenset()
        )
        print(
            f"  LiteLLM: {len(ids)} sample models stored (litellm_params encrypted with the master "
            "key)"
        )
        env = {
            "LITEMAAS_DATABASE_URL": backend_dsn,
            "LITELLM_DATABASE_URL": litellm_dsn,
            "LITELLM_MASTER_KEY": master_key,
            "LITEMAAS_HOOKS_RECONCILE_INTERVAL_SECONDS": "0",
        }
        settings = load_settings(env)
        if not live:
            await _install_and_backfill(settings)
            _print_models(backend_dsn, "backend models after backfill:")
            print("\ndemo finished; the throwaway PostgreSQL is gone")
            return 0
        started = time.perf_counter()
        proxy = start_proxy(
            litellm_dsn,
            backend_dsn=backend_dsn,
            master_key=master_key,
            workdir=folder / "proxy",
            env={
                "LITEMAAS_HOOKS_RECONNECT_MAX_SECONDS": "1",
                # the proxy's environment is built as production's: the demo's grace goes in here
                "LITEMAAS_HOOKS_RETIRE_GRACE_SECONDS": os.environ[
                    "LITEMAAS_HOOKS_RETIRE_GRACE_SECONDS"
                ],
            },
        )
        stack.callback(proxy.stop)
        where = (
            "a network namespace with only loopback" if proxy.isolated else "the host's loopback"
        )
        print(
            f"\n1. LiteLLM {proxy.litellm_version} proxy up at {proxy.base_url} in "
            f"{time.perf_counter() - started:.1f} s ({where}; started as LiteMaaS does: `litellm` "
            "CLI, DATABASE_URL, plugin mounted via config.yaml + shim)"
        )
        subscriber = Subscriber(backend_dsn)
        if no_backend is None:
            subscriber.server = _start_backend(stack, folder, backend_dsn, proxy, litellm_dsn)
        with proxy.client() as client:
            _http(
                client,
                "POST",
                "/model/new",
                {"model_name": GRANITE, "litellm_params": GRANITE_PARAMS},
            )
        print(
            f"\n2. before install: {GRANITE} added over POST /model/new; backend row: "
            f"{_backend_row_sync(backend_dsn, GRANITE)}"
        )
        print(f"   alice subscribes to {GRANITE}: {subscriber.subscribe(GRANITE)}")
        print("\n3. litemaas-hooks install + backfill")
        await _install_and_backfill(settings)
        _print_models(backend_dsn, "   backend models after backfill:")
        print(f"   alice subscribes to {GRANITE} again: {subscriber.subscribe(GRANITE)}")
        await _live(proxy, litellm_dsn, backend_dsn)
        _print_models(backend_dsn, "\nbackend models at the end:")
        if keep_running:
            _keep_running(proxy, backend_dsn, subscriber)
    print("\ndemo finished; the proxy, the backend and the throwaway PostgreSQL are gone")
    return 0
