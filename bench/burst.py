"""Burst benchmark: 2,000 LiteLLM model changes
committed within about one second, drained by 2 relays.

Setup: 1,500 deployments seeded and backfilled. Two `litemaas-hooks relay` subprocesses are started
(poll 30 s, no periodic reconcile: only LISTEN/NOTIFY and the outbox do the work). Then 4 writer
connections commit 2,000 changes, each in its own transaction, as fast as they can:
800 inserts of new names, 700 updates of ``model_info.max_tokens`` (350 models, twice each, from
different writers: the order is decided by the database) and 500 deletes (the only deployment of a
name: a retirement).

Measured: the commit window of the burst; time to converge, from the first commit and from the last
commit, until the outbox is empty AND the backend equals the truth read back from the LiteLLM table
(every live name ``available`` with its latest ``max_tokens``, every deleted name ``unavailable``);
then an engine dry run over everything confirms no difference is left.

- events: rows the trigger wrote to the outbox during
  the burst; applied = events - still pending - dead.
- lost: names whose backend state differs from the
  truth at the deadline, plus dead events (target 0).
- duplicates: audit rows repeated for one transition (a retired name with more than one
  ``MODEL_MARKED_UNAVAILABLE*`` row) (target 0). Also printed: backend writes per kind, counted by a
  bench trigger on ``models``; a "no-op write" rewrote a row to identical content (harmless by
  construction — it cannot change the outcome — but shows
  how much work the level-triggered relays repeated).

Baseline, same run: the same engine applying the burst's 2,000 events one at a time (one converge =
read the truth + one backend transaction per event, no claim batching, no name deduplication) into
an empty copy of the backend schema, after the burst. Ratio = relays' convergence time / baseline.

Target: converge <= 5 s, lost 0, duplicates 0.

    .venv/bin/python bench/burst.py [--changes 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import psycopg

sys.path.insert(0, os.path.dirname(__file__))

from _common import INSERT_ROW, databases, machine, model_row, seed
from latency import install, relay_env, relays

from litemaas_hooks.connections import connect
from litemaas_hooks.reconcile import Reconciler
from litemaas_hooks.settings import load_settings
from litemaas_hooks_sandbox.litemaas_schema import apply_litemaas_schema

WRITES_SQL = """
CREATE TABLE public.bench_writes (model_id text, kind text,
                                  at timestamptz DEFAULT clock_timestamp());
CREATE OR REPLACE FUNCTION public.bench_count_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.bench_writes (model_id, kind) VALUES (NEW.id,
        CASE WHEN TG_OP = 'INSERT' THEN 'insert'
             WHEN (to_jsonb(OLD) - 'updated_at') = (to_jsonb(NEW) - 'updated_at') THEN 'no-op'
             ELSE 'update' END);
    RETURN NULL;
END $$;
CREATE TRIGGER bench_count_write AFTER INSERT OR UPDATE ON models
    FOR EACH ROW EXECUTE FUNCTION public.bench_count_write();
