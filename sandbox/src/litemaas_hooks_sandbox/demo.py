"""``litemaas-hooks demo``: the problem and its fix, on a real LiteLLM proxy over a throwaway PostgreSQL.

1. start PostgreSQL with two databases (LiteLLM's real schema, the LiteMaaS backend schema), store three
   sample models the way LiteLLM does, and start a real LiteLLM proxy on them (the sandbox launcher:
   ``litellm`` CLI, the Prisma stand-in as its DB client, our plugin mounted through config.yaml + shim);
2. before ``install``: a model added over LiteLLM's HTTP API has no backend row, and a user's subscription
   to it fails with the backend's foreign-key error (``subscriptions_model_id_fkey``);
3. ``install`` + ``backfill``: the backend has every model;
4. live: add, rename and delete models over LiteLLM's HTTP API (master key) and print how fast the backend
   row followed; the subscription now succeeds; deleting the model retires it and cascades to the
   subscription.

The subscription is a direct ``INSERT INTO subscriptions`` (what the backend's createSubscription does at
the end; the real backend API is exercised in tests/backend). Our logs and LiteLLM's go to files in the
demo folder (printed); ``--keep-running`` leaves the proxy up for the Admin UI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg

from litemaas_hooks.connections import connect
from litemaas_hooks.migrations import apply_migrations
from litemaas_hooks.reconcile import Reconciler
from litemaas_hooks.settings import Settings, load_settings
from litemaas_hooks_sandbox.cluster import LocalPostgres
from litemaas_hooks_sandbox.litellm_schema import apply_litellm_schema
from litemaas_hooks_sandbox.litemaas_schema import apply_litemaas_schema
from litemaas_hooks_sandbox.seed import seed_samples

COLUMNS = ("id", "provider", "backend_model_name", "availability", "features", "context_length")


def _print_models(dsn: str, title: str) -> None:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT id, provider, backend_model_name, availability, features, context_length FROM models ORDER BY id"
        ).fetchall()
    print(f"\n{title}")
    widths = [max(len(c), *(len(str(r[i])) for r in rows)) if rows else len(c) for i, c in enumerate(COLUMNS)]
    print("  " + "  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    for r in rows:
        print("  " + "  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)))


async def _wait_for(check: Callable[[], Awaitable[bool]], what: str, limit_seconds: float = 15.0) -> float:
    started = time.perf_counter()
    deadline = started + limit_seconds
    while time.perf_counter() < deadline:
        if await check():
            return (time.perf_counter() - started) * 1000
        await asyncio.sleep(0.005)
    raise TimeoutError(f"demo: {what} did not happen within {limit_seconds:.0f}s")


async def _row(dsn: str, model_id: str) -> tuple[Any, ...] | None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute("SELECT availability, litellm_model_id FROM models WHERE id = %s", (model_id,))
        return await cur.fetchone()


async def _install_and_backfill(settings: Settings) -> None:
    for side in ("backend", "litellm"):
        conn = await connect(settings, side)
        try:
            result = await apply_migrations(conn, side)
        finally:
            await conn.close()
        print(f"install ({side} database): applied {', '.join(result.applied) or 'nothing (up to date)'}")
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


def _subscribe(dsn: str) -> str:
    """The backend's subscription INSERT for the demo user; 'ok' or the error PostgreSQL gave."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO public.users (id, username, email, oauth_provider, oauth_id) "
            "VALUES (%s, 'alice', 'alice@example.com', 'demo', 'alice') ON CONFLICT (id) DO NOTHING",
            (DEMO_USER_ID,),
        )
        try:
            conn.execute(
                "INSERT INTO public.subscriptions (user_id, model_id, status) VALUES (%s, %s, 'active')",
                (DEMO_USER_ID, GRANITE),
            )
        except psycopg.errors.ForeignKeyViolation as exc:
            diag = exc.diag
            return f"ERROR {diag.sqlstate}: {diag.message_primary} ({diag.constraint_name})"
    return "ok"


