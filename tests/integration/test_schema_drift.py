"""What LiteLLM or an admin changes under us: a dropped trigger, changes made while it was missing,
dropped objects of ours, an unexpected backend schema. ``status`` says so, the full reconcile heals
what was lost, ``install`` restores what was dropped or names what it cannot work with.

Real PostgreSQL, LiteLLM's real schema and encryption, the real relay. Every wait is a condition
polled against a deadline (``eventually``).
"""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg
import pytest

from litemaas_hooks import outbox
from litemaas_hooks.reconcile import Reconciler
from litemaas_hooks.status import collect_status, format_status
from litemaas_hooks_sandbox.cluster import LocalPostgres
from tests.helpers import (
    DROP_TRIGGERS,
    TABLE,
    add,
    add_good,
    as_url,
    assert_no_secrets,
    audits,
    backend_models,
    conns,
    eventually,
    is_available,
    make_settings,
    matches_truth,
    relay_roles,
    run_cli,
    running,
)

pytestmark = pytest.mark.anyio


async def test_trigger_dropped_status_says_so_reconcile_converges_install_restores(
    dbs: tuple[str, str],
    master_key: str,
    pg_cluster: LocalPostgres,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    logs: list[str],
) -> None:
    """Injects: ``DROP TRIGGER`` on LiteLLM's table (what a LiteLLM schema update re-creating the
    table does), then inserts, an update and a delete that therefore produce no outbox event.

    Asserts: ``litemaas-hooks status`` exits non-zero saying the trigger is missing and to run
    ``litemaas-hooks install``; a relay whose role may not re-create the trigger still converges
    every change through the periodic full reconcile
    (LITEMAAS_HOOKS_RECONCILE_INTERVAL_SECONDS=0.3); ``install`` restores the trigger, after which
    events flow again and status is healthy."""
    ldsn, bdsn = dbs
    env = {
        "LITEMAAS_DATABASE_URL": bdsn,
        "LITELLM_DATABASE_URL": ldsn,
        "LITELLM_MASTER_KEY": master_key,
    }
    l_role, b_role, role_password = relay_roles(pg_cluster, ldsn, bdsn)
    async with (
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
    ):
        await add(lc, "kept", master_key, max_tokens=1)
        await add(lc, "dropped-later", master_key, max_tokens=1)
        async with running(make_settings(ldsn, bdsn, master_key)):
            await eventually(
                lambda: matches_truth(lc, bc, set()), what="synced while the trigger exists"
            )

        await lc.execute(DROP_TRIGGERS)
        await add(lc, "missed-1", master_key, max_tokens=7)
        await add(lc, "missed-2", master_key, max_tokens=8)
        await lc.execute(
            f"""UPDATE {TABLE} SET model_info = model_info || '{{"max_tokens": 99}}' """
            "WHERE model_name = 'kept'"
        )
        await lc.execute(f"DELETE FROM {TABLE} WHERE model_name = 'dropped-later'")
        assert (await outbox.counts(lc)).pending == 0  # no event: only the reconcile can heal this

        capsys.readouterr()
        assert await run_cli(monkeypatch, env, "status") == 2
        status_out = capsys.readouterr().out
        assert "trigger          : MISSING" in status_out
        assert "the trigger on LiteLLM's model table is missing" in status_out
        assert "run `litemaas-hooks install`" in status_out

        settings = make_settings(
            as_url(l_role),
            as_url(b_role),
            master_key,
            reconcile_interval_seconds=0.3,
            poll_interval_seconds=0.2,
        )
        async with running(settings, reconcile_retire_missing=True) as (relay,):

            async def reconciled() -> bool:
                return relay.stats.full_reconciles >= 1 and await matches_truth(
                    lc, bc, {"dropped-later"}
                )

            await eventually(
                reconciled,
                deadline_seconds=20,
                what="the periodic reconcile converged without trigger",
            )
            # this role could not re-create it
            assert not (await outbox.trigger_state(lc)).trigger_present
        assert any(
            "could not be re-created" in line and "litemaas-hooks install" in line for line in logs
        )
        assert await audits(bc) == {"dropped-later": 1}

        assert await run_cli(monkeypatch, env, "install") == 0
        assert (await outbox.trigger_state(lc)).ok
        await add(lc, "after-install", master_key, max_tokens=1)
        assert (await outbox.counts(lc)).pending == 1  # events flow again
        async with running(make_settings(ldsn, bdsn, master_key)):
            await eventually(
                lambda: matches_truth(lc, bc, {"dropped-later"}), what="the event was applied"
            )
        capsys.readouterr()
        assert await run_cli(monkeypatch, env, "status") == 0
        healthy_out = capsys.readouterr().out
        assert "HEALTHY" in healthy_out
    await assert_no_secrets(
        pg_cluster,
        ldsn,
        bdsn,
        [master_key, role_password],
        {"logs": "\n".join(logs), "status output": status_out + healthy_out},
    )



CONFIG_MODELS = [
    {"model_name": "from-config", "litellm_params": {"model": "openai/gpt-4o"}, "model_info": {}}
]


