"""Operator commands of retire safety: ``litemaas-hooks retire`` and ``litemaas-hooks restore``.

- ``retire``: lists the retired names whose cascade waits (grace period, or held by the mass-retire
  guard); ``retire --confirm [MODEL...]`` cascades the held names that LiteLLM still does not have
  (re-checked now) and shows again those it has.
- ``restore MODEL... [--dry-run | --yes]``: puts back exactly what the retire cascades of each model
  deactivated (``litemaas_hooks.retire_cascades``), only rows still in the state the cascade left
  them.
  Without ``--yes`` it prints the plan only.

Both run with the backend role that ran ``install`` (the owner of ``public.models`` or a member of
it): the relay role may not call them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg

from litemaas_hooks import backend_sink
from litemaas_hooks.errors import LiteMaaSHooksError, describe
from litemaas_hooks.settings import Settings

GRANT_HINT = (
    "run it with the backend role that ran `litemaas-hooks install` (the owner of public.models), "
    "not the relay's role"
)


def _refused(exc: psycopg.Error, what: str) -> LiteMaaSHooksError:
    if exc.sqlstate == "42501":
        return LiteMaaSHooksError(f"{what}: {describe(exc)}; {GRANT_HINT}")
    hint = f" ({exc.diag.message_hint})" if exc.diag.message_hint else ""
    return LiteMaaSHooksError(f"{what}: {describe(exc)}{hint}")


def format_queue(queue: Sequence[dict[str, Any]]) -> list[str]:
    lines = []
    for row in queue:
        if row["held_at"] is not None:
            state = "HELD by the mass-retire guard (retire --confirm, or it comes back)"
        elif row["seconds_left"] > 0:
            state = f"cascade in {row['seconds_left']:.0f}s (grace period)"
        else:
            state = "cascade due now"
        lines.append(f"  {row['model_id']}: {state}")
    return lines


async def retire_command(
    settings: Settings,
    litellm: psycopg.AsyncConnection[Any],
    backend: psycopg.AsyncConnection[Any],
    *,
    confirm: bool,
    names: Sequence[str],
) -> tuple[int, list[str]]:
    """``retire [--confirm] [MODEL...]``: (exit code, lines to print)."""
    from litemaas_hooks.reconcile import Reconciler

    try:
        queue = await backend_sink.retire_queue(backend)
    except psycopg.Error as exc:
        raise _refused(exc, "cannot read the pending retire cascades") from exc
    held = [r for r in queue if r["held_at"] is not None]
    unknown = sorted(set(names) - {r["model_id"] for r in held})
    if unknown:
        raise LiteMaaSHooksError(
            f"not held by the mass-retire guard: {', '.join(unknown)} "
            "(`litemaas-hooks retire` lists the held names)"
        )
    if not confirm:
        lines = ["retired names whose cascade waits:" if queue else "no retire cascade waits"]
        lines += format_queue(queue)
        if held:
            lines.append(
                f"{len(held)} held: if these models are really gone, "
                "`litemaas-hooks retire --confirm` "
                "cascades them; if they come back in LiteLLM the hold clears by itself"
            )
        return (2 if held else 0), lines
    if not held:
        return 0, ["nothing is held by the mass-retire guard: nothing to confirm"]
    try:
        due = await Reconciler(settings).cascade_due(litellm, backend, confirm=list(names) or True)
    except psycopg.Error as exc:
        raise _refused(exc, "retire --confirm failed (nothing cascaded)") from exc
    lines = []
    for name, result in sorted(due.cascaded.items()):
        if result.get("cascaded"):
            counts = ", ".join(
                f"{k}={result[k]}"
                for k in (
                    "subscriptionsDeactivated",
                    "apiKeyModelLinksRemoved",
                    "apiKeysDeactivated",
                )
            )
            lines.append(
                f"  {name}: cascaded ({counts}); `litemaas-hooks restore {name}` undoes it"
            )
        else:
            lines.append(
                f"  {name}: nothing to cascade (it came back or another LiteLLM serves it)"
            )
    lines += [
        f"  {name}: back in LiteLLM: available again, nothing cascaded" for name in due.came_back
    ]
    lines += [
        f"  {name}: LiteLLM could not be read ({why}); still held"
        for name, why in due.errors.items()
    ]
    lines.insert(0, f"retire --confirm: {due.summary()}")
    return (1 if due.errors else 0), lines


async def restore_command(
    backend: psycopg.AsyncConnection[Any], names: Sequence[str], *, apply: bool
) -> tuple[int, list[str]]:
    """``restore MODEL... [--dry-run | --yes]``: (exit code, lines to print). All models in one
    transaction: a refusal restores none."""
    lines: list[str] = []
    plans = []
    try:
        async with backend.transaction(force_rollback=not apply):
            for name in names:
                plans.append(await backend_sink.restore_model(backend, name, apply=apply))
    except psycopg.Error as exc:
        raise _refused(exc, "nothing restored") from exc
    verb = "restored" if apply else "would restore"
    for plan in plans:
        name = str(plan.get("model"))
        if not plan.get("found"):
            lines.append(f"{name}: no such model in the backend")
            continue
        if not plan.get("cascades"):
            lines.append(f"{name}: no retire cascade to restore")
            continue
        lines.append(
            f"{name}: {verb} {len(plan['subscriptions'])} subscriptions, "
            f"{plan['keyLinks']} key links, "
            f"{len(plan['apiKeys'])} API keys (left alone, changed since the cascade: "
            f"{plan['subscriptionsSkipped']} subscriptions, {plan['keyLinksSkipped']} key links, "
            f"{plan['apiKeysSkipped']} API keys)"
        )
        if not apply and not plan.get("model_available"):
            lines.append(
                f"  {name} is unavailable: bring it back in LiteLLM before `restore --yes`"
            )
    if not apply:
        lines.append("dry run: nothing written; run again with --yes to apply")
        lines.append(json.dumps(plans, default=str, sort_keys=True))
    return 0, lines
