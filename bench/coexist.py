"""Coexistence benchmark: our `litemaas-hooks backfill` against the real backend's `syncModels`.

On the same LiteLLM state (1,000 and then 10,000 deployments in LiteLLM's table, served over HTTP by a
real LiteLLM proxy process of the sandbox), each side fills its own fresh backend database made by the
backend's own migrations (cold), then runs again on it (warm). Printed per size and run: our process
wall time, its process wall time (tsx + imports + the call) and its call alone (ModelSyncService.
syncModels as timed inside the process), rows each wrote, and the ratios its/ours. Targets (process
against process): ours >= 3x faster at 10,000, not slower at 1,000, 0 rows warm. No timed asserts.

Our side runs every time as a fresh pod would: an empty disk cache (LITEMAAS_HOOKS_CACHE_DIR). Its
"cold" fill therefore reads LiteLLM's cost-map answers from LiteLLM's database (shared by an earlier
process, migration 0006). One more line, "first", is our very first process on these models, with
nothing shared yet: it imports LiteLLM and asks it (seconds; once per LiteLLM version and model).

    .venv/bin/python bench/coexist.py [--sizes 1000,10000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, os.path.dirname(__file__))

from _common import MASTER_KEY, machine, seed

from litemaas_hooks.migrations import apply_migrations
from litemaas_hooks_sandbox import litemaas_backend
from litemaas_hooks_sandbox.cluster import LocalPostgres
from litemaas_hooks_sandbox.litellm_schema import apply_litellm_schema
from litemaas_hooks_sandbox.litemaas_schema import apply_litemaas_schema
from litemaas_hooks_sandbox.proxy import SandboxProxy, sandbox_proxy

_SUMMARY = re.compile(r"created (\d+), updated (\d+), unchanged (\d+), retired (\d+)")


@dataclass
class Ours:
    wall: float
    written: int
    engine_seconds: float


def our_backfill(litellm_dsn: str, backend_dsn: str) -> Ours:
    with tempfile.TemporaryDirectory(prefix="pod-cache-") as pod_cache:
        return _our_backfill(litellm_dsn, backend_dsn, pod_cache)


def _our_backfill(litellm_dsn: str, backend_dsn: str, pod_cache: str) -> Ours:
    env = {
        **os.environ,
        "LITELLM_DATABASE_URL": litellm_dsn,
        "LITEMAAS_DATABASE_URL": backend_dsn,
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "LITEMAAS_HOOKS_CACHE_DIR": pod_cache,  # a fresh pod: nothing on disk
    }
    started = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "litemaas-hooks"), "backfill", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    match = _SUMMARY.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise SystemExit(
            "litemaas-hooks backfill failed "
            f"({done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}"
        )
    created, updated, _unchanged, retired = map(int, match.groups())
    engine = re.search(r"models, ([0-9.]+)s\)", done.stdout)
    return Ours(
        wall, created + updated + retired, float(engine.group(1)) if engine else float("nan")
    )


def wait_served(proxy: SandboxProxy, count: int, deadline: float = 600.0) -> float:
    """Seconds until the proxy's /model/info lists ``count`` deployments."""
    started = time.monotonic()
    with proxy.client() as client:
        client.timeout = httpx.Timeout(300)
        while True:
            got = len(client.get("/model/info").json().get("data", []))
            if got >= count:
                return time.monotonic() - started
            if time.monotonic() - started > deadline:
                raise SystemExit(
                    f"the proxy serves {got} of {count} deployments after {deadline:.0f}s"
                )
            time.sleep(1.0)


def install(dsn: str, side: str) -> None:
    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await apply_migrations(conn, side)  # type: ignore[arg-type]

    asyncio.run(run())


def fresh_backend(pg: LocalPostgres, name: str) -> str:
    pg.create_database(name, template="tpl_backend")
    install(pg.dsn(name), "backend")
    return pg.dsn(name)


def shared_answers(litellm_dsn: str) -> int:
    with psycopg.connect(litellm_dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM litemaas_hooks.cost_map_memo, jsonb_object_keys(entries)"
        ).fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000", help="deployment counts, comma-separated")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    tree = litemaas_backend.tree()
    print(f"coexist benchmark — {machine()} — Node {litemaas_backend._node_version()} — fsync off")
    npm = "cached" if tree.npm_ci_seconds is None else f"{tree.npm_ci_seconds:.1f}s"
    print(f"  LiteMaaS tree: {tree.root} (npm ci {npm})")
    with LocalPostgres() as pg:
        pg.create_database("tpl_backend")
        apply_litemaas_schema(pg.dsn("tpl_backend"))
        for size in sizes:
            lname = f"litellm_{size}"
            pg.create_database(lname)
            litellm_dsn = pg.dsn(lname)
            apply_litellm_schema(litellm_dsn)
            seeded = seed(litellm_dsn, size)
            install(litellm_dsn, "litellm")  # our outbox side: it holds the shared cost-map answers
            started = time.perf_counter()
            with sandbox_proxy(litellm_dsn, master_key=MASTER_KEY, plugin=False) as proxy:
                served = wait_served(proxy, size)
                print(
                    f"\n{size} deployments (seeded {seeded:.1f}s; "
                    f"proxy up {proxy.startup_seconds:.1f}s, "
                    f"serving all {time.perf_counter() - started:.1f}s "
                    f"after start, {served:.1f}s waited)"
                )
                first = our_backfill(litellm_dsn, fresh_backend(pg, f"first_{size}"))
                print(
                    f"  first: ours process {first.wall:6.2f}s "
                    f"(engine {first.engine_seconds:.2f}s) rows "
                    f"{first.written:6d}   (nothing shared yet: imports LiteLLM; then "
                    f"{shared_answers(litellm_dsn)} answers shared)"
                )
                ours_dsn = fresh_backend(pg, f"ours_{size}")
                its_dsn = fresh_backend(pg, f"its_{size}")
                for phase in ("cold", "warm"):
                    ours = our_backfill(litellm_dsn, ours_dsn)
                    its = litemaas_backend.sync_models(
                        its_dsn,
                        litellm_url=proxy.base_url,
                        litellm_key=MASTER_KEY,
                        litellm_dsn=litellm_dsn,
                        check=False,
                    )
                    errors = len(its.result.get("errors") or [])
                    print(
                        f"  {phase}: ours process {ours.wall:6.2f}s "
                        f"(engine {ours.engine_seconds:.2f}s) "
                        f"rows {ours.written:6d} | its process "
                        f"{its.wall_seconds:6.2f}s, call {its.call_seconds:6.2f}s "
                        f"rows {its.written:6d}{f' ({errors} errors)' if errors else ''}"
                    )
                    print(
                        "        ratio its/ours: process/process "
                        f"{its.wall_seconds / ours.wall:5.2f}x, "
                        f"call/process {its.call_seconds / ours.wall:5.2f}x"
                        + (
                            "   target >= 3x (process/process)"
                            if size >= 10000
                            else "   target >= 1x (process/process)"
                        )
                    )


if __name__ == "__main__":
    main()
