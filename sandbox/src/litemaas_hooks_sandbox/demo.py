"""``litemaas-hooks demo``: the whole flow against a throwaway local PostgreSQL (the quick start).

1. start PostgreSQL with two databases: LiteLLM's real schema and the LiteMaaS backend schema;
2. store three sample models the way LiteLLM does (encrypted with the master key);
3. ``install`` + ``backfill`` and print the backend ``models`` rows;
4. live: run the relay, then add, rename and delete a model through LiteLLM's own model-management
   endpoint code, printing how fast the backend row followed.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Awaitable, Callable
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


async def _live(settings: Settings, litellm_dsn: str, backend_dsn: str, master_key: str) -> None:
    from litemaas_hooks.relay import run_relay
    from litemaas_hooks_sandbox.litellm_admin import LiteLLMAdmin

    print("\nlive: starting the relay, then changing models through LiteLLM's own endpoint code …")
    admin = await LiteLLMAdmin.open(litellm_dsn, master_key=master_key)
    stop = asyncio.Event()
    relay = asyncio.create_task(run_relay(settings, stop=stop, name="demo-relay"))
    try:
        params = {"model": "openai/phi-3-mini", "api_base": "http://phi.models.svc:8080/v1", "api_key": "sk-x"}
        model_id = await admin.add_model("phi-3-mini", params, {"description": "Phi-3 mini"})

        async def present() -> bool:
            return await _row(backend_dsn, "phi-3-mini") is not None

        ms = await _wait_for(present, "the new model reaching the backend")
        print(f"  POST /model/new phi-3-mini            -> backend row created in {ms:.0f} ms")

        await admin.patch_model(model_id, model_name="phi-3-mini-128k")

        async def renamed() -> bool:
            old, new = await _row(backend_dsn, "phi-3-mini"), await _row(backend_dsn, "phi-3-mini-128k")
            return new is not None and old is not None and old[0] == "unavailable"

        ms = await _wait_for(renamed, "the rename reaching the backend")
        print(f"  PATCH rename -> phi-3-mini-128k       -> new row created, old row retired in {ms:.0f} ms")

        await admin.delete_model(model_id)

        async def retired() -> bool:
            row = await _row(backend_dsn, "phi-3-mini-128k")
            return row is not None and row[0] == "unavailable"

        ms = await _wait_for(retired, "the delete reaching the backend")
        print(f"  POST /model/delete phi-3-mini-128k    -> backend row retired in {ms:.0f} ms")
    finally:
        stop.set()
        await asyncio.wait_for(relay, timeout=10)
        await admin.close()


async def run_demo(*, live: bool = True) -> int:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    master_key = "sk-" + secrets.token_hex(32)
    print("litemaas-hooks demo: throwaway PostgreSQL with a LiteLLM database and a LiteMaaS backend database")
    with LocalPostgres() as pg:
        pg.create_database("litellm_db")
        pg.create_database("litemaas_db")
        litellm_dsn, backend_dsn = pg.dsn("litellm_db"), pg.dsn("litemaas_db")
        apply_litellm_schema(litellm_dsn)
        apply_litemaas_schema(backend_dsn)
        ids = seed_samples(litellm_dsn, key=master_key)
        print(f"LiteLLM: stored {len(ids)} sample models (litellm_params encrypted with the master key)")
        env = {
            "LITEMAAS_DATABASE_URL": backend_dsn,
            "LITELLM_DATABASE_URL": litellm_dsn,
            "LITELLM_MASTER_KEY": master_key,
            "LITEMAAS_HOOKS_RECONCILE_INTERVAL_SECONDS": "0",
        }
        settings = load_settings(env)
        await _install_and_backfill(settings)
        _print_models(backend_dsn, "backend models after backfill:")
        if live:
            await _live(settings, litellm_dsn, backend_dsn, master_key)
            _print_models(backend_dsn, "backend models after the live changes:")
    print("\ndemo finished; the throwaway PostgreSQL is gone")
    return 0