def _subscription_status(dsn: str) -> str | None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT status FROM public.subscriptions WHERE user_id = %s AND model_id = %s", (DEMO_USER_ID, GRANITE)
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
        raise RuntimeError(f"demo: {method} {path} answered {response.status_code}: {response.text[:300]}")
    result: dict[str, Any] = response.json()
    return result


async def _live(proxy: Any, litellm_dsn: str, backend_dsn: str) -> None:
    from litemaas_hooks_sandbox.proxy import SandboxProxy

    assert isinstance(proxy, SandboxProxy)

    async def relay_connected() -> bool:
        async with await psycopg.AsyncConnection.connect(litellm_dsn, autocommit=True) as conn:
            cur = await conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'litemaas-hooks[%%]:litellm'"
            )
            row = await cur.fetchone()
            return row is not None and row[0] >= 1

    ms = await _wait_for(relay_connected, "the plugin's relay connecting after install", limit_seconds=60)
    print(f"\n4. live, over LiteLLM's HTTP API (the plugin's relay connected {ms:.0f} ms after install):")
    with proxy.client() as client:
        params = {"model": "openai/phi-3-mini", "api_base": "http://phi.models.svc:8080/v1", "api_key": "sk-x"}
        model_id = _http(client, "POST", "/model/new", {"model_name": "phi-3-mini", "litellm_params": params})[
            "model_id"
        ]

        async def present() -> bool:
            return await _row(backend_dsn, "phi-3-mini") is not None

        ms = await _wait_for(present, "the new model reaching the backend")
        print(f"   POST  /model/new phi-3-mini               -> backend row created in {ms:.0f} ms")

        _http(client, "PATCH", f"/model/{model_id}/update", {"litellm_params": {"tpm": 100000, "rpm": 600}})

        async def limits() -> bool:
            async with await psycopg.AsyncConnection.connect(backend_dsn, autocommit=True) as conn:
                cur = await conn.execute("SELECT tpm, rpm FROM public.models WHERE id = 'phi-3-mini'")
                return await cur.fetchone() == (100000, 600)

        ms = await _wait_for(limits, "the TPM/RPM change reaching the backend")
        print(f"   PATCH /model/{{id}}/update tpm/rpm          -> backend row updated in {ms:.0f} ms")

        _http(client, "PATCH", f"/model/{model_id}/update", {"model_name": "phi-3-mini-128k"})

        async def renamed() -> bool:
            old, new = await _row(backend_dsn, "phi-3-mini"), await _row(backend_dsn, "phi-3-mini-128k")
            return new is not None and old is not None and old[0] == "unavailable"

        ms = await _wait_for(renamed, "the rename reaching the backend")
        print(f"   PATCH rename -> phi-3-mini-128k           -> new row created, old one retired in {ms:.0f} ms")

        _http(client, "POST", "/model/delete", {"id": model_id})

        async def retired() -> bool:
            row = await _row(backend_dsn, "phi-3-mini-128k")
            return row is not None and row[0] == "unavailable"

        ms = await _wait_for(retired, "the delete reaching the backend")
        print(f"   POST  /model/delete phi-3-mini-128k       -> backend row retired in {ms:.0f} ms")

        print(f"\n5. alice subscribes to {GRANITE} again: {_subscribe(backend_dsn)}")

        granite = _backend_row_sync(backend_dsn, GRANITE)
        assert granite is not None
        _http(client, "POST", "/model/delete", {"id": granite[1]})

        async def granite_retired() -> bool:
            row = await _row(backend_dsn, GRANITE)
            return row is not None and row[0] == "unavailable"

        ms = await _wait_for(granite_retired, "the retire of the subscribed model")

        async def cascaded() -> bool:
            return _subscription_status(backend_dsn) == "inactive"

        with contextlib.suppress(TimeoutError):  # the status line below says what happened either way
            await _wait_for(cascaded, "the retire cascade", limit_seconds=5)
        print(
            f"6. POST /model/delete {GRANITE} -> backend row retired in {ms:.0f} ms; alice's subscription is "
            f"now '{_subscription_status(backend_dsn)}' (the retire cascade)"
        )


