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
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
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
                        "AND query ~ 'upsert_models|write_models' "
                        "AND application_name LIKE 'relay-0%'"
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


@dataclasses.dataclass
class LinkedRelay:
    """A `litemaas-hooks relay` process whose two databases are behind counting latency links."""

    litellm_dsn: str
    backend_dsn: str
    llink: Any
    blink: Any
    process: subprocess.Popen[bytes]
    log_path: Path

    def flights(self) -> tuple[int, int]:
        """Round trips so far: (LiteLLM's link, the backend's link)."""
        return int(self.llink.flights()), int(self.blink.flights())

    def arrived(self, name: str, *, count: int = 1) -> Callable[[], bool]:
        query = "SELECT count(*) FROM models WHERE id = %s AND availability = 'available'"
        return lambda: _scalar_now(self.backend_dsn, query, (name,)) == count

    def outbox_empty(self) -> bool:
        query = "SELECT count(*) FROM litemaas_hooks.model_events"
        return bool(_scalar_now(self.litellm_dsn, query) == 0)

    def shared(self, model: str) -> Callable[[], bool]:
        """LiteLLM's answer for ``model`` is shared with the fleet (the relay did its share)."""
        query = "SELECT entries FROM litemaas_hooks.cost_map_memo"
        return lambda: f"{model}\x1f" in (_scalar_now(self.litellm_dsn, query) or {})


@contextlib.contextmanager
def linked_relay(
    hooks_env: dict[str, str],
    litellm_dsn: str,
    backend_dsn: str,
    tmp_path: Path,
    rtt_ms: int,
    warm_up: dict[str, Any],
    warm_up_model: str,
) -> Iterator[LinkedRelay]:
    """A relay process (fresh pod cache, DEBUG log, no periodic work within a minute) behind a
    link of ``rtt_ms`` to each database; stopped (exit code 0 asserted) on the way out.
    ``warm_up``: a row (of model ``warm_up_model``) added before the relay starts: its first drain
    takes it (importing LiteLLM) and its first share follows at once; yielded once both are done,
    so neither lands in what the caller counts."""
    rc, _out, err = probe(["install"], hooks_env)
    assert rc == 0, err
    insert_rows(litellm_dsn, [warm_up])
    link_class = _latency_link()
    port = int(psycopg.conninfo.conninfo_to_dict(litellm_dsn)["port"])  # type: ignore[arg-type]
    llink = link_class("127.0.0.1", port, rtt_ms=rtt_ms).start()
    blink = link_class("127.0.0.1", port, rtt_ms=rtt_ms).start()
    env = {
        **os.environ,
        **hooks_env,
        "LITELLM_DATABASE_URL": llink.dsn(litellm_dsn),
        "LITEMAAS_DATABASE_URL": blink.dsn(backend_dsn),
        "LITEMAAS_HOOKS_CACHE_DIR": str(tmp_path / "pod"),  # a fresh pod: the memo learns them
        "LITEMAAS_HOOKS_POLL_INTERVAL_SECONDS": "60",
        "LITEMAAS_HOOKS_RECONCILE_INTERVAL_SECONDS": "0",
        "LITEMAAS_HOOKS_LOG_LEVEL": "DEBUG",
    }
    exe = Path(sys.executable).with_name("litemaas-hooks")
    log_path = tmp_path / "relay.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([str(exe), "relay"], env=env, stdout=log, stderr=log)
        try:
            relay = LinkedRelay(litellm_dsn, backend_dsn, llink, blink, process, log_path)
            wait_until(
                relay.arrived(str(warm_up["model_name"])),
                what="the warm-up model (the relay imports LiteLLM for it)",
                deadline_seconds=120,
            )
            wait_until(relay.outbox_empty, what="the warm-up's completion", deadline_seconds=60)
            wait_until(relay.shared(warm_up_model), what="the first share, after the first drain")
            yield relay
            assert process.poll() is None, "the relay died"
        finally:
            process.terminate()  # a relay that stops shares what it learnt
            code = process.wait(30)
            llink.stop()
            blink.stop()
    assert code == 0, log_path.read_text()[-3000:]


