"""The relay end to end: LiteLLM rows → trigger → outbox → relay → engine → backend ``models``.

Real PostgreSQL (two databases, or one shared), LiteLLM's real schema and encryption, the real
engine. Every wait is a condition polled against a deadline.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import statistics
import time
import uuid
from typing import Any

import psycopg
import pytest

from litemaas_hooks import outbox
from litemaas_hooks.relay import Relay
from litemaas_hooks_sandbox import seed
from litemaas_hooks_sandbox.cluster import LocalPostgres
from tests.helpers import (
    DROP_TRIGGERS,
    INSERT_ROW,
    PARAMS,
    AConn,
    backend_models,
    eventually,
    insert,
    install,
    litellm_row,
    make_settings,
    outbox_empty,
    running,
    terminate,
)

pytestmark = pytest.mark.anyio

# -- helpers --------------------------------------------------------------------------------------


# -- tests ----------------------------------------------------------------------------------------


async def test_insert_update_rename_delete_follow_within_ms(
    dbs: tuple[str, str], master_key: str
) -> None:
    ldsn, bdsn = dbs
    settings = make_settings(ldsn, bdsn, master_key)
    async with (
        running(settings) as (relay,),
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
    ):
        mid = await insert(lc, "granite", master_key)
        took = await eventually(
            lambda: _has(bc, "granite", "available"), what="insert reaches the backend"
        )
        assert took < 2.0  # poll interval is 30 s: this was the NOTIFY

        await lc.execute(
            """UPDATE "LiteLLM_ProxyModelTable" SET model_info = model_info || '{"max_tokens": 777}'
               WHERE model_id = %s""",
            (mid,),
        )
        await eventually(
            lambda: _scalar(bc, "SELECT max_tokens FROM models WHERE id = 'granite'", 777)
        )

        await lc.execute(
            """UPDATE "LiteLLM_ProxyModelTable" SET model_name = 'granite-2' WHERE model_id = %s""",
            (mid,),
        )
        await eventually(
            lambda: _state(bc, {"granite": "unavailable", "granite-2": "available"}),
            what="rename = retire + create",
        )

        await lc.execute("""DELETE FROM "LiteLLM_ProxyModelTable" WHERE model_id = %s""", (mid,))
        await eventually(lambda: _state(bc, {"granite": "unavailable", "granite-2": "unavailable"}))
        await eventually(lambda: outbox_empty(lc), what="applied events are deleted")
        assert relay.stats.events_failed == 0
        # exactly one audit row per retirement
        cur = await bc.execute(
            "SELECT resource_id, count(*) FROM audit_logs WHERE "
            "action LIKE 'MODEL_MARKED_UNAVAILABLE%%' GROUP BY 1"
        )
        assert dict(await cur.fetchall()) == {"granite": 1, "granite-2": 1}


async def test_load_balanced_name_is_retired_only_with_its_last_deployment(
    dbs: tuple[str, str], master_key: str
) -> None:
    ldsn, bdsn = dbs
    async with (
        running(make_settings(ldsn, bdsn, master_key)),
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
    ):
        first = await insert(lc, "llama", master_key)
        second = await insert(lc, "llama", master_key)
        await eventually(lambda: _has(bc, "llama", "available"))
        await lc.execute("""DELETE FROM "LiteLLM_ProxyModelTable" WHERE model_id = %s""", (first,))
        await eventually(lambda: outbox_empty(lc))
        assert (await backend_models(bc))["llama"] == "available"
        await lc.execute("""DELETE FROM "LiteLLM_ProxyModelTable" WHERE model_id = %s""", (second,))
        await eventually(lambda: _has(bc, "llama", "unavailable"))


async def test_listen_wakeup_latency(
    dbs: tuple[str, str], master_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ldsn, bdsn = dbs
    latencies: list[float] = []
    async with (
        running(make_settings(ldsn, bdsn, master_key)),
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
    ):
        for i in range(100):
            name = f"lat-{i}"
            row = seed.as_insert_params(litellm_row(name, PARAMS, {}, key=master_key))
            started = time.perf_counter()
            await lc.execute(INSERT_ROW, row)  # autocommit: committed when execute returns
            await eventually(lambda name=name: _has(bc, name, "available"), deadline_seconds=5)  # type: ignore[misc]
            latencies.append(time.perf_counter() - started)
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p95 = latencies[int(len(latencies) * 0.95) - 1] * 1000
    with capsys.disabled():
        print(
            f"\nLiteLLM commit -> backend row visible, {len(latencies)} "
            f"inserts: p50 {p50:.1f} ms, p95 {p95:.1f} ms"
        )
    assert p95 < 500  # generous for CI; the poll interval is 30 s, so this is the NOTIFY path


async def test_failures_back_off_then_die_then_replay(
    dbs: tuple[str, str],
    master_key: str,
    pg_cluster: LocalPostgres,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="litemaas_hooks")
    ldsn, bdsn = dbs
    other_key = "sk-" + secrets.token_hex(32)
    settings = make_settings(ldsn, bdsn, master_key, max_attempts=3)
    async with (
        running(settings) as (relay,),
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
    ):
        # encrypted with a key the relay does not have: the engine reports an error for this name
        bad = await insert(lc, "broken", other_key)
        await insert(lc, "fine", master_key)
        await eventually(lambda: _has(bc, "fine", "available"))

        async def dead() -> bool:
            return (await outbox.counts(lc)).dead == 1

        await eventually(dead, deadline_seconds=10, what="event dead after 3 attempts with backoff")
        (event,) = await outbox.dead_events(lc)
        assert event.attempts == 3
        assert event.new_model_name == "broken"
        assert event.last_error is not None
        assert "could not be decrypted" in event.last_error
        assert "broken" not in await backend_models(bc)
        assert relay.stats.events_failed == 3
        assert relay.stats.events_dead == 1

        # the operator fixes the row (re-encrypts with the right key) and replays the dead event
        fixed = seed.as_insert_params(
            litellm_row("broken", PARAMS, {}, key=master_key, model_id=bad)
        )
        await lc.execute(
            """UPDATE "LiteLLM_ProxyModelTable" SET litellm_params = %s WHERE model_id = %s""",
            (fixed["litellm_params"], bad),
        )
        await eventually(lambda: _has(bc, "broken", "available"))
        assert await outbox.replay_dead(lc) == 1
        await eventually(lambda: outbox_empty(lc))
        assert (await outbox.counts(lc)).dead == 0

    # log lines never carry a secret
    text = caplog.text
    for secret in (master_key, other_key, pg_cluster.password, PARAMS["api_key"]):
        assert secret not in text


async def test_stalled_claims_are_recovered(dbs: tuple[str, str], master_key: str) -> None:
    ldsn, bdsn = dbs
    async with (
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
    ):
        await insert(lc, "orphaned", master_key)
        # a relay claimed it and was SIGKILLed before completing
        (claimed,) = await outbox.claim(lc, worker="ghost@dead-pod:1:abc", batch_size=10)
        settings = make_settings(
            ldsn, bdsn, master_key, stall_timeout_seconds=0.5, poll_interval_seconds=0.1
        )
        async with running(settings) as (relay,):
            await eventually(
                lambda: _has(bc, "orphaned", "available"),
                what="stalled claim recovered and applied",
            )
            await eventually(lambda: outbox_empty(lc))
            assert relay.stats.stalled_recovered == 1
        assert claimed.attempts == 1


async def test_reconnects_when_either_database_goes_away(
    dbs: tuple[str, str], master_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    ldsn, bdsn = dbs
    settings = make_settings(ldsn, bdsn, master_key)
    async with (
        running(settings) as (relay,),
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
    ):
        # the backend connection dies while idle; the next event finds out, gives its claim back,
        # reconnects and applies it
        await terminate(bc, "relay-0:backend")
        await insert(lc, "after-backend-outage", master_key)
        await eventually(
            lambda: _has(bc, "after-backend-outage", "available"), what="applied after reconnect"
        )
        assert relay.stats.reconnects >= 1

        # the LiteLLM (LISTEN) connection dies; a change made meanwhile is drained on reconnect
        reconnects = relay.stats.reconnects
        await terminate(lc, "relay-0:litellm")
        await insert(lc, "after-litellm-outage", master_key)
        await eventually(
            lambda: _has(bc, "after-litellm-outage", "available"), what="drained on reconnect"
        )
        await eventually(lambda: outbox_empty(lc))
        assert relay.stats.reconnects > reconnects
        assert relay.stats.events_failed == 0  # an outage is not an attempt
    assert "retrying in" in caplog.text


async def _explained(
    lc: psycopg.AsyncConnection[Any], bc: psycopg.AsyncConnection[Any], check: Any, what: str
) -> None:
    """``eventually(check)``; when it fails, the outbox's rows and the backend's models in the
    message (with the relays' DEBUG log, captured by the test, what a rare failure needs)."""
    try:
        await eventually(check, deadline_seconds=60, what=what)
    except AssertionError as exc:
        cur = await lc.execute(
            "SELECT id, op, old_model_name, new_model_name, status, attempts, claimed_by, "
            "next_attempt_at - clock_timestamp(), last_error FROM litemaas_hooks.model_events "
            "ORDER BY id"
        )
        events = "\n".join(map(str, await cur.fetchall()))
        models = await backend_models(bc)
        raise AssertionError(f"{exc}\noutbox:\n{events}\nbackend: {models}") from None


async def test_three_concurrent_relays_apply_everything_once(
    dbs: tuple[str, str], master_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="litemaas_hooks")
    ldsn, bdsn = dbs
    settings = make_settings(ldsn, bdsn, master_key, batch_size=3)
    names = [f"n{i:02d}" for i in range(30)]
    present: set[str] = set()
    gone: set[str] = set()

    async def writer(chunk: list[str]) -> None:
        async with await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as conn:
            for name in chunk:
                await insert(conn, name, master_key)
                if int(name[1:]) % 3 == 0:  # load-balanced: a second deployment
                    await insert(conn, name, master_key)
                await conn.execute(
                    """UPDATE "LiteLLM_ProxyModelTable"
                       SET model_info = model_info || '{"max_tokens": 42}'
                       WHERE model_name = %s""",
                    (name,),
                )
                index = int(name[1:])
                if 20 <= index < 25:  # rename every deployment of the name
                    await conn.execute(
                        'UPDATE "LiteLLM_ProxyModelTable" SET '
                        "model_name = %s WHERE model_name = %s",
                        (f"{name}-renamed", name),
                    )
                    gone.add(name)
                    present.add(f"{name}-renamed")
                elif index >= 25:
                    await conn.execute(
                        """DELETE FROM "LiteLLM_ProxyModelTable" WHERE model_name = %s""", (name,)
                    )
                    gone.add(name)
                else:
                    present.add(name)

    async with (
        running(settings, count=3) as relays,
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
    ):

        async def converged() -> bool:
            if not await outbox_empty(lc):
                return False
            have = await backend_models(bc)
            # a name renamed or deleted before any relay saw it may never have reached the backend
            return all(have.get(n) == "available" for n in present) and all(
                have.get(n, "unavailable") == "unavailable" for n in gone
            )

        async def audits() -> dict[str, int]:
            cur = await bc.execute(
                "SELECT resource_id, count(*) FROM audit_logs WHERE "
                "action LIKE 'MODEL_MARKED_UNAVAILABLE%%' GROUP BY 1"
            )
            return {str(k): int(v) for k, v in await cur.fetchall()}

        # phase 1: 4 concurrent writers, 30 names, inserts + updates + renames + deletes
        await asyncio.gather(*(writer(names[i::4]) for i in range(4)))
        await _explained(lc, bc, converged, "all 3 relays drained and the backend matches")
        # every name still present has its update; a name renamed or deleted after a relay wrote
        # it keeps its (retired) row, with or without the update: not counted
        cur = await bc.execute(
            "SELECT count(*) FROM models WHERE id = ANY(%s) AND max_tokens = 42", (sorted(present),)
        )
        assert await cur.fetchone() == (len(present),)
        have = await backend_models(bc)
        assert await audits() == {n: 1 for n in gone if n in have}  # one audit row per retirement

        # phase 2: delete 10 names that are certainly in the backend (some with two deployments, so
        # two events for one name may be claimed by two relays
        # at once): each is retired exactly once
        victims = sorted(n for n in present if not n.endswith("-renamed"))[:10]
        async with await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as conn:
            await asyncio.gather(
                *(
                    conn.execute(
                        """DELETE FROM "LiteLLM_ProxyModelTable" WHERE model_name = %s""", (n,)
                    )
                    for n in victims
                )
            )
        present.difference_update(victims)
        gone.update(victims)
        await _explained(lc, bc, converged, "deletes applied")
        have = await backend_models(bc)
        assert all(have[n] == "unavailable" for n in victims)
        assert await audits() == {n: 1 for n in gone if n in have}  # still no duplicate audit row

        for relay in relays:
            assert relay.stats.events_failed == 0, relay.stats  # no deadlock, no error
            assert relay.stats.reconnects == 0, relay.stats
        assert sum(r.stats.events_applied for r in relays) >= len(names) + len(victims)
        assert sum(1 for r in relays if r.stats.events_applied) >= 2  # the work really was shared


async def test_periodic_full_reconcile_heals_missed_changes_one_runner_at_a_time(
    dbs: tuple[str, str], master_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="litemaas_hooks.relay")
    ldsn, bdsn = dbs
    async with (
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as other_runner,
    ):
        # changes made while the trigger was missing (e.g. LiteLLM re-created its table): no events
        await lc.execute(DROP_TRIGGERS)
        await insert(lc, "missed", master_key)
        assert (await outbox.counts(lc)).pending == 0
        # another relay of the fleet holds the full-reconcile lock
        assert await outbox.try_reconcile_lock(other_runner)

        settings = make_settings(ldsn, bdsn, master_key, reconcile_interval_seconds=0.2)
        async with running(settings) as (relay,):

            async def skipped() -> bool:
                return "another relay is running the full reconcile; skipped" in caplog.text

            await eventually(skipped, what="the relay saw the lock held and skipped")
            assert "missed" not in await backend_models(bc)
            assert relay.stats.full_reconciles == 0
            # the relay put the trigger back (this role may)
            assert (await outbox.trigger_state(lc)).ok

            await outbox.reconcile_unlock(other_runner)
            await eventually(
                lambda: _has(bc, "missed", "available"),
                what="full reconcile applied the missed row",
            )

            async def recorded() -> bool:
                state = await outbox.last_reconcile(lc)
                done = state is not None and state.last_finished_at is not None
                return done and relay.stats.full_reconciles >= 1

            await eventually(recorded, what="the run is recorded fleet-wide")
            assert relay.stats.full_reconciles >= 1
            state = await outbox.last_reconcile(lc)
            assert state is not None
            assert state.last_runner == relay.worker_id
            assert state.last_summary is not None
            assert "created 1" in state.last_summary


async def test_shared_database_topology(shared_dsn: str, master_key: str) -> None:
    await install(shared_dsn, shared_dsn)
    async with (
        running(make_settings(shared_dsn, shared_dsn, master_key)),
        await psycopg.AsyncConnection.connect(shared_dsn, autocommit=True) as conn,
    ):
        await insert(conn, "shared-one", master_key, model_id=str(uuid.uuid4()))
        await eventually(lambda: _has(conn, "shared-one", "available"))
        await conn.execute(
            """DELETE FROM "LiteLLM_ProxyModelTable" WHERE model_name = 'shared-one'"""
        )
        await eventually(lambda: _has(conn, "shared-one", "unavailable"))


async def test_relay_refuses_to_start_without_outbox(
    litellm_dsn: str, backend_dsn: str, master_key: str
) -> None:
    settings = make_settings(litellm_dsn, backend_dsn, master_key)
    relay = Relay(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))

    async def complained() -> bool:
        return relay.stats.last_error is not None

    await eventually(complained)
    assert relay.stats.last_error is not None
    assert "litemaas-hooks install" in relay.stats.last_error
    stop.set()
    await asyncio.wait_for(task, 10)


