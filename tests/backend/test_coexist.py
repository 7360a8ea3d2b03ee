"""Our ``backfill`` and the real backend's
``ModelSyncService.syncModels`` on one backend DB never fight.

On one LiteLLM state (``MODELS`` created through a real LiteLLM proxy's HTTP API, ``/model/info``
served by it), a fresh backend DB made by the backend's own migrations, holding one row an admin has
hidden, gets passes of both syncs, alternating, three
of each, in both orders. After the first two passes:

* our passes write 0 rows (``Report.rows_written``) and change no value;
* its passes change no value (every column of every row compared before/after, ``updated_at`` aside:
  it may rewrite a row with equal values, it must not change one).
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from litemaas_hooks.connections import connect
from litemaas_hooks.reconcile import Reconciler, Report
from litemaas_hooks.settings import load_settings
from litemaas_hooks_sandbox import litemaas_backend
from tests.backend.conftest import HIDDEN, LiteLLMWorld

pytestmark = [pytest.mark.proxy, pytest.mark.slow, pytest.mark.backend]

PASSES_EACH = 3
SETTLING_PASSES = 2  # the first two passes may write; every later one must not


def snapshot(dsn: str) -> dict[str, dict[str, Any]]:
    """Every backend row, every column but ``updated_at``."""
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        rows = conn.execute("SELECT * FROM public.models ORDER BY id").fetchall()
    return {r["id"]: {k: v for k, v in r.items() if k != "updated_at"} for r in rows}


def differences(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if old is None or new is None:
            out.append(f"{name!r}: {'created' if old is None else 'deleted'}")
            continue
        for column in sorted(old.keys() | new.keys()):
            if old.get(column) != new.get(column):
                if column == "metadata":
                    out.append(f"{name!r}.metadata changed")
                else:
                    out.append(f"{name!r}.{column}: {old.get(column)!r} -> {new.get(column)!r}")
    return out


def our_backfill(
    world: LiteLLMWorld, backend_dsn: str, master_key: str, names: set[str] | None = None
) -> Report:
    settings = load_settings(
        {
            "LITEMAAS_DATABASE_URL": backend_dsn,
            "LITELLM_DATABASE_URL": world.litellm_dsn,
            "LITELLM_MASTER_KEY": master_key,
        }
    )

    async def go() -> Report:
        lite, back = await connect(settings, "litellm"), await connect(settings, "backend")
        try:
            return await Reconciler(settings).converge(lite, back, names)
        finally:
            await lite.close()
            await back.close()

    return asyncio.run(go())


def its_sync(world: LiteLLMWorld, backend_dsn: str) -> litemaas_backend.SyncRun:
    return litemaas_backend.sync_models(
        backend_dsn,
        litellm_url=world.proxy.base_url,
        litellm_key=world.proxy.master_key,
        litellm_dsn=world.litellm_dsn,
        # its first pass on a new name with two deployments fails (models_pkey): recorded
        check=False,
    )


@pytest.mark.parametrize("first", ["ours", "its"])
def test_alternating_passes_converge_and_then_write_nothing(
    litellm_world: LiteLLMWorld, backend_db: str, master_key: str, first: str
) -> None:
    assert len(litellm_world.names) >= 15
    order = ["ours", "its"] if first == "ours" else ["its", "ours"]
    # before the passes: the catalogue holds one model, which an admin has hidden in LiteMaaS
    our_backfill(litellm_world, backend_db, master_key, names={HIDDEN})
    with psycopg.connect(backend_db, autocommit=True) as conn:
        hidden = conn.execute(
            "UPDATE public.models SET availability = 'unavailable' WHERE id = %s", (HIDDEN,)
        )
        assert hidden.rowcount == 1
    problems: list[str] = []
    journal: list[str] = []
    for index in range(2 * PASSES_EACH):
        side = order[index % 2]
        before = snapshot(backend_db)
        if side == "ours":
            report = our_backfill(litellm_world, backend_db, master_key)
            written = report.rows_written
            errors = sorted(
                f"{n}: {o.message}" for n, o in report.outcomes.items() if o.action == "error"
            )
            changed = {
                n: sorted(o.changes)
                for n, o in report.outcomes.items()
                if o.action in ("created", "updated")
            }
            detail = f"wrote {written} rows {changed}" if written else "wrote 0 rows"
        else:
            run = its_sync(litellm_world, backend_db)
            written = run.written
            errors = list(run.result.get("errors") or [])
            detail = f"new {run.result['newModels']}, updated {run.result['updatedModels']}"
        after = snapshot(backend_db)
        changes = differences(before, after)
        journal.append(
            f"pass {index + 1} ({side}): {detail}; {len(changes)} value changes; errors {errors}"
        )
        if index < SETTLING_PASSES:
            continue
        if side == "ours" and written:
            problems.append(f"pass {index + 1} (ours) wrote {written} rows: {detail}")
        if changes:
            problems.append(f"pass {index + 1} ({side}) changed values: " + "; ".join(changes))
        if errors:
            problems.append(f"pass {index + 1} ({side}) reported errors: {errors}")
    final = snapshot(backend_db)
    missing = litellm_world.names - final.keys()
    assert not missing, f"names never reached the backend: {sorted(missing)}\n" + "\n".join(journal)
    assert not problems, "\n".join(problems) + "\n--- journal ---\n" + "\n".join(journal)
