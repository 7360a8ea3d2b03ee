"""The real LiteMaaS backend's subscription API: a
model added through LiteLLM's HTTP API is subscribable.

The whole backend server (upstream v0.4.0, ``tsx src/index.ts``) runs against a real LiteLLM proxy
process (sandbox launcher, our plugin mounted). Before ``litemaas-hooks install`` the model exists
only in LiteLLM: the backend's ``createSubscription`` validates it against LiteLLM's
``/model/info``, then its INSERT fails on ``subscriptions_model_id_fkey`` and it answers 500. After
``install``, with the relay running, a model added through
LiteLLM's HTTP API can be subscribed to (201) within 1 s.

The backend caches ``/model/info`` for 5 minutes per service after its first use, so each phase gets
its own backend server (a restart, as a deployment would do).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from litemaas_hooks import cli
from litemaas_hooks_sandbox import litemaas_backend
from litemaas_hooks_sandbox.proxy import SandboxProxy, start_proxy
from tests.backend.conftest import UPSTREAM_KEY, VLLM
from tests.e2e import backend
from tests.helpers import add_user, subscribe_via_api, wait_until

pytestmark = [pytest.mark.proxy, pytest.mark.slow, pytest.mark.backend]

USERNAME = "alice"
SUBSCRIBABLE_WITHIN = 1.0


def add_model(proxy: SandboxProxy, name: str) -> None:
    body: dict[str, Any] = {
        "model_name": name,
        "litellm_params": {"model": f"openai/{name}", "api_base": VLLM, "api_key": UPSTREAM_KEY},
    }
    with proxy.client() as client:
        response = client.post("/model/new", json=body)
    assert response.status_code == 200, response.text


def test_model_added_in_litellm_is_subscribable_once_installed(
    litellm_dsn: str, backend_dsn: str, master_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_user(backend_dsn)
    proxy = start_proxy(litellm_dsn, backend_dsn=backend_dsn, master_key=master_key, plugin=True)
    try:
        servers: dict[str, Any] = {
            "litellm_url": proxy.base_url,
            "litellm_key": master_key,
            "litellm_dsn": litellm_dsn,
        }

        # -- before install: the model is only in LiteLLM, the backend's INSERT hits the FK --------
        with litemaas_backend.backend_server(backend_dsn, **servers) as server:
            server.wait_for_log("Background model sync completed")
            add_model(proxy, "before-install")
            token = server.dev_token(USERNAME)
            refused = subscribe_via_api(server, token, "before-install")
            assert refused.status_code == 500, refused.text
            server.wait_for_log("subscriptions_model_id_fkey", timeout=10)

        # -- install, the relay connects -----------------------------------------------------------
        for key, value in {
            "LITEMAAS_DATABASE_URL": backend_dsn,
            "LITELLM_DATABASE_URL": litellm_dsn,
            "LITELLM_MASTER_KEY": master_key,
        }.items():
            monkeypatch.setenv(key, value)
        assert cli.main(["install"]) == 0
        wait_until(
            lambda: backend.relay_connected(litellm_dsn),
            what="the plugin's relay is connected",
            proxy=proxy,
            deadline_seconds=90,
        )

        # -- after install: added through LiteLLM's HTTP API, subscribable within 1 s --------------
        with litemaas_backend.backend_server(backend_dsn, **servers) as server:
            server.wait_for_log("Background model sync completed")
            token = server.dev_token(USERNAME)
            add_model(proxy, "granite-8b-code-instruct-128k")
            added = time.monotonic()
            attempts: list[str] = []
            while True:
                response = subscribe_via_api(server, token, "granite-8b-code-instruct-128k")
                took = time.monotonic() - added
                if response.status_code == 201:
                    break
                attempts.append(f"{took:.3f}s: {response.status_code} {response.text[:200]}")
                assert took < SUBSCRIBABLE_WITHIN, "not subscribable within 1 s:\n" + "\n".join(
                    attempts
                )
            assert took < SUBSCRIBABLE_WITHIN, (
                f"subscribable only after {took:.3f}s:\n" + "\n".join(attempts)
            )
            print(
                f"subscribable {took:.3f}s after LiteLLM's "
                f"/model/new answered ({len(attempts)} refused first)"
            )
            created = response.json()
            assert created["modelId"] == "granite-8b-code-instruct-128k"
            assert created["status"] == "active"
    finally:
        proxy.stop()
