"""The sandbox LiteLLM proxy with our plugin mounted, and what its tests check around it
(``test_plugin_proxy``, ``test_proxy_metrics``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from litemaas_hooks.migrations import apply_migrations
from litemaas_hooks_sandbox.proxy import SandboxProxy, sandbox_proxy

MODELS: list[dict[str, Any]] = [
    {
        "model_name": "mock-gpt",
        "litellm_params": {
            "model": "openai/mock-gpt",
            "api_key": "not-a-real-key",
            "mock_response": "hello from the mock",
        },
        "model_info": {"description": "config-file model"},
    }
]

START_DEADLINE_SECONDS = 240.0


def site_packages_callbacks_supported() -> bool:
    """litellm >= 1.108 falls back to site-packages; 1.81 loads callbacks only from the config
    dir."""
    import inspect

    from litellm.proxy.types_utils.utils import get_instance_fn

    return "Could not find module file" not in inspect.getsource(get_instance_fn)


@contextlib.contextmanager
def litellm_proxy(
    tmp_path: Path,
    litellm_dsn: str,
    *,
    backend_dsn: str | None,
    master_key: str,
    env: dict[str, str] | None = None,
    shim: bool = True,
    config_dir: Path | None = None,
) -> Iterator[SandboxProxy]:
    """The sandbox proxy serving ``MODELS`` with the plugin mounted (``shim=False``: no shim beside
    config.yaml; ``config_dir``: mount that directory instead)."""
    if not shim and not site_packages_callbacks_supported():
        pytest.skip(
            "this LiteLLM loads callbacks only from <config dir>/litemaas_hooks.py (the shim)"
        )
    with sandbox_proxy(
        litellm_dsn,
        backend_dsn=backend_dsn,
        master_key=master_key,
        models=MODELS,
        shim=shim,
        config_dir=config_dir,
        env=env,
        workdir=tmp_path / "proxy",
        start_timeout=START_DEADLINE_SECONDS,
    ) as proxy:
        yield proxy


def install_schemas(litellm_dsn: str, backend_dsn: str) -> None:
    """Our migrations on both databases (what ``install`` applies), before the proxy starts."""

    async def run() -> None:
        for dsn, side in ((litellm_dsn, "litellm"), (backend_dsn, "backend")):
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                await apply_migrations(conn, side)  # type: ignore[arg-type]

    asyncio.run(run())


def backend_availability(backend_dsn: str) -> dict[str, str]:
    """The backend's models: id -> availability."""
    with psycopg.connect(backend_dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT id, availability FROM models").fetchall()
        return {str(i): str(a) for i, a in rows}
