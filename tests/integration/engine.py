"""The sync engine on real databases, through the environment: LiteLLM rows to seed, the CLI
in-process, the reconciler on fresh connections (``test_backfill``, ``test_linear_read``).

The environment itself comes from the ``env`` fixture of ``tests/integration/conftest.py``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from litemaas_hooks import cli
from litemaas_hooks.connections import connect
from litemaas_hooks.reconcile import Reconciler
from litemaas_hooks.settings import load_settings
from tests.helpers import insert_rows, litellm_row

SEED: list[tuple[str, str, dict[str, Any]]] = [
    (
        "granite-8b-code-instruct-128k",
        "openai/granite-8b-code-instruct-128k",
        {"max_tokens": 131072},
    ),
    ("mistral-7b-instruct", "openai/mistral-7b-instruct", {"description": "Mistral"}),
    ("llama-3-8b-instruct", "openai/llama-3-8b-instruct", {"supports_function_calling": True}),
]
API_KEY = "sk-provider-" + "9" * 40


def seed(
    env: dict[str, str], models: list[tuple[str, str, dict[str, Any]]] = SEED, **kw: Any
) -> list[str]:
    rows = [
        litellm_row(
            name,
            {"model": model, "api_base": "http://vllm.example:8000/v1", "api_key": API_KEY},
            info,
            key=env["LITELLM_MASTER_KEY"],
            **kw,
        )
        for name, model, info in models
    ]
    insert_rows(env["LITELLM_DATABASE_URL"], rows)
    return [r["model_id"] for r in rows]


def run(*argv: str) -> int:
    return cli.main(list(argv))


T = TypeVar("T")


async def connected(body: Callable[[Reconciler, Any, Any], Awaitable[T]]) -> T:
    """``body(engine, litellm_conn, backend_conn)`` on fresh connections from the environment."""
    settings = load_settings()
    lite, back = await connect(settings, "litellm"), await connect(settings, "backend")
    try:
        return await body(Reconciler(settings), lite, back)
    finally:
        await lite.close()
        await back.close()
