"""Databases as production has them (issue 21):
timeouts, read-only replicas, a failover, short locks.

Each timeout and replica case gets its own outcome (outages.py): statement_timeout is the batch's
failure (attempts, then dead, the setting named); a read-only server is an outage (no attempt, the
fix named, retried until writable); a server restart mid-batch loses nothing and spends no attempt.
Waits are conditions with a deadline; nothing is timed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from litemaas_hooks import outbox
from litemaas_hooks.relay import Relay
from litemaas_hooks_sandbox.cluster import LocalPostgres
from litemaas_hooks_sandbox.litellm_schema import apply_litellm_schema
from litemaas_hooks_sandbox.litemaas_schema import apply_litemaas_schema
from tests.helpers import (
    backend_models,
    eventually,
    insert,
    insert_rows,
    install,
    litellm_row,
    make_settings,
    probe,
    running,
    wait_until,
)

pytestmark = pytest.mark.anyio

AConn = psycopg.AsyncConnection[Any]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def dbs(litellm_dsn: str, backend_dsn: str) -> tuple[str, str]:
    await install(litellm_dsn, backend_dsn)
    return litellm_dsn, backend_dsn


def _dbname(dsn: str) -> str:
    return str(psycopg.conninfo.conninfo_to_dict(dsn)["dbname"])


@contextlib.asynccontextmanager
async def relay_task(relay: Relay) -> AsyncIterator[Relay]:
    """A relay running in the background that need not get ready (a read-only database)."""
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        yield relay
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def _attempts_spent(lc: AConn) -> int:
    """The most attempts any event spent (a claim in
    progress holds one it gives back on an outage)."""
    cur = await lc.execute(
        "SELECT coalesce(max(attempts - CASE WHEN status = 'claimed' THEN 1 ELSE 0 END), 0) "
        "FROM litemaas_hooks.model_events"
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


# -- timeouts --------------------------------------------------------------------------------------


async def test_statement_timeout_spends_attempts_and_names_the_setting(
    dbs: tuple[str, str], master_key: str
) -> None:
    """Injects: the backend's statement_timeout (100 ms) below what the write takes (a trigger of
    300 ms on models). Asserts: the event is not deferred forever (as contention would be): it
    spends its attempts and ends dead, its last error naming statement_timeout and what to do."""
    ldsn, bdsn = dbs
    async with (
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
    ):
        await bc.execute(
            "CREATE FUNCTION slow_models() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_sleep(0.3); RETURN NEW; END $$"
        )
        await bc.execute(
            "CREATE TRIGGER slow BEFORE INSERT OR UPDATE ON "
            "models FOR EACH ROW EXECUTE FUNCTION slow_models()"
        )
        await bc.execute(f"ALTER DATABASE \"{_dbname(bdsn)}\" SET statement_timeout = '100ms'")
        try:
            await insert(lc, "too-slow", master_key)
            settings = make_settings(ldsn, bdsn, master_key, max_attempts=2)
            async with running(settings):

                async def dead() -> bool:
                    return (await outbox.counts(lc)).dead == 1

                await eventually(
                    dead, deadline_seconds=30, what="the timed-out event is dead after 2 attempts"
                )
            (event,) = await outbox.dead_events(lc)
            assert event.attempts == 2
            assert event.last_error is not None
            assert "statement_timeout" in event.last_error
            assert "57014" in event.last_error
            assert "too-slow" not in await backend_models(bc)
        finally:
            await bc.execute(f'ALTER DATABASE "{_dbname(bdsn)}" RESET statement_timeout')


async def test_read_only_litellm_database_is_an_outage_named_with_its_fix(
    dbs: tuple[str, str], master_key: str
) -> None:
    """Injects: LiteLLM's database read-only (``default_transaction_read_only``: a replica URL, or a
    failover onto a standby) with events waiting. Asserts: the relay keeps retrying with backoff and
    says why each time (read-only, point the URL at the primary), spends no attempt, kills nothing;
    once writable, everything converges."""
    ldsn, bdsn = dbs
    dbname = _dbname(ldsn)
    async with (
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
    ):
        for i in range(3):
            await insert(lc, f"ro-{i}", master_key)
        await lc.execute(f'ALTER DATABASE "{dbname}" SET default_transaction_read_only = on')
        try:
            settings = make_settings(
                ldsn, bdsn, master_key, max_attempts=2, reconnect_max_seconds=0.2
            )
            async with relay_task(Relay(settings, name="ro-relay")) as relay:

                async def retried() -> bool:
                    return relay.stats.reconnects >= 3

                await eventually(retried, what="the relay retried against the read-only database")
                error = relay.stats.last_error or ""
                assert "read-only" in error or "read_only" in error, error
                assert "primary" in error, error
                assert not relay.ready.is_set()
                await lc.execute(f'ALTER DATABASE "{dbname}" RESET default_transaction_read_only')

                async def converged() -> bool:
                    have = await backend_models(bc)
                    return all(have.get(f"ro-{i}") == "available" for i in range(3))

                await eventually(
                    converged, what="everything applied once LiteLLM's database is writable"
                )
        finally:
            await lc.execute(f'ALTER DATABASE "{dbname}" RESET default_transaction_read_only')
        counts = await outbox.counts(lc)
        assert counts.dead == 0


# -- a failover: the server restarts under the relay mid-batch -------------------------------------


@pytest.mark.parametrize("immediate", [False, True], ids=["fast-shutdown", "crash"])
async def test_server_restart_mid_batch_loses_nothing_and_spends_no_attempt(
    master_key: str, immediate: bool
) -> None:
    """Injects: a real restart of the PostgreSQL server holding both databases while the relay is in
    the middle of a batch (its backend write slowed by a trigger, the restart issued when the write
    is seen running). Asserts: the relay reconnects by itself, every model converges, no event is
    dead and none spent an attempt."""
    with LocalPostgres() as pg:
        pg.create_database("litellm_db")
        pg.create_database("backend_db")
        ldsn, bdsn = pg.dsn("litellm_db"), pg.dsn("backend_db")
        await asyncio.to_thread(apply_litellm_schema, ldsn)
        await asyncio.to_thread(apply_litemaas_schema, bdsn)
        await install(ldsn, bdsn)
        with psycopg.connect(bdsn, autocommit=True) as conn:
            conn.execute(
                "CREATE FUNCTION slow_models() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN PERFORM pg_sleep(0.05); RETURN NEW; END $$"
            )
            conn.execute(
                "CREATE TRIGGER slow BEFORE INSERT ON models "
                "FOR EACH ROW EXECUTE FUNCTION slow_models()"
            )
        settings = make_settings(ldsn, bdsn, master_key, max_attempts=2, reconnect_max_seconds=0.2)
        names = [f"failover-{i}" for i in range(30)]
        async with running(settings) as (relay,):
            async with await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc:
                for name in names:
                    await insert(lc, name, master_key)

            async def writing() -> bool:
                async with await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as watcher:
                    cur = await watcher.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                        "AND query LIKE '%upsert_models%' AND application_name LIKE 'relay-0%'"
                    )
                    row = await cur.fetchone()
                    return bool(row and row[0])

            await eventually(writing, what="the relay's batch write is running")
            await asyncio.to_thread(pg.restart, immediate=immediate)

            async def converged() -> bool:
                try:
                    async with await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc:
                        have = await backend_models(bc)
                    async with await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc:
                        counts = await outbox.counts(lc)
                        cur = await lc.execute('SELECT model_name FROM "LiteLLM_ProxyModelTable"')
                        live = [str(r[0]) for r in await cur.fetchall()]
                except psycopg.OperationalError:
                    return False
                # a crash may lose the last commits made without synchronous_commit (the test
                # server's setting): LiteLLM's row and its event together;
                # whatever LiteLLM holds is synced
                if immediate:
                    assert len(live) >= len(names) // 2
                else:
                    assert sorted(live) == sorted(names)
                done = counts.pending == 0 and counts.claimed == 0
                return done and all(have.get(n) == "available" for n in live)

            await eventually(
                converged, deadline_seconds=60, what="every model applied after the restart"
            )
            assert relay.stats.reconnects >= 1
        async with await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc:
            assert (await outbox.counts(lc)).dead == 0
            assert await _attempts_spent(lc) == 0


# -- round trips, counted --------------------------------------------------------------------------


def _latency_link() -> Any:
    """``bench/latency_link.LatencyLink``: a delaying TCP proxy counting round trips (flights)."""
    path = Path(__file__).resolve().parents[2] / "bench" / "latency_link.py"
    spec = importlib.util.spec_from_file_location("bench_latency_link", path)
    assert spec is not None
    assert spec.loader is not None
    module = sys.modules.get(spec.name) or importlib.util.module_from_spec(spec)
    if spec.name not in sys.modules:
        sys.modules[spec.name] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
    return module.LatencyLink


def _scalar_now(dsn: str, query: str, params: tuple[Any, ...] = ()) -> Any:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def test_never_seen_models_cost_four_round_trips_each_their_answers_shared_off_the_path(
    hooks_env: dict[str, str], litellm_dsn: str, backend_dsn: str, master_key: str, tmp_path: Path
) -> None:
    """A burst of adds of models no process has asked LiteLLM about (each a cost-map lookup the
    relay shares with the fleet) costs the relay 4 round trips per change, counted at a 100 ms link
    (long: a process descheduled mid-pipeline on a busy machine may split one flight, hence the
    slack of 2 in 5 changes): claim + read, two backend ones, the completing claim. The share waits
    for the housekeeping (it cost ~8 round trips after every drain, between two changes)."""
    rc, _out, err = probe(["install"], hooks_env)
    assert rc == 0, err
    link_class = _latency_link()
    port = int(psycopg.conninfo.conninfo_to_dict(litellm_dsn)["port"])  # type: ignore[arg-type]
    llink = link_class("127.0.0.1", port, rtt_ms=100).start()
    blink = link_class("127.0.0.1", port, rtt_ms=100).start()
    env = {
        **os.environ,
        **hooks_env,
        "LITELLM_DATABASE_URL": llink.dsn(litellm_dsn),
        "LITEMAAS_DATABASE_URL": blink.dsn(backend_dsn),
        "LITEMAAS_HOOKS_CACHE_DIR": str(tmp_path / "pod"),  # a fresh pod: the memo learns them
        "LITEMAAS_HOOKS_POLL_INTERVAL_SECONDS": "60",
        "LITEMAAS_HOOKS_RECONCILE_INTERVAL_SECONDS": "0",
    }
    exe = Path(sys.executable).with_name("litemaas-hooks")
    log = (tmp_path / "relay.log").open("w")
    env["LITEMAAS_HOOKS_LOG_LEVEL"] = "DEBUG"
    relay = subprocess.Popen([str(exe), "relay"], env=env, stdout=log, stderr=log)
    tag = uuid.uuid4().hex[:10]  # model strings no memo on this machine has seen
    try:

        def add(i: int) -> str:
            name = f"burst-{tag}-{i}"
            params = {"model": f"openai/burst-{tag}-{i}", "api_key": "sk-x"}
            insert_rows(litellm_dsn, [litellm_row(name, params, key=master_key)])
            return name

        def arrived(name: str) -> Callable[[], bool]:
            query = "SELECT count(*) FROM models WHERE id = %s"
            return lambda: _scalar_now(backend_dsn, query, (name,)) == 1

        def outbox_empty() -> bool:
            return bool(
                _scalar_now(litellm_dsn, "SELECT count(*) FROM litemaas_hooks.model_events") == 0
            )

        wait_until(
            arrived(add(0)),
            what="the warm-up model (the relay imports LiteLLM for it)",
            deadline_seconds=120,
        )
        wait_until(outbox_empty, what="the warm-up's completion", deadline_seconds=60)
        before = llink.flights() + blink.flights()
        for i in range(1, 6):
            wait_until(arrived(add(i)), what=f"model {i}", deadline_seconds=60)
        wait_until(outbox_empty, what="the burst's completion", deadline_seconds=60)
        per_change = (llink.flights() + blink.flights() - before) / 5
        assert relay.poll() is None, "the relay died"
        assert per_change <= 4.4, f"{per_change:.1f} round trips per change"
    finally:
        relay.terminate()  # a relay that stops shares what it learnt
        code = relay.wait(30)
        llink.stop()
        blink.stop()
    assert code == 0
    entries = _scalar_now(litellm_dsn, "SELECT entries FROM litemaas_hooks.cost_map_memo")
    log.close()
    shared = {f"openai/burst-{tag}-{i}\x1f" for i in range(6)}
    assert shared <= set(entries or {}), (tmp_path / "relay.log").read_text()[-3000:]