# -- small checks ----------------------------------------------------------------------------------


async def _has(conn: AConn, model: str, availability: str) -> bool:
    return (await backend_models(conn)).get(model) == availability


async def _state(conn: AConn, want: dict[str, str]) -> bool:
    have = await backend_models(conn)
    return all(have.get(k) == v for k, v in want.items())


async def _scalar(conn: AConn, query: str, want: Any) -> bool:
    cur = await conn.execute(query)
    row = await cur.fetchone()
    return row is not None and row[0] == want


async def test_status_reports_trigger_backlog_dead_events_and_drift(
    dbs: tuple[str, str], master_key: str
) -> None:
    from litemaas_hooks.status import collect_status, format_status

    ldsn, bdsn = dbs
    other_key = "sk-" + secrets.token_hex(32)
    settings = make_settings(ldsn, bdsn, master_key, stall_timeout_seconds=3600)
    async with await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc:
        report = await collect_status(settings)
        assert report.healthy, report.problems
        assert report.drift.in_sync

        await insert(lc, "waiting", master_key)
        bad = await insert(lc, "undecryptable", other_key)
        (dead_event,) = [
            e for e in await outbox.claim(lc, worker="w", batch_size=10) if e.model_id == bad
        ]
        await outbox.release(lc, worker="w", reason="test")
        await outbox.claim(lc, worker="w", batch_size=10)
        await outbox.fail(
            lc,
            worker="w",
            errors={dead_event.id: "litellm_params.model could not be decrypted"},
            max_attempts=1,
            retry_base_seconds=1,
            retry_max_seconds=1,
        )
        await outbox.release(lc, worker="w", reason="test")
        await lc.execute(DROP_TRIGGERS)

        report = await collect_status(settings)
        assert not report.healthy
        assert report.trigger is not None
        assert not report.trigger.trigger_present
        assert report.counts is not None
        assert (report.counts.pending, report.counts.dead) == (1, 1)
        assert [e.id for e in report.dead_events] == [dead_event.id]
        assert report.drift.missing_in_backend == ["waiting"]
        assert list(report.drift.errors) == ["undecryptable"]
        text = format_status(report)
        assert "UNHEALTHY" in text
        assert "MISSING" in text
        assert "litemaas-hooks install" in text
        assert "waiting" in text
        assert f"#{dead_event.id}" in text
        data = json.loads(report.to_json())
        assert data["healthy"] is False
        assert data["drift"]["missing_in_backend"] == ["waiting"]
        for secret in (master_key, other_key, ldsn, bdsn):
            assert secret not in text
            assert secret not in report.to_json()

        # repair: the relay re-installs the trigger and drains;
        # the row is fixed and the dead event replayed
        await lc.execute('DELETE FROM "LiteLLM_ProxyModelTable" WHERE model_id = %s', (bad,))
        await outbox.replay_dead(lc)
        async with running(settings):
            await eventually(lambda: outbox_empty(lc))
        report = await collect_status(settings)
        assert report.healthy, report.problems
        assert "HEALTHY" in format_status(report)


