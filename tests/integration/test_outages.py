"""The relay when a database or a relay fails: outages, cut connections, killed relays, held locks,
a read-only backend, skewed clocks. Nothing is lost and no attempt is spent on what is not the
event's fault.

Each test says in its docstring what it injects and asserts that nothing is lost: every change made
in LiteLLM ends up in the backend (or, when it cannot be synced, is kept in the outbox with its
error), and no change is applied twice in a way that changes the outcome (exactly one audit row per
retirement). After the long scenarios the provider api_key, the master key and the database password
are searched for in every table of the backend database, in the captured logs and in the errors.

Real PostgreSQL (the session's throwaway server), LiteLLM's real schema and encryption, the real
relay. Every wait is a condition polled against a deadline (``eventually``). Works with LiteLLM 1.81
(no ``blocked`` column) and 1.108.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from litemaas_hooks import outbox
from litemaas_hooks.reconcile import Reconciler
from litemaas_hooks.status import collect_status, format_status
from litemaas_hooks_sandbox.cluster import LocalPostgres
from tests.helpers import (
    TABLE,
    AConn,
    add,
    add_good,
    add_text,
    assert_no_secrets,
    audits,
    backend_models,
    conns,
    eventually,
    install,
    is_available,
    litellm_truth,
    make_settings,
    matches_truth,
    outbox_empty,
    row_text,
    running,
    scalar,
    terminate,
)

pytestmark = pytest.mark.anyio

# -- helpers --------------------------------------------------------------------------------------


# -- backend outage -------------------------------------------------------------------------------


@pytest.mark.slow
async def test_backend_down_20s_while_300_changes_land(
    dbs: tuple[str, str], master_key: str, pg_cluster: LocalPostgres, logs: list[str]
) -> None:
    """Injects: the backend database refuses every connection for >= 20 s (``ALTER DATABASE ...
    ALLOW_CONNECTIONS false`` + ``pg_terminate_backend`` of its sessions: what a restart or failover
    looks like to a client, without stopping the shared test server) while 330 changes (inserts,
    updates, deletes of synced models, renames) are committed in LiteLLM in waves during the outage.

    Asserts: every change is in the outbox during the outage (none lost, none claimed for good), the
    relay keeps retrying without counting attempts, and after recovery the backend equals LiteLLM's
    truth with exactly one audit row per retired name (no retire applied twice)."""
    ldsn, bdsn = dbs
    bname = str(conninfo_to_dict(bdsn)["dbname"])
    settings = make_settings(ldsn, bdsn, master_key, batch_size=50, poll_interval_seconds=0.5)
    async with (
        running(settings) as (relay,),
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(pg_cluster.dsn(), autocommit=True) as admin,
    ):
        pre = [f"pre-{i:02d}" for i in range(40)]
        for name in pre:
            await add(lc, name, master_key, max_tokens=1)
        async with await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc:
            await eventually(
                lambda: matches_truth(lc, bc, set()), what="40 models synced before the outage"
            )

        retired = set(pre[:15]) | set(pre[15:20])  # 15 deleted, 5 renamed away
        changes: list[tuple[str, tuple[Any, ...]]] = []
        for i in range(150):
            changes.append(("add", (f"new-{i:03d}",)))
        for i in range(130):
            changes.append(("update", (f"new-{i:03d}", i + 10)))
        for name in pre[:15]:
            changes.append(("delete", (name,)))
        for name in pre[15:20]:
            changes.append(("rename", (name, f"{name}-renamed")))
        for i, name in enumerate(pre[20:50]):
            changes.append(("update", (name, 1000 + i)))
        assert len(changes) >= 300

        async def apply(kind: str, args: tuple[Any, ...]) -> None:
            if kind == "add":
                await add(lc, args[0], master_key, max_tokens=1)
            elif kind == "update":
                await lc.execute(
                    f"UPDATE {TABLE} SET model_info = model_info "
                    "|| jsonb_build_object('max_tokens', %s::int) "
                    "WHERE model_name = %s",
                    (args[1], args[0]),
                )
            elif kind == "delete":
                await lc.execute(f"DELETE FROM {TABLE} WHERE model_name = %s", args)
            else:
                await lc.execute(
                    f"UPDATE {TABLE} SET model_name = %s WHERE model_name = %s", (args[1], args[0])
                )

        ident = sql.Identifier(bname)
        await admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(ident))
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (bname,),
            )
            outage_started = time.monotonic()
            pending = list(changes)
            # changes land in waves, one wave per failed reconnect attempt of the relay, for >= 20 s
            while pending or time.monotonic() - outage_started < 20:
                wave, pending = pending[:25], pending[25:]
                for kind, args in wave:
                    await apply(kind, args)
                attempts = relay.stats.reconnects

                async def retried(attempts: int = attempts) -> bool:
                    return relay.stats.reconnects > attempts

                await eventually(
                    retried, deadline_seconds=10, what="the relay retries during the outage"
                )
            assert not relay.stats.connected
            counts = await outbox.counts(lc)
            # every change is kept
            assert (counts.pending, counts.claimed, counts.dead) == (len(changes), 0, 0)
            outage = time.monotonic() - outage_started
        finally:
            await admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(ident))
        assert outage >= 20

        async with await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc:
            took = await eventually(
                lambda: matches_truth(lc, bc, retired),
                deadline_seconds=30,
                what="caught up after the outage",
            )
            truth = await litellm_truth(lc)
            assert len(truth) == 40 - 15 + 150
            assert truth["new-005"] == 15
            # every retire applied exactly once
            assert await audits(bc) == dict.fromkeys(retired, 1)
        assert relay.stats.events_failed == 0  # an outage is not an attempt
        assert relay.stats.reconnects >= 10
        print(
            f"\nbackend outage {outage:.1f}s, {len(changes)} "
            f"changes, caught up {took:.2f}s after recovery"
        )
    assert any("retrying in" in line for line in logs)
    await assert_no_secrets(pg_cluster, ldsn, bdsn, [master_key], {"logs": "\n".join(logs)})


# -- LiteLLM connection killed mid-stream ----------------------------------------------------------


async def test_litellm_connection_terminated_mid_stream(
    dbs: tuple[str, str], master_key: str, pg_cluster: LocalPostgres, logs: list[str]
) -> None:
    """Injects: ``pg_terminate_backend`` of the relay's LiteLLM connection (LISTEN, claims, truth
    reads) twice while a writer streams 150 inserts + 150 updates and the relay drains in batches of
    5 (the idle case is covered in test_relay.py).

    Asserts: the relay reconnects, gives back its claims and drains: every name is in the backend
    with its last value, the outbox is empty, no attempt was counted against an event."""
    ldsn, bdsn = dbs
    settings = make_settings(ldsn, bdsn, master_key, batch_size=5)
    names = [f"s-{i:03d}" for i in range(150)]
    async with (
        running(settings) as (relay,),
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
    ):

        async def writer() -> None:
            async with await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as wc:
                for i, name in enumerate(names):
                    await add(wc, name, master_key, max_tokens=1)
                    await wc.execute(
                        f"UPDATE {TABLE} SET model_info = model_info "
                        "|| jsonb_build_object('max_tokens', %s::int) "
                        "WHERE model_name = %s",
                        (i + 2, name),
                    )

        task = asyncio.create_task(writer())
        try:
            for round_, applied in enumerate((20, 80)):

                async def progressed(applied: int = applied, round_: int = round_) -> bool:
                    n = await scalar(bc, "SELECT count(*) FROM models")
                    return (
                        n >= applied
                        and relay.stats.sessions == round_ + 1
                        and relay.stats.connected
                    )

                await eventually(progressed, deadline_seconds=30, what=f"{applied} models applied")
                await terminate(lc, "relay-0:litellm")
            await asyncio.wait_for(task, 60)
        finally:
            task.cancel()
        await eventually(
            lambda: matches_truth(lc, bc, set()),
            deadline_seconds=30,
            what="drained after reconnects",
        )
        assert len(await backend_models(bc)) == len(names)
        assert await scalar(bc, "SELECT max_tokens FROM models WHERE id = 's-149'") == 151
        assert relay.stats.reconnects >= 2
        assert relay.stats.events_failed == 0
        assert (await outbox.counts(lc)).dead == 0
    await assert_no_secrets(pg_cluster, ldsn, bdsn, [master_key], {"logs": "\n".join(logs)})


# -- relay process SIGKILLed mid-batch, repeatedly ------------------------------------------------

# `litemaas-hooks relay` is `cli.main(["relay"])`. Importing litellm costs ~7-15 s per process, so a
# parent imports it once and forks each relay process; the child runs exactly the console script's
# code. The parent's stdout is the reply channel (one pid per line); a child's stdout is its own
# file (argv[1]), like a console script's: a child
# printing into the channel would read as a garbled reply.
FORK_SERVER = r"""
import os, signal, sys
import litellm  # noqa: F401  (the expensive import, done once)
from litellm.proxy.common_utils import encrypt_decrypt_utils  # noqa: F401
from litemaas_hooks import cli, reconcile, relay  # noqa: F401
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() != "spawn":
        continue
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        out = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(out, 1)
        os.close(out)
        os._exit(cli.main(["relay"]))
    print(pid, flush=True)
