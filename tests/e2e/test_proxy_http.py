"""Through a real LiteLLM proxy process and its HTTP
API (master key): add, edit TPM/RPM, rename, delete.

After each step the backend ``models`` row is asserted (created / updated / old name retired + new
one / retired), and the upstream API key is nowhere in the backend database.
"""

from __future__ import annotations

import secrets

import httpx
import pytest

from litemaas_hooks_sandbox.proxy import SandboxProxy
from tests.e2e import backend
from tests.e2e.conftest import Databases

pytestmark = [pytest.mark.proxy, pytest.mark.slow, pytest.mark.e2e]

PUBLIC_NAME = "granite-8b-code-instruct-128k"
RENAMED = "granite-8b-code-instruct-128k-v2"
UPSTREAM_MODEL = "openai/granite-3-2-8b-instruct"
API_BASE = "http://granite-8b.models.svc.cluster.local:8080/v1"


def test_model_lifecycle_over_http(e2e_proxy: SandboxProxy, e2e_databases: Databases) -> None:
    dsn = e2e_databases.backend_dsn
    api_key = "sk-upstream-" + secrets.token_hex(16)
    with e2e_proxy.client() as client:
        # unauthenticated callers are refused by LiteLLM's own auth
        refused = httpx.post(f"{e2e_proxy.base_url}/model/new", json={}, timeout=30)
        assert refused.status_code in (401, 403), refused.text

        created = client.post(
            "/model/new",
            json={
                "model_name": PUBLIC_NAME,
                "litellm_params": {
                    "model": UPSTREAM_MODEL,
                    "api_base": API_BASE,
                    "api_key": api_key,
                },
                "model_info": {"description": "added over LiteLLM's HTTP API"},
            },
        )
        assert created.status_code == 200, created.text
        model_id = created.json()["model_id"]
        row, _ = backend.wait_row(
            dsn, PUBLIC_NAME, e2e_proxy, availability="available", litellm_model_id=model_id
        )
        assert row["api_base"] == API_BASE
        assert row["backend_model_name"] == "granite-3-2-8b-instruct"
        assert backend.tables_containing(dsn, api_key) == []

        # LiteLLM serves it: /model/info lists it, by the same id
        info = client.get("/model/info")
        assert info.status_code == 200, info.text
        assert model_id in {m["model_info"]["id"] for m in info.json()["data"]}

        updated = client.patch(
            f"/model/{model_id}/update", json={"litellm_params": {"tpm": 120000, "rpm": 600}}
        )
        assert updated.status_code == 200, updated.text
        backend.wait_row(dsn, PUBLIC_NAME, e2e_proxy, availability="available", tpm=120000, rpm=600)

        renamed = client.patch(f"/model/{model_id}/update", json={"model_name": RENAMED})
        assert renamed.status_code == 200, renamed.text
        backend.wait_row(
            dsn, RENAMED, e2e_proxy, availability="available", litellm_model_id=model_id, tpm=120000
        )
        backend.wait_row(dsn, PUBLIC_NAME, e2e_proxy, availability="unavailable")

        deleted = client.post("/model/delete", json={"id": model_id})
        assert deleted.status_code == 200, deleted.text
        backend.wait_row(dsn, RENAMED, e2e_proxy, availability="unavailable")

    assert backend.tables_containing(dsn, api_key) == []
    assert api_key not in e2e_proxy.log()
