"""``litemaas-hooks show NAME...``: the guide's "Verify Model in Both Locations" in one command.

For each name: LiteLLM's deployments (read from LiteLLM's table as the relay reads them, decrypted,
credentials removed), the backend row, its subscriptions by status, the outbox events of the name,
and a one-line verdict. Reuses the relay's reader (``litellm_source``) and the reconcile engine's
dry run (is the row the one the sync would write?); reads only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from litemaas_hooks.redaction import strip_credentials
from litemaas_hooks.settings import Settings

DEPLOYMENT_PARAMS = ("model", "api_base", "api_version", "rpm", "tpm", "custom_llm_provider")
DEPLOYMENT_INFO = (
    "max_tokens",
    "description",
    "display_name",
    "provider",
    "category",
    "litemaas_hooks",
)
FKEY = "subscriptions_model_id_fkey"


@dataclass
class ModelView:
    name: str
    deployments: list[dict[str, Any]] = field(default_factory=list)
    litellm_error: str | None = None
    backend_row: dict[str, Any] | None = None
    subscriptions: dict[str, int] = field(default_factory=dict)  # status -> count
    events: list[dict[str, Any]] = field(default_factory=list)
    sync: str = "unchanged"  # the reconcile engine's dry-run outcome for the name
    sync_changes: list[str] = field(default_factory=list)
    verdict: str = ""
    in_sync: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = _jsonable(
            {
                "name": self.name,
                "verdict": self.verdict,
                "in_sync": self.in_sync,
                "litellm": {"deployments": self.deployments, "error": self.litellm_error},
                "backend": {"row": self.backend_row, "subscriptions": self.subscriptions},
                "outbox_events": self.events,
                "sync_dry_run": {"outcome": self.sync, "changes": self.sync_changes},
            }
        )
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def verdict(view: ModelView) -> tuple[str, bool]:
    """One line, and whether the name is in sync (pure)."""
    dead = [e for e in view.events if e.get("status") == "dead"]
    pending = [e for e in view.events if e.get("status") in ("pending", "claimed")]
    row = view.backend_row
    if view.litellm_error:
        return (
            f"error: LiteLLM's deployments of this name cannot be synced: {view.litellm_error}",
            False,
        )
    if dead:
        ids = " ".join(str(e["id"]) for e in dead)
        error = dead[-1].get("last_error") or "no error recorded"
        return (
            f"dead: {len(dead)} outbox event(s) failed ({error}); fix the cause, then "
            f"`litemaas-hooks replay {ids}`"
        ), False
    if view.deployments and row is None:
        if pending:
            waiting = f"{len(pending)} outbox event(s) waiting for a relay"
            return f"pending: in LiteLLM, not yet in the backend ({waiting})", False
        return (
            f"missing in the backend: subscriptions would fail with {FKEY}; run `litemaas-hooks "
            "backfill` "
            "(and check `litemaas-hooks status`: is a relay running?)"
        ), False
    if pending:
        return (
            f"pending: {len(pending)} outbox event(s) not applied yet (a running relay applies "
            "them at once)",
            False,
        )
    if not view.deployments:
        if row is None:
            return "unknown: no deployment in LiteLLM and no backend row of this name", False
        if row.get("availability") == "unavailable":
            return (
                "retired: not in LiteLLM; the backend row is unavailable (kept, never deleted)",
                True,
            )
        if view.sync == "retired":
            fix = "run `litemaas-hooks backfill --retire-missing`"
            return f"gone from LiteLLM but available in the backend: {fix}", False
        return "not in LiteLLM's table (a config.yaml model?); the backend row is available", True
    if view.sync == "created":
        return (
            f"missing in the backend: subscriptions would fail with {FKEY}; run `litemaas-hooks "
            "backfill`",
            False,
        )
    if view.sync == "updated":
        fields = ", ".join(view.sync_changes) or "some columns"
        return (
            f"out of date: the backend row differs from LiteLLM ({fields}); run `litemaas-hooks "
            "backfill`",
            False,
        )
    if view.sync == "error":
        return "error: the sync cannot write this name (see `litemaas-hooks status`)", False
    availability = row.get("availability") if row is not None else None
    return f"in sync ({availability}, {len(view.deployments)} deployment(s) in LiteLLM)", True


async def collect(
    settings: Settings, lconn: Any, bconn: Any, names: Sequence[str]
) -> list[ModelView]:
    from psycopg.rows import dict_row

    from litemaas_hooks import sql
    from litemaas_hooks.litellm_source import read_truth
    from litemaas_hooks.reconcile import Reconciler

    wanted = list(dict.fromkeys(names))
    truth = await read_truth(lconn, wanted, key=settings.decryption_key())
    report = await Reconciler(settings).converge(
        lconn, bconn, wanted, retire_missing="db-rows", dry_run=True
    )
    async with bconn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql.query("backend", "show_models"), {"ids": wanted})
        rows = {str(r["id"]): dict(r) for r in await cur.fetchall()}
        await cur.execute(sql.query("backend", "show_subscription_counts"), {"ids": wanted})
        subs = await cur.fetchall()
    async with lconn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql.query("litellm", "show_events"), {"names": wanted})
        events = [dict(e) for e in await cur.fetchall()]
    secrets = frozenset(settings.secrets())
    views = []
    for name in wanted:
        view = ModelView(name, litellm_error=truth.errors.get(name), backend_row=rows.get(name))
        for dep in truth.deployments.get(name, []):
            params = {
                k: dep.litellm_params[k] for k in DEPLOYMENT_PARAMS if k in dep.litellm_params
            }
            info = {k: dep.model_info[k] for k in DEPLOYMENT_INFO if k in dep.model_info}
            view.deployments.append(
                strip_credentials(
                    {
                        "model_id": dep.model_id,
                        "blocked": dep.blocked,
                        "litellm_params": params,
                        "model_info": info,
                    },
                    secrets,
                )
            )
        view.subscriptions = {str(s["status"]): int(s["n"]) for s in subs if s["model_id"] == name}
        view.events = [
            e for e in events if name in (e.get("new_model_name"), e.get("old_model_name"))
        ]
        outcome = report.outcomes.get(name)
        if outcome is not None:
            view.sync = outcome.action
            view.sync_changes = sorted(k for k in outcome.changes if k != "metadata")
        view.verdict, view.in_sync = verdict(view)
        views.append(view)
    return views


def format_views(views: Sequence[ModelView]) -> str:
    lines: list[str] = []
    for view in views:
        lines.append(f"{view.name}: {view.verdict}")
        lines.append(f"  LiteLLM: {len(view.deployments)} deployment(s)")
        for dep in view.deployments:
            params = ", ".join(f"{k} {v!r}" for k, v in dep["litellm_params"].items())
            info = dep["model_info"]
            managed = " [managed by apply]" if isinstance(info.get("litemaas_hooks"), dict) else ""
            blocked = " [blocked]" if dep["blocked"] else ""
            shown = ", ".join(f"{k} {v!r}" for k, v in info.items() if k != "litemaas_hooks")
            lines.append(
                f"    {dep['model_id']}{managed}{blocked}: {params}"
                + (f"; {shown}" if shown else "")
            )
        row = view.backend_row
        if row is None:
            lines.append("  backend: no row")
        else:
            cols = (
                "name",
                "provider",
                "category",
                "availability",
                "context_length",
                "max_tokens",
                "rpm",
                "tpm",
            )
            lines.append("  backend: " + ", ".join(f"{c} {row.get(c)!r}" for c in cols))
            lines.append(
                f"           api_base {row.get('api_base')!r}, litellm_model_id "
                f"{row.get('litellm_model_id')!r}, "
                f"description {row.get('description')!r}"
            )
        subs = ", ".join(f"{n} {s}" for s, n in sorted(view.subscriptions.items())) or "none"
        lines.append(f"  subscriptions: {subs}")
        if not view.events:
            lines.append("  outbox: no events for this name")
        for e in view.events:
            err = f": {e.get('last_error')}" if e.get("last_error") else ""
            lines.append(
                f"  outbox: #{e['id']} {e['op']} {e['status']} ({e['attempts']} attempts){err}"
            )
    return "\n".join(lines)


def to_json(views: Sequence[ModelView]) -> str:
    return json.dumps([v.to_dict() for v in views], indent=2, sort_keys=True)
