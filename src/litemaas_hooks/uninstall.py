"""What ``litemaas-hooks uninstall`` removes (the command itself is in ``cli.py``): everything of
ours from both databases, nothing of theirs.

LiteLLM database: the trigger ``litemaas_hooks_model_events`` on
``public."LiteLLM_ProxyModelTable"``, then schema ``litemaas_hooks`` (outbox, reconcile bookkeeping,
trigger function, migration records). Backend database: schema ``litemaas_hooks`` (the sync
functions, ``hidden_models``, migration records).

What stays: every row the sync wrote into the backend's own tables (``models``, the subscriptions it
deactivated, ``api_key_models`` it removed, ``audit_logs``); LiteLLM's tables and rows. Each
database is changed in one transaction, under the install lock; it refuses (and changes nothing)
when an object outside our schema depends on one inside it. Safe to re-run: a database without our
objects is a no-op.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg

from litemaas_hooks import sql
from litemaas_hooks.errors import MigrationError, describe
from litemaas_hooks.settings import Which


@dataclass(frozen=True)
class UninstallResult:
    side: Which
    pending_discarded: int  # outbox events not yet applied (LiteLLM side)


def statements(side: Which) -> list[str]:
    """The SQL that ``uninstall`` runs on one database, in order (``--dry-run`` prints it)."""
    out = [sql.query("common", "migrations_lock")]
    if side == "litellm":
        out.append(sql.query("litellm", "uninstall_drop_trigger"))
    out.append(sql.query("common", "uninstall_drop_schema"))
    return out


def script(sides: Iterable[Which]) -> str:
    """A psql-ready script of every statement, one transaction per database."""
    parts = []
    for side in sides:
        db = (
            "backend (LiteMaaS) database: LITEMAAS_DATABASE_URL"
            if side == "backend"
            else ("LiteLLM database: LITELLM_DATABASE_URL (else DATABASE_URL)")
        )
        body = ";\n".join(statements(side))
        parts.append(f"-- {db}\nBEGIN;\n{body};\nCOMMIT;\n")
    return "\n".join(parts)


async def _pending(conn: psycopg.AsyncConnection[Any]) -> int:
    cur = await conn.execute(sql.query("litellm", "uninstall_outbox_present"))
    row = await cur.fetchone()
    if not (row and row[0]):
        return 0
    cur = await conn.execute(sql.query("litellm", "uninstall_pending_events"))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def uninstall(conn: psycopg.AsyncConnection[Any], side: Which) -> UninstallResult:
    """Run ``statements(side)`` in one transaction; counts the outbox events it discards first."""
    lock, *rest = statements(side)
    async with conn.transaction():
        await conn.execute(lock)
        pending = await _pending(conn) if side == "litellm" else 0
        for stmt in rest:
            try:
                await conn.execute(stmt.encode("utf-8"))
            except psycopg.Error as exc:
                raise MigrationError(
                    f"uninstall of the {side} database failed, nothing was changed there: "
                    f"{describe(exc)}. The role needs to own schema litemaas_hooks "
                    '(and, on the LiteLLM side, public."LiteLLM_ProxyModelTable"): '
                    "use the role that ran install."
                ) from exc
    return UninstallResult(side=side, pending_discarded=pending)


DATABASE_LABELS: dict[Which, str] = {
    "backend": "backend (LiteMaaS) database",
    "litellm": "LiteLLM database",
}
REMOVES: dict[Which, str] = {
    "litellm": 'trigger litemaas_hooks_model_events on public."LiteLLM_ProxyModelTable" and schema '
    "litemaas_hooks (outbox, trigger function)",
    "backend": "schema litemaas_hooks (sync functions, hidden-model bookkeeping)",
}
KEEPS = (
    "kept: every row the sync wrote in the backend's own tables (models, subscriptions, "
    "api_key_models, audit_logs) and all of LiteLLM's tables; remove the plugin callback / "
    "relay Deployment as well"
)
