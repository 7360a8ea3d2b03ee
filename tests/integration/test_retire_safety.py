"""Retire safety: a delete that a re-create undoes costs nobody anything (issue 17 items 3-4 and
issue 20's per-key serialisation).

Real PostgreSQL, LiteLLM's real schema, the real relay and engine. Every wait is a condition polled
against a deadline (``eventually``), never a sleep.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from litemaas_hooks import cli
from litemaas_hooks.planning import mass_retire
from litemaas_hooks.reconcile import RETIRE_REASON, Reconciler
from litemaas_hooks.status import collect_status
from litemaas_hooks_sandbox.cluster import LocalPostgres
from tests.conftest import TPL_LITELLM, _clone
from tests.helpers import (
    USER,
    AConn,
    World,
    all_are,
    availability,
    cascades,
    eventually,
    insert,
    install,
    make_settings,
    outbox_empty,
    pending,
    rows,
    running,
    scalar,
    subscribe,
    user_state,
)

pytestmark = pytest.mark.anyio

TOUCHED = "SELECT id, updated_at FROM subscriptions UNION ALL SELECT id, updated_at FROM api_keys"


# -- helpers --------------------------------------------------------------------------------------


def settings_for(ldsn: str, bdsn: str, key: str, **overrides: Any) -> Any:
    knobs = {"retire_grace_seconds": 300.0, "retire_guard_min_models": 3, **overrides}
    return make_settings(ldsn, bdsn, key, **knobs)


async def seed_models(lc: AConn, bc: AConn, key: str, names: list[str]) -> dict[str, str]:
    ids = {n: await insert(lc, n, key) for n in names}
    await eventually(lambda: all_are(bc, names, "available"), what="models reach the backend")
    return ids


# -- pure -----------------------------------------------------------------------------------------


def test_mass_retire_guard_rule() -> None:
    assert mass_retire(30, 30, percent=50, min_models=3)  # the 1.81 key rotation
    assert not mass_retire(
        1, 1, percent=50, min_models=3
    )  # a normal single delete, even of the last model
    assert not mass_retire(1, 30, percent=50, min_models=3)
    assert not mass_retire(2, 3, percent=50, min_models=3)  # fewer than the minimum
    assert mass_retire(3, 5, percent=50, min_models=3)
    assert not mass_retire(3, 10, percent=50, min_models=3)  # 30 % < 50 %
    assert not mass_retire(30, 30, percent=50, min_models=0)  # 0 = guard off
    assert mass_retire(
        30, 0, percent=100, min_models=3
    )  # a total that undercounts never hides a mass retire


# -- (c) delete + re-add within the grace period --------------------------------------------------


async def test_delete_and_readd_within_grace_changes_nothing_but_availability(
    dbs: tuple[str, str], master_key: str
) -> None:
    ldsn, bdsn = dbs
    async with (
        running(settings_for(ldsn, bdsn, master_key)),
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
    ):
        await seed_models(lc, bc, master_key, ["granite", "llama"])
        await subscribe(bc, ["granite", "llama"])
        updated = await rows(
            bc,
            TOUCHED,
        )

        await lc.execute("""DELETE FROM "LiteLLM_ProxyModelTable" WHERE model_name = 'granite'""")
        await eventually(
            lambda: all_are(bc, ["granite"], "unavailable"), what="unavailable at once"
        )
        assert await pending(bc) == {"granite": False}  # the cascade waits for its grace period
        assert await user_state(bc) == (2, 2, 2)

        await insert(lc, "granite", master_key)  # the admin re-adds it a moment later
        await eventually(lambda: all_are(bc, ["granite"], "available"), what="available again")
        await eventually(lambda: outbox_empty(lc))
        assert await pending(bc) == {}
        assert await user_state(bc) == (2, 2, 2)
        assert (
            await rows(
                bc,
                TOUCHED,
            )
            == updated
        )  # not even touched
        assert await cascades(bc) == 0
        assert await scalar(bc, "SELECT count(*) FROM litemaas_hooks.retire_cascades") == 0


# -- (b) a table restore: DELETE all, then re-INSERT the same rows in a second transaction ---------


async def test_table_restore_costs_no_subscription(dbs: tuple[str, str], master_key: str) -> None:
    ldsn, bdsn = dbs
    names = [f"model-{i}" for i in range(6)]
    async with (
        running(settings_for(ldsn, bdsn, master_key)),
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
    ):
        await seed_models(lc, bc, master_key, names)
        await subscribe(bc, names)
        await lc.execute('CREATE TABLE saved AS SELECT * FROM "LiteLLM_ProxyModelTable"')
        await lc.execute('DELETE FROM "LiteLLM_ProxyModelTable"')
        await eventually(lambda: all_are(bc, names, "unavailable"), what="all unavailable")
        # 6 of 6 in one pass: the mass-retire guard holds them at once
        await eventually(lambda: _equals(pending(bc), dict.fromkeys(names, True)), what="held")
        await lc.execute('INSERT INTO "LiteLLM_ProxyModelTable" SELECT * FROM saved')
        await eventually(lambda: all_are(bc, names, "available"), what="all available again")
        await eventually(lambda: outbox_empty(lc))
        assert await pending(bc) == {}  # the hold cleared itself
        assert await user_state(bc) == (6, 6, 6)
        assert await cascades(bc) == 0


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


# -- (d) a real delete still cascades after the grace period ---------------------------------------


async def test_real_delete_cascades_soon_after_the_grace_period(
    dbs: tuple[str, str], master_key: str
) -> None:
    ldsn, bdsn = dbs
    grace = 1.5
    # poll interval 30 s: a cascade on time can only come from the relay's due-time wake-up
    settings = settings_for(ldsn, bdsn, master_key, retire_grace_seconds=grace)
    async with (
        running(settings),
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
    ):
        await seed_models(lc, bc, master_key, ["granite", "llama"])
        keys = await subscribe(bc, ["granite", "llama"])
        sub = await scalar(bc, "SELECT id FROM subscriptions WHERE model_id = 'granite'")
        deleted = time.perf_counter()
        await lc.execute("""DELETE FROM "LiteLLM_ProxyModelTable" WHERE model_name = 'granite'""")
        await eventually(
            lambda: all_are(bc, ["granite"], "unavailable"), what="unavailable at once"
        )
        if time.perf_counter() - deleted < grace * 0.8:
            assert await user_state(bc) == (2, 2, 2)  # within the grace: nothing cascaded yet

        async def cascaded() -> bool:
            return await user_state(bc) == (1, 1, 1)

        await eventually(
            cascaded, deadline_seconds=grace + 10, what="the cascade after the grace period"
        )
        took = time.perf_counter() - deleted
        assert grace * 0.9 <= took < grace + 5, took  # after the grace, and soon after it
        assert await pending(bc) == {}
        assert await cascades(bc) == 1
        record = await rows(
            bc,
            "SELECT subscriptions, key_links, api_keys FROM litemaas_hooks.retire_cascades "
            "WHERE model_id = 'granite'",
        )
        assert len(record) == 1
        subs, links, api_keys = record[0]
        assert subs == [{"id": str(sub), "status": "active"}]
        assert [link["api_key_id"] for link in links] == [keys["granite"]]
        assert api_keys == [keys["granite"]]
        assert (
            await scalar(bc, "SELECT is_active FROM api_keys WHERE id = %s", (keys["llama"],))
            is True
        )


# -- (e) the mass-retire guard holds; retire --confirm and restore ---------------------------------


async def test_guard_holds_until_confirm_then_restore_puts_back_exactly_that(
    dbs: tuple[str, str],
    master_key: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ldsn, bdsn = dbs
    names = ["a", "b", "c", "d"]
    settings = settings_for(ldsn, bdsn, master_key, retire_grace_seconds=0.0)
    for var, value in {
        "LITEMAAS_DATABASE_URL": bdsn,
        "LITELLM_DATABASE_URL": ldsn,
        "LITELLM_MASTER_KEY": master_key,
        "LITEMAAS_HOOKS_RETIRE_GRACE_SECONDS": "0",
        "LITEMAAS_HOOKS_RETIRE_GUARD_MIN_MODELS": "3",
    }.items():
        monkeypatch.setenv(var, value)
    async with (
        running(settings) as (relay,),
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
    ):
        await seed_models(lc, bc, master_key, names)
        keys = await subscribe(bc, names)
        await lc.execute(
            """DELETE FROM "LiteLLM_ProxyModelTable" WHERE model_name IN ('a', 'b', 'c')"""
        )
        await eventually(
            lambda: all_are(bc, ["a", "b", "c"], "unavailable"), what="unavailable at once"
        )
        await eventually(lambda: outbox_empty(lc))
        # grace 0, yet 3 of 4 at once: held, nothing cascaded
        assert await pending(bc) == {"a": True, "b": True, "c": True}
        assert await user_state(bc) == (4, 4, 4)
        assert await cascades(bc) == 0

        report = await collect_status(settings, check_drift=False)
        assert not report.healthy
        assert any("retire --confirm" in p and "3 models" in p for p in report.problems), (
            report.problems
        )
        await eventually(lambda: _held_metric(relay, 3), what="the held metric")

        # `retire` lists (exit 2: something waits for the operator)
        assert await asyncio.to_thread(cli.main, ["retire"]) == 2
        assert "HELD" in capsys.readouterr().out
        # c comes back before the operator confirms: it is not cascaded
        await insert(lc, "c", master_key)
        await eventually(lambda: all_are(bc, ["c"], "available"), what="c back")
        await eventually(
            lambda: _equals(pending(bc), {"a": True, "b": True}), what="c's hold cleared"
        )

        assert await asyncio.to_thread(cli.main, ["retire", "--confirm"]) == 0
        out = capsys.readouterr().out
        assert "a: cascaded" in out, out
        assert "b: cascaded" in out, out
        assert await pending(bc) == {}
        assert await user_state(bc) == (2, 2, 2)
        assert await cascades(bc) == 2

        # restore: the user re-created b's subscription meanwhile (the backend reactivates its row)
        await bc.execute("UPDATE subscriptions SET status = 'active' WHERE model_id = 'b'")
        for name in ("a", "b"):
            await insert(lc, name, master_key)
        await eventually(lambda: all_are(bc, names, "available"), what="a and b back")
        assert await asyncio.to_thread(cli.main, ["restore", "a", "b", "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "a: would restore 1 subscriptions, 1 key links, 1 API keys" in out, out
        assert "b: would restore 0 subscriptions, 1 key links, 1 API keys" in out, out
        assert await user_state(bc) == (3, 2, 2)  # the dry run wrote nothing

        assert await asyncio.to_thread(cli.main, ["restore", "a", "b", "--yes"]) == 0
        assert await user_state(bc) == (4, 4, 4)
        assert await scalar(bc, "SELECT count(*) FROM subscriptions") == 4  # b's not duplicated
        assert {
            str(k) for (k,) in await rows(bc, "SELECT id FROM api_keys WHERE is_active")
        } == set(keys.values())
        assert (
            await scalar(
                bc, "SELECT count(*) FROM audit_logs WHERE action = 'MODEL_CASCADE_RESTORED'"
            )
            == 2
        )
        # a second restore finds nothing left to restore
        assert await asyncio.to_thread(cli.main, ["restore", "a", "--yes"]) == 0
        assert "a: no retire cascade to restore" in capsys.readouterr().out


async def _held_metric(relay: Any, expected: int) -> bool:
    from litemaas_hooks.metrics import RETIRES_PENDING

    return bool(
        relay.observe.retires_held == expected
        and RETIRES_PENDING.labels(state="held")._value.get() == expected
    )


async def test_restore_refuses_while_the_model_is_gone(
    dbs: tuple[str, str], master_key: str
) -> None:
    ldsn, bdsn = dbs
    settings = settings_for(ldsn, bdsn, master_key, retire_grace_seconds=0.0)
    async with (
        running(settings),
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
    ):
        await seed_models(lc, bc, master_key, ["a", "b", "c", "d"])
        await subscribe(bc, ["a"])
        await lc.execute("""DELETE FROM "LiteLLM_ProxyModelTable" WHERE model_name = 'a'""")
        await eventually(
            lambda: _equals(user_state(bc), (0, 0, 0)), what="a single delete cascades (grace 0)"
        )
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
            await bc.execute("SELECT litemaas_hooks.restore_model_v1('a', true)")
        assert await user_state(bc) == (0, 0, 0)


# -- two LiteLLMs, one backend ---------------------------------------------------------------------


@pytest.fixture
def second_litellm_dsn(pg_cluster: LocalPostgres) -> Iterator[str]:
    yield from _clone(pg_cluster, TPL_LITELLM, "litellm")


async def test_two_litellms_one_backend_each_retires_only_its_own(
    dbs: tuple[str, str], second_litellm_dsn: str, master_key: str
) -> None:
    ldsn_a, bdsn = dbs
    ldsn_b = second_litellm_dsn
    await install(ldsn_b, bdsn)
    settings_a = settings_for(ldsn_a, bdsn, master_key, retire_grace_seconds=0.0)
    settings_b = settings_for(ldsn_b, bdsn, master_key, retire_grace_seconds=0.0)
    async with (
        running(settings_a),
        running(settings_b),
        await psycopg.AsyncConnection.connect(ldsn_a, autocommit=True) as la,
        await psycopg.AsyncConnection.connect(ldsn_b, autocommit=True) as lb,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
    ):
        for name in ("shared", "only-a", "filler-a"):
            await insert(la, name, master_key)
        for name in ("shared", "only-b", "filler-b"):
            await insert(lb, name, master_key)
        everything = ["shared", "only-a", "only-b", "filler-a", "filler-b"]
        await eventually(lambda: all_are(bc, everything, "available"), what="both instances synced")
        await eventually(lambda: outbox_empty(la))
        await eventually(lambda: outbox_empty(lb))
        await subscribe(bc, ["shared", "only-b"])
        instances = await rows(bc, "SELECT DISTINCT instance FROM litemaas_hooks.model_instances")
        assert len(instances) == 2

        # A's periodic full reconcile (retire missing): never retires what only B has
        async with await psycopg.AsyncConnection.connect(ldsn_a, autocommit=True) as la2:
            report = await Reconciler(settings_a).converge(la2, bc, None, retire_missing=True)
        assert report.outcomes["only-b"].action == "unchanged", report.outcomes["only-b"]
        assert await all_are(bc, everything, "available")
        # and A's status does not take B's names for drift
        status = await collect_status(settings_a)
        assert status.drift.checked
        assert not status.drift.gone_from_litellm, status.problems

        # a name served by both stays while either has it
        await la.execute("""DELETE FROM "LiteLLM_ProxyModelTable" WHERE model_name = 'shared'""")
        await eventually(lambda: outbox_empty(la))
        assert await all_are(bc, ["shared"], "available")
        assert await user_state(bc) == (2, 2, 2)
        await lb.execute("""DELETE FROM "LiteLLM_ProxyModelTable" WHERE model_name = 'shared'""")
        await eventually(
            lambda: all_are(bc, ["shared"], "unavailable"), what="gone from both: retired"
        )
        await eventually(lambda: _equals(user_state(bc), (1, 1, 1)), what="its cascade")


# -- retire serialised per API key (issue 20) ------------------------------------------------------


def test_concurrent_retires_of_a_keys_two_models_deactivate_the_key(backend_dsn: str) -> None:
    """Two transactions retire the two models of one key at the same time: without serialising per
    key each sees the other's link still there and the key stays active with no model (write
    skew)."""
    asyncio.run(_install_backend(backend_dsn))
    key = str(uuid.uuid4())
    with psycopg.connect(backend_dsn, autocommit=True) as setup:
        for name in ("m1", "m2"):
            setup.execute(
                "INSERT INTO models (id, name, provider, litellm_model_id) "
                "VALUES (%s, %s, 'openai', %s)",
                (name, name, f"{name}-deployment"),
            )
        setup.execute(
            "INSERT INTO users (id, username, email, oauth_provider, oauth_id) "
            "VALUES (%s, 'alice', 'alice@example.com', 'test', 'alice')",
            (USER,),
        )
        setup.execute(
            "INSERT INTO api_keys (id, user_id, key_hash, key_prefix) VALUES (%s, %s, 'h', 'sk-')",
            (key, USER),
        )
        setup.execute("INSERT INTO api_key_models VALUES (%s, 'm1'), (%s, 'm2')", (key, key))

    retire = "SELECT litemaas_hooks.retire_model_v2(%s, true, %s, 0, NULL, false)"
    with (
        psycopg.connect(backend_dsn) as first,
        psycopg.connect(backend_dsn, autocommit=True) as watcher,
    ):
        first.execute(retire, ("m1", RETIRE_REASON))  # open, not committed
        errors: list[BaseException] = []
        pid: list[int] = []

        def second() -> None:
            try:
                with psycopg.connect(backend_dsn) as conn:
                    pid.append(conn.info.backend_pid)
                    conn.execute(retire, ("m2", RETIRE_REASON))
                    conn.commit()
            except BaseException as exc:  # shown by the assertion below
                errors.append(exc)

        thread = threading.Thread(target=second)
        thread.start()
        deadline = time.monotonic() + 10
        # the second one either waits for the key's lock (serialised) or is done (it did not wait)
        while thread.is_alive() and time.monotonic() < deadline:
            if pid and watcher.execute(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (pid[0],)
            ).fetchone() == (True,):
                break
            thread.join(0.005)  # a bounded wait on the thread, the loop's poll interval
        first.commit()
        thread.join(10)
        assert not thread.is_alive()
        assert not errors, errors
        with psycopg.connect(backend_dsn) as check:
            active = check.execute(
                "SELECT is_active FROM api_keys WHERE id = %s", (key,)
            ).fetchone()
            links = check.execute("SELECT count(*) FROM api_key_models").fetchone()
    assert links == (0,)
    assert active == (False,), "the key is active with no model left"


async def _install_backend(dsn: str) -> None:
    from litemaas_hooks.migrations import apply_migrations

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await apply_migrations(conn, "backend")


# -- what the relay role may do with retire safety -------------------------------------------------


def test_relay_role_cannot_confirm_a_hold_nor_restore(installed: World) -> None:
    """With exactly `install --print-grants`: the relay role works the due cascades, but neither
    confirms what the mass-retire guard holds (only the operator's `retire --confirm`) nor restores
    a cascade."""
    w = installed
    with psycopg.connect(w.bdsn, autocommit=True) as su:
        su.execute(
            "INSERT INTO models (id, name, provider, litellm_model_id, availability) "
            "VALUES ('held', 'held', 'openai', 'dep-1', 'available')"
        )
        assert su.execute(
            "SELECT litemaas_hooks.retire_model_v2('held', true, %s, 0, NULL, true)",
            (RETIRE_REASON,),
        ).fetchone() == (
            {"found": True, "retired": True, "pending": True, "held": True, "grace_seconds": 0},
        )
    with psycopg.connect(w.url(w.bdsn, w.relay), autocommit=True) as relay:
        assert relay.execute(
            "SELECT count(*) FROM litemaas_hooks.retire_queue_v1()"
        ).fetchone() == (1,)
        # the relay's own function leaves a held name alone
        result = relay.execute(
            "SELECT litemaas_hooks.cascade_pending_v1('held', %s)", (RETIRE_REASON,)
        ).fetchone()
        assert result == ({"cascaded": False, "pending": False},)
        for query, params in (
            ("SELECT litemaas_hooks.cascade_held_v1('held', %s)", (RETIRE_REASON,)),
            ("SELECT * FROM litemaas_hooks.claim_held_retires_v1(NULL)", None),
            ("SELECT litemaas_hooks.restore_model_v1('held', true)", None),
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                relay.execute(query, params)
    with psycopg.connect(w.bdsn, autocommit=True) as su:
        assert su.execute(
            "SELECT held_at IS NOT NULL FROM litemaas_hooks.pending_retires"
        ).fetchone() == (True,)


# -- a full run commits per chunk, its retires are decided over the whole pass --------------------


async def test_full_run_guard_sees_the_whole_pass_across_chunks(
    dbs: tuple[str, str], master_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks of 2 names, 4 names gone: each chunk alone is under the guard's minimum (3), the pass
    is not. The pass's retires are applied together after its last chunk: all 4 held."""
    from litemaas_hooks import reconcile

    ldsn, bdsn = dbs
    monkeypatch.setattr(reconcile, "CHUNK_NAMES", 2)
    names = [f"chunked-{i}" for i in range(4)]
    engine = Reconciler(settings_for(ldsn, bdsn, master_key))
    async with (
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
    ):
        for name in names:
            await insert(lc, name, master_key)
        first = await engine.converge(lc, bc, names=None)
        assert {first.outcomes[n].action for n in names} == {"created"}
        await lc.execute(
            'DELETE FROM public."LiteLLM_ProxyModelTable" WHERE model_name = ANY (%s)', (names,)
        )
        report = await engine.converge(lc, bc, names=None, retire_missing="db-rows")
        assert {report.outcomes[n].action for n in names} == {"retired"}
        assert sorted(report.held) == names
        assert await pending(bc) == dict.fromkeys(names, True)
        assert await all_are(bc, names, "unavailable")


async def test_full_run_does_not_retire_a_name_back_since_its_chunk(
    dbs: tuple[str, str], master_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name its chunk found gone but that is back in LiteLLM when the pass applies its retires
    (the chunks committed meanwhile): not retired, deferred to its own change."""
    from litemaas_hooks import reconcile

    ldsn, bdsn = dbs
    monkeypatch.setattr(reconcile, "CHUNK_NAMES", 1)
    engine = Reconciler(settings_for(ldsn, bdsn, master_key, retire_grace_seconds=0.0))
    async with (
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
    ):
        for name in ("back-a", "gone-b"):
            await insert(lc, name, master_key)
        await engine.converge(lc, bc, names=None)
        await lc.execute(
            'DELETE FROM public."LiteLLM_ProxyModelTable" WHERE model_name IN (%s, %s)',
            ("back-a", "gone-b"),
        )
        original = reconcile.Reconciler._retire_pass

        async def readd_first(self: Reconciler, *args: Any) -> None:
            await insert(lc, "back-a", master_key)  # re-created after its chunk committed
            await original(self, *args)

        monkeypatch.setattr(reconcile.Reconciler, "_retire_pass", readd_first)
        report = await engine.converge(lc, bc, names=None, retire_missing="db-rows")
        assert report.outcomes["back-a"].action == "deferred"
        assert report.outcomes["back-a"].message == reconcile.CAME_BACK
        assert report.outcomes["gone-b"].action == "retired"
        assert await availability(bc) == {"back-a": "available", "gone-b": "unavailable"}
