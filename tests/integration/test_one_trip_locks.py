"""The relay's one-round-trip write (adds and updates) under the backend's locks.

One statement sets the lock timeout and takes the names' locks, then upserts the names that were
not busy and notes their sources. A name another writer holds is left for later and the others are
written; a full run holding every name (its exclusive lock) is waited for at most the lock timeout,
then the batch is retried later. Both ways of writing: one checked call of ``write_models_v1``,
and the query of the release before (``write_models_one_trip``) where that function is missing or
not granted, with one warning naming the fix.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import psycopg
import pytest

from tests.helpers import (
    WRITE_FN,
    AConn,
    World,
    add,
    assert_warned_once,
    backend_models,
    eventually,
    fallback_warnings,
    function_calls,
    insert,
    make_settings,
    outbox_empty,
    rows,
    run_sql,
    running,
    track_functions,
    withdraw_function,
)

pytestmark = pytest.mark.anyio

NAME_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('litemaas_hooks.model:' || %s, 0))"
FLEET_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('litemaas_hooks.models', 0))"


@pytest.fixture(params=["write_models_v1", "fallback"])
def path(request: pytest.FixtureRequest, dbs: tuple[str, str]) -> str:
    """How the relay writes: one checked call of write_models_v1, or (the function dropped, as in
    an install older than the code) the query of the release before. The backend counts the calls
    of our functions (track_functions) for ``wrote_via``."""
    bdsn = dbs[1]
    track_functions(bdsn)
    if request.param == "fallback":
        run_sql(bdsn, f"DROP FUNCTION {WRITE_FN}")
    return str(request.param)


async def wrote_via(bdsn: str, path: str, logs: list[str], writes: int) -> None:
    """After the relay stopped: its ``writes`` writes (at least) went the way ``path`` says, and
    the fallback said so once, naming the fix (the function is dropped on that path: it is never
    counted)."""
    async with await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc:

        async def counted() -> bool:
            return (await function_calls(bc)).get("try_lock_models_v1", 0) >= writes

        await eventually(counted, what="the relay's session counted its calls")
        done = await function_calls(bc)
    if path == "fallback":
        assert_warned_once(logs, "write_models_v1")
    else:
        assert done.get("write_models_v1", 0) >= writes, done
        assert fallback_warnings(logs, "write_models_v1") == []


@asynccontextmanager
async def relay_and_holder(
    dbs: tuple[str, str], master_key: str
) -> AsyncIterator[tuple[AConn, AConn, AConn]]:
    """A running relay; (LiteLLM, backend, another backend session that holds locks)."""
    ldsn, bdsn = dbs
    async with (
        running(make_settings(ldsn, bdsn, master_key)),
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as holder,
    ):
        yield lc, bc, holder


def written(bc: AConn, *names: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return set(names) <= set(await backend_models(bc))

    return check


def waits_with_why(lc: AConn, name: str) -> Callable[[], Awaitable[bool]]:
    """The name's event (of its add or its delete) is still in the outbox, with the reason it
    waits (the relay settles its events after the backend's commit: wait for it)."""

    async def check() -> bool:
        found = await rows(
            lc,
            "SELECT 1 FROM litemaas_hooks.model_events "
            "WHERE %s IN (new_model_name, old_model_name) AND last_error IS NOT NULL",
            (name,),
        )
        return bool(found)

    return check


async def test_a_busy_name_is_left_for_later_and_the_rest_of_its_batch_is_written(
    dbs: tuple[str, str], master_key: str, path: str, logs: list[str]
) -> None:
    async with relay_and_holder(dbs, master_key) as (lc, bc, other):
        async with other.transaction():
            await other.execute(NAME_LOCK, ("held",))
            async with lc.transaction():  # one commit: one batch of both names
                await insert(lc, "held", master_key)
                await insert(lc, "free", master_key)
            await eventually(written(bc, "free"), what="the name not busy is written")
            await eventually(waits_with_why(lc, "held"), what="the busy name's event is kept")
            assert "held" not in await backend_models(bc)
        await eventually(written(bc, "held", "free"), what="the busy name, once released")
        await eventually(lambda: outbox_empty(lc))
    await wrote_via(dbs[1], path, logs, writes=2)  # the batch, then the busy name


async def test_a_full_run_holding_every_name_is_waited_for_at_most_the_lock_timeout(
    dbs: tuple[str, str], master_key: str, path: str, logs: list[str]
) -> None:
    async with relay_and_holder(dbs, master_key) as (lc, bc, full_run):
        async with full_run.transaction():
            await full_run.execute(FLEET_LOCK)
            await insert(lc, "later", master_key)
            # without the lock timeout the relay would wait for the whole run (never, here)
            await eventually(
                waits_with_why(lc, "later"), what="the write gives up after the lock timeout"
            )
            assert "later" not in await backend_models(bc)
        await eventually(written(bc, "later"), what="the change is written after the run")
    await wrote_via(dbs[1], path, logs, writes=1)


@pytest.mark.parametrize("missing", ["not granted", "not installed"])
async def test_without_write_models_v1_every_write_lands_with_one_warning(
    installed: World, master_key: str, logs: list[str], missing: str
) -> None:
    """Grants of an older `install --print-grants` (42501) or an older install (42883): the relay
    role's writes go through the query of the release before, and one warning names the fix."""
    w = installed
    withdraw_function(w, WRITE_FN, missing)
    settings = make_settings(w.url(w.ldsn, w.relay), w.url(w.bdsn, w.relay), master_key)
    names = ("a", "b", "c")
    async with (
        await psycopg.AsyncConnection.connect(w.as_(w.ldsn, w.lowner), autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(w.bdsn, autocommit=True) as bc,
        running(settings),
    ):
        for i, name in enumerate(names):  # one write each
            await add(lc, name, master_key, max_tokens=1)
            await eventually(written(bc, *names[: i + 1]), what=f"{name} written")
    assert_warned_once(logs, "write_models_v1")


async def test_a_retire_while_a_full_run_holds_every_name_waits_at_most_the_lock_timeout(
    dbs: tuple[str, str], master_key: str
) -> None:
    """A delete's one statement (retire_models_v1; the first of two round trips without it) sets
    the lock timeout and takes the names' locks at once."""
    async with relay_and_holder(dbs, master_key) as (lc, bc, full_run):
        await insert(lc, "gone", master_key)
        await eventually(written(bc, "gone"), what="the model is written")
        async with full_run.transaction():
            await full_run.execute(FLEET_LOCK)
            await lc.execute(
                'DELETE FROM public."LiteLLM_ProxyModelTable" WHERE model_name = %s', ("gone",)
            )
            # without the lock timeout the retire would wait for the whole run (never, here)
            await eventually(
                waits_with_why(lc, "gone"), what="the retire gives up after the lock timeout"
            )
            assert (await backend_models(bc))["gone"] == "available"

        async def retired() -> bool:
            return (await backend_models(bc)).get("gone") == "unavailable"

        await eventually(retired, what="the retire is made after the run")
