"""No secret reaches the backend record, whatever field holds it (issue 9, item 1): each secret in
each field kind, through the real mapping. Pure functions, no database."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest

from litemaas_hooks import litellm_source
from litemaas_hooks.mapping import Deployment, map_model
from litemaas_hooks.redaction import (
    env_reference_value,
    is_secret_env_name,
    is_secret_key,
    redact_url,
    scrub,
)

# where a secret S can sit in a deployment: (litellm_params, model_info)
Placement = Callable[[str], tuple[dict[str, Any], dict[str, Any]]]
PLACEMENTS: dict[str, Placement] = {
    "api_key": lambda s: ({"api_key": s}, {}),
    "api_base userinfo with password": lambda s: (
        {"api_base": f"https://user:{s}@llm.example/v1"},
        {},
    ),
    "api_base userinfo token, no password": lambda s: (
        {"api_base": f"https://{s}@llm.example/v1"},
        {},
    ),
    "api_base password containing #": lambda s: (
        {"api_base": f"https://user:ab#{s}@llm.example/v1"},
        {},
    ),
    "api_base password containing /": lambda s: (
        {"api_base": f"https://user:ab/{s}@llm.example/v1"},
        {},
    ),
    "api_base query sig= (Azure SAS)": lambda s: (
        {"api_base": f"https://a.blob.core.windows.net/c?sv=2022-11-02&sig={s}&se=2030"},
        {},
    ),
    "api_base query code= (Azure Functions)": lambda s: (
        {"api_base": f"https://f.azurewebsites.net/api/x?code={s}"},
        {},
    ),
    "api_base query pwd=": lambda s: ({"api_base": f"https://db.example/x?user=u&pwd={s}"}, {}),
    "api_base query api-key=": lambda s: ({"api_base": f"https://llm.example/v1?api-key={s}"}, {}),
    "api_base fragment access_token=": lambda s: (
        {"api_base": f"https://llm.example/v1#access_token={s}"},
        {},
    ),
    "headers": lambda s: ({"headers": {"Authorization": f"Bearer {s}"}}, {}),
    "extra_headers": lambda s: ({"extra_headers": {"X-Api-Key": s}}, {}),
    "a provider-specific header": lambda s: (
        {"custom_headers": {"Ocp-Apim-Subscription-Key": s}},
        {},
    ),
    "model_info api_tokens": lambda s: ({}, {"api_tokens": [s]}),
    "nested model_info keys": lambda s: (
        {},
        {"nested": {"deeper": {"client_secret": s, "bearer": s}}},
    ),
    "model_info URL with userinfo": lambda s: ({}, {"docs": f"https://{s}@docs.example/"}),
    "a list of URLs in litellm_params": lambda s: (
        {"fallback_urls": [f"https://llm.example/?sig={s}"]},
        {},
    ),
}

# Secrets that are not the deployment's own: found by
# value wherever they sit, even in innocent fields.
VALUE_PLACEMENTS: dict[str, Placement] = {
    **PLACEMENTS,
    "model_info.description": lambda s: ({}, {"description": f"ask ops for {s} if it fails"}),
    "model_info.display_name": lambda s: ({}, {"display_name": f"m-{s}"}),
    "litellm_params.api_base path": lambda s: ({"api_base": f"https://llm.example/{s}/v1"}, {}),
    "a nested innocent key": lambda s: ({}, {"notes": {"x": [f"{s}"]}}),
}

ENV_SECRETS = {
    "LITELLM_MASTER_KEY": "sk-" + secrets.token_hex(32),
    "LITELLM_SALT_KEY": "salt-" + secrets.token_hex(16),
    "OPENAI_API_KEY": "sk-proj-" + secrets.token_hex(16),
}
DB_PASSWORDS = {
    "LITEMAAS_DATABASE_URL": "bpw" + secrets.token_hex(12),
    "DATABASE_URL": "lpw" + secrets.token_hex(12),
}


def _record_text(params: dict[str, Any], info: dict[str, Any]) -> str:
    dep = Deployment(
        model_id="d1",
        model_name="m",
        litellm_params={"model": "openai/gpt-4o", **params},
        model_info=info,
    )
    return json.dumps(map_model("m", [dep]).to_json(), default=str)


@pytest.mark.parametrize("where", list(PLACEMENTS))
def test_provider_credential_never_reaches_the_record(where: str) -> None:
    secret = "cred" + secrets.token_hex(12)
    params, info = PLACEMENTS[where](secret)
    assert secret not in _record_text(params, info)


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in ENV_SECRETS.items():
        monkeypatch.setenv(name, value)
    for name, password in DB_PASSWORDS.items():
        monkeypatch.setenv(name, f"postgresql://app:{password}@db.example:5432/app")
    return {**ENV_SECRETS, **DB_PASSWORDS}


@pytest.mark.parametrize("where", list(VALUE_PLACEMENTS))
@pytest.mark.parametrize("which", [*ENV_SECRETS, *DB_PASSWORDS])
def test_master_salt_env_and_database_secrets_never_reach_the_record(
    secret_env: dict[str, str], which: str, where: str
) -> None:
    secret = secret_env[which]
    params, info = VALUE_PLACEMENTS[where](secret)
    text = _record_text(params, info)
    assert secret not in text
    if where == "model_info.description":
        assert "ask ops for *** if it fails" in text  # masked, the rest kept


def test_os_environ_reference_to_a_secret_stays_a_reference(secret_env: dict[str, str]) -> None:
    for name in ("LITELLM_SALT_KEY", "LITELLM_MASTER_KEY", "OPENAI_API_KEY", "DATABASE_URL"):
        params = litellm_source._resolve_env({"api_base": f"os.environ/{name}"})
        assert params["api_base"] == f"os.environ/{name}"
        assert secret_env[name] not in _record_text(params, {})


def test_os_environ_reference_to_a_plain_name_is_resolved_and_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = "tok" + secrets.token_hex(10)
    monkeypatch.setenv("AZURE_ENDPOINT", f"https://{token}@my.openai.azure.com/?sig={token}")
    params = litellm_source._resolve_env({"api_base": "os.environ/AZURE_ENDPOINT"})
    text = _record_text(params, {})
    assert "my.openai.azure.com" in text
    assert token not in text
    monkeypatch.setenv("VLLM_BASE", "http://vllm:8000/v1")
    assert env_reference_value("os.environ/VLLM_BASE") == "http://vllm:8000/v1"
    assert env_reference_value("os.environ/UNSET_THING_X") == "os.environ/UNSET_THING_X"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("LITELLM_SALT_KEY", True),
        ("LITELLM_MASTER_KEY", True),
        ("AZURE_API_KEY", True),
        ("DATABASE_URL", True),
        ("LITEMAAS_DATABASE_URL", True),
        ("MY_SERVICE_TOKEN", True),
        ("DB_PASSWORD", True),
        ("AZURE_API_BASE", False),
        ("VLLM_URL", False),
    ],
)
def test_secret_environment_names(name: str, secret: bool) -> None:
    assert is_secret_env_name(name) is secret


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("api_tokens", True),
        ("access_tokens", True),
        ("api_key", True),
        ("max_tokens", False),
        ("max_output_tokens", False),
        ("input_cost_per_token_above_128k_tokens", False),
        ("cache_read_input_token_cost", False),
    ],
)
def test_secret_keys(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("https://TOKEN123@host/x", "https://***@host/x"),
        ("https://u:pa#ss@host/p?x=1", "https://u:***@host/p?x=1"),
        ("https://h/?pwd=pw1234", "https://h/?pwd=***"),
        ("https://h/v1/models/a@b", "https://h/v1/models/a@b"),  # an @ in a path is no userinfo
        ("https://h/v1?model=x&sv=1", "https://h/v1?model=x&sv=1"),  # nothing secret: untouched
    ],
)
def test_redact_url_forms(url: str, masked: str) -> None:
    assert redact_url(url) == masked


def test_scrub_masks_database_passwords_alone_and_environment_secrets(
    secret_env: dict[str, str],
) -> None:
    password = DB_PASSWORDS["DATABASE_URL"]
    line = f"FATAL: password {password} rejected; key {ENV_SECRETS['LITELLM_SALT_KEY']}"
    out = scrub(line, [f"postgresql://app:{password}@db/app"])
    assert password not in out
    assert ENV_SECRETS["LITELLM_SALT_KEY"] not in out


# -- issue 20 item 3: the provider key by value, os.environ/ by allow-list
# --------------------------

SALT = "salt-" + secrets.token_hex(16)


def _encrypt(value: str) -> str:
    """LiteLLM's legacy encryption (NaCl SecretBox keyed with sha256(key), URL-safe base64)."""
    import hashlib

    import nacl.secret

    box = nacl.secret.SecretBox(hashlib.sha256(SALT.encode()).digest())
    return base64.urlsafe_b64encode(bytes(box.encrypt(value.encode()))).decode()


