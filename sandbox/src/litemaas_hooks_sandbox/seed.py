"""Sample LiteLLM models (the LiteMaaS seed's vocabulary) and inserting rows built by LiteLLM's
code."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import psycopg

from litemaas_hooks_sandbox.litellm_admin import encrypted_row

# (model_name, litellm_params, model_info) as an operator would add them in the LiteLLM Admin UI.
SAMPLE_MODELS: tuple[tuple[str, dict[str, Any], dict[str, Any]], ...] = (
    (
        "granite-8b-code-instruct-128k",
        {
            "model": "openai/granite-8b-code-instruct-128k",
            "api_base": "http://granite.models.svc:8080/v1",
        },
        {
            "description": "IBM Granite 8B code instruct",
            "category": "code",
            "context_length": 131072,
        },
    ),
    (
        "mistral-7b-instruct",
        {"model": "openai/mistral-7b-instruct", "api_base": "http://mistral.models.svc:8080/v1"},
        {"description": "Mistral 7B instruct", "supports_function_calling": True},
    ),
    (
        "llama-3-8b-instruct",
        {"model": "openai/llama-3-8b-instruct", "api_base": "http://llama.models.svc:8080/v1"},
        {"supports_function_calling": True, "supports_tool_choice": True},
    ),
)

_INSERT = """
INSERT INTO public."LiteLLM_ProxyModelTable"
    (model_id, model_name, litellm_params, model_info, created_by, updated_by)
VALUES (%(model_id)s, %(model_name)s, %(litellm_params)s, %(model_info)s, %(created_by)s,
        %(updated_by)s)
"""
# LiteLLM >= 1.108 only (1.81's table has no `blocked` column).
_INSERT_BLOCKED = """
INSERT INTO public."LiteLLM_ProxyModelTable"
    (model_id, model_name, litellm_params, model_info, created_by, updated_by, blocked)
VALUES (%(model_id)s, %(model_name)s, %(litellm_params)s, %(model_info)s,
        %(created_by)s, %(updated_by)s, %(blocked)s)
"""


def _jsonb(value: Any) -> psycopg.types.json.Jsonb:
    return psycopg.types.json.Jsonb(json.loads(value) if isinstance(value, str) else value)


def as_insert_params(row: Mapping[str, Any], *, blocked: bool = False) -> dict[str, Any]:
    """Column values of a row from ``encrypted_row`` as parameters of ``_INSERT``."""
    return {
        "model_id": row["model_id"],
        "model_name": row["model_name"],
        "litellm_params": _jsonb(row["litellm_params"]),
        "model_info": _jsonb(row["model_info"]),
        "created_by": row.get("created_by") or "litemaas-hooks-seed",
        "updated_by": row.get("updated_by") or "litemaas-hooks-seed",
        "blocked": bool(row.get("blocked") or blocked),
    }


def insert_rows(dsn: str, rows: Iterable[Mapping[str, Any]]) -> None:
    """Insert rows built by LiteLLM's row builder into ``LiteLLM_ProxyModelTable`` (one
    transaction)."""
    params = [as_insert_params(r) for r in rows]
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        plain = [p for p in params if not p["blocked"]]
        blocked = [p for p in params if p["blocked"]]
        if plain:
            cur.executemany(_INSERT, plain)
        if blocked:
            cur.executemany(_INSERT_BLOCKED, blocked)


def seed_samples(
    dsn: str,
    *,
    key: str,
    api_key: str = "sk-demo-provider-key",
    exclude: frozenset[str] = frozenset(),
) -> list[str]:
    """Store the sample models (but those named in ``exclude``) the way LiteLLM does (encrypted with
    ``key``); returns their model_ids."""
    rows = [
        encrypted_row(name, {**params, "api_key": api_key}, dict(info), key=key)
        for name, params, info in SAMPLE_MODELS
        if name not in exclude
    ]
    insert_rows(dsn, rows)
    return [str(r["model_id"]) for r in rows]
