"""Helpers shared by the integration tests: seeding LiteLLM rows the way LiteLLM writes them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import psycopg

from litemaas_hooks.embedded.litellm_admin import encrypted_row

INSERT_ROW = """
INSERT INTO public."LiteLLM_ProxyModelTable"
    (model_id, model_name, litellm_params, model_info, created_by, updated_by, blocked)
VALUES (%(model_id)s, %(model_name)s, %(litellm_params)s::jsonb, %(model_info)s::jsonb,
        %(created_by)s, %(updated_by)s, %(blocked)s)
"""


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


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
    return {
        "model_id": row["model_id"],
        "model_name": row["model_name"],
        "litellm_params": _json_text(row["litellm_params"]),
        "model_info": _json_text(row["model_info"]),
        "created_by": row.get("created_by") or "test",
        "updated_by": row.get("updated_by") or "test",
        "blocked": blocked,
    }


def insert_rows(dsn: str, rows: Iterable[Mapping[str, Any]]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(INSERT_ROW, list(rows))


def execute(dsn: str, query: str, params: Mapping[str, Any] | tuple[Any, ...] | None = None) -> list[Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []
