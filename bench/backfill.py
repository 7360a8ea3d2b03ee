"""Backfill benchmark: 10,000 LiteLLM deployments -> backend models, against a per-row baseline.

Prints: cold backfill time, warm (no-change) re-run time and rows written, the per-row baseline that
issues the backend's own query pattern (SELECT, then INSERT or UPDATE, one model at a time) and the
ratio, and the peak RSS of a `litemaas-hooks backfill` process. Targets: cold <= 3 s, warm <= 1 s
with 0 rows written, >= 10x faster than the baseline, peak RSS <= 200 MB.

    .venv/bin/python bench/backfill.py [--models 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import psycopg

sys.path.insert(0, os.path.dirname(__file__))

from _common import MASTER_KEY, databases, machine, seed

from litemaas_hooks.connections import connect
from litemaas_hooks.litellm_source import read_truth
from litemaas_hooks.mapping import map_model
from litemaas_hooks.migrations import apply_migrations
from litemaas_hooks.reconcile import Reconciler, Report
from litemaas_hooks.settings import load_settings

BASELINE_COLUMNS = (
    "name, provider, description, category, context_length, "
    "input_cost_per_token, output_cost_per_token, "
    "supports_vision, supports_function_calling, "
    "supports_tool_choice, supports_parallel_function_calling, "
    "supports_streaming, features, availability, "
    "version, metadata, api_base, tpm, rpm, max_tokens, "
    "litellm_model_id, backend_model_name"
)


async def engine_run(env: dict[str, str]) -> Report:
    settings = load_settings(env)
    lite, back = await connect(settings, "litellm"), await connect(settings, "backend")
    try:
        return await Reconciler(settings).converge(lite, back, None)
    finally:
        await lite.close()
        await back.close()


async def baseline_run(env: dict[str, str]) -> tuple[float, float, int]:
    """Same truth and mapping, written the way the backend's ModelSyncService does: row by row.

    Returns (total seconds, write-phase seconds, rows written).
    """
    settings = load_settings(env)
    started = time.perf_counter()
    lite = await connect(settings, "litellm")
    truth = await read_truth(lite, None, key=settings.decryption_key())
    await lite.close()
    records = [map_model(name, deps).to_json() for name, deps in truth.deployments.items()]
    write_started = time.perf_counter()
    written = 0
    async with await psycopg.AsyncConnection.connect(
        env["LITEMAAS_DATABASE_URL"], autocommit=True
    ) as back:
        for rec in records:
            name = rec["id"]
            values: list[Any] = [
                rec["name"], rec["provider"], rec["description"], rec["category"],
                rec["context_length"], rec["input_cost_per_token"], rec["output_cost_per_token"],
                rec["supports_vision"], rec["supports_function_calling"],
                rec["supports_tool_choice"],
                rec["supports_parallel_function_calling"], rec["supports_streaming"],
                rec["features"], "available", rec["version"],
                psycopg.types.json.Jsonb(rec["metadata"]), rec["api_base"],
                rec["tpm"], rec["rpm"], rec["max_tokens"], rec["litellm_model_id"],
                rec["backend_model_name"],
            ]  # fmt: skip
            cur = await back.execute("SELECT * FROM models WHERE id = %s", (name,))
            if await cur.fetchone() is None:
                await back.execute(
                    f"INSERT INTO models (id, {BASELINE_COLUMNS}) "
                    f"VALUES (%s{', %s' * len(values)})",
                    [name, *values],
                )
            else:
                sets = ", ".join(f"{c.strip()} = %s" for c in BASELINE_COLUMNS.split(","))
                await back.execute(f"UPDATE models SET {sets} WHERE id = %s", [*values, name])
            written += 1
    now = time.perf_counter()
    return now - started, now - write_started, written


# ru_maxrss of a child counts the parent's memory at fork time (Linux keeps it across exec), so the
# child reports its own peak instead: VmHWM of its own address space, read just before it exits.
_HWM = (
    "print(next(l.split()[1] for l in open('/proc/self/status') "
    "if l.startswith('VmHWM')), file=sys.stderr)"
)


def _peak_mb(stderr: str) -> float:
    return int(stderr.strip().splitlines()[-1]) / 1024


def _imported(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    return lines[-2] if len(lines) > 1 else "?"


def cli_rss(env: dict[str, str]) -> tuple[float, float, str]:
    """Wall time and peak RSS (MB) of a `litemaas-hooks backfill` process."""
    code = (
        "import sys\nfrom litemaas_hooks.cli import main\n"
        "try:\n    main(['backfill', '--quiet'])\nfinally:\n"
        "    print('litellm imported' if 'litellm' in sys.modules "
        "else 'litellm not imported', file=sys.stderr)\n"
        f"    {_HWM}"
    )
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - started, _peak_mb(proc.stderr), _imported(proc.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument(
        "--fast-server",
        action="store_true",
        help="fsync off, data in memory (the test suite's server)",
    )
    args = parser.parse_args()
    with databases(durable=not args.fast_server) as (pg, litellm_dsn, backend_dsn):
        pg.create_database("baseline_db", template=None)
        from litemaas_hooks_sandbox.litemaas_schema import apply_litemaas_schema

        apply_litemaas_schema(pg.dsn("baseline_db"))
        seed_s = seed(litellm_dsn, args.models)
        env = {
            "LITEMAAS_DATABASE_URL": backend_dsn,
            "LITELLM_DATABASE_URL": litellm_dsn,
            "LITELLM_MASTER_KEY": MASTER_KEY,
        }

        async def install() -> None:
            async with await psycopg.AsyncConnection.connect(backend_dsn, autocommit=True) as conn:
                await apply_migrations(conn, "backend")

        asyncio.run(install())
        asyncio.run(engine_run(env))  # warm up imports and the cost-map cache outside the timings
        with psycopg.connect(backend_dsn, autocommit=True) as conn:
            conn.execute("TRUNCATE models CASCADE")
            conn.execute("TRUNCATE litemaas_hooks.hidden_models")

        from litemaas_hooks.litellm_adapter import clear_cost_map_cache

        clear_cost_map_cache()
        cold = asyncio.run(engine_run(env))
        warm = asyncio.run(engine_run(env))
        base_s, base_write_s, _rows = asyncio.run(
            baseline_run({**env, "LITEMAAS_DATABASE_URL": pg.dsn("baseline_db")})
        )
        # whole `backfill` processes, as an operator runs them: cold (empty backend) with no
        # cost-map memo yet (LiteLLM is imported once to learn
        # its answers), cold with the memo, and warm
        env = {**env, "LITEMAAS_HOOKS_CACHE_DIR": tempfile.mkdtemp(prefix="lmh-bench-cache-")}
        processes: list[tuple[str, float, float, str]] = []
        for label, empty_memo in (
            ("cold, no memo", True),
            ("cold, memo", False),
            ("warm, memo", False),
        ):
            if label.startswith("cold"):
                with psycopg.connect(backend_dsn, autocommit=True) as conn:
                    conn.execute("TRUNCATE models CASCADE")
                    conn.execute("TRUNCATE litemaas_hooks.hidden_models")
            if empty_memo:
                shutil.rmtree(env["LITEMAAS_HOOKS_CACHE_DIR"], ignore_errors=True)
            processes.append((label, *cli_rss(env)))
        wall, rss = processes[-1][1], processes[-1][2]
        import_s, import_mb = litellm_import_cost()

    c = cold.counts()

    def phases(r: Report) -> str:
        return ", ".join(f"{k} {v:.2f}s" for k, v in r.phases.items())

    server = "fsync off, tmpfs" if args.fast_server else "fsync on, on disk (production-like)"
    print(f"backfill benchmark — {args.models} deployments — {machine()} — PostgreSQL {server}")
    print(f"  seeding (LiteLLM row builder + encryption): {seed_s:.2f}s")
    print(
        f"  cold backfill:  {cold.seconds:.2f}s  "
        f"[{phases(cold)}]  created {c['created']}  target <= 3 s"
    )
    print(
        f"  warm re-run:    {warm.seconds:.2f}s  [{phases(warm)}] "
        f" rows written {warm.rows_written}  target <= 1 s, 0"
    )
    print(
        "  per-row baseline (SELECT then INSERT/UPDATE per "
        f"model): {base_s:.2f}s, of which writes {base_write_s:.2f}s"
    )
    write_ratio = base_write_s / cold.phases["apply"]
    print(
        f"  speed-up vs baseline: writes {write_ratio:.1f}x, "
        f"end to end {base_s / cold.seconds:.1f}x  target >= 10x"
    )
    for label, p_wall, p_rss, imported in processes:
        print(
            f"  `litemaas-hooks backfill` process ({label}): "
            f"{p_wall:.2f}s wall, peak RSS {p_rss:.0f} MB, {imported}"
        )
    print(
        f"  `litemaas-hooks backfill` process (warm): {wall:.2f}s "
        f"wall, peak RSS {rss:.0f} MB  target <= 200 MB"
    )
    print(f"  (`import litellm` alone: {import_s:.2f}s, {import_mb:.0f} MB RSS in a fresh process)")


def litellm_import_cost() -> tuple[float, float]:
    code = (
        "import sys, time\nt = time.perf_counter()\nimport "
        f"litellm\nprint(time.perf_counter() - t)\n{_HWM}"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(proc.stdout.split()[0]), _peak_mb(proc.stderr)


if __name__ == "__main__":
    main()