def _row_text(params: dict[str, Any], info: dict[str, Any]) -> str:
    """The record of one stored row (every string of litellm_params encrypted, as LiteLLM stores
    it)."""
    stored = {k: _encrypt(v) if isinstance(v, str) else v for k, v in params.items()}
    row = {"model_id": "d1", "model_name": "m", "litellm_params": stored, "model_info": info}
    dep = litellm_source.build_deployment(row, SALT)
    assert "api_key" not in dep.litellm_params  # decrypted only to be masked, never kept as a param
    return json.dumps(map_model("m", [dep]).to_json(), default=str)


@pytest.mark.parametrize("where", list(VALUE_PLACEMENTS))
@pytest.mark.parametrize("how", ["encrypted api_key", "api_key by os.environ/ of a plain name"])
def test_provider_key_is_masked_by_value_in_every_field(
    monkeypatch: pytest.MonkeyPatch, how: str, where: str
) -> None:
    key = "prov" + secrets.token_hex(14)
    if how == "encrypted api_key":
        own: dict[str, Any] = {"api_key": key}
    else:  # the variable's name marks no secret: only the field it is used in says it is one
        monkeypatch.setenv("MY_PROVIDER_CRED", key)
        own = {"api_key": "os.environ/MY_PROVIDER_CRED"}
    params, info = VALUE_PLACEMENTS[where](key)
    text = _row_text({"model": "openai/gpt-4o", **own, **params}, info)
    assert key not in text
    if where == "model_info.description":
        assert "ask ops for *** if it fails" in text


