"""``litemaas-hooks status`` while a full reconcile is really mid-run (issue 21, item 4).

The run is held deterministically inside one chunk's transaction: a test trigger on our backend
table ``litemaas_hooks.model_sources`` (which every chunk of a full run writes, changed or not)
waits on an advisory lock the test holds. The relay meanwhile holds the fleet-wide reconcile lock
and the chunk's locks. ``status`` (the CLI entry, drift check on) must return without waiting for
it, say a full reconcile is running (who, since when) and not be UNHEALTHY.
"""

from __future__ import annotations

import asyncio
import json
import re

import psycopg
import pytest

from litemaas_hooks import outbox
from tests.helpers import AConn, eventually, insert, make_settings, run_cli, running, scalar

pytestmark = pytest.mark.anyio

FLEET_LOCK = "litemaas_hooks.full_reconcile"  # reconcile_try_lock's key
HOLD_KEY = 21_004  # the advisory lock the test holds and the chunk's trigger waits on
# status returns in about a second; a status that waited for the run would never return (the run
# is held until the test lets it go)
STATUS_DEADLINE_SECONDS = 60.0
HOLD_TRIGGER = f"""
CREATE FUNCTION public.test_hold_full_reconcile() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock_shared({HOLD_KEY});
    RETURN NEW;
END;
$$;
CREATE TRIGGER test_hold_full_reconcile BEFORE INSERT ON litemaas_hooks.model_sources
    FOR EACH ROW EXECUTE FUNCTION public.test_hold_full_reconcile();
"""


async def _waiting_on_hold(bc: AConn) -> bool:
    """A session of the backend database waits on the test's lock (the run is inside a chunk)."""
    return bool(
        await scalar(
            bc,
            "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND classid = 0 AND objid = %s AND objsubid = 1",
            (HOLD_KEY,),
        )
    )


async def _status(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    *argv: str,
) -> tuple[int, str]:
    """``litemaas-hooks status ARGV`` (the CLI entry, in a thread), within the deadline."""
    capsys.readouterr()
    code = await asyncio.wait_for(
        run_cli(monkeypatch, env, "status", *argv), STATUS_DEADLINE_SECONDS
    )
    return code, capsys.readouterr().out


async def test_status_during_a_full_reconcile_says_it_runs_and_is_not_unhealthy(
    dbs: tuple[str, str],
    master_key: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ldsn, bdsn = dbs
    env = {
        "LITELLM_DATABASE_URL": ldsn,
        "LITEMAAS_DATABASE_URL": bdsn,
        "LITELLM_MASTER_KEY": master_key,
    }
    names = [f"mid-run-{i}" for i in range(3)]
    async with (
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as holder,
    ):
        for name in names:
            await insert(lc, name, master_key)
        # in sync first: a relay drains the events (ready = caught up), no full reconcile
        async with running(make_settings(ldsn, bdsn, master_key)):
            pass
        await bc.execute(HOLD_TRIGGER.encode())
        await holder.execute("SELECT pg_advisory_lock(%s)", (HOLD_KEY,))

        # the relay's first full reconcile starts right after it is ready, then waits in its
        # first chunk's transaction (fleet lock held) until the test lets it go
        settings = make_settings(ldsn, bdsn, master_key, reconcile_interval_seconds=3600.0)
        async with running(settings) as (relay,):
            try:
                await eventually(
                    lambda: _waiting_on_hold(bc),
                    deadline_seconds=30,
                    what="the full reconcile is inside a chunk, waiting on the test's lock",
                )
                free = await scalar(lc, "SELECT pg_try_advisory_lock(hashtext(%s))", (FLEET_LOCK,))
                assert free is False, "the fleet-wide reconcile lock is held by the run"

                code, text = await _status(monkeypatch, capsys, env)
                assert await _waiting_on_hold(bc), "the run was still mid-way when status ended"
                assert relay.stats.full_reconciles == 0
                verdict = text.splitlines()[0]
                assert code == 0, text
                assert verdict == (
                    "litemaas-hooks status: HEALTHY: trigger installed, outbox empty, no dead "
                    "events, backend in sync with LiteLLM, a full reconcile is running"
                ), text
                [line] = [s for s in text.splitlines() if s.startswith("  full reconcile   : RUN")]
                pattern = (
                    r"  full reconcile   : RUNNING now for [0-9.]+s, by "
                    + re.escape(relay.worker_id)
                    + r" \(session relay-0:litellm, pid \d+, holding the fleet-wide lock\): "
                )
                assert re.match(pattern, line), line
                assert "drift            : none: every backend row matches LiteLLM" in text

                code, out = await _status(monkeypatch, capsys, env, "--json")
                report = json.loads(out)
                assert code == 0, out
                assert report["healthy"] is True
                running_now = report["full_reconcile_running"]
                assert running_now["runner"] == relay.worker_id
                assert running_now["application_name"] == "relay-0:litellm"
                assert running_now["seconds"] >= 0
                assert report["drift"]["in_sync"] is True
            finally:
                await holder.execute("SELECT pg_advisory_unlock_all()")

            async def finished() -> bool:
                return relay.stats.full_reconciles >= 1

            await eventually(finished, what="the held run finished once let go")
            last = await outbox.last_reconcile(lc)
            assert last is not None
            assert last.last_finished_at is not None
            # finished and the lock given back: status no longer says it runs
            code, text = await _status(monkeypatch, capsys, env)
            assert code == 0, text
            assert "RUNNING" not in text
            assert "a full reconcile is running" not in text
            assert "full reconcile   : last finished " in text


async def test_a_live_lease_under_transaction_pooling_is_a_running_reconcile(
    dbs: tuple[str, str],
    master_key: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Under transaction pooling the relays take the lease row (``try_reconcile_lease``), no
    session lock: status shows a lease younger than the reconcile interval as a running full
    reconcile, and only where its own LiteLLM URL is transaction-pooled (elsewhere the lock
    decides, and an unfinished start is one that was interrupted)."""
    ldsn, bdsn = dbs
    env = {
        "LITELLM_DATABASE_URL": ldsn,
        "LITEMAAS_DATABASE_URL": bdsn,
        "LITELLM_MASTER_KEY": master_key,
        "LITEMAAS_HOOKS_RECONCILE_INTERVAL_SECONDS": "600",
    }
    async with await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc:
        leased = await outbox.try_reconcile_lease(
            lc, runner="w-lease", min_age_seconds=300.0, lease_seconds=600.0
        )
    assert leased

    code, text = await _status(
        monkeypatch, capsys, {**env, "LITEMAAS_HOOKS_POOL_MODE": "transaction"}, "--no-drift"
    )
    assert code == 0, text
    assert text.splitlines()[0].endswith(", a full reconcile is running"), text
    assert re.search(
        r"full reconcile   : RUNNING now for [0-9.]+s, by w-lease \(its lease row: transaction "
        r"pooling, no session lock\)",
        text,
    ), text

    code, text = await _status(monkeypatch, capsys, env, "--no-drift")
    assert code == 0, text
    assert "RUNNING" not in text
