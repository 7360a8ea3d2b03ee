"""The claim as one statement (``litemaas_hooks.claim_batch_v1``, sql/litellm/repeatable/
20_claim_batch.sql): it gives dead sessions' claims back as the pipelined claim does, refuses a
column of LiteLLM's table of a type LiteLLM does not use (it casts what it reads), and a relay whose
install or role predates it falls back to the pipelined named queries, saying so once."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
import pytest
from psycopg import sql as pgsql

from litemaas_hooks import litellm_source, outbox, privileges
from tests.helpers import (
    TABLE,
    World,
    add_good,
    backend_models,
    conns,
    eventually,
    make_settings,
    run_sql,
    running,
)

pytestmark = pytest.mark.anyio

SIGNATURE = privileges.RELAY_LITELLM_FUNCTIONS[0]
FALLBACK = "claims take"


@pytest.mark.parametrize("via_function", [True, False], ids=["function", "pipelined"])
async def test_a_dead_sessions_claim_is_given_back_and_claimed_again(
    dbs: tuple[str, str], master_key: str, via_function: bool
) -> None:
    ldsn, _ = dbs
    async with await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc:
        await add_good(lc, "orphan", master_key)
        async with await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as doomed:
            (claimed,) = await outbox.claim(doomed, worker="doomed", batch_size=10)
        blocked = await litellm_source.has_blocked_column(lc)
        recovered: list[outbox.Recovered] = []
        batches: list[outbox.Batch] = []

        async def taken_over() -> bool:
            batch = await outbox.claim_batch(
                lc,
                worker="w",
                batch_size=10,
                blocked_column=blocked,
                explicit_transaction=False,
                via_function=via_function,
            )
            recovered.extend(batch.recovered)
            batches.append(batch)
            return bool(batch.events)

        await eventually(taken_over, what="the dead session's claim given back and re-claimed")
    assert recovered == [outbox.Recovered(claimed.id, "pending")]
    (event,) = batches[-1].events
    # the interrupted attempt was given back: this is attempt 1 again
    assert (event.id, event.attempts, event.names) == (claimed.id, 1, frozenset({"orphan"}))
    assert [r["model_name"] for r in batches[-1].rows] == ["orphan"]


async def test_the_function_refuses_a_column_of_a_type_litellm_does_not_use(
    dbs: tuple[str, str], master_key: str
) -> None:
    """A domain is a type of the table owner's: a cast of it could be the owner's code, run with
    the relay's privileges. The claim is refused (and rolled back: nothing claimed)."""
    ldsn, _ = dbs
    async with await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc:
        await add_good(lc, "m", master_key)
        await lc.execute("CREATE DOMAIN public.owners_text AS text")
        await lc.execute(f"ALTER TABLE {TABLE} ALTER COLUMN model_name TYPE public.owners_text")
        with pytest.raises(
            psycopg.errors.InvalidTableDefinition, match=r"model_name is public\.owners_text"
        ):
            await outbox.claim_batch(lc, worker="w", batch_size=10, via_function=True)
        cur = await lc.execute("SELECT status, attempts FROM litemaas_hooks.model_events")
        assert await cur.fetchall() == [("pending", 0)]


async def _falls_back(
    ldsn: str, bdsn: str, master_key: str, caplog: pytest.LogCaptureFixture, **relay_urls: str
) -> None:
    """A relay started on these databases applies several changes, and says once that its
    claims are pipelined."""
    caplog.set_level(logging.WARNING, logger="litemaas_hooks")
    settings = make_settings(
        relay_urls.get("litellm", ldsn), relay_urls.get("backend", bdsn), master_key
    )
    async with conns(ldsn, bdsn) as (lc, bc), running(settings) as (relay,):
        for name in ("a", "b", "c"):
            await add_good(lc, name, master_key)

        async def all_there() -> bool:
            have = await backend_models(bc)
            return all(have.get(n) == "available" for n in ("a", "b", "c"))

        await eventually(all_there, what="every change applied through the pipelined claim")
        assert relay.stats.events_failed == 0
    warnings = [r.getMessage() for r in caplog.records if FALLBACK in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "install" in warnings[0]
    assert "--print-grants" in warnings[0]


async def test_a_relay_falls_back_once_when_the_install_predates_the_function(
    dbs: tuple[str, str], master_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    ldsn, bdsn = dbs
    run_sql(ldsn, f"DROP FUNCTION litemaas_hooks.{SIGNATURE.split('.', 1)[1]}")
    await _falls_back(ldsn, bdsn, master_key, caplog)


async def test_a_relay_falls_back_once_when_its_role_may_not_call_the_function(
    installed: World, master_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The relay role of an older `install --print-grants`: no EXECUTE on the function."""
    w = installed
    revoke = pgsql.SQL("REVOKE EXECUTE ON FUNCTION {} FROM {}").format(
        pgsql.SQL(SIGNATURE), pgsql.Identifier(w.relay)
    )
    run_sql(w.ldsn, revoke)
    urls: dict[str, Any] = {"litellm": w.url(w.ldsn, w.relay), "backend": w.url(w.bdsn, w.relay)}
    await _falls_back(w.as_(w.ldsn, w.lowner), w.bdsn, master_key, caplog, **urls)


async def test_no_fallback_when_the_function_is_there(
    dbs: tuple[str, str], master_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    ldsn, bdsn = dbs
    dbname = psycopg.conninfo.conninfo_to_dict(ldsn)["dbname"]
    run_sql(
        ldsn,
        pgsql.SQL("ALTER DATABASE {} SET track_functions = 'pl'").format(
            pgsql.Identifier(str(dbname))
        ),
    )
    caplog.set_level(logging.WARNING, logger="litemaas_hooks")
    async with conns(ldsn, bdsn) as (lc, bc), running(make_settings(ldsn, bdsn, master_key)):
        await add_good(lc, "a", master_key)
        await eventually(
            lambda: _available(bc, "a"), what="the change applied through the function"
        )

        async def called() -> bool:  # function statistics reach the view within a second or so
            cur = await lc.execute(
                "SELECT coalesce(pg_stat_get_function_calls(%s::regprocedure), 0)", (SIGNATURE,)
            )
            row = await cur.fetchone()
            return bool(row and row[0] > 0)

        await eventually(called, what="claim_batch_v1 called by the relay")
    assert FALLBACK not in caplog.text


async def _available(bc: psycopg.AsyncConnection[Any], name: str) -> bool:
    return (await backend_models(bc)).get(name) == "available"


@pytest.mark.parametrize("via_function", [True, False], ids=["function", "pipelined"])
async def test_a_blocked_deployment_is_read_as_blocked(
    dbs: tuple[str, str], master_key: str, via_function: bool
) -> None:
    ldsn, _ = dbs
    async with await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc:
        if not await litellm_source.has_blocked_column(lc):
            pytest.skip("LiteLLM 1.81's table has no blocked column")
        await add_good(lc, "m", master_key)
        await add_good(lc, "m", master_key)  # a second deployment of the name
        await lc.execute(
            f"UPDATE {TABLE} SET blocked = true WHERE model_id = "
            f"(SELECT min(model_id) FROM {TABLE})"
        )
        batch = await outbox.claim_batch(
            lc, worker="w", batch_size=10, explicit_transaction=False, via_function=via_function
        )
    cur_rows = sorted((r["model_id"], r["blocked"]) for r in batch.rows)
    assert [blocked for _, blocked in cur_rows] == [True, False]