async def test_litellm_model_management_endpoints_drive_the_backend_live(
    dbs: tuple[str, str], master_key: str
) -> None:
    """LiteLLM's own add/patch(rename)/update/block/unblock/delete
    code writes; a relay follows each step."""
    from litemaas_hooks_sandbox.litellm_admin import LiteLLMAdmin

    ldsn, bdsn = dbs

    async def row(conn: AConn, model: str) -> dict[str, Any] | None:
        cur = await conn.execute(
            "SELECT availability, backend_model_name, provider, "
            "description, max_tokens, litellm_model_id "
            "FROM models WHERE id = %s",
            (model,),
        )
        found = await cur.fetchone()
        keys = (
            "availability",
            "backend_model_name",
            "provider",
            "description",
            "max_tokens",
            "litellm_model_id",
        )
        return None if found is None else dict(zip(keys, found, strict=True))

    async with (
        running(make_settings(ldsn, bdsn, master_key)) as (relay,),
        await LiteLLMAdmin.open(ldsn, master_key=master_key) as admin,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
    ):
        mid = await admin.add_model(
            "ui-model",
            {
                "model": "openai/granite-3-8b",
                "api_base": "http://granite:8080/v1",
                "api_key": "sk-upstream-xyz",
            },
            {"description": "added in the UI", "max_tokens": 4096},
        )

        async def created() -> bool:
            r = await row(bc, "ui-model")
            return r is not None and r["availability"] == "available"

        await eventually(created, what="add_new_model reaches the backend")
        r = await row(bc, "ui-model")
        assert r is not None
        assert (r["provider"], r["backend_model_name"], r["litellm_model_id"]) == (
            "openai",
            "granite-3-8b",
            mid,
        )

        await admin.update_model(mid, litellm_params={"model": "openai/granite-3-8b-v2"})

        async def updated() -> bool:
            r = await row(bc, "ui-model")
            return r is not None and r["backend_model_name"] == "granite-3-8b-v2"

        await eventually(updated, what="update_model reaches the backend")

        await admin.patch_model(mid, model_name="ui-model-renamed")

        async def renamed() -> bool:
            old, new = await row(bc, "ui-model"), await row(bc, "ui-model-renamed")
            return (
                old is not None
                and old["availability"] == "unavailable"
                and new is not None
                and new["availability"] == "available"
            )

        await eventually(renamed, what="patch_model rename = retire old + create new")

        if admin.supports_block:
            await admin.block(mid)
            await eventually(lambda: outbox_empty(lc), what="block event consumed")
            await admin.unblock(mid)
            await eventually(lambda: outbox_empty(lc), what="unblock event consumed")

        await admin.delete_model(mid)

        async def retired() -> bool:
            r = await row(bc, "ui-model-renamed")
            return r is not None and r["availability"] == "unavailable"

        await eventually(retired, what="delete_model retires the backend row")
        await eventually(lambda: outbox_empty(lc))
        assert relay.stats.events_failed == 0
        cur = await bc.execute("SELECT metadata::text FROM models WHERE id = 'ui-model-renamed'")
        metadata = await cur.fetchone()
        assert metadata is not None
        assert "sk-upstream-xyz" not in str(metadata[0])
