"""Faults and bad input (issue 10): poison values, backend rejections, locks, outages, dead relays.

Each test injects one fault against real PostgreSQL and LiteLLM's real schema and encryption, and asserts
that the fault stays with the model (or the moment) it belongs to: nothing else fails, nothing is lost,
no attempt is spent on something that is not the event's fault. Waits are conditions with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from litemaas_hooks import outbox
from litemaas_hooks.connections import use_fast_json
from litemaas_hooks.reconcile import Reconciler
from litemaas_hooks_sandbox import seed
from tests.helpers import PARAMS, AConn, backend_models, eventually, litellm_row, make_settings, outbox_empty, running

pytestmark = pytest.mark.anyio

TABLE = 'public."LiteLLM_ProxyModelTable"'
# model_info and litellm_params as JSON text cast in SQL: the test's own JSON encoder never limits depth
INSERT_TEXT = f"""
INSERT INTO {TABLE} (model_id, model_name, litellm_params, model_info, created_by, updated_by)
VALUES (%(model_id)s, %(model_name)s, %(litellm_params)s::jsonb, %(model_info)s::jsonb, 'test', 'test')
"""


@asynccontextmanager
async def conns(ldsn: str, bdsn: str) -> AsyncIterator[tuple[AConn, AConn]]:
    """Autocommit connections with the relay's JSON settings (orjson)."""
    async with (
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
    ):
        yield use_fast_json(lc), use_fast_json(bc)


