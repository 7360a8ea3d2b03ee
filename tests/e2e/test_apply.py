"""`litemaas-hooks apply` / `show` against a real LiteLLM proxy (HTTP API) and the real LiteMaaS
backend.

The guide's three example models (granite from Scenario 1 with its description and limits, mistral
and llama from "Model Configuration Examples"), their api_key given by reference: applied -> exactly
three deployments, three backend rows with the guide's context lengths and descriptions, alice
subscribes (201); applied again -> nothing written; the backend's own sync afterwards changes no
value; one field changed -> updated in place (same model_id); a model removed with --prune ->
deleted in LiteLLM, unavailable in the backend; a model made outside the file is never touched.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg.rows import dict_row

from litemaas_hooks import cli
from litemaas_hooks.model_apply import deployment_id
from litemaas_hooks_sandbox import litemaas_backend
from litemaas_hooks_sandbox.proxy import SandboxProxy
from tests.e2e import backend
from tests.e2e.conftest import Databases

pytestmark = [pytest.mark.proxy, pytest.mark.slow, pytest.mark.e2e, pytest.mark.backend]

GRANITE, MISTRAL, LLAMA = (
    "granite-8b-code-instruct-128k",
    "mistral-7b-instruct",
    "llama-3-8b-instruct",
)
UI_MADE = "made-in-the-ui"
COMPARED = (
    "id", "name", "provider", "description", "category", "context_length", "max_tokens",
    "availability", "litellm_model_id", "api_base", "tpm", "rpm", "backend_model_name",
    "supports_streaming", "features",
    "input_cost_per_token", "output_cost_per_token", "version",
)  # fmt: skip


def guide_models(key_file: Path) -> list[dict[str, Any]]:
    """The guide's entries, credentials by reference (its literal keys: refused below)."""
    return [
        {  # Scenario 1: Add Single Model via Playbook
            "model_name": GRANITE,
            "litellm_model": "openai/granite-3-2-8b-instruct",
            "api_base": "https://granite-model.apps.cluster.com/v1",
            "api_key": "env:GRANITE_API_KEY",
            "display_name": "Granite 8B Code Instruct",
            "description": "IBM Granite 8B Code Instruct model",
            "provider": "openshift-ai",
            "category": "code",
            "context_length": 131072,
            "rpm": 120,
            "tpm": 100000,
        },
        {  # Model Configuration Examples: Mistral Model
            "model_name": MISTRAL,
            "litellm_model": "openai/mistral-7b-instruct-v0.2",
            "api_base": "https://mistral-model.apps.cluster.com/v1",
            "api_key": f"file:{key_file}",
            "display_name": "Mistral 7B Instruct",
            "provider": "openshift-ai",
            "category": "general",
            "context_length": 32768,
        },
        {  # Model Configuration Examples: LLaMA Model
            "model_name": LLAMA,
            "litellm_model": "openai/llama-3-8b-instruct",
            "api_base": "https://llama-model.apps.cluster.com/v1",
            "api_key": "os.environ/LLAMA_API_KEY",
            "display_name": "LLaMA 3 8B Instruct",
            "provider": "openshift-ai",
            "category": "general",
            "context_length": 8192,
        },
    ]


def write(path: Path, models: list[dict[str, Any]]) -> str:
    path.write_text(yaml.safe_dump({"ocp4_workload_litemaas_models_list": models}, sort_keys=False))
    return str(path)


def deployments(proxy: SandboxProxy) -> list[dict[str, Any]]:
    with proxy.client() as client:
        response = client.get("/model/info")
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def table(litellm_dsn: str) -> list[tuple[str, str, Any]]:
    with psycopg.connect(litellm_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT model_id, model_name, updated_at "
            'FROM public."LiteLLM_ProxyModelTable" ORDER BY model_id'
        ).fetchall()
    return [(str(a), str(b), c) for a, b, c in rows]


