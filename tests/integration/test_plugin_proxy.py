"""A real LiteLLM proxy, started as LiteMaaS starts it,
loads the callback plugin, whose relay syncs the backend.

The sandbox launcher (:mod:`litemaas_hooks_sandbox.proxy`) runs the ``litellm`` CLI with
``DATABASE_URL`` in its environment and no ``LITELLM_DATABASE_URL``, config.yaml + shim mounted
through ``CONFIG_FILE_PATH``: the plugin reads the URL the CLI rewrote for Prisma. The test writes
LiteLLM's table the way LiteLLM does (rows built and encrypted by LiteLLM's own code).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from litemaas_hooks_sandbox import seed
from litemaas_hooks_sandbox.proxy import SandboxProxy
from tests.helpers import litellm_row, wait_until
from tests.integration.plugin_proxy import backend_availability, install_schemas, litellm_proxy

pytestmark = [pytest.mark.proxy, pytest.mark.slow]

# no "blocked": LiteLLM 1.81's table has no such column (it came later)
INSERT_ROW = """
INSERT INTO public."LiteLLM_ProxyModelTable"
    (model_id, model_name, litellm_params, model_info, created_by, updated_by)
VALUES (%(model_id)s, %(model_name)s, %(litellm_params)s, %(model_info)s, %(created_by)s,
        %(updated_by)s)
