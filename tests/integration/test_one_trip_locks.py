"""The relay's one-round-trip write (adds and updates) under the backend's locks.

One pipelined transaction sets the lock timeout and takes the names' locks in one statement, then
upserts the names that were not busy and notes their sources. A name another writer holds is left
for later and the others are written; a full run holding every name (its exclusive lock) is waited
for at most the lock timeout, then the batch is retried later.
"""

from __future__ import annotations

import psycopg
import pytest

from tests.helpers import (
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


async def test_a_busy_name_is_left_for_later_and_the_rest_of_its_batch_is_written(
    dbs: tuple[str, str], master_key: str
) -> None:
    ldsn, bdsn = dbs
    async with (
        running(make_settings(ldsn, bdsn, master_key)),
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as other,
    ):
        async with other.transaction():
            await other.execute(NAME_LOCK, ("held",))
            async with lc.transaction():  # one commit: one batch of both names
                await insert(lc, "held", master_key)
                await insert(lc, "free", master_key)

            async def free_written() -> bool:
                return "free" in await backend_models(bc)

            async def held_waits_with_why() -> bool:
                found = await rows(
                    lc,
                    "SELECT last_error FROM litemaas_hooks.model_events "
                    "WHERE new_model_name = 'held' AND last_error IS NOT NULL",
                )
                return bool(found)

            await eventually(free_written, what="the name not busy is written")
            # the relay settles its events after the backend's commit: wait for it
            await eventually(held_waits_with_why, what="the busy name's event is kept, with why")
            assert "held" not in await backend_models(bc)

        async def both_written() -> bool:
            return {"held", "free"} <= set(await backend_models(bc))

        await eventually(both_written, what="the busy name is written once released")
        await eventually(lambda: outbox_empty(lc))


async def test_a_full_run_holding_every_name_is_waited_for_at_most_the_lock_timeout(
    dbs: tuple[str, str], master_key: str
) -> None:
    ldsn, bdsn = dbs
    async with (
        running(make_settings(ldsn, bdsn, master_key)),
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as full_run,
    ):
        async with full_run.transaction():
            await full_run.execute(FLEET_LOCK)
            await insert(lc, "later", master_key)

            async def deferred() -> bool:
                found = await rows(
                    lc,
                    "SELECT last_error FROM litemaas_hooks.model_events "
                    "WHERE new_model_name = 'later' AND last_error IS NOT NULL",
                )
                return bool(found)

            # without the lock timeout the relay would wait for the whole run (never, here)
            await eventually(deferred, what="the write gives up after the lock timeout")
            assert "later" not in await backend_models(bc)

        async def written() -> bool:
            return "later" in await backend_models(bc)

        await eventually(written, what="the change is written after the run")