"""


class RelayProcesses:
    """``litemaas-hooks relay`` processes forked from a parent that imported litellm once."""

    def __init__(self, env: dict[str, str], stderr: Path, stdout: Path) -> None:
        self._err = stderr.open("wb")
        self._proc = subprocess.Popen(
            [sys.executable, "-c", FORK_SERVER, str(stdout)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
        )
        self.pids: list[int] = []
        assert self._readline() == "ready"

    def _readline(self) -> str:
        assert self._proc.stdout is not None
        raw = self._proc.stdout.readline()
        assert raw, f"fork server died (rc {self._proc.poll()})"
        line = raw.strip()
        assert line == "ready" or line.isdigit(), f"fork server: unexpected reply {raw!r}"
        return line

    def spawn(self) -> int:
        assert self._proc.stdin is not None
        self._proc.stdin.write("spawn\n")
        self._proc.stdin.flush()
        pid = int(self._readline())
        self.pids.append(pid)
        return pid

    def close(self) -> None:
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._err.close()


async def test_relay_process_sigkilled_mid_batch_three_times(
    hooks_env: dict[str, str], master_key: str, pg_cluster: LocalPostgres, tmp_path: Path
) -> None:
    """Injects: three times, a ``litemaas-hooks relay`` process is SIGKILLed while it holds a
    claimed batch (seen in the outbox), between waves of
    inserts, updates and deletes of synced models.

    Asserts: the claims left behind are taken over at once by the next relay (their database session
    is gone; the stall timeout is the default 120 s and is not what recovers them), the kills cost
    no attempt (LITEMAAS_HOOKS_MAX_ATTEMPTS=2: nothing dies) and the final backend state equals
    LiteLLM's truth, with one audit row per retired name; the relays wrote nothing to stdout."""
    ldsn, bdsn = hooks_env["LITELLM_DATABASE_URL"], hooks_env["LITEMAAS_DATABASE_URL"]
    await install(ldsn, bdsn)
    env = {
        **os.environ,
        **hooks_env,
        "LITEMAAS_HOOKS_STALL_TIMEOUT_SECONDS": "120",
        "LITEMAAS_HOOKS_MAX_ATTEMPTS": "2",
        "LITEMAAS_HOOKS_POLL_INTERVAL_SECONDS": "0.2",
        "LITEMAAS_HOOKS_BATCH_SIZE": "5",
        "LITEMAAS_HOOKS_RECONCILE_INTERVAL_SECONDS": "0",
        "LITEMAAS_HOOKS_RECONNECT_MAX_SECONDS": "1",
        "LITEMAAS_HOOKS_LOG_LEVEL": "DEBUG",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    env.pop("LITELLM_SALT_KEY", None)
    stderr, stdout = tmp_path / "relays.stderr", tmp_path / "relays.stdout"
    procs = RelayProcesses(env, stderr, stdout)
    retired: set[str] = set()
    stranded = 0
    try:
        async with (
            await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
            await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
        ):
            claimed = "SELECT count(*) FROM litemaas_hooks.model_events WHERE status = 'claimed'"
            for wave in range(3):
                for i in range(60):
                    await add(lc, f"w{wave}-{i:02d}", master_key, max_tokens=wave)
                await lc.execute(
                    f"UPDATE {TABLE} SET model_info = model_info || "
                    "jsonb_build_object('max_tokens', 100 + %s::int) "
                    "WHERE model_name LIKE %s",
                    (wave, f"w{wave}-1%"),
                )
                if wave:  # delete models of the previous wave that reached the backend
                    have = await backend_models(bc)
                    victims = sorted(n for n in have if n.startswith(f"w{wave - 1}-"))[:5]
                    for name in victims:
                        await lc.execute(f"DELETE FROM {TABLE} WHERE model_name = %s", (name,))
                    retired.update(victims)
                pid = procs.spawn()

                async def mid_batch() -> bool:
                    return bool(await scalar(bc, "SELECT count(*) FROM models") > 0) and bool(
                        await scalar(lc, claimed)
                    )

                await eventually(
                    mid_batch, deadline_seconds=90, what="the relay is applying a batch"
                )
                os.kill(pid, signal.SIGKILL)
                stranded += int(await scalar(lc, claimed))
            assert stranded > 0  # the kills really left claimed batches behind

            procs.spawn()
            await eventually(
                lambda: matches_truth(lc, bc, retired),
                deadline_seconds=30,
                what="the last relay converged",
            )
            assert len(await litellm_truth(lc)) == 180 - len(retired)
            assert await audits(bc) == dict.fromkeys(retired, 1)
            assert (await outbox.counts(lc)).dead == 0
    finally:
        procs.close()
    text = stderr.read_text()
    assert "whose database session ended" in text
    assert "stalled claims" not in text
    # a relay writes nothing to stdout (LiteLLM >= 1.108
    # printed a "Provider List" banner per lookup)
    assert stdout.read_text() == ""
    await assert_no_secrets(pg_cluster, ldsn, bdsn, [master_key], {"relay stderr": text})


# -- trigger dropped by a LiteLLM schema update ----------------------------------------------------


# -- least privilege -------------------------------------------------------------------------------


# -- bad input -------------------------------------------------------------------------------------

# -- LiteLLM's prints never reach our stdout ------------------------------------------------------




@pytest.mark.parametrize("relays", [1, 2])
async def test_a_locked_backend_row_holds_up_nothing_else_and_costs_no_attempt(
    dbs: tuple[str, str], master_key: str, relays: int
) -> None:
    """Injects: an admin transaction holding ``SELECT ... FOR UPDATE`` on the backend row of
    ``held`` (and of ``held-gone``), then LiteLLM changes ``held``, deletes ``held-gone`` and adds
    ``fresh``. Asserts, with one relay and with two:
    ``fresh`` is synced at once (well within the 2 s lock
    timeout: nobody waits for the held row); the held names' events stay pending with no attempt
    spent, never dead (LITEMAAS_HOOKS_MAX_ATTEMPTS=2) while the lock is held until they were
    deferred one round more than it would take them to die if a deferral cost an attempt; once it is
    released they are applied."""
    ldsn, bdsn = dbs
    settings = make_settings(ldsn, bdsn, master_key, max_attempts=2)
    async with (
        conns(ldsn, bdsn) as (lc, bc),
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as admin,
    ):
        for name in ("held", "held-gone"):
            await add_good(lc, name, master_key)
        await Reconciler(settings).converge(lc, bc, names=None)
        await lc.execute("DELETE FROM litemaas_hooks.model_events")
        async with running(settings, count=relays) as fleet:
            tx = admin.transaction()
            await tx.__aenter__()
            try:
                await admin.execute(
                    "SELECT * FROM models WHERE id IN ('held', 'held-gone') FOR UPDATE"
                )
                await lc.execute(
                    f"UPDATE {TABLE} SET model_info = model_info || "
                    "'{\"max_tokens\": 7}' WHERE model_name = 'held'"
                )
                await lc.execute(f"DELETE FROM {TABLE} WHERE model_name = 'held-gone'")
                t0 = time.perf_counter()
                await add_good(lc, "fresh", master_key)
                took = await eventually(
                    lambda: is_available(bc, "fresh"), what="fresh synced despite the held row"
                )
                fresh_seconds = time.perf_counter() - t0
                assert took < 1.5, took  # < the 2 s lock timeout: nobody waited for the held row

                # 2 held events, each one round past where it would die
                rounds = 2 * (settings.max_attempts + 1)

                async def held_through_rounds() -> bool:
                    # every poll is also a sample of the invariant while the lock is held
                    cur = await lc.execute(
                        "SELECT max(attempts), count(*) FILTER (WHERE "
                        "status = 'dead') FROM litemaas_hooks.model_events"
                    )
                    attempts, dead = await cur.fetchone()  # type: ignore[misc]
                    assert dead == 0
                    assert (attempts or 0) <= 1  # 1 only while claimed; given back right after
                    return sum(r.stats.events_deferred for r in fleet) >= rounds

                # had a deferral cost an attempt, the held events would be dead by now
                # (MAX_ATTEMPTS=2)
                await eventually(
                    held_through_rounds,
                    deadline_seconds=60,
                    what=f"the held names deferred {rounds} times",
                )
            finally:
                await tx.__aexit__(None, None, None)
            released = time.perf_counter()

            async def applied() -> bool:
                cur = await bc.execute(
                    "SELECT id, availability, max_tokens FROM models WHERE id LIKE 'held%%'"
                )
                have = {r[0]: (r[1], r[2]) for r in await cur.fetchall()}
                return have == {"held": ("available", 7), "held-gone": ("unavailable", 1)}

            await eventually(applied, what="held names applied after the lock is released")
            heal_seconds = time.perf_counter() - released
            assert (await outbox.counts(lc)).dead == 0
            print(
                f"locked row: fresh synced in {fresh_seconds * 1000:.0f} ms; held names applied "
                f"{heal_seconds * 1000:.0f} ms after release ({relays} relays)"
            )


async def test_read_only_backend_is_an_outage_not_an_attempt(
    dbs: tuple[str, str], master_key: str
) -> None:
    """Injects: the backend database made read-only (``default_transaction_read_only``, as after a
    failover onto a replica) while adds, an update and a delete land. Asserts: with
    LITEMAAS_HOOKS_MAX_ATTEMPTS=2 and retries every 50 ms nothing dies and no attempt is spent while
    the relay retries for several rounds; once writable again everything converges."""
    ldsn, bdsn = dbs
    settings = make_settings(ldsn, bdsn, master_key, max_attempts=2, reconnect_max_seconds=0.2)
    dbname = psycopg.conninfo.conninfo_to_dict(bdsn)["dbname"]
    async with conns(ldsn, bdsn) as (lc, bc):
        await add_good(lc, "to-delete", master_key)
        await Reconciler(settings).converge(lc, bc, names=None)
        await lc.execute("DELETE FROM litemaas_hooks.model_events")
        await bc.execute(f'ALTER DATABASE "{dbname}" SET default_transaction_read_only = on')
        try:
            async with running(settings) as (relay,):
                for i in range(5):
                    await add_good(lc, f"ro-{i}", master_key)
                await lc.execute(f"DELETE FROM {TABLE} WHERE model_name = 'to-delete'")

                async def tried() -> bool:
                    return relay.stats.outages >= 5

                await eventually(tried, what="the relay met the read-only backend five times")
                c = await outbox.counts(lc)
                assert c.dead == 0
                # attempts spent, not counting the one a claim in progress holds (given back on the
                # outage); over every event: at any instant all of them may be claimed (no pending
                # row to look at)
                cur = await lc.execute(
                    "SELECT count(*), max(attempts - CASE WHEN "
                    "status = 'claimed' THEN 1 ELSE 0 END) "
                    "FROM litemaas_hooks.model_events"
                )
                assert await cur.fetchone() == (6, 0)  # 5 adds + 1 delete
                assert "read-only" in (relay.stats.last_error or "") or "read_only" in (
                    relay.stats.last_error or ""
                )
                await bc.execute(f'ALTER DATABASE "{dbname}" RESET default_transaction_read_only')
                took = await eventually(
                    lambda: _all_synced(bc, lc),
                    what="everything applied once the backend is writable",
                )
                print(f"read-only backend: converged {took * 1000:.0f} ms after it became writable")
        finally:
            await bc.execute(f'ALTER DATABASE "{dbname}" RESET default_transaction_read_only')
        assert (await outbox.counts(lc)).dead == 0
        assert (await backend_models(bc))["to-delete"] == "unavailable"


async def _all_synced(bc: AConn, lc: AConn) -> bool:
    have = await backend_models(bc)
    c = await outbox.counts(lc)
    return (
        c.pending == 0
        and c.claimed == 0
        and all(have.get(f"ro-{i}") == "available" for i in range(5))
    )


async def test_dead_relays_claims_are_taken_over_at_once_and_cost_no_attempt(
    dbs: tuple[str, str], master_key: str
) -> None:
    """Injects: three times, a "relay" session claims the event of ``orphan`` and dies (its database
    session ends, as with SIGKILL or a lost pod) before completing it; the stall timeout is 120 s
    and LITEMAAS_HOOKS_MAX_ATTEMPTS=2. Asserts: each time the claim is back to pending with attempts
    0 at the next recovery; a relay started afterwards applies it within a second, without waiting
    for the stall timeout."""
    ldsn, bdsn = dbs
    settings = make_settings(ldsn, bdsn, master_key, max_attempts=2, stall_timeout_seconds=120.0)
    async with conns(ldsn, bdsn) as (lc, bc):
        await add_good(lc, "orphan", master_key)
        for kill in range(3):
            async with await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as doomed:
                (claimed,) = await outbox.claim(doomed, worker=f"doomed-{kill}", batch_size=10)
                assert claimed.attempts == 1
            # the session is gone: any relay's recovery gives the
            # claim back at once, not as an attempt

            async def given_back() -> bool:
                recovered = await outbox.recover_dead_sessions(lc)
                return bool(recovered) or (await outbox.counts(lc)).claimed == 0

            await eventually(given_back, what="the dead session's claim given back")
            cur = await lc.execute(
                "SELECT status, attempts, last_error FROM litemaas_hooks.model_events"
            )
            status, attempts, error = await cur.fetchone()  # type: ignore[misc]
            assert (status, attempts) == ("pending", 0)
            assert "database session ended" in error
        # a claim of a dead session left for a fresh relay: taken over at its start
        async with await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as doomed:
            await outbox.claim(doomed, worker="doomed-last", batch_size=10)
        t0 = time.perf_counter()
        async with running(settings) as (relay,):
            await eventually(
                lambda: is_available(bc, "orphan"), deadline_seconds=5, what="orphan applied"
            )
            took = time.perf_counter() - t0
            assert relay.stats.dead_sessions_recovered == 1
            assert relay.stats.stalled_recovered == 0
        assert (await outbox.counts(lc)).dead == 0
        print(
            f"dead relay's claim applied {took * 1000:.0f} ms "
            "after a new relay started (stall timeout 120 s)"
        )

        # an event that kills every relay (say, out of memory) is not retried forever: after
        # FREE_INTERRUPTIONS free interruptions, they count, and it dies after max_attempts more
        await add_good(lc, "killer", master_key)
        kills = 0
        while (await outbox.counts(lc)).dead == 0:
            async with await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as doomed:
                assert await outbox.claim(doomed, worker=f"killed-{kills}", batch_size=10)
            kills += 1

            async def recovered() -> bool:
                await outbox.recover_dead_sessions(lc, max_attempts=2)
                return (await outbox.counts(lc)).claimed == 0

            await eventually(recovered, what="the killed claim recovered")
            assert kills <= outbox.FREE_INTERRUPTIONS + 2
        assert kills == outbox.FREE_INTERRUPTIONS + 2
        (dead,) = await outbox.dead_events(lc)
        assert dead.new_model_name == "killer"
        assert "counted as an attempt" in (dead.last_error or "")


async def test_no_wall_clock_decides_which_deployment_describes_the_row_or_when_work_is_due(
    dbs: tuple[str, str], master_key: str
) -> None:
    """Injects: (1) of two deployments of one name, one stamped a day in the future (a replica with
    a skewed clock); then the other one is edited. (2) a pending event scheduled an hour ahead, a
    claim and a finished full reconcile stamped an hour
    ahead (the database clock was stepped back an hour).
    Asserts: the deployment created last describes the row, as the backend's own sync leaves it, and
    an edit of the other one (a day-ahead updated_at) does not take it over; the
    event is applied at once; the periodic reconcile is not suppressed; status never shows a
    negative age."""

    ldsn, bdsn = dbs
    settings = make_settings(
        ldsn, bdsn, master_key, reconcile_interval_seconds=0.5, poll_interval_seconds=0.2
    )
    async with conns(ldsn, bdsn) as (lc, bc):
        skewed = row_text("lb", master_key, info={"max_tokens": 1})
        await add_text(lc, skewed)
        await lc.execute(
            f"UPDATE {TABLE} SET updated_at = now() + interval '1 day' WHERE model_id = %s",
            (skewed["model_id"],),
        )
        edited = row_text("lb", master_key, info={"max_tokens": 2})
        await add_text(lc, edited)
        # the clock stepped back: work scheduled / recorded "in the future"
        await add_good(lc, "held-by-clock", master_key)
        await lc.execute(
            "UPDATE litemaas_hooks.model_events SET next_attempt_at "
            "= clock_timestamp() + interval '1 hour', "
            "created_at = clock_timestamp() + interval '1 "
            "hour' WHERE new_model_name = 'held-by-clock'"
        )
        await lc.execute(
            "UPDATE litemaas_hooks.reconcile_state SET "
            "last_finished_at = clock_timestamp() + interval '1 hour'"
        )
        report = await collect_status(settings, check_drift=False)
        assert report.counts is not None
        assert report.counts.oldest_pending_age_seconds is not None
        assert report.counts.oldest_pending_age_seconds >= 0
        assert report.last_reconcile is not None
        assert (report.last_reconcile.age_seconds or 0) >= 0
        assert (
            "-" not in format_status(report).split("oldest pending event", 1)[1].split("old", 1)[0]
        )
        async with running(settings) as (relay,):
            await eventually(
                lambda: is_available(bc, "held-by-clock"),
                what="the event scheduled ahead applied now",
            )

            async def reconciled() -> bool:
                return relay.stats.full_reconciles >= 1

            await eventually(
                reconciled, what="the periodic reconcile ran despite a last run 'in the future'"
            )

            async def describes(max_tokens: int) -> bool:
                cur = await bc.execute("SELECT max_tokens FROM models WHERE id = 'lb'")
                row = await cur.fetchone()
                return row is not None and row[0] == max_tokens

            await eventually(lambda: describes(2), what="lb described by the deployment added last")
            # an edit of the first deployment does not take the row over: the backend's own sync
            # ends on the deployment created last (its /model/info order), whatever the replicas'
            # updated_at clocks say
            await lc.execute(
                f"UPDATE {TABLE} SET model_info = model_info || "
                "'{\"max_tokens\": 3}', updated_at = now() "
                "WHERE model_id = %s",
                (skewed["model_id"],),
            )
            await eventually(
                lambda: outbox_empty(lc), what="the edit of the first deployment applied"
            )
            assert await describes(2)
            await lc.execute(
                f"UPDATE {TABLE} SET model_info = model_info || "
                "'{\"max_tokens\": 4}', updated_at = now() "
                "WHERE model_id = %s",
                (edited["model_id"],),
            )
            await eventually(
                lambda: describes(4),
                what="the other deployment's edit wins over a clock a day ahead",
            )


async def test_full_reconcile_skips_a_locked_row_instead_of_waiting(
    dbs: tuple[str, str], master_key: str
) -> None:
    """Injects: an admin transaction holding ``SELECT ... FOR UPDATE`` on a row the full reconcile
    must update. Asserts: the full reconcile does not wait for it (well under the 2 s lock timeout),
    creates the other model, reports the held one as ``deferred``;
    the next run after the release updates it."""
    ldsn, bdsn = dbs
    settings = make_settings(ldsn, bdsn, master_key)
    engine = Reconciler(settings)
    async with (
        conns(ldsn, bdsn) as (lc, bc),
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as admin,
    ):
        await add_good(lc, "busy", master_key)
        await engine.converge(lc, bc, names=None)
        await lc.execute(f"UPDATE {TABLE} SET model_info = model_info || '{{\"max_tokens\": 5}}'")
        await add_good(lc, "other", master_key)
        async with admin.transaction():
            await admin.execute("SELECT 1 FROM models WHERE id = 'busy' FOR UPDATE")
            t0 = time.perf_counter()
            report = await engine.converge(lc, bc, names=None)
            took = time.perf_counter() - t0
            assert report.outcomes["busy"].action == "deferred"
            assert report.outcomes["other"].action == "created"
            assert took < 1.5, took
        again = await engine.converge(lc, bc, names=None)
        assert again.outcomes["busy"].action == "updated"

