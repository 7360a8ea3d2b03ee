"""The relay's one-round-trip write (adds and updates) under the backend's locks.

One statement sets the lock timeout and takes the names' locks, then upserts the names that were
not busy and notes their sources. A name another writer holds is left for later and the others are
written; a full run holding every name (its exclusive lock) is waited for at most the lock timeout,
then the batch is retried later.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import psycopg
import pytest

from tests.helpers import (
    AConn,
    backend_models,
    eventually,
    insert,
    make_settings,
    outbox_empty,
    rows,
    running,
)

pytestmark = pytest.mark.anyio

NAME_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('litemaas_hooks.model:' || %s, 0))"
FLEET_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('litemaas_hooks.models', 0))"


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
    """The name's event is still in the outbox, with the reason it waits (the relay settles its
    events after the backend's commit: wait for it)."""

    async def check() -> bool:
        found = await rows(
            lc,
            "SELECT 1 FROM litemaas_hooks.model_events "
            "WHERE new_model_name = %s AND last_error IS NOT NULL",
            (name,),
        )
        return bool(found)

    return check


async def test_a_busy_name_is_left_for_later_and_the_rest_of_its_batch_is_written(
    dbs: tuple[str, str], master_key: str
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


async def test_a_full_run_holding_every_name_is_waited_for_at_most_the_lock_timeout(
    dbs: tuple[str, str], master_key: str
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