def nested(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


def row_text(
    name: str,
    key: str,
    *,
    info: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    info_text: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A row from LiteLLM's own builder; ``info`` merged into model_info afterwards (as a direct table
    write would leave it), ``info_text`` = fields whose value is given as raw JSON text."""
    r = seed.as_insert_params(litellm_row(name, PARAMS, key=key))
    model_info = {**r["model_info"].obj, **(info or {})}
    text = json.dumps(model_info)
    for field, raw in (info_text or {}).items():
        text = text[:-1] + f', "{field}": {raw}}}'
    return {
        "model_id": r["model_id"],
        "model_name": name,
        # plain (unencrypted) values as a direct write leaves them; LiteLLM accepts plaintext too
        "litellm_params": json.dumps({**r["litellm_params"].obj, **(params or {})}),
        "model_info": text,
    }


async def add_text(lc: AConn, row: dict[str, Any]) -> None:
    await lc.execute(INSERT_TEXT, row)


async def add_good(lc: AConn, name: str, key: str) -> None:
    await add_text(lc, row_text(name, key, info={"max_tokens": 1}))


POISON: dict[str, dict[str, Any]] = {
    "cost-1e20": {"info": {"input_cost_per_token": 1e20}},
    "cost-huge-exponent": {"info": {"output_cost_per_token": "1e999999999"}},
    "max-tokens-snan": {"info": {"max_tokens": "sNaN"}},
    "context-nan": {"info": {"context_length": "NaN"}},
    "max-tokens-huge-exponent": {"info": {"max_tokens": "1e999999999"}},
    "tpm-beyond-64-bits": {"info_text": {"tpm": "1" + "0" * 40}},
    "cost-beyond-float": {"info_text": {"input_cost_per_token": "1e400"}},
    "nested-300": {"info_text": {"deep": nested(300)}},
    "nested-600": {"info_text": {"deep": nested(600)}},
    "nested-3000": {"info_text": {"deep": nested(3000)}},
    "params-model-object": {"params": {"model": {"not": "a string"}}},
    "params-api-base-list": {"params": {"api_base": [1, 2]}},
    "description-object": {"info": {"description": {"x": 1}}},
    "features-number": {"info": {"supports_vision": 12}},
}


async def test_poison_values_are_that_models_error_and_nothing_else_fails(
    dbs: tuple[str, str], master_key: str
) -> None:
    """Injects, by direct table writes, values that used to raise something other than a mapping error
    (Decimal InvalidOperation, ValueError of a signaling NaN, RecursionError, JSON beyond orjson's depth,
    integers beyond 64 bits) next to good models. Asserts: every poison model is an ``error`` outcome (or
    synced when the value is acceptable) naming the model, every good model is created, and the full
    reconcile, the dry run (status' drift check) and an event-sized converge all complete."""
    ldsn, bdsn = dbs
    settings = make_settings(ldsn, bdsn, master_key)
    engine = Reconciler(settings)
    async with conns(ldsn, bdsn) as (lc, bc):
        for name, how in POISON.items():
            await add_text(lc, row_text(name, master_key, **how))
            await add_good(lc, f"good-{name}", master_key)
        goods = {f"good-{n}" for n in POISON}
        # an event-sized converge (what one relay batch does)
        report = await engine.converge(lc, bc, names=set(POISON) | goods)
        for name in goods:
            assert report.outcomes[name].action == "created", (name, report.outcomes[name])
        for name in POISON:
            assert report.outcomes[name].action in {"error", "created"}, (name, report.outcomes[name])
        errors = {n: o.message or "" for n, o in report.outcomes.items() if o.action == "error"}
        for name in ("cost-1e20", "cost-huge-exponent", "max-tokens-snan", "max-tokens-huge-exponent", "nested-3000"):
            assert name in errors, name
        assert "input_cost_per_token" in errors["cost-1e20"]
        assert "max_tokens" in errors["max-tokens-snan"]
        # the full reconcile and the dry run over everything complete with the same verdicts
        full = await engine.converge(lc, bc, names=None, retire_missing=True)
        assert {n for n, o in full.outcomes.items() if o.action == "error"} == set(errors)
        dry = await engine.converge(lc, bc, names=None, retire_missing=True, dry_run=True)
        assert {n for n, o in dry.outcomes.items() if o.action == "error"} == set(errors)
        have = await backend_models(bc)
        assert goods <= set(have)
        assert not set(errors) & set(have)


async def test_poison_model_among_50_good_adds_costs_no_good_event_an_attempt(
    dbs: tuple[str, str], master_key: str
) -> None:
    """50 good adds committed in one transaction with one ``input_cost_per_token = 1e20``: every good
    event is applied at its first attempt, only the bad one is retried (then dead with its error)."""
    ldsn, bdsn = dbs
    settings = make_settings(ldsn, bdsn, master_key, max_attempts=2)
    async with conns(ldsn, bdsn) as (lc, bc):
        async with lc.transaction():
            for i in range(50):
                await add_good(lc, f"ok-{i:02d}", master_key)
            await add_text(lc, row_text("poison", master_key, info={"input_cost_per_token": 1e20}))
        async with running(settings) as (relay,):

            async def settled() -> bool:
                c = await outbox.counts(lc)
                return c.pending == 0 and c.claimed == 0 and c.dead == 1

            await eventually(settled, what="50 good applied, the poison dead")
            assert relay.stats.reconnects == 0
        dead = await outbox.dead_events(lc)
        assert [e.new_model_name for e in dead] == ["poison"]
        assert (dead[0].last_error or "").startswith("poison: ")
        assert "input_cost_per_token" in (dead[0].last_error or "")
        have = await backend_models(bc)
        assert {f"ok-{i:02d}" for i in range(50)} <= set(have)


# -- property-based: arbitrary JSON in every field ------------------------------------------------

INFO_FIELDS = [
    "max_tokens", "max_input_tokens", "max_output_tokens", "context_length", "input_cost_per_token",
    "output_cost_per_token", "supports_vision", "supports_function_calling", "supports_tool_choice",
    "supports_parallel_function_calling", "supports_streaming", "description", "mode", "base_model",
    "team_id", "version", "id", "litellm_provider", "db_model", "access_groups", "tpm", "rpm",
]  # fmt: skip
PARAM_FIELDS = [
    "model", "api_base", "tpm", "rpm", "max_tokens", "custom_llm_provider", "input_cost_per_token",
    "output_cost_per_token", "base_model", "api_version", "timeout",
]  # fmt: skip

_text = st.text(alphabet=st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=40)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
    | st.sampled_from(["sNaN", "NaN", "-Infinity", "1e999999999", "1e20", "-0", "0x10", " 7 ", "1_000"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)
# a field value: arbitrary JSON, or something big (long strings, deep nesting) as raw JSON text
field_value = st.one_of(
    json_values.map(json.dumps),
    st.integers(min_value=1, max_value=3000).map(nested),
    st.integers(min_value=0, max_value=200_000).map(lambda n: json.dumps("x" * n)),
)


@pytest.mark.slow
async def test_arbitrary_json_in_any_field_is_at_most_that_models_error(dbs: tuple[str, str], master_key: str) -> None:
    """Hypothesis throws arbitrary JSON values and sizes into every model_info / litellm_params field of
    one deployment (written next to a good one). Property: converge (event-sized, full, dry run) never
    raises; the good model is always synced; the bad one is either synced or an ``error``/``skipped``
    outcome with a message."""
    ldsn, bdsn = dbs
    settings = make_settings(ldsn, bdsn, master_key)
    engine = Reconciler(settings)
    async with conns(ldsn, bdsn) as (lc, bc):
        seen = 0

        @hsettings(
            max_examples=60,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
            derandomize=True,
        )
        @given(
            info=st.dictionaries(st.sampled_from(INFO_FIELDS), field_value, max_size=4),
            params=st.dictionaries(st.sampled_from(PARAM_FIELDS), json_values, max_size=3),
        )
        def prop(info: dict[str, str], params: dict[str, Any]) -> None:
            nonlocal seen
            seen += 1
            bad, good = f"bad-{seen}", f"good-{seen}"
            row = row_text(bad, master_key, info_text=info, params=params)
            asyncio.run_coroutine_threadsafe(check(row, bad, good), loop).result()

        async def check(row: dict[str, Any], bad: str, good: str) -> None:
            await add_text(lc, row)
            await add_good(lc, good, master_key)
            for names in ({bad, good}, None):
                for dry in (True, False):
                    report = await engine.converge(lc, bc, names=names, retire_missing=names is None, dry_run=dry)
                    assert report.outcomes[good].action in {"created", "unchanged"}, report.outcomes[good]
                    outcome = report.outcomes[bad]
                    assert outcome.action in {"created", "unchanged", "updated", "error", "skipped"}
                    if outcome.action in {"error", "skipped"}:
                        assert outcome.message
            await lc.execute(f"DELETE FROM {TABLE} WHERE model_name = ANY(%s)", ([bad, good],))
            await lc.execute("DELETE FROM litemaas_hooks.model_events")

        loop = asyncio.get_running_loop()
        await asyncio.to_thread(prop)
        assert seen >= 60


# -- a backend rejection of one row ---------------------------------------------------------------


async def test_backend_rejection_of_one_row_costs_no_other_row_an_attempt(
    dbs: tuple[str, str], master_key: str
) -> None:
    """Injects: an admin's CHECK on models that rejects one name, and a trigger that makes the retire of
    another name fail; in one LiteLLM transaction: the rejected add, 3 deletes of synced models, the
    failing delete and a good add (one relay batch). Asserts: only the two bad events are retried and
    die (LITEMAAS_HOOKS_MAX_ATTEMPTS=2); the 3 deletes and the good add are applied at their first
    attempt (the relay recorded exactly 4 failures: 2 attempts x 2 bad events). Also a batch holding the
    rejected row alone is that row's error, not an exception of converge()."""
    ldsn, bdsn = dbs
    settings = make_settings(ldsn, bdsn, master_key, max_attempts=2)
    async with conns(ldsn, bdsn) as (lc, bc):
        for name in ("del-1", "del-2", "del-3", "stuck"):
            await add_good(lc, name, master_key)
        await Reconciler(settings).converge(lc, bc, names=None)
        await lc.execute("DELETE FROM litemaas_hooks.model_events")
        await bc.execute("ALTER TABLE models ADD CONSTRAINT admin_says_no CHECK (id <> 'rejected')")
        await bc.execute(
            "CREATE FUNCTION public.no_retire() RETURNS trigger LANGUAGE plpgsql AS "
            "$$BEGIN IF NEW.id = 'stuck' AND NEW.availability = 'unavailable' THEN "
            "RAISE EXCEPTION 'stuck may not be retired'; END IF; RETURN NEW; END$$; "
            "CREATE TRIGGER no_retire BEFORE UPDATE ON models FOR EACH ROW EXECUTE FUNCTION public.no_retire()"
        )
        # alone in its batch: that row's error
        await add_good(lc, "rejected", master_key)
        alone = await Reconciler(settings).converge(lc, bc, names={"rejected"})
        assert alone.outcomes["rejected"].action == "error"
        assert "admin_says_no" in (alone.outcomes["rejected"].message or "")
        await lc.execute("DELETE FROM litemaas_hooks.model_events")
        await lc.execute(f"DELETE FROM {TABLE} WHERE model_name = 'rejected'")
        await lc.execute("DELETE FROM litemaas_hooks.model_events")
        async with lc.transaction():
            await add_good(lc, "rejected", master_key)
            await lc.execute(f"DELETE FROM {TABLE} WHERE model_name = ANY(%s)", (["del-1", "del-2", "del-3", "stuck"],))
            await add_good(lc, "fine", master_key)
        async with running(settings) as (relay,):

            async def settled() -> bool:
                c = await outbox.counts(lc)
                return c.pending == 0 and c.claimed == 0 and c.dead == 2

            await eventually(settled, what="the two bad events dead, the rest applied")
            assert relay.stats.events_failed == 4
        have = await backend_models(bc)
        assert have["fine"] == "available"
        assert {have[n] for n in ("del-1", "del-2", "del-3")} == {"unavailable"}
        assert have["stuck"] == "available"
        dead = {e.new_model_name or e.old_model_name: e.last_error or "" for e in await outbox.dead_events(lc)}
        assert set(dead) == {"rejected", "stuck"}
        assert "admin_says_no" in dead["rejected"]
        assert "stuck may not be retired" in dead["stuck"]


# -- locks held in the backend --------------------------------------------------------------------


@pytest.mark.parametrize("relays", [1, 2])
async def test_a_locked_backend_row_holds_up_nothing_else_and_costs_no_attempt(
    dbs: tuple[str, str], master_key: str, relays: int
) -> None:
    """Injects: an admin transaction holding ``SELECT ... FOR UPDATE`` on the backend row of ``held``
    (and of ``held-gone``), then LiteLLM changes ``held``, deletes ``held-gone`` and adds ``fresh``.
    Asserts, with one relay and with two: ``fresh`` is synced at once (well within the 2 s lock
    timeout: nobody waits for the held row); the held names' events stay pending with no attempt spent,
    never dead (LITEMAAS_HOOKS_MAX_ATTEMPTS=2) while the lock is held until they were deferred one
    round more than it would take them to die if a deferral cost an attempt; once it is released they
    are applied."""
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
                await admin.execute("SELECT * FROM models WHERE id IN ('held', 'held-gone') FOR UPDATE")
                await lc.execute(
                    f"UPDATE {TABLE} SET model_info = model_info || '{{\"max_tokens\": 7}}' WHERE model_name = 'held'"
                )
                await lc.execute(f"DELETE FROM {TABLE} WHERE model_name = 'held-gone'")
                t0 = time.perf_counter()
                await add_good(lc, "fresh", master_key)
                took = await eventually(lambda: _available(bc, "fresh"), what="fresh synced despite the held row")
                fresh_seconds = time.perf_counter() - t0
                assert took < 1.5, took  # < the 2 s lock timeout: nobody waited for the held row

                rounds = 2 * (settings.max_attempts + 1)  # 2 held events, each one round past where it would die

                async def held_through_rounds() -> bool:
                    # every poll is also a sample of the invariant while the lock is held
                    cur = await lc.execute(
                        "SELECT max(attempts), count(*) FILTER (WHERE status = 'dead') FROM litemaas_hooks.model_events"
                    )
                    attempts, dead = await cur.fetchone()  # type: ignore[misc]
                    assert dead == 0
                    assert (attempts or 0) <= 1  # 1 only while claimed; given back right after
                    return sum(r.stats.events_deferred for r in fleet) >= rounds

                # had a deferral cost an attempt, the held events would be dead by now (MAX_ATTEMPTS=2)
                await eventually(
                    held_through_rounds, deadline_seconds=60, what=f"the held names deferred {rounds} times"
                )
            finally:
                await tx.__aexit__(None, None, None)
            released = time.perf_counter()

            async def applied() -> bool:
                cur = await bc.execute("SELECT id, availability, max_tokens FROM models WHERE id LIKE 'held%%'")
                have = {r[0]: (r[1], r[2]) for r in await cur.fetchall()}
                return have == {"held": ("available", 7), "held-gone": ("unavailable", 1)}

            await eventually(applied, what="held names applied after the lock is released")
            heal_seconds = time.perf_counter() - released
            assert (await outbox.counts(lc)).dead == 0
            print(
                f"locked row: fresh synced in {fresh_seconds * 1000:.0f} ms; held names applied "
                f"{heal_seconds * 1000:.0f} ms after release ({relays} relays)"
            )


async def _available(bc: AConn, name: str) -> bool:
    return (await backend_models(bc)).get(name) == "available"


# -- database-side unavailability -----------------------------------------------------------------


async def test_read_only_backend_is_an_outage_not_an_attempt(dbs: tuple[str, str], master_key: str) -> None:
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
                # attempts spent, not counting the one a claim in progress holds (given back on the outage);
                # over every event: at any instant all of them may be claimed (no pending row to look at)
                cur = await lc.execute(
                    "SELECT count(*), max(attempts - CASE WHEN status = 'claimed' THEN 1 ELSE 0 END) "
                    "FROM litemaas_hooks.model_events"
                )
                assert await cur.fetchone() == (6, 0)  # 5 adds + 1 delete
                assert "read-only" in (relay.stats.last_error or "") or "read_only" in (relay.stats.last_error or "")
                await bc.execute(f'ALTER DATABASE "{dbname}" RESET default_transaction_read_only')
                took = await eventually(
                    lambda: _all_synced(bc, lc), what="everything applied once the backend is writable"
                )
                print(f"read-only backend: converged {took * 1000:.0f} ms after it became writable")
        finally:
            await bc.execute(f'ALTER DATABASE "{dbname}" RESET default_transaction_read_only')
        assert (await outbox.counts(lc)).dead == 0
        assert (await backend_models(bc))["to-delete"] == "unavailable"


async def _all_synced(bc: AConn, lc: AConn) -> bool:
    have = await backend_models(bc)
    c = await outbox.counts(lc)
    return c.pending == 0 and c.claimed == 0 and all(have.get(f"ro-{i}") == "available" for i in range(5))


# -- a relay that died ----------------------------------------------------------------------------


async def test_dead_relays_claims_are_taken_over_at_once_and_cost_no_attempt(
    dbs: tuple[str, str], master_key: str
) -> None:
    """Injects: three times, a "relay" session claims the event of ``orphan`` and dies (its database
    session ends, as with SIGKILL or a lost pod) before completing it; the stall timeout is 120 s and
    LITEMAAS_HOOKS_MAX_ATTEMPTS=2. Asserts: each time the claim is back to pending with attempts 0 at
    the next recovery; a relay started afterwards applies it within a second, without waiting for the
    stall timeout."""
    ldsn, bdsn = dbs
    settings = make_settings(ldsn, bdsn, master_key, max_attempts=2, stall_timeout_seconds=120.0)
    async with conns(ldsn, bdsn) as (lc, bc):
        await add_good(lc, "orphan", master_key)
        for kill in range(3):
            async with await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as doomed:
                (claimed,) = await outbox.claim(doomed, worker=f"doomed-{kill}", batch_size=10)
                assert claimed.attempts == 1
            # the session is gone: any relay's recovery gives the claim back at once, not as an attempt

            async def given_back() -> bool:
                recovered = await outbox.recover_dead_sessions(lc)
                return bool(recovered) or (await outbox.counts(lc)).claimed == 0

            await eventually(given_back, what="the dead session's claim given back")
            cur = await lc.execute("SELECT status, attempts, last_error FROM litemaas_hooks.model_events")
            status, attempts, error = await cur.fetchone()  # type: ignore[misc]
            assert (status, attempts) == ("pending", 0)
            assert "database session ended" in error
        # a claim of a dead session left for a fresh relay: taken over at its start
        async with await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as doomed:
            await outbox.claim(doomed, worker="doomed-last", batch_size=10)
        t0 = time.perf_counter()
        async with running(settings) as (relay,):
            await eventually(lambda: _available(bc, "orphan"), deadline_seconds=5, what="orphan applied")
            took = time.perf_counter() - t0
            assert relay.stats.dead_sessions_recovered == 1
            assert relay.stats.stalled_recovered == 0
        assert (await outbox.counts(lc)).dead == 0
        print(f"dead relay's claim applied {took * 1000:.0f} ms after a new relay started (stall timeout 120 s)")

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


# -- lost changes heal in every mode; status tells the truth meanwhile ----------------------------

CONFIG_MODELS = [{"model_name": "from-config", "litellm_params": {"model": "openai/gpt-4o"}, "model_info": {}}]


@pytest.mark.parametrize("mode", ["standalone", "proxy"])
async def test_lost_create_update_delete_heal_within_one_interval_and_status_names_them(
    dbs: tuple[str, str], master_key: str, mode: str
) -> None:
    """Injects: changes made while the trigger was disabled (as when LiteLLM's table is re-created by a
    Prisma schema change): a create, an update and a delete; plus a row the backend's own sync wrote for a
    DB deployment (metadata.litellm_model_info.db_model = true) that is gone, a config.yaml model synced
    from the proxy, and a backend-sync row of a config model (db_model = false).
    Asserts: ``status`` is unhealthy naming every disagreeing model (never "drift: none" above a list);
    a relay with a 1 s full-reconcile interval heals all of them within one interval, in standalone mode
    (no config.yaml: it retires only rows known to come from LiteLLM's table) and inside the proxy (it
    sees config.yaml); the standalone relay leaves the config-file rows alone; status is healthy after."""
    from litemaas_hooks.status import collect_status, format_status

    ldsn, bdsn = dbs
    settings = make_settings(ldsn, bdsn, master_key, reconcile_interval_seconds=1.0, poll_interval_seconds=0.5)
    async with conns(ldsn, bdsn) as (lc, bc):
        for name in ("lost-delete", "lost-update"):
            await add_good(lc, name, master_key)
        await Reconciler(settings, config_models=lambda: CONFIG_MODELS).converge(lc, bc, names=None)
        await lc.execute("DELETE FROM litemaas_hooks.model_events")
        for name, db_model in (("backend-synced", True), ("backend-config", False)):
            await bc.execute(
                "INSERT INTO models (id, name, provider, availability, metadata, litellm_model_id) "
                "VALUES (%s, %s, 'openai', 'available', %s::jsonb, %s)",
                (name, name, json.dumps({"litellm_model_info": {"db_model": db_model}, "litellm_params": {}}), name),
            )
        await lc.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER")
        await lc.execute(f"DELETE FROM {TABLE} WHERE model_name = 'lost-delete'")
        await lc.execute(
            f"UPDATE {TABLE} SET model_info = model_info || '{{\"max_tokens\": 9}}' WHERE model_name = 'lost-update'"
        )
        await add_good(lc, "lost-create", master_key)
        await lc.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER USER")

        config = (lambda: CONFIG_MODELS) if mode == "proxy" else None
        report = await collect_status(settings, config_models=config)
        text = format_status(report)
        assert not report.healthy
        problems = "\n".join(report.problems)
        for name in ("lost-create", "lost-update", "lost-delete", "backend-synced"):
            assert name in problems, (name, problems)
        assert "drift            : none" not in text
        assert report.drift.missing_in_backend == ["lost-create"]
        assert report.drift.out_of_date == ["lost-update"]
        gone = {"lost-delete", "backend-synced"} | ({"backend-config"} if mode == "proxy" else set())
        assert set(report.drift.gone_from_litellm) == gone
        if mode == "standalone":
            assert set(report.drift.not_in_table) == {"from-config", "backend-config"}

        async def healed() -> bool:
            cur = await bc.execute("SELECT id, availability, max_tokens FROM models")
            have = {r[0]: (r[1], r[2]) for r in await cur.fetchall()}
            want_gone = "unavailable"
            return (
                have.get("lost-create", ("", 0))[0] == "available"
                and have.get("lost-update") == ("available", 9)
                and have["lost-delete"][0] == want_gone
                and have["backend-synced"][0] == want_gone
            )

        kwargs: dict[str, Any] = {"config_models": config} if config else {}
        t0 = time.perf_counter()
        async with running(settings, **kwargs) as (relay,):
            await eventually(healed, deadline_seconds=10, what="every lost change healed by the full reconcile")
            took = time.perf_counter() - t0

            async def recorded() -> bool:
                return relay.stats.full_reconciles >= 1

            await eventually(recorded, what="it was the full reconcile")
        have = await backend_models(bc)
        assert have["from-config"] == "available"
        assert have["backend-config"] == ("unavailable" if mode == "proxy" else "available")
        after = await collect_status(settings, config_models=config)
        assert after.healthy, after.problems
        print(
            f"lost create/update/delete ({mode}): healed {took * 1000:.0f} ms after the relay started "
            "(full reconcile interval 1 s)"
        )


# -- install verifies and repairs what it owns; backend schema variants ---------------------------


async def test_install_recreates_every_dropped_object_and_says_so(dbs: tuple[str, str], master_key: str) -> None:
    """Injects: the outbox table, the reconcile bookkeeping, an index and a function dropped in the LiteLLM
    database; the hidden_models and model_sources tables and a function dropped in the backend database.
    Asserts: ``install`` re-creates each (the relay then works again) and returns each one in
    ``InstallResult.repaired``; a second install repairs nothing."""
    from litemaas_hooks.migrations import apply_migrations

    ldsn, bdsn = dbs
    async with conns(ldsn, bdsn) as (lc, bc):
        await lc.execute(
            "DROP TABLE litemaas_hooks.model_events CASCADE; DROP TABLE litemaas_hooks.reconcile_state; "
            "DROP INDEX IF EXISTS litemaas_hooks.model_events_dead_idx"
        )
        await bc.execute(
            "DROP TABLE litemaas_hooks.hidden_models CASCADE; DROP TABLE litemaas_hooks.model_sources; "
            "DROP FUNCTION litemaas_hooks.retire_model_v1(text, boolean, text)"
        )
        lres = await apply_migrations(lc, "litellm")
        bres = await apply_migrations(bc, "backend")
        assert "table litemaas_hooks.model_events" in lres.repaired
        assert "table litemaas_hooks.reconcile_state" in lres.repaired
        assert "index litemaas_hooks.model_events_pending_idx" in lres.repaired
        assert set(bres.repaired) >= {
            "table litemaas_hooks.hidden_models",
            "table litemaas_hooks.model_sources",
            "function litemaas_hooks.retire_model_v1",
        }
        assert (await outbox.trigger_state(lc)).ok
        assert (await apply_migrations(lc, "litellm")).repaired == []
        assert (await apply_migrations(bc, "backend")).repaired == []
        settings = make_settings(ldsn, bdsn, master_key)
        async with running(settings):
            await add_good(lc, "after-repair", master_key)
            await eventually(lambda: _available(bc, "after-repair"), what="the repaired outbox works")


VARIANTS = {
    "no backend_model_name": ("ALTER TABLE models DROP COLUMN backend_model_name", "public.models.backend_model_name"),
    "no litellm_model_id": (
        "ALTER TABLE models DROP COLUMN litellm_model_id CASCADE",
        "public.models.litellm_model_id",
    ),
    "features as jsonb": (
        "ALTER TABLE models ALTER COLUMN features TYPE jsonb USING to_jsonb(features)",
        "public.models.features is jsonb",
    ),
    "extra NOT NULL column": ("ALTER TABLE models ADD COLUMN owner_team text NOT NULL DEFAULT 'x'; "
                              "ALTER TABLE models ALTER COLUMN owner_team DROP DEFAULT", "owner_team"),
    "no api_key_models": ("DROP TABLE api_key_models CASCADE", "LITEMAAS_HOOKS_RETIRE_CASCADE=false"),
    "CHECK on availability": (
        "ALTER TABLE models ADD CONSTRAINT models_availability_values CHECK (availability IN ('available', 'beta'))",
        "models_availability_values",
    ),
}  # fmt: skip


@pytest.mark.parametrize("variant", sorted(VARIANTS))
async def test_backend_schema_variants_get_a_clear_message_at_install(
    litellm_dsn: str, backend_dsn: str, variant: str
) -> None:
    """Injects one backend schema variant each. Asserts: ``install`` of the backend side fails with a
    MigrationError naming the column, table or constraint (and how to fix it), for a fresh install and
    for a re-install over an existing one; the database is left as it was (one transaction)."""
    from litemaas_hooks.errors import MigrationError
    from litemaas_hooks.migrations import apply_migrations

    change, fragment = VARIANTS[variant]
    async with await psycopg.AsyncConnection.connect(backend_dsn, autocommit=True) as bc:
        if variant not in {"no backend_model_name", "no litellm_model_id", "features as jsonb"}:
            await apply_migrations(bc, "backend")  # the variant appears after a working install
        await bc.execute(change)
        with pytest.raises(MigrationError) as raised:
            await apply_migrations(bc, "backend")
        message = str(raised.value)
        assert fragment in message, message
        assert "GRANT" not in message
        if variant == "no api_key_models":  # without the cascade the sync can write: install passes
            await apply_migrations(bc, "backend", retire_cascade=False)


# -- clocks ---------------------------------------------------------------------------------------


async def test_no_wall_clock_decides_which_deployment_describes_the_row_or_when_work_is_due(
    dbs: tuple[str, str], master_key: str
) -> None:
    """Injects: (1) of two deployments of one name, one stamped a day in the future (a replica with a
    skewed clock); then the other one is edited. (2) a pending event scheduled an hour ahead, a claim and
    a finished full reconcile stamped an hour ahead (the database clock was stepped back an hour).
    Asserts: the deployment created last describes the row, as the backend's own sync leaves it, and
    an edit of the other one (a day-ahead updated_at) does not take it over; the
    event is applied at once; the periodic reconcile is not suppressed; status never shows a negative
    age."""
    from litemaas_hooks.status import collect_status, format_status

    ldsn, bdsn = dbs
    settings = make_settings(ldsn, bdsn, master_key, reconcile_interval_seconds=0.5, poll_interval_seconds=0.2)
    async with conns(ldsn, bdsn) as (lc, bc):
        skewed = row_text("lb", master_key, info={"max_tokens": 1})
        await add_text(lc, skewed)
        await lc.execute(
            f"UPDATE {TABLE} SET updated_at = now() + interval '1 day' WHERE model_id = %s", (skewed["model_id"],)
        )
        edited = row_text("lb", master_key, info={"max_tokens": 2})
        await add_text(lc, edited)
        # the clock stepped back: work scheduled / recorded "in the future"
        await add_good(lc, "held-by-clock", master_key)
        await lc.execute(
            "UPDATE litemaas_hooks.model_events SET next_attempt_at = clock_timestamp() + interval '1 hour', "
            "created_at = clock_timestamp() + interval '1 hour' WHERE new_model_name = 'held-by-clock'"
        )
        await lc.execute(
            "UPDATE litemaas_hooks.reconcile_state SET last_finished_at = clock_timestamp() + interval '1 hour'"
        )
        report = await collect_status(settings, check_drift=False)
        assert report.counts is not None
        assert report.counts.oldest_pending_age_seconds is not None
        assert report.counts.oldest_pending_age_seconds >= 0
        assert report.last_reconcile is not None
        assert (report.last_reconcile.age_seconds or 0) >= 0
        assert "-" not in format_status(report).split("oldest pending event", 1)[1].split("old", 1)[0]
        async with running(settings) as (relay,):
            await eventually(lambda: _available(bc, "held-by-clock"), what="the event scheduled ahead applied now")

            async def reconciled() -> bool:
                return relay.stats.full_reconciles >= 1

            await eventually(reconciled, what="the periodic reconcile ran despite a last run 'in the future'")

            async def describes(max_tokens: int) -> bool:
                cur = await bc.execute("SELECT max_tokens FROM models WHERE id = 'lb'")
                row = await cur.fetchone()
                return row is not None and row[0] == max_tokens

            await eventually(lambda: describes(2), what="lb described by the deployment added last")
            # an edit of the first deployment does not take the row over: the backend's own sync ends on the
            # deployment created last (its /model/info order), whatever the replicas' updated_at clocks say
            await lc.execute(
                f"UPDATE {TABLE} SET model_info = model_info || '{{\"max_tokens\": 3}}', updated_at = now() "
                "WHERE model_id = %s",
                (skewed["model_id"],),
            )
            await eventually(lambda: outbox_empty(lc), what="the edit of the first deployment applied")
            assert await describes(2)
            await lc.execute(
                f"UPDATE {TABLE} SET model_info = model_info || '{{\"max_tokens\": 4}}', updated_at = now() "
                "WHERE model_id = %s",
                (edited["model_id"],),
            )
            await eventually(lambda: describes(4), what="the other deployment's edit wins over a clock a day ahead")


async def test_full_reconcile_skips_a_locked_row_instead_of_waiting(dbs: tuple[str, str], master_key: str) -> None:
    """Injects: an admin transaction holding ``SELECT ... FOR UPDATE`` on a row the full reconcile must
    update. Asserts: the full reconcile does not wait for it (well under the 2 s lock timeout), creates
    the other model, reports the held one as ``deferred``; the next run after the release updates it."""
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
