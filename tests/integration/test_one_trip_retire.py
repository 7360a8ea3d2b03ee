"""A delete as one backend statement: ``retire_models_v1`` decides each name as the two round trips
of the release before do (the names' locks and rows, then ``retire_model_v2``), in SQL.

Every kind of name a delete can leave is converged both ways, the function and (the function
dropped, as in an install older than the code) the two round trips, and must come out the same:
same outcome and message per name, same rows, hidden marks, audit rows and pending cascades. A
relay role whose grants predate the function, or an install that lacks it, retires all the same
with one warning naming the fix; the relay uses the function when it is there.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from litemaas_hooks.planning import HAND_MADE
from litemaas_hooks.reconcile import BUSY_MESSAGE, SERVED_ELSEWHERE, Reconciler
from tests.helpers import (
    RETIRE_FN,
    AConn,
    World,
    add,
    assert_warned_once,
    audits,
    backend_models,
    eventually,
    fallback_warnings,
    function_calls,
    insert,
    make_settings,
    outbox_empty,
    pending,
    rows,
    run_sql,
    running,
    track_functions,
    withdraw_function,
)

pytestmark = pytest.mark.anyio

NAME_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('litemaas_hooks.model:' || %s, 0))"
SYNCED = ("ours", "admin", "blocked", "busy", "shared")
# what each name's delete comes to, both ways (the message of "ours" is the cascade's counts)
EXPECTED: dict[str, tuple[str, str | None]] = {
    "admin": ("unchanged", "already unavailable"),  # an admin's hide stays the admin's
    "blocked": ("unchanged", "already unavailable"),  # hidden while blocked: no second cascade
    "hand": ("unchanged", HAND_MADE),
    "never": ("unchanged", "not in LiteLLM nor in the backend"),
    "busy": ("deferred", BUSY_MESSAGE),
    "shared": ("unchanged", SERVED_ELSEWHERE),
}


@pytest.fixture(params=["retire_models_v1", "two trips"])
def path(request: pytest.FixtureRequest, dbs: tuple[str, str]) -> str:
    """One call of retire_models_v1, or (the function dropped) the two round trips. The backend
    counts the calls of our functions (track_functions)."""
    track_functions(dbs[1])
    if request.param == "two trips":
        run_sql(dbs[1], f"DROP FUNCTION {RETIRE_FN}")
    return str(request.param)


async def state(bc: AConn) -> dict[str, Any]:
    """What the deletes may change in the backend."""
    hidden = await rows(bc, "SELECT model_id, reason FROM litemaas_hooks.hidden_models")
    return {
        "models": await backend_models(bc),
        "hidden": dict(hidden),
        "audits": await audits(bc),
        "pending": await pending(bc),
    }


async def written_then_retired(lc: AConn, bc: AConn, model_id: str, name: str) -> None:
    """The deployment just added is written, then deleted, and its name retired."""

    async def has(state: str) -> bool:
        return (await backend_models(bc)).get(name) == state

    await eventually(lambda: has("available"), what=f"{name} written")
    delete = 'DELETE FROM public."LiteLLM_ProxyModelTable" WHERE model_id = %s'
    await lc.execute(delete, (model_id,))
    await eventually(lambda: has("unavailable"), what=f"{name} retired")


async def test_every_kind_of_delete_comes_out_the_same_both_ways(
    dbs: tuple[str, str], master_key: str, path: str, logs: list[str]
) -> None:
    ldsn, bdsn = dbs
    settings = make_settings(ldsn, bdsn, master_key)
    async with (
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as other,
    ):
        async with running(settings):
            for name in SYNCED:
                await insert(lc, name, master_key)

            async def synced() -> bool:
                return set(SYNCED) <= set(await backend_models(bc))

            await eventually(synced, what="the names are synced")
        # the backend's own decisions before the deletes
        await bc.execute("UPDATE models SET availability = 'unavailable' WHERE id = 'admin'")
        await bc.execute("UPDATE models SET availability = 'unavailable' WHERE id = 'blocked'")
        await bc.execute(
            "INSERT INTO litemaas_hooks.hidden_models (model_id, reason) VALUES ('blocked', "
            "'blocked')"
        )
        await bc.execute(
            "INSERT INTO models (id, name, provider) VALUES ('hand', 'Hand made', 'custom')"
        )
        await bc.execute(
            "INSERT INTO litemaas_hooks.model_instances (model_id, instance) "
            "VALUES ('shared', 'another-litellm')"
        )
        # LiteLLM has none of them now (the relay is stopped: its events wait)
        await lc.execute('DELETE FROM public."LiteLLM_ProxyModelTable"')
        engine = Reconciler(settings)
        names = {*SYNCED, "hand", "never"}
        async with other.transaction():
            await other.execute(NAME_LOCK, ("busy",))
            report = await engine.converge(lc, bc, names=names, prefetched=[])
        got = {n: (o.action, o.message) for n, o in report.outcomes.items()}
        ours = got.pop("ours")
        assert got == EXPECTED, got
        assert ours[0] == "retired", ours
        assert "subscriptionsDeactivated=0" in (ours[1] or ""), ours
        assert report.outcomes["ours"].changes == {"availability": ("available", "unavailable")}
        assert sorted(report.retires) == ["ours", "shared"]  # those retire_model_v2 was asked
        after = await state(bc)
        assert after["models"] == {
            "ours": "unavailable",
            "admin": "unavailable",
            "blocked": "unavailable",
            "busy": "available",
            "shared": "available",
            "hand": "available",
        }
        assert after["hidden"] == {"ours": "retired", "blocked": "blocked"}
        assert after["audits"] == {"ours": 1}
        assert after["pending"] == {}
        # again: retired already, nothing more (no second audit row)
        again = await engine.converge(lc, bc, names={"ours"}, prefetched=[])
        assert {n: (o.action, o.message) for n, o in again.outcomes.items()} == {
            "ours": ("unchanged", "already retired")
        }
        assert await state(bc) == after
    async with await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc:

        async def counted() -> bool:  # a session's counts are in once it ended
            return (await function_calls(bc)).get("retire_model_v2", 0) >= 2  # ours, shared

        await eventually(counted, what="the session counted its calls")
        done = await function_calls(bc)
    if path == "two trips":  # the function dropped: never counted
        assert_warned_once(logs, "retire_models_v1")
    else:
        assert done.get("retire_models_v1", 0) == 2, done
        assert fallback_warnings(logs, "retire_models_v1") == []


async def test_the_relay_retires_a_delete_in_one_call(
    dbs: tuple[str, str], master_key: str, path: str, logs: list[str]
) -> None:
    """Through a running relay, each delete its own batch."""
    ldsn, bdsn = dbs
    async with (
        running(make_settings(ldsn, bdsn, master_key)),
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
    ):
        for name in ("a", "b"):
            await written_then_retired(lc, bc, await insert(lc, name, master_key), name)
        await eventually(lambda: outbox_empty(lc))
    async with await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc:

        async def counted() -> bool:  # the relay's session's counts are in once it ended
            return (await function_calls(bc)).get("retire_model_v2", 0) >= 2

        await eventually(counted, what="the relay's session counted its calls")
        done = await function_calls(bc)
    if path == "retire_models_v1":  # the two trips: the function dropped, never counted
        assert done.get("retire_models_v1", 0) == 2, done


@pytest.mark.parametrize("missing", ["not granted", "not installed"])
async def test_without_retire_models_v1_every_delete_is_retired_with_one_warning(
    installed: World, master_key: str, logs: list[str], missing: str
) -> None:
    """Grants of an older `install --print-grants` (42501) or an older install (42883): the relay
    role's deletes take the two round trips, and one warning names the fix."""
    w = installed
    withdraw_function(w, RETIRE_FN, missing)
    settings = make_settings(w.url(w.ldsn, w.relay), w.url(w.bdsn, w.relay), master_key)
    names = ("a", "b", "c")
    async with (
        await psycopg.AsyncConnection.connect(w.as_(w.ldsn, w.lowner), autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(w.bdsn, autocommit=True) as bc,
        running(settings),
    ):
        for name in names:  # one delete each
            model_id = await add(lc, name, master_key, max_tokens=1)
            await written_then_retired(lc, bc, model_id, name)
    assert_warned_once(logs, "retire_models_v1")