def test_provider_key_is_masked_in_another_deployment_of_the_name() -> None:
    key = "prov" + secrets.token_hex(14)
    a = {"model_id": "a", "model_name": "m", "litellm_params": {"model": _encrypt("openai/x"),
         "api_key": _encrypt(key)}, "model_info": {}}
    b = {"model_id": "b", "model_name": "m", "litellm_params": {"model": _encrypt("openai/x")},
         "model_info": {"description": f"same key as a: {key}"}}
    deps = [litellm_source.build_deployment(r, SALT) for r in (a, b)]
    assert key not in json.dumps(map_model("m", deps).to_json(), default=str)
    assert key not in repr(deps[0])  # the decrypted key is never shown


@pytest.mark.parametrize(
    ("field", "name", "resolved"),
    [
        ("api_base", "AZURE_API_BASE", True),
        ("api_base", "OPENAI_BASE_URL", True),
        ("api_base", "AZURE_OPENAI_ENDPOINT", True),
        ("api_base", "VLLM_BASE", True),
        ("api_version", "AZURE_API_VERSION", True),
        ("aws_region_name", "AWS_REGION_NAME", True),
        ("api_base", "SLACK_WEBHOOK_URL", False),
        ("api_base", "LITELLM_LICENSE", False),
        ("api_base", "LITELLM_SALT_KEY", False),
        ("api_base", "AZURE_API_VERSION", False),  # a routing name, but not this field's
        ("api_version", "SLACK_WEBHOOK_URL", False),
        ("organization", "OPENAI_ORGANIZATION", False),  # not a routing field on the list
        ("description", "AZURE_API_BASE", False),
    ],
)
def test_os_environ_resolves_only_allow_listed_routing_names(
    monkeypatch: pytest.MonkeyPatch, field: str, name: str, resolved: bool
) -> None:
    value = "https://hooks.example/services/T0/B0/" + secrets.token_hex(12)
    monkeypatch.setenv(name, value)
    got = env_reference_value(f"os.environ/{name}", field=field)
    assert got == (value if resolved else f"os.environ/{name}")


@pytest.mark.parametrize("name", ["SLACK_WEBHOOK_URL", "LITELLM_LICENSE"])
def test_os_environ_of_a_non_routing_name_never_reaches_api_base(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    value = "https://hooks.slack.example/services/" + secrets.token_hex(12)
    monkeypatch.setenv(name, value)
    db_text = _row_text({"model": "openai/gpt-4o", "api_base": f"os.environ/{name}"}, {})
    assert value not in db_text
    # a config-file model: the router resolved it already; it goes back to the reference
    dep = litellm_source.config_deployment(
        {"model_name": "m", "litellm_params": {"model": "openai/gpt-4o", "api_base": value}}
    )
    record = map_model("m", [dep])
    assert record.api_base == f"os.environ/{name}"
    assert value not in json.dumps(record.to_json(), default=str)