def _log_to_file(path: Path) -> None:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("litemaas_hooks", "litemaas_hooks_sandbox", "LiteLLM", "LiteLLM Proxy", "LiteLLM Router"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False


def _keep_running(proxy: Any, backend_dsn: str) -> None:
    print("\nthe sandbox stays up (Ctrl-C to stop):")
    print(f"  Admin UI   {proxy.ui_url}   login: {proxy.ui_username} / {proxy.ui_password}")
    print(f"  API        curl -H 'Authorization: Bearer {proxy.master_key}' {proxy.base_url}/model/info")
    print(f"  watch      watch -n1 \"psql '{backend_dsn}' -c 'SELECT id, availability, tpm, rpm FROM models'\"")
    print(
        f"  status     LITEMAAS_DATABASE_URL='{backend_dsn}' LITELLM_DATABASE_URL='{proxy.litellm_dsn}' "
        f"LITELLM_MASTER_KEY='{proxy.master_key}' litemaas-hooks status"
    )
    print(f"  logs       {proxy.log_path}")
    try:
        while proxy.running():
            time.sleep(1)  # a person is clicking in the UI; nothing to wait for but Ctrl-C
        print("the proxy exited; see its log")
    except KeyboardInterrupt:
        print("\nstopping")


async def run_demo(*, live: bool = True, keep_running: bool = False) -> int:
    from litemaas_hooks_sandbox.proxy import OFFLINE_ENV, start_proxy

    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    master_key = "sk-" + secrets.token_hex(32)
    folder = Path(tempfile.mkdtemp(prefix="litemaas-hooks-demo-"))
    _log_to_file(folder / "litemaas-hooks.log")
    print("litemaas-hooks demo: throwaway PostgreSQL with a LiteLLM database and a LiteMaaS backend database")
    print(f"  logs: {folder}/litemaas-hooks.log (ours), {folder}/proxy/proxy.log (LiteLLM's)")
    with LocalPostgres() as pg:
        pg.create_database("litellm_db")
        pg.create_database("litemaas_db")
        litellm_dsn, backend_dsn = pg.dsn("litellm_db"), pg.dsn("litemaas_db")
        apply_litellm_schema(litellm_dsn)
        apply_litemaas_schema(backend_dsn)
        ids = seed_samples(litellm_dsn, key=master_key, exclude=frozenset({GRANITE}) if live else frozenset())
        print(f"  LiteLLM: {len(ids)} sample models stored (litellm_params encrypted with the master key)")
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
            env={"LITEMAAS_HOOKS_RECONNECT_MAX_SECONDS": "1"},
        )
        try:
            where = "a network namespace with only loopback" if proxy.isolated else "the host's loopback"
            print(
                f"\n1. LiteLLM {proxy.litellm_version} proxy up at {proxy.base_url} in "
                f"{time.perf_counter() - started:.1f} s ({where}; plugin mounted via config.yaml + shim)"
            )
            with proxy.client() as client:
                _http(client, "POST", "/model/new", {"model_name": GRANITE, "litellm_params": GRANITE_PARAMS})
            print(
                f"\n2. before install: {GRANITE} added over POST /model/new; backend row: "
                f"{_backend_row_sync(backend_dsn, GRANITE)}"
            )
            print(f"   alice subscribes to {GRANITE}: {_subscribe(backend_dsn)}")
            print("\n3. litemaas-hooks install + backfill")
            await _install_and_backfill(settings)
            _print_models(backend_dsn, "   backend models after backfill:")
            await _live(proxy, litellm_dsn, backend_dsn)
            _print_models(backend_dsn, "\nbackend models at the end:")
            if keep_running:
                _keep_running(proxy, backend_dsn)
        finally:
            proxy.stop()
    print("\ndemo finished; the proxy and the throwaway PostgreSQL are gone")
    return 0