"""
SEEDED = 1500
WRITERS = 4
DEADLINE_SECONDS = 60.0


def plan(changes: int) -> list[tuple[str, Any]]:
    """(op, argument) in commit order, spread over the writers round-robin."""
    inserts = changes * 2 // 5
    updates = changes * 7 // 20
    deletes = changes - inserts - updates
    ops: list[tuple[str, Any]] = [("insert", model_row(50_000 + i)) for i in range(inserts)]
    ops += [("update", (f"bench-model-{i % (updates // 2)}", 5000 + i)) for i in range(updates)]
    ops += [("delete", f"bench-model-{SEEDED - 1 - i}") for i in range(deletes)]
    # interleave the kinds so every writer commits a mix
    return [ops[j] for k in range(3) for j in range(k, len(ops), 3)]


def write_burst(litellm_dsn: str, ops: list[tuple[str, Any]]) -> tuple[float, float]:
    """Commit every op in its own transaction from WRITERS
    connections; returns (first, last) commit time."""
    conns = [psycopg.connect(litellm_dsn, autocommit=True) for _ in range(WRITERS)]
    barrier = threading.Barrier(WRITERS + 1)
    ends: list[float] = []

    def writer(conn: psycopg.Connection[Any], mine: list[tuple[str, Any]]) -> None:
        barrier.wait()
        with conn.pipeline():  # no round trip per change; still one transaction per change
            for op, arg in mine:
                with conn.transaction():
                    apply(conn, op, arg)
        ends.append(time.perf_counter())

    def apply(conn: psycopg.Connection[Any], op: str, arg: Any) -> None:
        if op == "insert":
            conn.execute(INSERT_ROW, arg)
        elif op == "update":
            name, value = arg
            conn.execute(
                """UPDATE "LiteLLM_ProxyModelTable" SET model_info = model_info || %s::jsonb,
                   updated_at = now() WHERE model_name = %s""",
                (json.dumps({"max_tokens": value}), name),
            )
        else:
            conn.execute('DELETE FROM "LiteLLM_ProxyModelTable" WHERE model_name = %s', (arg,))

    threads = [
        threading.Thread(target=writer, args=(conns[w], ops[w::WRITERS]), daemon=True)
        for w in range(WRITERS)
    ]
    for t in threads:
        t.start()
    barrier.wait()
    first = time.perf_counter()
    for t in threads:
        t.join()
    for c in conns:
        c.close()
    return first, max(ends)


def differences(
    lconn: psycopg.Connection[Any], bconn: psycopg.Connection[Any], deleted: set[str]
) -> list[str]:
    """Model names whose backend row differs from the truth
    in the LiteLLM table (availability, max_tokens)."""
    truth = {
        str(name): (int(mt) if mt is not None else None)
        for name, mt in lconn.execute(
            "SELECT model_name, max(model_info->>'max_tokens') "
            'FROM "LiteLLM_ProxyModelTable" GROUP BY 1'
        ).fetchall()
    }
    backend = {
        str(i): (str(a), mt)
        for i, a, mt in bconn.execute("SELECT id, availability, max_tokens FROM models").fetchall()
    }
    wrong = [
        n
        for n, mt in truth.items()
        if backend.get(n, ("", None))[0] != "available" or (mt is not None and backend[n][1] != mt)
    ]
    wrong += [
        n for n in deleted if n not in truth and backend.get(n, ("", None))[0] != "unavailable"
    ]
    return wrong


def outbox_left(lconn: psycopg.Connection[Any]) -> tuple[int, int]:
    row = lconn.execute(
        "SELECT count(*) FILTER (WHERE status <> 'dead'), count(*) FILTER (WHERE status = 'dead') "
        "FROM litemaas_hooks.model_events"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def warm_up(lconn: psycopg.Connection[Any]) -> float:
    """Give each relay one event to apply before the burst; returns how long the first event took.

    The relay imports LiteLLM's helpers on its first event (cold start). Two events 0.3 s apart:
    while one relay is busy with the first (holding its
    claim), the other claims the second (SKIP LOCKED).
    """
    started = time.perf_counter()
    for k in range(2):
        lconn.execute(INSERT_ROW, model_row(90_000 + k))
        time.sleep(0.3)
    while outbox_left(lconn) != (0, 0):
        if time.perf_counter() - started > DEADLINE_SECONDS:
            raise RuntimeError("warm-up events not applied")
        time.sleep(0.05)
    return time.perf_counter() - started


def max_event_id(lconn: psycopg.Connection[Any]) -> int:
    row = lconn.execute(
        "SELECT coalesce(pg_sequence_last_value('litemaas_hooks.model_events_id_seq'), 0)"
    ).fetchone()
    return int(row[0]) if row else 0


async def dry_run(env: dict[str, str]) -> dict[str, int]:
    settings = load_settings(env)
    lite, back = await connect(settings, "litellm"), await connect(settings, "backend")
    try:
        report = await Reconciler(settings).converge(lite, back, None, dry_run=True)
        return dict(report.counts())
    finally:
        await lite.close()
        await back.close()


async def baseline(env: dict[str, str], names_in_order: list[str]) -> float:
    """The same engine, one event at a time: one converge
    (read truth, one backend transaction) per event."""
    settings = load_settings(env)
    lite, back = await connect(settings, "litellm"), await connect(settings, "backend")
    try:
        engine = Reconciler(settings)
        started = time.perf_counter()
        for name in names_in_order:
            await engine.converge(lite, back, [name])
        return time.perf_counter() - started
    finally:
        await lite.close()
        await back.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--changes", type=int, default=2000)
    args = parser.parse_args()
    ops = plan(args.changes)
    deleted = {str(arg) for op, arg in ops if op == "delete"}
    with databases() as (_pg, litellm_dsn, backend_dsn):
        seed(litellm_dsn, SEEDED)
        install(litellm_dsn, backend_dsn)
        exe = os.path.join(os.path.dirname(sys.executable), "litemaas-hooks")
        env = relay_env(litellm_dsn, backend_dsn)
        subprocess.run([exe, "backfill", "--quiet"], env=env, check=True, capture_output=True)
        with psycopg.connect(backend_dsn, autocommit=True) as conn:
            conn.execute(WRITES_SQL)
        lconn = psycopg.connect(litellm_dsn, autocommit=True)
        bconn = psycopg.connect(backend_dsn, autocommit=True)
        first_event = max_event_id(lconn)
        with relays(litellm_dsn, backend_dsn, count=2):
            cold = warm_up(lconn)
            first_event = max_event_id(lconn)
            first, last = write_burst(litellm_dsn, ops)
            converged: float | None = None
            while time.perf_counter() - first < DEADLINE_SECONDS:
                pending, dead = outbox_left(lconn)
                if pending == 0 and not differences(lconn, bconn, deleted):
                    converged = time.perf_counter()
                    break
                time.sleep(0.02)
            pending, dead = outbox_left(lconn)
            wrong = differences(lconn, bconn, deleted)
        events = max_event_id(lconn) - first_event
        dupes = bconn.execute(
            "SELECT count(*) FROM (SELECT resource_id FROM audit_logs "
            "WHERE action LIKE 'MODEL_MARKED_UNAVAILABLE%%' "
            "GROUP BY resource_id HAVING count(*) > 1) d"
        ).fetchone()
        audit = bconn.execute(
            "SELECT count(*) FROM audit_logs WHERE action LIKE 'MODEL_MARKED_UNAVAILABLE%%'"
        ).fetchone()
        writes: dict[str, int] = dict(
            bconn.execute("SELECT kind, count(*) FROM bench_writes GROUP BY 1").fetchall()
        )
        # event names in commit order, for the baseline (one backend transaction per event)
        names = [
            str(op[1][1]) if op[0] == "insert" else str(op[1][0] if op[0] == "update" else op[1])
            for op in ops
        ]
        lconn.close()
        bconn.close()
        check = asyncio.run(dry_run(env))
        _pg.create_database("baseline_db")
        apply_litemaas_schema(_pg.dsn("baseline_db"))
        base_env = {**env, "LITEMAAS_DATABASE_URL": _pg.dsn("baseline_db")}
        subprocess.run(
            [exe, "install", "--backend-only"], env=base_env, check=True, capture_output=True
        )
        base_s = asyncio.run(baseline(base_env, names))

    print(
        f"burst benchmark — {len(ops)} changes, {WRITERS} "
        f"writer connections, 2 relay processes — {machine()}"
    )
    print(
        "  relay cold start (2 warm-up events, first use "
        f"imports LiteLLM helpers): {cold:.1f}s, not counted"
    )
    print(f"  burst committed in {last - first:.2f}s (target: within ~1 s)")
    if converged is None:
        print(f"  NOT converged within {DEADLINE_SECONDS:.0f}s")
        took = float("nan")
    else:
        took = converged - first
        print(
            f"  converged {took:.2f}s after the first commit, "
            f"{converged - last:.2f}s after the last  target <= 5 s"
        )
    print(
        f"  events {events}, applied {events - pending - dead}, "
        f"still pending {pending}, dead {dead}"
    )
    print(f"  lost (backend != truth, or dead): {len(wrong) + dead}  target 0")
    print(
        "  duplicates (retired names with > 1 retirement "
        f"audit row): {dupes[0] if dupes else '?'}  target 0"
    )
    print(
        f"    retirement audit rows {audit[0] if audit else '?'} for {len(deleted)} retired names"
    )
    print(f"  backend row writes: {writes} (no-op = identical rewrite, harmless)")
    print(f"  engine dry run afterwards: {check}")
    print(
        "  baseline (same engine, one converge per event, no "
        f"batching/dedup; empty backend copy): {base_s:.2f}s"
    )
    print(f"  ratio relays/baseline: {took / base_s:.2f}x")


if __name__ == "__main__":
    main()
