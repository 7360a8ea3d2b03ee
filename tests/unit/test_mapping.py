"""Unit tests of the pure mapping (DESIGN.md "Mapping"): no database."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from litemaas_hooks.errors import MappingError
from litemaas_hooks.mapping import (
    Deployment,
    canonical,
    check_model_name,
    features_of,
    is_blank_name,
    js_or,
    map_model,
)
from litemaas_hooks.redaction import strip_credentials

T0 = datetime(2026, 1, 1, 12, 0, 0)


def dep(
    model_id: str = "d1",
    name: str = "granite",
    params: dict[str, Any] | None = None,
    info: dict[str, Any] | None = None,
    *,
    updated: datetime = T0,
    blocked: bool = False,
) -> Deployment:
    return Deployment(
        model_id=model_id,
        model_name=name,
        litellm_params={"model": "openai/granite-3-2-8b-instruct", **(params or {})},
        model_info=info or {},
        updated_at=updated,
        blocked=blocked,
    )


def test_defaults_follow_the_design() -> None:
    r = map_model("granite", [dep()])
    assert r.id == "granite"
    assert r.name == "granite"
    assert r.provider == "openai"
    assert r.backend_model_name == "granite-3-2-8b-instruct"
    assert r.category == "Language Model"
    assert r.version == "1.0"
    assert r.supports_streaming is True
    assert r.features == ("chat",)
    assert r.litellm_model_id == "d1"
    assert r.description is None
    assert not r.supports_vision
    assert not r.supports_function_calling


def test_row_is_what_the_backend_writes_not_model_info_display_fields() -> None:
    # model-sync.service.ts: name = model_name; provider from litellm_params; category fixed;
    # context_length = max_tokens = model_info.max_tokens; supports_streaming always true
    info = {
        "display_name": "Granite 8B",
        "provider": "openshift-ai",
        "description": "code model",
        "category": "code",
        "context_length": 131072,
        "max_tokens": 4096,
        "supports_streaming": False,
    }
    r = map_model("granite", [dep(info=info, params={"custom_llm_provider": "vllm"})])
    assert (r.name, r.provider, r.description, r.category) == (
        "granite",
        "vllm",
        "code model",
        "Language Model",
    )
    assert (r.context_length, r.max_tokens, r.supports_streaming) == (4096, 4096, True)


def test_js_or_is_javascript_or() -> None:
    assert js_or(0, None) is None
    assert js_or(0, 0) == 0
    assert js_or("", "x") == "x"
    assert js_or(float("nan"), 2) == 2
    assert js_or(1e-6, 2) == 1e-6
    assert js_or(False, None) is None


@pytest.mark.parametrize(
    ("params", "provider", "backend_name"),
    [
        ({"custom_llm_provider": "vllm"}, "vllm", "granite-3-2-8b-instruct"),
        ({}, "openai", "granite-3-2-8b-instruct"),
        ({"model": "granite-plain"}, "unknown", "granite-plain"),
        ({"model": "hosted_vllm/org/model-x"}, "hosted_vllm", "org/model-x"),
    ],
)
def test_provider_and_backend_model_name(
    params: dict[str, Any], provider: str, backend_name: str
) -> None:
    r = map_model("m", [dep(params=params)])
    assert (r.provider, r.backend_model_name) == (provider, backend_name)


def test_costs_are_model_info_or_params_with_javascript_or() -> None:
    r = map_model(
        "m",
        [
            dep(
                params={"input_cost_per_token": 5e-06, "output_cost_per_token": 7e-06},
                info={"input_cost_per_token": 0},
            )
        ],
    )
    assert r.input_cost_per_token == Decimal("0.000005")  # 0 || 5e-06
    assert r.output_cost_per_token == Decimal("0.000007")
    assert r.to_json()["output_cost_per_token"] == "0.0000070000"
    zero_info = map_model("m", [dep(info={"input_cost_per_token": 0, "output_cost_per_token": 0})])
    # 0 || undefined
    assert (zero_info.input_cost_per_token, zero_info.output_cost_per_token) == (None, None)
    zero_both = map_model(
        "m", [dep(params={"input_cost_per_token": 0}, info={"input_cost_per_token": 0})]
    )
    assert zero_both.input_cost_per_token == Decimal(0)  # 0 || 0 -> 0
    params_only = map_model("m", [dep(params={"input_cost_per_token": "1e-7"})])
    assert params_only.input_cost_per_token == Decimal("0.0000001")


def test_features_order_and_base_type() -> None:
    info = {
        "supports_vision": True,
        "supports_tool_choice": True,
        "supports_function_calling": True,
        "supports_parallel_function_calling": True,
    }
    assert features_of(info) == (
        "chat",
        "function_calling",
        "parallel_function_calling",
        "tool_choice",
        "vision",
    )
    assert features_of({"supports_embeddings": True})[0] == "embeddings"
    assert features_of({"supports_embedding": True})[0] == "embeddings"
    assert features_of({"supports_convert": True}) == ("convert",)
    assert features_of({"supports_tokenize": True}) == ("chat", "tokenize")


def test_rpm_tpm_and_api_base_come_from_params_only() -> None:
    r = map_model(
        "m",
        [dep(params={"api_base": "http://vllm:8000/v1", "tpm": 1000}, info={"rpm": 10, "tpm": 5})],
    )
    assert (r.api_base, r.tpm, r.rpm) == ("http://vllm:8000/v1", 1000, None)


def test_every_deployment_of_a_name_is_an_accepted_row() -> None:
    a = dep("a", params={"api_base": "http://a/v1"}, info={"id": "a", "max_tokens": 10})
    b = dep(
        "b",
        params={"api_base": "http://b/v1"},
        info={"id": "b", "max_tokens": 20},
        updated=T0 + timedelta(1),
    )
    r = map_model("granite", [a, b])
    assert r.litellm_model_id == "b"
    assert [(x["litellm_model_id"], x["api_base"], x["max_tokens"]) for x in r.accepted] == [
        ("a", "http://a/v1", 10),
        ("b", "http://b/v1", 20),
    ]
    assert r.to_json()["accepted"][0]["features"] == ["chat"]


def test_canonical_is_where_the_backend_ends_last_created_then_updated_then_model_id() -> None:
    old = dep("a", updated=T0)
    new = dep("b", updated=T0 + timedelta(seconds=1))
    tie = dep("c", updated=T0 + timedelta(seconds=1))
    assert canonical([old, new]).model_id == "b"
    assert canonical([old, new, tie]).model_id == "c"
    # blocked ones too: /model/info lists them and the backend processes them like the others
    assert canonical([dep("z", updated=T0 + timedelta(days=1), blocked=True), old]).model_id == "z"
    r = map_model("granite", [old, new, tie])
    assert r.litellm_model_id == "c"
    assert r.deployment_ids == ("a", "b", "c")
    assert not r.all_blocked
    assert map_model("granite", [dep(blocked=True)]).all_blocked


SECRET_PARAMS = {
    "api_key": "sk-provider-secret",
    "aws_access_key_id": "AKIA-secret",
    "aws_secret_access_key": "aws-secret",
    "aws_session_token": "aws-token",
    "vertex_credentials": '{"private_key": "pk"}',
    "client_secret": "cs",
    "azure_ad_token": "adt",
    "litellm_credential_name": "cred",
    "extra_headers": {"Authorization": "Bearer x"},
    "my_custom_secret": "s",
    "service_account_password": "p",
}


def test_metadata_has_no_credentials_at_any_depth() -> None:
    info = {
        "nested": {"access_token": "t", "ok": 1},
        "max_tokens": 10,
        "input_cost_per_token": 1e-6,
    }
    r = map_model("m", [dep(params={**SECRET_PARAMS, "api_base": "http://x"}, info=info)])
    text = repr(r.metadata)
    for secret in ("sk-provider-secret", "AKIA", "aws-secret", "aws-token", "pk", "Bearer", "cred"):
        assert secret not in text
    assert r.metadata["litellm_params"]["api_base"] == "http://x"
    assert r.metadata["litellm_model_info"]["nested"] == {"ok": 1}
    assert r.metadata["litellm_model_info"]["max_tokens"] == 10
    assert strip_credentials({"k": [{"api_key": "x", "a": 1}]}) == {"k": [{"a": 1}]}


def test_a_shared_cost_map_answer_is_stripped_once_with_the_same_result() -> None:
    """A deployment built from LiteLLM's cost-map answer carries it as a shared part; its metadata
    is what stripping the whole model_info gives, including
    a key of its own that hides the shared one."""
    shared = {
        "max_tokens": 8192,
        "supports_vision": True,
        "api_key_env": "OPENAI_KEY",  # a secret-looking key: a string is dropped
        "auth_token_ttl": 30,  # secret-looking but a number: kept, as /model/info keeps it
        "docs": "see https://docs.example/m",
        "key": None,
    }
    own = {
        "id": "d1",
        "key": "openai/m",  # the matched cost-map key of this lookup
        # its own value is not a scalar: dropped, the shared 30 too
        "auth_token_ttl": {"nested": "x"},
        "access_token": "tok-secret",
        "description": "m",
    }
    whole = {**shared, **own}
    plain = map_model("m", [Deployment("d1", "m", {"model": "openai/m"}, whole)])
    parted = map_model(
        "m", [Deployment("d1", "m", {"model": "openai/m"}, whole, info_parts=(shared, own))]
    )
    assert parted.metadata == plain.metadata
    info = parted.metadata["litellm_model_info"]
    assert not {"auth_token_ttl", "access_token", "api_key_env"} & info.keys()
    assert (info["key"], info["max_tokens"]) == ("openai/m", 8192)
    again = map_model(
        "n", [Deployment("d2", "n", {"model": "openai/m"}, whole, info_parts=(shared, own))]
    )
    assert again.metadata["litellm_model_info"] == info
    assert shared["api_key_env"] == "OPENAI_KEY"  # the shared answer itself is never changed


@pytest.mark.parametrize(
    ("info", "message"),
    [
        ({"max_tokens": -1}, "between 0"),
        ({"max_tokens": "lots"}, "whole number"),
        ({"max_tokens": 1.5}, "whole number"),
        ({"input_cost_per_token": "cheap"}, "must be a number"),
        ({"output_cost_per_token": -0.1}, "non-negative"),
        ({"id": "x" * 300}, "at most 255"),
        ({"huge": "x" * 300_000}, "bytes of JSON"),
    ],
)
def test_bad_values_are_clear_errors(info: dict[str, Any], message: str) -> None:
    with pytest.raises(MappingError, match=message):
        map_model("m", [dep(info=info)])


@pytest.mark.parametrize("name", ["", "x" * 256, "bad\nname", "nul\x00"])
def test_bad_names_are_rejected_not_truncated(name: str) -> None:
    with pytest.raises(MappingError):
        map_model(name, [dep(name=name)])


def test_awkward_but_valid_names_map_verbatim() -> None:
    for name in ["org/model:v1", 'it\'s "quoted"; --', "modèle-日本語", "x" * 255]:
        assert map_model(name, [dep(name=name)]).id == name


def test_numeric_strings_are_accepted() -> None:
    r = map_model("m", [dep(params={"rpm": "60", "tpm": "1000.0"})])
    assert (r.rpm, r.tpm) == (60, 1000)


def test_integers_beyond_64_bits_do_not_break_mapping_or_json() -> None:
    from litemaas_hooks.connections import _dumps, _loads

    r = map_model("m", [dep(info={"huge": 10**30})])
    assert r.metadata["litellm_model_info"]["huge"] == 10**30
    # orjson reads it as a float
    assert _loads(_dumps({"huge": 10**30})) == {"huge": pytest.approx(10**30)}


def test_credentials_inside_urls_never_reach_the_backend() -> None:
    params = {"api_base": "https://svc:hunter2@vllm.example:8443/v1?api-key=k3y&region=eu"}
    r = map_model("m", [dep(params=params)])
    assert r.api_base == "https://svc:***@vllm.example:8443/v1?api-key=***&region=eu"
    text = repr(r.metadata)
    assert "hunter2" not in text
    assert "k3y" not in text
    assert map_model("m", [dep(params={"api_base": "http://plain:8000/v1"})]).api_base == "http://plain:8000/v1"


def test_accepted_rows_are_those_the_backend_may_end_on() -> None:
    first = Deployment("a", "n", {"model": "openai/a"}, {"id": "a"}, updated_at=T0, created_at=T0)
    second = Deployment(
        "b",
        "n",
        {"model": "openai/b"},
        {"id": "b"},
        updated_at=T0 + timedelta(1),
        created_at=T0 + timedelta(1),
    )
    r = map_model("n", [first, second])
    # created last: listed last, kept last
    assert [a["litellm_model_id"] for a in r.accepted] == ["b"]
    edited = Deployment(
        "a", "n", {"model": "openai/a"}, {"id": "a"}, updated_at=T0 + timedelta(2), created_at=T0
    )
    r = map_model("n", [edited, second])
    assert [a["litellm_model_id"] for a in r.accepted] == ["a", "b"]  # an edit may move it after b


# -- issue 20 item 5: one blank rule
# -----------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["", " ", "\u00a0", "\u3000", "\t\n", "\u200b", "\ufeff\u00a0 ", "\u2028"]
)
def test_blank_names_are_refused_with_one_clear_error(name: str) -> None:
    assert is_blank_name(name)
    with pytest.raises(MappingError, match="missing or blank"):
        check_model_name(name)


@pytest.mark.parametrize("name", ["a", " a ", "\u00a0a", "modèle", "-"])
def test_visible_names_are_names(name: str) -> None:
    assert not is_blank_name(name)
    assert check_model_name(name) == name
