"""Fixtures of the tests against the real LiteMaaS backend code (upstream v0.4.0, run with tsx).

``litellm_world`` (module): a LiteLLM database (``install``-ed: our trigger and outbox, as in
production) served by a real LiteLLM proxy process (sandbox launcher, our plugin NOT mounted: the
only writers of backend rows are the passes a test runs), with ``MODELS`` created through LiteLLM's
HTTP API. ``backend_db`` (function): a fresh backend database
made by the backend's own migrations, ``install``-ed.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest

from litemaas_hooks.migrations import apply_migrations
from litemaas_hooks_sandbox import litemaas_backend
from litemaas_hooks_sandbox.cluster import LocalPostgres
from litemaas_hooks_sandbox.proxy import SandboxProxy, start_proxy

UPSTREAM_KEY = "sk-upstream-" + "5" * 40
VLLM = "http://vllm.models.svc.cluster.local:8000/v1"


def _seed_model(name: str, model: str, category: str, **info: Any) -> dict[str, Any]:
    # the RHDP seed guide's parameters (display_name, description, provider, category,
    # context_length, ...)
    return {
        "model_name": name,
        "litellm_params": {
            "model": model,
            "api_base": VLLM,
            "api_key": UPSTREAM_KEY,
            "rpm": 60,
            "tpm": 100000,
        },
        "model_info": {
            "display_name": name,
            "description": "AI model",
            "provider": "openshift-ai",
            "category": category,
            "supports_streaming": True,
            **info,
        },
    }


# What LiteLLM gets through its HTTP API (POST /model/new), one entry per deployment.
MODELS: list[dict[str, Any]] = [
    _seed_model(
        "granite-8b-code-instruct-128k",
        "openai/granite-3-2-8b-instruct",
        "code",
        context_length=131072,
    ),
    _seed_model("mistral-7b-instruct", "openai/mistral-7b-instruct", "chat"),
    _seed_model(
        "llama-3-8b-instruct", "openai/llama-3-8b-instruct", "general", context_length=8192
    ),
    {
        "model_name": "tools-and-vision",
        "litellm_params": {
            "model": "openai/qwen2-vl-7b",
            "api_base": VLLM,
            "api_key": UPSTREAM_KEY,
        },
        "model_info": {
            "supports_function_calling": True,
            "supports_parallel_function_calling": True,
            "supports_tool_choice": True,
            "supports_vision": True,
            "max_tokens": 32768,
        },
    },
    {
        "model_name": "text-embedding",
        "litellm_params": {"model": "openai/text-embedding-3-small", "api_key": UPSTREAM_KEY},
        "model_info": {"mode": "embedding"},
    },
    {
        "model_name": "nomic-embed",
        "litellm_params": {
            "model": "openai/nomic-embed-text-v1.5",
            "api_base": VLLM,
            "api_key": UPSTREAM_KEY,
        },
        "model_info": {"mode": "embedding", "supports_embeddings": True},
    },
    # models LiteLLM's cost map knows (it enriches max_tokens, costs, flags in /model/info)
    {
        "model_name": "openai-gpt-4o",
        "litellm_params": {"model": "openai/gpt-4o", "api_key": UPSTREAM_KEY},
    },
    {"model_name": "gpt-4o", "litellm_params": {"model": "gpt-4o", "api_key": UPSTREAM_KEY}},
    {
        "model_name": "ollama-llama2",
        "litellm_params": {"model": "ollama/llama2", "api_base": "http://ollama.models.svc:11434"},
    },
    {
        "model_name": "free-model",
        "litellm_params": {"model": "openai/free-model", "api_base": VLLM, "api_key": UPSTREAM_KEY},
        "model_info": {"input_cost_per_token": 0, "output_cost_per_token": 0},
    },
    {
        "model_name": "params-priced",
        "litellm_params": {
            "model": "openai/params-priced",
            "api_base": VLLM,
            "api_key": UPSTREAM_KEY,
            "input_cost_per_token": 0.000001,
            "output_cost_per_token": 0.000002,
        },
    },
    # one name, two deployments
    {
        "model_name": "granite-ha",
        "litellm_params": {
            "model": "openai/granite-ha",
            "api_base": "http://vllm-a:8000/v1",
            "api_key": UPSTREAM_KEY,
        },
        "model_info": {"max_tokens": 4096},
    },
    {
        "model_name": "granite-ha",
        "litellm_params": {
            "model": "openai/granite-ha",
            "api_base": "http://vllm-b:8000/v1",
            "api_key": UPSTREAM_KEY,
        },
        "model_info": {"max_tokens": 4096},
    },
    {
        "model_name": 'it\'s "quoted"',
        "litellm_params": {"model": "openai/quoted", "api_base": VLLM, "api_key": UPSTREAM_KEY},
    },
    {
        "model_name": "modèle-日本語-ü",
        "litellm_params": {
            "model": "openai/unicode-model",
            "api_base": VLLM,
            "api_key": UPSTREAM_KEY,
        },
        "model_info": {"description": "ünïcödé"},
    },
    {
        "model_name": "admin-hidden",
        "litellm_params": {
            "model": "openai/admin-hidden",
            "api_base": VLLM,
            "api_key": UPSTREAM_KEY,
        },
    },
]
# blocked through POST /model/block (LiteLLM versions that have it; 1.81.0 has no blocked column)
BLOCKED: dict[str, Any] = {
    "model_name": "blocked-model",
    "litellm_params": {"model": "openai/blocked-model", "api_base": VLLM, "api_key": UPSTREAM_KEY},
}
HIDDEN = "admin-hidden"


@dataclass
class LiteLLMWorld:
    litellm_dsn: str
    proxy: SandboxProxy
    names: set[str] = field(default_factory=set)
    blocked: str | None = None


def install(dsn: str, side: str) -> None:
    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await apply_migrations(conn, side)  # type: ignore[arg-type]

    asyncio.run(run())


def add_models(proxy: SandboxProxy, models: list[dict[str, Any]]) -> list[str]:
    ids = []
    with proxy.client() as client:
        for model in models:
            response = client.post("/model/new", json=model)
            assert response.status_code == 200, response.text
            ids.append(response.json()["model_id"])
    return ids


def _has_blocked_column(dsn: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        found = conn.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' "
            "AND table_name = 'LiteLLM_ProxyModelTable' AND column_name = 'blocked'"
        ).fetchone()
    return found is not None


@pytest.fixture(scope="session")
def backend_tree() -> litemaas_backend.BackendTree:
    return litemaas_backend.tree()


@pytest.fixture(scope="module")
def litellm_world(pg_cluster: LocalPostgres, master_key: str) -> Iterator[LiteLLMWorld]:
    name = f"coexist_litellm_{secrets.token_hex(3)}"
    pg_cluster.create_database(name, template="tpl_litellm")
    dsn = pg_cluster.dsn(name)
    try:
        install(dsn, "litellm")
        proxy = start_proxy(dsn, master_key=master_key, plugin=False)
        try:
            world = LiteLLMWorld(dsn, proxy, names={m["model_name"] for m in MODELS})
            add_models(proxy, MODELS)
            if _has_blocked_column(dsn):
                (blocked_id,) = add_models(proxy, [BLOCKED])
                with proxy.client() as client:
                    response = client.post("/model/block", json={"model_id": blocked_id})
                assert response.status_code == 200, response.text
                world.blocked = BLOCKED["model_name"]
                world.names.add(BLOCKED["model_name"])
            yield world
        finally:
            proxy.stop()
    finally:
        pg_cluster.drop_database(name)


@pytest.fixture
def backend_db(
    pg_cluster: LocalPostgres, backend_tree: litemaas_backend.BackendTree
) -> Iterator[str]:
    """A fresh backend DB (the backend's own migrations,
    from the session template), ``install``-ed."""
    name = f"coexist_backend_{secrets.token_hex(3)}"
    pg_cluster.create_database(name, template="tpl_litemaas")
    try:
        dsn = pg_cluster.dsn(name)
        install(dsn, "backend")
        yield dsn
    finally:
        pg_cluster.drop_database(name)
