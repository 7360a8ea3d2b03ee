"""Helpers shared by the integration tests: seeding LiteLLM rows the way LiteLLM writes them."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import psycopg

from litemaas_hooks_sandbox import seed
from litemaas_hooks_sandbox.litellm_admin import encrypted_row


def litellm_row(
    model_name: str,
    litellm_params: Mapping[str, Any],
    model_info: Mapping[str, Any] | None = None,
    *,
    key: str,
    model_id: str | None = None,
    blocked: bool = False,
) -> dict[str, Any]:
    """A table row built by LiteLLM's own row builder and encryption."""
    info = {"id": model_id or str(uuid.uuid4()), **(model_info or {})}
    row = dict(encrypted_row(model_name, dict(litellm_params), info, key=key))
    row["blocked"] = blocked
    return row


def insert_rows(dsn: str, rows: Iterable[Mapping[str, Any]]) -> None:
    seed.insert_rows(dsn, rows)


def execute(dsn: str, query: str, params: Mapping[str, Any] | tuple[Any, ...] | None = None) -> list[Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


# What LiteLLM re-creating its table does to our triggers (all three statement-level ones go with
# it).
DROP_TRIGGERS = "; ".join(
    f'DROP TRIGGER {name} ON public."LiteLLM_ProxyModelTable"'
    for name in (
        "litemaas_hooks_model_events",
        "litemaas_hooks_model_events_insert",
        "litemaas_hooks_model_events_delete",
    )
)