@pytest.mark.parametrize("mode", ["standalone", "proxy"])
async def test_lost_create_update_delete_heal_within_one_interval_and_status_names_them(
    dbs: tuple[str, str], master_key: str, mode: str
) -> None:
    """Injects: changes made while the trigger was disabled (as when LiteLLM's table is re-created
    by a Prisma schema change): a create, an update and a delete; plus a row the backend's own sync
    wrote for a DB deployment (metadata.litellm_model_info.db_model = true) that is gone, a
    config.yaml model synced from the proxy, and a
    backend-sync row of a config model (db_model = false).
    Asserts: ``status`` is unhealthy naming every disagreeing model (never "drift: none" above a
    list); a relay with a 1 s full-reconcile interval heals all of them within one interval, in
    standalone mode (no config.yaml: it retires only rows known to come from LiteLLM's table) and
    inside the proxy (it sees config.yaml); the standalone relay leaves the config-file rows alone;
    status is healthy after."""

    ldsn, bdsn = dbs
    settings = make_settings(
        ldsn, bdsn, master_key, reconcile_interval_seconds=1.0, poll_interval_seconds=0.5
    )
    async with conns(ldsn, bdsn) as (lc, bc):
        for name in ("lost-delete", "lost-update"):
            await add_good(lc, name, master_key)
        await Reconciler(settings, config_models=lambda: CONFIG_MODELS).converge(lc, bc, names=None)
        await lc.execute("DELETE FROM litemaas_hooks.model_events")
        for name, db_model in (("backend-synced", True), ("backend-config", False)):
            await bc.execute(
                "INSERT INTO models (id, name, provider, availability, metadata, litellm_model_id) "
                "VALUES (%s, %s, 'openai', 'available', %s::jsonb, %s)",
                (
                    name,
                    name,
                    json.dumps(
                        {"litellm_model_info": {"db_model": db_model}, "litellm_params": {}}
                    ),
                    name,
                ),
            )
        await lc.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER")
        await lc.execute(f"DELETE FROM {TABLE} WHERE model_name = 'lost-delete'")
        await lc.execute(
            f"UPDATE {TABLE} SET model_info = model_info || "
            "'{\"max_tokens\": 9}' WHERE model_name = 'lost-update'"
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
        gone = {"lost-delete", "backend-synced"} | (
            {"backend-config"} if mode == "proxy" else set()
        )
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
            await eventually(
                healed, deadline_seconds=10, what="every lost change healed by the full reconcile"
            )
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
            f"lost create/update/delete ({mode}): healed "
            f"{took * 1000:.0f} ms after the relay started "
            "(full reconcile interval 1 s)"
        )


async def test_install_recreates_every_dropped_object_and_says_so(
    dbs: tuple[str, str], master_key: str
) -> None:
    """Injects: the outbox table, the reconcile bookkeeping, an index and a function dropped in the
    LiteLLM database; the hidden_models and model_sources
    tables and a function dropped in the backend database.
    Asserts: ``install`` re-creates each (the relay then works again) and returns each one in
    ``InstallResult.repaired``; a second install repairs nothing."""
    from litemaas_hooks.migrations import apply_migrations

    ldsn, bdsn = dbs
    async with conns(ldsn, bdsn) as (lc, bc):
        await lc.execute(
            "DROP TABLE litemaas_hooks.model_events CASCADE; "
            "DROP TABLE litemaas_hooks.reconcile_state; "
            "DROP INDEX IF EXISTS litemaas_hooks.model_events_dead_idx"
        )
        await bc.execute(
            "DROP TABLE litemaas_hooks.hidden_models CASCADE; "
            "DROP TABLE litemaas_hooks.model_sources; "
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
            await eventually(
                lambda: is_available(bc, "after-repair"), what="the repaired outbox works"
            )


VARIANTS = {
    "no backend_model_name": (
        "ALTER TABLE models DROP COLUMN backend_model_name",
        "public.models.backend_model_name",
    ),
    "no litellm_model_id": (
        "ALTER TABLE models DROP COLUMN litellm_model_id CASCADE",
        "public.models.litellm_model_id",
    ),
    "features as jsonb": (
        "ALTER TABLE models ALTER COLUMN features TYPE jsonb USING to_jsonb(features)",
        "public.models.features is jsonb",
    ),
    "extra NOT NULL column": (
        "ALTER TABLE models ADD COLUMN owner_team text NOT NULL DEFAULT 'x'; "
        "ALTER TABLE models ALTER COLUMN owner_team DROP DEFAULT",
        "owner_team",
    ),
    "no api_key_models": (
        "DROP TABLE api_key_models CASCADE",
        "LITEMAAS_HOOKS_RETIRE_CASCADE=false",
    ),
    "CHECK on availability": (
        "ALTER TABLE models ADD CONSTRAINT models_availability_values CHECK "
        "(availability IN ('available', 'beta'))",
        "models_availability_values",
    ),
}  # fmt: skip


@pytest.mark.parametrize("variant", sorted(VARIANTS))
async def test_backend_schema_variants_get_a_clear_message_at_install(
    litellm_dsn: str, backend_dsn: str, variant: str
) -> None:
    """Injects one backend schema variant each. Asserts: ``install`` of the backend side fails with
    a MigrationError naming the column, table or constraint (and how to fix it), for a fresh install
    and for a re-install over an existing one; the database is left as it was (one transaction)."""
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