def rows(dsn: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        found = conn.execute(
            f"SELECT {', '.join(COMPARED)} FROM public.models ORDER BY id"
        ).fetchall()
    return {str(r["id"]): dict(r) for r in found}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_apply_the_guides_models_through_the_real_proxy_and_backend(
    e2e_proxy: SandboxProxy,
    e2e_databases: Databases,
    master_key: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    litellm_dsn, backend_dsn = e2e_databases.litellm_dsn, e2e_databases.backend_dsn
    granite_key, mistral_key = (
        "sk-granite-" + secrets.token_hex(12),
        "sk-mistral-" + secrets.token_hex(12),
    )
    key_file = tmp_path / "mistral-api-key"
    key_file.write_text(mistral_key + "\n")
    for name, value in {
        "LITELLM_URL": e2e_proxy.base_url,
        "LITELLM_MASTER_KEY": master_key,
        "LITEMAAS_DATABASE_URL": backend_dsn,
        "LITELLM_DATABASE_URL": litellm_dsn,
        "GRANITE_API_KEY": granite_key,
    }.items():
        monkeypatch.setenv(name, value)
    models = guide_models(key_file)
    path = write(tmp_path / "production-models.yml", models)

    # a model made in the UI/API, outside the file: never touched (not even by --prune)
    with e2e_proxy.client() as client:
        made = client.post(
            "/model/new",
            json={
                "model_name": UI_MADE,
                "litellm_params": {"model": "openai/ui", "api_key": "sk-ui-1"},
            },
        )
    assert made.status_code == 200, made.text
    ui_id = made.json()["model_id"]
    backend.wait_row(backend_dsn, UI_MADE, e2e_proxy, availability="available")

    # the guide's literal keys are refused, naming the fix, and never printed
    literal = write(tmp_path / "literal.yml", [{**models[0], "api_key": "sk-yyyyy"}])
    code, out = run(capsys, "apply", literal)
    assert code == 1
    assert "api_key: a literal key is refused" in out
    assert "env:NAME" in out
    assert "sk-yyyyy" not in out

    # -- dry run: the plan, exit 2, nothing written
    # -------------------------------------------------------
    before = table(litellm_dsn)
    code, out = run(capsys, "apply", "--dry-run", path)
    assert code == 2, out
    print(out)
    assert f"+ create    {GRANITE}" in out
    assert "context_length 131072 -> model_info.max_tokens" in out
    assert "LiteMaaS v0.4.0's sync sets name = model_name" in out
    assert "`category` is 'Language Model'" in out
    assert "dry run: would create 3, would update 0, would delete 0, unchanged 0, errors 0" in out
    assert table(litellm_dsn) == before

    # -- apply: three deployments, three backend rows (the guide's "Verify Sync" is part of
    # it) -------------
    code, out = run(capsys, "apply", path)
    assert code == 0, out
    assert "backend rows (as expected" in out
    assert "apply: created 3, updated 0, deleted 0, unchanged 0, errors 0" in out
    live = deployments(e2e_proxy)
    ours = {d["model_name"]: d for d in live if d["model_name"] in (GRANITE, MISTRAL, LLAMA)}
    assert sorted(d["model_name"] for d in live) == sorted([GRANITE, MISTRAL, LLAMA, UI_MADE])
    for name, dep in ours.items():
        assert dep["model_info"]["id"] == deployment_id(name)
    assert ours[GRANITE]["litellm_params"]["rpm"] == 120
    assert ours[GRANITE]["model_info"]["max_tokens"] == 131072
    got = rows(backend_dsn)
    expected = {
        GRANITE: (131072, "IBM Granite 8B Code Instruct model", 120, 100000),
        MISTRAL: (32768, "AI model", None, None),
        LLAMA: (8192, "AI model", None, None),
    }
    for name, (context_length, description, rpm, tpm) in expected.items():
        row = got[name]
        assert (row["context_length"], row["max_tokens"], row["description"]) == (
            context_length,
            context_length,
            description,
        )
        assert (row["rpm"], row["tpm"], row["availability"]) == (rpm, tpm, "available")
        assert row["litellm_model_id"] == deployment_id(name)
        assert row["name"] == name
        assert row["provider"] == "openai"
    for secret in (granite_key, mistral_key):
        assert backend.tables_containing(backend_dsn, secret) == []
        assert backend.tables_containing(litellm_dsn, secret) == []  # LiteLLM encrypts it
        assert secret not in out

    # -- applied again: nothing written
    # ------------------------------------------------------------------
    after_apply = table(litellm_dsn)
    code, out = run(capsys, "apply", path)
    assert code == 0, out
    assert "apply: created 0, updated 0, deleted 0, unchanged 3, errors 0" in out
    assert table(litellm_dsn) == after_apply  # same rows, same updated_at
    code, out = run(capsys, "apply", "--dry-run", path)
    assert code == 0, out

    # -- show: both sides and the verdict
    # --------------------------------------------------------------
    code, out = run(capsys, "show", GRANITE, "--json")
    assert code == 0, out
    (view,) = json.loads(out)
    assert view["in_sync"] is True
    assert view["verdict"].startswith("in sync")
    assert view["backend"]["row"]["context_length"] == 131072
    assert view["litellm"]["deployments"][0]["model_id"] == deployment_id(GRANITE)
    assert granite_key not in out

    # -- the backend's own sync afterwards changes no value; alice subscribes
    # -----------------------------
    snapshot = rows(backend_dsn)
    servers: dict[str, Any] = {
        "litellm_url": e2e_proxy.base_url,
        "litellm_key": master_key,
        "litellm_dsn": litellm_dsn,
    }
    litemaas_backend.sync_models(backend_dsn, **servers)
    assert rows(backend_dsn) == snapshot
    from tests.helpers import add_user, subscribe_via_api

    add_user(backend_dsn)
    with litemaas_backend.backend_server(backend_dsn, **servers) as server:
        server.wait_for_log("Background model sync completed")
        response = subscribe_via_api(server, server.dev_token("alice"), GRANITE)
        assert response.status_code == 201, response.text
    assert rows(backend_dsn) == snapshot

    # -- one field changed: updated in place
    # --------------------------------------------------------------
    models[0]["rpm"] = 240
    write(Path(path), models)
    code, out = run(capsys, "apply", path)
    assert code == 0, out
    assert "rpm: 120 -> 240" in out
    assert "apply: created 0, updated 1, deleted 0, unchanged 2, errors 0" in out
    assert rows(backend_dsn)[GRANITE]["rpm"] == 240
    assert rows(backend_dsn)[GRANITE]["litellm_model_id"] == deployment_id(GRANITE)
    assert next(d for d in table(litellm_dsn) if d[1] == GRANITE)[0] == deployment_id(GRANITE)

    # a new key in the Secret is an update too (its value is never shown)
    monkeypatch.setenv("GRANITE_API_KEY", granite_key + "-rotated")
    code, out = run(capsys, "apply", path)
    assert code == 0, out
    assert "api_key: 'env:GRANITE_API_KEY' -> 'env:GRANITE_API_KEY (new value)'" in out
    assert granite_key not in out

    # -- removed from the file, --prune: deleted in LiteLLM, unavailable in the backend
    # ---------------------
    write(Path(path), models[:2])
    code, out = run(capsys, "apply", "--prune", path)
    assert code == 0, out
    assert f"- delete    {LLAMA}" in out
    names = [d["model_name"] for d in deployments(e2e_proxy)]
    assert sorted(names) == sorted([GRANITE, MISTRAL, UI_MADE])
    assert rows(backend_dsn)[LLAMA]["availability"] == "unavailable"
    assert (
        next(d for d in deployments(e2e_proxy) if d["model_name"] == UI_MADE)["model_info"]["id"]
        == ui_id
    )

    code, out = run(capsys, "show", LLAMA, UI_MADE)
    assert f"{LLAMA}: retired" in out
    assert f"{UI_MADE}: in sync" in out
    assert code == 0, out


def test_a_name_made_outside_apply_is_an_error_not_a_duplicate(
    e2e_proxy: SandboxProxy,
    e2e_databases: Databases,
    master_key: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LITELLM_URL", e2e_proxy.base_url)
    monkeypatch.setenv("LITELLM_MASTER_KEY", master_key)
    monkeypatch.delenv("LITEMAAS_DATABASE_URL", raising=False)
    with e2e_proxy.client() as client:
        made = client.post(
            "/model/new", json={"model_name": "ui-twin", "litellm_params": {"model": "openai/twin"}}
        )
    assert made.status_code == 200, made.text
    path = write(
        tmp_path / "twin.yml", [{"model_name": "ui-twin", "litellm_model": "openai/twin", "rpm": 7}]
    )
    code, out = run(capsys, "apply", path)
    assert code == 1, out
    assert "made outside apply" in out
    assert "--adopt" in out
    assert [d["model_name"] for d in deployments(e2e_proxy)].count("ui-twin") == 1

    code, out = run(capsys, "apply", "--adopt", path)
    assert code == 0, out
    twins = [d for d in deployments(e2e_proxy) if d["model_name"] == "ui-twin"]
    assert len(twins) == 1
    assert twins[0]["model_info"]["id"] == made.json()["model_id"]
    assert twins[0]["litellm_params"]["rpm"] == 7
    code, out = run(capsys, "apply", path)
    assert code == 0, out
    assert "unchanged 1" in out, out


def test_availability_unavailable_blocks_where_litellm_can(
    e2e_proxy: SandboxProxy,
    e2e_databases: Databases,
    master_key: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LITELLM_URL", e2e_proxy.base_url)
    monkeypatch.setenv("LITELLM_MASTER_KEY", master_key)
    monkeypatch.setenv("LITEMAAS_DATABASE_URL", e2e_databases.backend_dsn)
    entry = {
        "model_name": "paused",
        "litellm_model": "openai/paused",
        "availability": "unavailable",
    }
    path = write(tmp_path / "paused.yml", [entry])
    code, out = run(capsys, "apply", path)
    assert code == 0, out
    (dep,) = [d for d in deployments(e2e_proxy) if d["model_name"] == "paused"]
    row = rows(e2e_databases.backend_dsn)["paused"]
    if e2e_proxy.litellm_version.startswith(
        "1.81."
    ):  # no blocked deployments in 1.81: said, not done
        assert "no /model/block" in out
        assert row["availability"] == "available"
    else:
        assert dep["model_info"].get("blocked") is True
        assert row["availability"] == "unavailable"
    code, out = run(capsys, "apply", path)
    assert code == 0, out
    assert "unchanged 1" in out