"""

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def chat(proxy: SandboxProxy, master_key: str) -> str:
    response = httpx.post(
        f"{proxy.base_url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {master_key}"},
        json={"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    content: str = response.json()["choices"][0]["message"]["content"]
    return content


def _activity(dsn: str) -> list[Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(
            "SELECT datname, application_name, state, "
            "wait_event_type, wait_event, left(query, 120) "
            "FROM pg_stat_activity WHERE application_name LIKE 'litemaas-hooks%%'"
        ).fetchall()


def _relay_connected(litellm_dsn: str) -> bool:
    with psycopg.connect(litellm_dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE "
            "application_name LIKE 'litemaas-hooks[%%]:litellm'"
        ).fetchone()
        return row is not None and row[0] == 1


@pytest.mark.parametrize("mount", ["shim", "site-packages"])
def test_proxy_runs_the_relay_and_still_serves(
    tmp_path: Path, litellm_dsn: str, backend_dsn: str, master_key: str, pg_cluster: Any, mount: str
) -> None:
    install_schemas(litellm_dsn, backend_dsn)
    env = {"LITEMAAS_HOOKS_LOG_LEVEL": "DEBUG"}
    with litellm_proxy(
        tmp_path,
        litellm_dsn,
        backend_dsn=backend_dsn,
        master_key=master_key,
        env=env,
        shim=mount == "shim",
    ) as proxy:
        # started as LiteMaaS starts LiteLLM: the plugin's
        # worker has DATABASE_URL as the CLI left it
        seen = proxy.worker_env()
        assert "connection_limit=" in seen["DATABASE_URL"], seen  # rewritten for Prisma
        assert "pool_timeout=" in seen["DATABASE_URL"], seen
        assert "LITELLM_DATABASE_URL" not in seen["set"], seen
        assert {
            "DATABASE_URL",
            "LITEMAAS_DATABASE_URL",
            "LITELLM_MASTER_KEY",
            "CONFIG_FILE_PATH",
        } <= set(seen["set"])
        assert pg_cluster.password not in str(seen)
        wait_until(
            lambda: _relay_connected(litellm_dsn),
            deadline_seconds=60,
            what="relay connected",
            proxy=proxy,
        )
        # the first full reconcile syncs the config-file model, read from the proxy's router
        wait_until(
            lambda: backend_availability(backend_dsn).get("mock-gpt") == "available",
            deadline_seconds=30,
            what="config-file model synced",
            proxy=proxy,
        )

        row = seed.as_insert_params(
            litellm_row(
                "db-model",
                {
                    "model": "openai/db-model",
                    "api_base": "http://db-model:8080/v1",
                    "api_key": "sk-upstream",
                },
                {"description": "added through the Admin UI"},
                key=master_key,
            )
        )
        with psycopg.connect(litellm_dsn, autocommit=True) as conn:
            conn.execute(INSERT_ROW, row)  # committed: the trigger's NOTIFY is delivered now
        took = wait_until(
            lambda: backend_availability(backend_dsn).get("db-model") == "available",
            deadline_seconds=10,
            what="inserted row reaches the backend",
            proxy=proxy,
        )
        assert took < 5.0  # the poll interval is 5 s and NOTIFY wins by far

        with psycopg.connect(litellm_dsn, autocommit=True) as conn:
            conn.execute(
                'DELETE FROM "LiteLLM_ProxyModelTable" WHERE model_id = %s', (row["model_id"],)
            )
        wait_until(
            lambda: backend_availability(backend_dsn).get("db-model") == "unavailable",
            deadline_seconds=10,
            what="deleted row is retired in the backend",
            proxy=proxy,
        )
        # the config-file model is never retired for being absent from the table
        assert backend_availability(backend_dsn)["mock-gpt"] == "available"

        assert chat(proxy, master_key) == "hello from the mock"

        # read-only status route, protected by LiteLLM's own auth
        unauthenticated = httpx.get(f"{proxy.base_url}/litemaas-hooks/status", timeout=30)
        # refused exactly like LiteLLM's own protected routes (401; 500 where LiteLLM's auth error
        # handler itself fails because the optional `prisma` package is not installed)
        builtin = httpx.get(f"{proxy.base_url}/v1/models", timeout=30)
        assert builtin.status_code != 200
        assert unauthenticated.status_code == builtin.status_code
        status = httpx.get(
            f"{proxy.base_url}/litemaas-hooks/status",
            headers={"Authorization": f"Bearer {master_key}"},
            timeout=60,
        )
        assert status.status_code == 200, status.text
        body = status.json()
        assert body["relay"]["connected"] is True
        assert body["status"]["healthy"] is True, body["status"]["problems"]

    log = proxy.log()
    assert "litemaas-hooks" in log
    for secret in (master_key, pg_cluster.password, "sk-upstream"):
        assert secret not in log


@pytest.mark.parametrize("broken", ["missing", "unreachable"])
def test_proxy_starts_and_serves_with_broken_settings(
    tmp_path: Path, litellm_dsn: str, master_key: str, broken: str, pg_cluster: Any
) -> None:
    env = {"LITEMAAS_HOOKS_RECONNECT_MAX_SECONDS": "1"}
    if broken == "unreachable":
        env["LITEMAAS_DATABASE_URL"] = f"postgresql://litemaas:{master_key[-12:]}@127.0.0.1:{_free_port()}/nowhere"
    # missing: the launcher sets no LITEMAAS_DATABASE_URL
    # without a backend (the caller's is never passed on)
    with litellm_proxy(
        tmp_path, litellm_dsn, backend_dsn=None, master_key=master_key, env=env
    ) as proxy:
        assert chat(proxy, master_key) == "hello from the mock"
        if broken == "missing":
            wait_until(
                lambda: "model sync is OFF" in proxy.log(),
                deadline_seconds=10,
                what="one clear error",
                proxy=proxy,
            )
        else:
            wait_until(
                lambda: "retrying in" in proxy.log(),
                deadline_seconds=30,
                what="relay keeps retrying",
                proxy=proxy,
            )
        assert chat(proxy, master_key) == "hello from the mock"
    log = proxy.log()
    if broken == "missing":
        assert log.count("model sync is OFF") == 1
        assert "LITEMAAS_DATABASE_URL" in log
    assert master_key not in log


# -- in-process checks of the plugin object (no proxy process) -------------------------------------


def test_plugin_is_inert_with_one_clear_error_when_settings_are_missing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from litemaas_hooks.plugin import LiteMaaSHooks

    caplog.set_level(logging.ERROR, logger="litemaas_hooks")
    plugin = LiteMaaSHooks(environ={"LITELLM_MASTER_KEY": "sk-" + "a" * 64})
    assert plugin.settings is None
    assert plugin.error is not None
    assert "LITEMAAS_DATABASE_URL" in plugin.error
    assert not plugin.running
    assert not plugin.start()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "model sync is OFF" in errors[0].getMessage()
    assert "a" * 64 not in caplog.text


def test_plugin_without_a_loop_starts_later_from_inside_one(
    litellm_dsn: str, backend_dsn: str, master_key: str
) -> None:
    from litemaas_hooks.plugin import LiteMaaSHooks

    install_schemas(litellm_dsn, backend_dsn)
    env = {
        "LITEMAAS_DATABASE_URL": backend_dsn,
        "LITELLM_DATABASE_URL": litellm_dsn,
        "LITELLM_MASTER_KEY": master_key,
    }
    # in_proxy=False: other tests of this session import LiteLLM's proxy_server module in-process
    # no running loop here: nothing starts or fails
    plugin = LiteMaaSHooks(environ=env, in_proxy=False)
    assert plugin.settings is not None
    assert not plugin.running

    async def later() -> None:
        assert plugin.start()
        assert plugin.running
        relay_ready = asyncio.get_running_loop().create_future()

        def check() -> None:
            if plugin.relay is not None and plugin.relay.ready.is_set():
                relay_ready.set_result(None)
            else:
                asyncio.get_running_loop().call_later(0.01, check)

        check()
        await asyncio.wait_for(relay_ready, 30)
        await plugin.stop()
        assert not plugin.running

    asyncio.run(later())


def test_shim_loads_the_installed_package(tmp_path: Path) -> None:
    import importlib.util

    from litemaas_hooks import plugin

    path = plugin.write_shim(tmp_path)
    # as LiteLLM 1.81 loads it
    spec = importlib.util.spec_from_file_location("litemaas_hooks", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.proxy_handler_instance is plugin.get_instance()
