"""Bad input in LiteLLM's table: poison values, arbitrary JSON, awkward names, rows the backend
rejects. The fault stays with the model it belongs to: nothing else fails, nothing is lost, no
attempt is spent on another model's events, and the error is recorded where `status` shows it.

Real PostgreSQL, LiteLLM's real schema and encryption, the real relay and engine. Waits are
conditions with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from litemaas_hooks import litellm_adapter, outbox
from litemaas_hooks.reconcile import Reconciler
from litemaas_hooks.status import collect_status, format_status
from litemaas_hooks_sandbox import seed
from litemaas_hooks_sandbox.cluster import LocalPostgres
from tests.helpers import (
    INSERT_ROW,
    PARAMS,
    TABLE,
    add,
    add_good,
    add_text,
    assert_no_secrets,
    audits,
    backend_models,
    conns,
    eventually,
    litellm_row,
    make_settings,
    matches_truth,
    nested,
    row_text,
    running,
    scalar,
)

pytestmark = pytest.mark.anyio

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
    """Injects, by direct table writes, values that used to raise something other than a mapping
    error (Decimal InvalidOperation, ValueError of a signaling NaN, RecursionError, JSON beyond
    orjson's depth, integers beyond 64 bits) next to good models. Asserts: every poison model is an
    ``error`` outcome (or synced when the value is acceptable) naming the model, every good model is
    created, and the full reconcile, the dry run (status' drift
    check) and an event-sized converge all complete."""
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
            assert report.outcomes[name].action in {"error", "created"}, (
                name,
                report.outcomes[name],
            )
        errors = {n: o.message or "" for n, o in report.outcomes.items() if o.action == "error"}
        for name in (
            "cost-1e20",
            "cost-huge-exponent",
            "max-tokens-snan",
            "max-tokens-huge-exponent",
            "nested-3000",
        ):
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
    """50 good adds committed in one transaction with one ``input_cost_per_token = 1e20``: every
    good event is applied at its first attempt, only the
    bad one is retried (then dead with its error)."""
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

_text = st.text(
    alphabet=st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=40
)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
    | st.sampled_from(
        ["sNaN", "NaN", "-Infinity", "1e999999999", "1e20", "-0", "0x10", " 7 ", "1_000"]
    )
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
async def test_arbitrary_json_in_any_field_is_at_most_that_models_error(
    dbs: tuple[str, str], master_key: str
) -> None:
    """Hypothesis throws arbitrary JSON values and sizes into every model_info / litellm_params
    field of one deployment (written next to a good one). Property: converge (event-sized, full, dry
    run) never raises; the good model is always synced; the bad one is either synced or an
    ``error``/``skipped`` outcome with a message."""
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
                    report = await engine.converge(
                        lc, bc, names=names, retire_missing=names is None, dry_run=dry
                    )
                    assert report.outcomes[good].action in {"created", "unchanged"}, (
                        report.outcomes[good]
                    )
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
    """Injects: an admin's CHECK on models that rejects one name, and a trigger that makes the
    retire of another name fail; in one LiteLLM transaction: the rejected add, 3 deletes of synced
    models, the failing delete and a good add (one relay batch). Asserts: only the two bad events
    are retried and die (LITEMAAS_HOOKS_MAX_ATTEMPTS=2); the 3 deletes and the good add are applied
    at their first attempt (the relay recorded exactly 4 failures: 2 attempts x 2 bad events). Also
    a batch holding the rejected row alone is that row's error, not an exception of converge()."""
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
            "CREATE TRIGGER no_retire BEFORE UPDATE ON models "
            "FOR EACH ROW EXECUTE FUNCTION public.no_retire()"
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
            await lc.execute(
                f"DELETE FROM {TABLE} WHERE model_name = ANY(%s)",
                (["del-1", "del-2", "del-3", "stuck"],),
            )
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
        dead = {
            e.new_model_name or e.old_model_name: e.last_error or ""
            for e in await outbox.dead_events(lc)
        }
        assert set(dead) == {"rejected", "stuck"}
        assert "admin_says_no" in dead["rejected"]
        assert "stuck may not be retired" in dead["stuck"]


# -- locks held in the backend --------------------------------------------------------------------


# -- database-side unavailability -----------------------------------------------------------------


# -- a relay that died ----------------------------------------------------------------------------


# -- lost changes heal in every mode; status tells the truth meanwhile ----------------------------

# -- install verifies and repairs what it owns; backend schema variants ---------------------------


# -- clocks ---------------------------------------------------------------------------------------




AWKWARD_NAMES = (
    'it\'s "quoted"',
    "a;b",
    "x -- y",
    "org/model/v1",
    "'; DROP TABLE models; --",
    "modèle-日本語-🚀",
)


async def test_bad_inputs_are_recorded_errors_and_never_block_the_rest(
    dbs: tuple[str, str], master_key: str, pg_cluster: LocalPostgres, logs: list[str]
) -> None:
    """Injects, each through a plain INSERT into LiteLLM's table (which must succeed):
    litellm_params encrypted with another key, litellm_params that is not JSON, model_info that is a
    JSON string or an array, an empty model_name, a 256-character model_name, names with control
    characters, a 3 MB model_info, negative / non-numeric rpm, tpm and costs, names with quotes,
    ``;``, ``--``, ``/`` and unicode (which must sync), and outbox
    rows pointing at models that do not exist (anymore).

    Asserts: every bad event is kept (dead after LITEMAAS_HOOKS_MAX_ATTEMPTS=2) with an error naming
    the problem; the relay never crashed or reconnected; every good model interleaved with them (and
    the awkward names) is in the backend; the vanished-model
    events simply converge (retire / no-op)."""
    ldsn, bdsn = dbs
    other_key = "sk-" + secrets.token_hex(32)
    settings = make_settings(
        ldsn, bdsn, master_key, max_attempts=2, retry_base_seconds=0.05, retry_max_seconds=0.1
    )

    def row(
        name: str, key: str = master_key, params: dict[str, Any] | None = None, **info: Any
    ) -> dict[str, Any]:
        """A row from LiteLLM's builder; ``info`` is merged into model_info afterwards, as a writer
        bypassing LiteLLM's validation (an older version, SQL, a migration) could leave it."""
        r = seed.as_insert_params(litellm_row(name, {**PARAMS, **(params or {})}, key=key))
        r.pop("blocked")
        r["model_info"] = Jsonb({**r["model_info"].obj, **info})
        return r

    # name -> (row, a fragment of the error recorded for its event)
    bad: dict[str, tuple[dict[str, Any], str]] = {
        "wrong-key": (row("wrong-key", key=other_key), "could not be decrypted"),
        "params-not-json": (
            {**row("params-not-json"), "litellm_params": Jsonb("{not json")},
            "is not valid JSON",
        ),
        "info-json-string": (
            {**row("info-json-string"), "model_info": Jsonb("just a string")},
            "is not valid JSON",
        ),
        "info-array": ({**row("info-array"), "model_info": Jsonb([1, 2, 3])}, "not a JSON object"),
        "info-array-in-string": (
            {**row("info-array-in-string"), "model_info": Jsonb("[1, 2]")},
            "not a JSON object",
        ),
        "m" * 256: (row("m" * 256), "256 characters long"),
        "ctl\x01name": (row("ctl\x01name"), "control characters"),
        "new\nline": (row("new\nline"), "control characters"),
        "huge-info": (row("huge-info", blob="x" * 3_000_000), "bytes of JSON"),
        "negative-rpm": (row("negative-rpm", params={"rpm": -5}), "rpm must be between 0"),
        "text-max-tokens": (
            row("text-max-tokens", max_tokens="lots"),
            "max_tokens must be a whole number",
        ),
        "negative-cost": (row("negative-cost", input_cost_per_token=-0.1), "non-negative"),
        "text-cost": (row("text-cost", output_cost_per_token="cheap"), "must be a number"),
    }
    good = [f"good-{i}" for i in range(len(bad))]
    async with (
        running(settings) as (relay,),
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
    ):
        await add(lc, "will-vanish", master_key, max_tokens=1)
        await eventually(lambda: matches_truth(lc, bc, set()), what="will-vanish synced")
        for (_, (bad_row, _)), good_name in zip(bad.items(), good, strict=True):
            await lc.execute(INSERT_ROW, bad_row)  # LiteLLM's own write succeeds
            await add(lc, good_name, master_key, max_tokens=1)
        empty = {**row(""), "model_name": ""}
        await lc.execute(INSERT_ROW, empty)  # empty model_name
        for name in AWKWARD_NAMES:
            await add(lc, name, master_key, max_tokens=1)
        # outbox rows pointing at models that vanished: one never synced, one in the backend
        await lc.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER")
        await lc.execute(f"DELETE FROM {TABLE} WHERE model_name = 'will-vanish'")
        await lc.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER USER")
        await lc.execute(
            "INSERT INTO litemaas_hooks.model_events (op, model_id, new_model_name) VALUES "
            "('INSERT', 'no-such-id', 'never-existed'), ('UPDATE', 'gone-id', 'will-vanish'); "
            "SELECT pg_notify('litemaas_hooks_model_events', '')"
        )
        assert await scalar(lc, f"SELECT count(*) FROM {TABLE}") == 2 * len(bad) + 1 + len(
            AWKWARD_NAMES
        )

        async def settled() -> bool:
            c = await outbox.counts(lc)
            return c.pending == 0 and c.claimed == 0 and c.dead == len(bad) + 1  # + the empty name

        await eventually(
            settled, deadline_seconds=30, what="bad events dead, every other event applied"
        )
        have = await backend_models(bc)
        for name in (*good, *AWKWARD_NAMES):
            assert have.get(name) == "available", name
        assert have["will-vanish"] == "unavailable"
        assert "never-existed" not in have
        assert not set(bad) & set(have)
        assert "" not in have
        dead = await outbox.dead_events(lc)
        errors = {e.new_model_name: e.last_error or "" for e in dead if e.new_model_name}
        assert set(errors) == set(bad)
        nameless = [e.last_error or "" for e in dead if not e.new_model_name]
        assert nameless == [
            f"deployment {empty['model_id']} has no model_name; give it a name in LiteLLM "
            "(PATCH /model/{model_id}/update)"
        ]
        for name, (_, fragment) in bad.items():
            assert fragment in errors[name], (name, errors[name])
            assert errors[name].startswith(f"{name}: ")  # names the model
        assert relay.stats.reconnects == 0
        assert relay.stats.last_error is None
        assert await audits(bc) == {"will-vanish": 1}

        # an empty name gives its event no name to converge: the event is kept with that error, and
        # the full scan reports the deployment too: `status` (and
        # backfill / the periodic reconcile) name it
        report = await collect_status(settings)
        assert (
            "model_name is missing or blank"
            in report.drift.errors[f"<deployment {empty['model_id']}>"]
        )
        assert set(bad) <= set(report.drift.errors)
        status_text = format_status(report)
        assert "cannot sync <deployment" in status_text
    await assert_no_secrets(
        pg_cluster,
        ldsn,
        bdsn,
        [master_key, other_key],
        {"logs": "\n".join(logs), "status output": status_text + report.to_json()},
    )


def test_litellm_lookups_print_nothing_to_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Injects: cost-map lookups (what every mapped deployment costs) for a known model and for one
    LiteLLM has no provider for, with LiteLLM's ``suppress_debug_info`` off as in a
    ``litemaas-hooks`` process (only LiteLLM's proxy_server and
    Router turn it on; an earlier test may have built one).

    Asserts: nothing reaches stdout. LiteLLM's ``get_llm_provider`` prints a "Provider List" banner
    on a miss, and >= 1.108's router-like registration of the looked-up deployment misses for every
    model: the banner landed in ``status --json``, in ``backfill``'s output and in the relay's
    stdout (the process test above reads a relay's stdout too)."""
    import litellm

    monkeypatch.setattr(litellm, "suppress_debug_info", False)
    tag = secrets.token_hex(4)
    for model in ("openai/gpt-4o", f"unplaceable-{tag}"):
        litellm_adapter.cost_map_lookup(model, None)
    assert capsys.readouterr().out == ""
    assert litellm.suppress_debug_info is False  # LiteLLM's own setting is left as it was