def test_never_seen_models_cost_three_round_trips_each_their_answers_shared_off_the_path(
    hooks_env: dict[str, str], litellm_dsn: str, backend_dsn: str, master_key: str, tmp_path: Path
) -> None:
    """A burst of adds of models no process has asked LiteLLM about (each a cost-map lookup the
    relay shares with the fleet) costs the relay 3 round trips per change, counted at a 100 ms link
    (long: a process descheduled mid-pipeline on a busy machine may split one flight, hence the
    slack of 2 in 5 changes): claim + read, ONE backend round trip (locks, upsert and sources
    pipelined), the completing claim. The share waits for the housekeeping (it cost ~8 round trips
    after every drain, between two changes)."""
    tag = uuid.uuid4().hex[:10]  # model strings no memo on this machine has seen

    def row(i: int) -> dict[str, Any]:
        params = {"model": f"openai/burst-{tag}-{i}", "api_key": "sk-x"}
        return litellm_row(f"burst-{tag}-{i}", params, key=master_key)

    with linked_relay(
        hooks_env, litellm_dsn, backend_dsn, tmp_path, 100, row(0), f"openai/burst-{tag}-0"
    ) as relay:

        def add(i: int) -> str:
            insert_rows(litellm_dsn, [row(i)])
            return f"burst-{tag}-{i}"

        before = sum(relay.flights())
        for i in range(1, 6):
            wait_until(relay.arrived(add(i)), what=f"model {i}", deadline_seconds=60)
        wait_until(relay.outbox_empty, what="the burst's completion", deadline_seconds=60)
        per_change = (sum(relay.flights()) - before) / 5
        assert per_change <= 3.4, f"{per_change:.1f} round trips per change"
    entries = _scalar_now(litellm_dsn, "SELECT entries FROM litemaas_hooks.cost_map_memo")
    shared = {f"openai/burst-{tag}-{i}\x1f" for i in range(6)}
    assert shared <= set(entries or {}), relay.log_path.read_text()[-3000:]


def test_round_trips_by_kind_of_change(
    hooks_env: dict[str, str], litellm_dsn: str, backend_dsn: str, master_key: str, tmp_path: Path
) -> None:
    """Counted at a 100 ms link, 4 changes of each kind (slack: one split flight per kind): an add
    and an update cost ONE backend round trip (the upsert decides create / update / unchanged
    itself, so the backend rows are not read first); a delete one too (retire_models_v1: its row
    decides the retire in the same statement), and no read of the pending-cascade queue after it
    (the retire says when its cascade is due).
    Each costs LiteLLM two: claim + read, and the completing claim."""
    tag = uuid.uuid4().hex[:10]
    rows = {
        i: litellm_row(
            f"kind-{tag}-{i}", {"model": "openai/gpt-4o", "api_key": "sk-x"}, key=master_key
        )
        for i in range(5)
    }
    with linked_relay(
        hooks_env, litellm_dsn, backend_dsn, tmp_path, 100, rows[0], "openai/gpt-4o"
    ) as relay:

        def counted(change: Callable[[int], Callable[[], bool]]) -> tuple[float, float]:
            before = relay.flights()
            for i in range(1, 5):  # one at a time: no change's wake-up lands in another's claim
                wait_until(change(i), what=f"change {i}", deadline_seconds=60)
                wait_until(relay.outbox_empty, what="its completion", deadline_seconds=60)
            after = relay.flights()
            return (after[0] - before[0]) / 4, (after[1] - before[1]) / 4

        def add(i: int) -> Callable[[], bool]:
            insert_rows(litellm_dsn, [rows[i]])
            return relay.arrived(rows[i]["model_name"])

        def update(i: int) -> Callable[[], bool]:
            query = (
                'UPDATE "LiteLLM_ProxyModelTable" SET model_info = model_info || %s::jsonb '
                "WHERE model_id = %s"
            )
            info = json.dumps({"description": f"now {i}"})
            _scalar_now(litellm_dsn, query + " RETURNING 1", (info, rows[i]["model_id"]))
            described = "SELECT description FROM models WHERE id = %s"
            return lambda: _scalar_now(backend_dsn, described, (rows[i]["model_name"],)) is not None

        def delete(i: int) -> Callable[[], bool]:
            query = 'DELETE FROM "LiteLLM_ProxyModelTable" WHERE model_id = %s RETURNING 1'
            _scalar_now(litellm_dsn, query, (rows[i]["model_id"],))
            gone = "SELECT availability FROM models WHERE id = %s"
            return lambda: _scalar_now(backend_dsn, gone, (rows[i]["model_name"],)) == "unavailable"

        for kind, change, backend_trips in (
            ("add", add, 1),
            ("update", update, 1),
            ("delete", delete, 1),
        ):
            litellm_per, backend_per = counted(change)
            figures = f"{kind}: LiteLLM {litellm_per:.2f}, backend {backend_per:.2f} per change"
            assert backend_per <= backend_trips + 0.25, figures
            assert litellm_per <= 2.25, figures
