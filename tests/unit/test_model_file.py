"""The guide's model files: parsing, defaults, one error per mistake, credential references."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from litemaas_hooks.errors import LiteMaaSHooksError, ModelFileError
from litemaas_hooks.model_file import (
    Credential,
    load_files,
    parse_credential,
    parse_documents,
    resolve_credential,
)

# the guide's Scenario 1 file, as written there except for the credentials
SCENARIO_1 = """
litellm_url: "https://litellm-admin.apps.cluster.com"
litellm_master_key: "sk-xxxxx"
ocp4_workload_litemaas_models_namespace: "litemaas"
ocp4_workload_litemaas_models_backend_enabled: true
ocp4_workload_litemaas_models_list:
  - model_name: "granite-8b-code-instruct-128k"
    litellm_model: "openai/granite-3-2-8b-instruct"
    api_base: "https://granite-model.apps.cluster.com/v1"
    api_key: "env:GRANITE_API_KEY"
    display_name: "Granite 8B Code Instruct"
    description: "IBM Granite 8B Code Instruct model"
    provider: "openshift-ai"
    category: "code"
    context_length: 131072
    rpm: 120
    tpm: 100000
"""


def _one(entry: dict[str, Any], **kwargs: Any) -> Any:
    return parse_documents([("m.yml", [entry])], **kwargs)[0]


def _error(documents: list[tuple[str, Any]], **kwargs: Any) -> ModelFileError:
    with pytest.raises(ModelFileError) as caught:
        parse_documents(documents, **kwargs)
    return caught.value


def test_the_guides_scenario_file_is_read_with_its_fields(tmp_path: Path) -> None:
    path = tmp_path / "my-model.yml"
    path.write_text(SCENARIO_1)
    (spec,) = load_files([str(path)])
    assert spec.model_name == "granite-8b-code-instruct-128k"
    assert spec.litellm_model == "openai/granite-3-2-8b-instruct"
    assert spec.api_key == Credential("env", "env:GRANITE_API_KEY")
    assert (spec.context_length, spec.rpm, spec.tpm) == (131072, 120, 100000)
    assert (spec.display_name, spec.provider, spec.category) == (
        "Granite 8B Code Instruct",
        "openshift-ai",
        "code",
    )
    assert spec.where == f"{path}: entry 1"


def test_defaults_are_the_guides() -> None:
    spec = _one({"model_name": "m", "litellm_model": "openai/m"})
    assert spec.display_name == "m"
    assert spec.description == "AI model"
    assert spec.provider == "openshift-ai"
    assert spec.category == "general"
    assert spec.supports_streaming is True
    assert spec.availability == "available"
    assert (spec.context_length, spec.rpm, spec.tpm, spec.api_key, spec.api_base) == (None,) * 5


def test_a_bare_list_and_an_empty_list_are_accepted() -> None:
    assert [
        s.model_name
        for s in parse_documents([("a.yml", [{"model_name": "a", "litellm_model": "x"}])])
    ] == ["a"]
    assert parse_documents([("b.yml", {"ocp4_workload_litemaas_models_list": []})]) == []


def test_a_literal_key_is_refused_with_the_fix_and_never_shown() -> None:
    error = _error(
        [("m.yml", [{"model_name": "g", "litellm_model": "openai/g", "api_key": "sk-secret-123"}])]
    )
    text = str(error)
    assert "m.yml: entry 1 (g): api_key: a literal key is refused" in text
    assert (
        "env:NAME" in text
    )
    assert (
        "file:/path" in text
    )
    assert (
        "os.environ/NAME" in text
    )
    assert (
        "--allow-inline-keys" in text
    )
    assert "sk-secret-123" not in text


def test_a_literal_key_is_accepted_with_allow_inline_keys_and_hidden_in_repr() -> None:
    spec = _one(
        {"model_name": "g", "litellm_model": "x", "api_key": "sk-secret-123"},
        allow_inline_keys=True,
    )
    assert spec.api_key is not None
    assert spec.api_key.kind == "inline"
    assert "sk-secret-123" not in repr(spec)
    assert resolve_credential(spec.api_key, {}, lambda p: "") == "sk-secret-123"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"litellm_model": "x"}, "entry 1: model_name: missing (required)"),
        ({"model_name": "m"}, "entry 1 (m): litellm_model: missing (required)"),
        (
            {"model_name": "m", "litellm_model": "x", "contex_length": 5},
            "contex_length: unknown field; did you mean `context_length`?",
        ),
        (
            {"model_name": "m", "litellm_model": "x", "context_length": "lots"},
            "context_length: must be a positive whole number",
        ),
        (
            {"model_name": "m", "litellm_model": "x", "rpm": -1},
            "rpm: must be a positive whole number",
        ),
        (
            {"model_name": "m", "litellm_model": "x", "tpm": True},
            "tpm: must be a positive whole number",
        ),
        (
            {"model_name": "m", "litellm_model": "x", "availability": "hidden"},
            "availability: must be one of available, unavailable",
        ),
        (
            {"model_name": "m", "litellm_model": "x", "supports_streaming": "yes"},
            "supports_streaming: must be true or false",
        ),
        (
            {"model_name": "m", "litellm_model": "x", "api_base": "granite:8080"},
            "api_base: must be an http(s) URL",
        ),
        (
            {"model_name": "m", "litellm_model": "x", "api_key": "env:not a name"},
            "does not name an environment variable",
        ),
        (
            {"model_name": "m", "litellm_model": "x", "api_key": "file:relative/key"},
            "needs an absolute path",
        ),
        (
            {"model_name": "m" * 256, "litellm_model": "x"},
            "model_name: is 256 characters; the backend allows at most 255",
        ),
    ],
)
def test_each_mistake_is_one_line_naming_file_entry_and_field(
    entry: dict[str, Any], expected: str
) -> None:
    error = _error([("m.yml", [entry])])
    assert len(error.problems) == 1, error.problems
    assert expected in error.problems[0]
    assert error.problems[0].startswith("m.yml: entry 1")


def test_every_mistake_is_reported_at_once_and_duplicates_across_files_named() -> None:
    error = _error(
        [
            ("a.yml", [{"model_name": "dup", "litellm_model": "x"}, {"model_name": "bad"}]),
            (
                "b.yml",
                {
                    "ocp4_workload_litemaas_models_list": [
                        {"model_name": "dup", "litellm_model": "y"}
                    ]
                },
            ),
        ]
    )
    assert len(error.problems) == 2
    assert "a.yml: entry 2 (bad): litellm_model: missing" in error.problems[0]
    assert "b.yml: entry 1 (dup): model_name: also defined at a.yml: entry 1" in error.problems[1]
    assert str(error).startswith("2 mistakes in the model files:")


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (None, "the file is empty"),
        ({"models": []}, "no `ocp4_workload_litemaas_models_list:` key (found models)"),
        ({"ocp4_workload_litemaas_models_list": {"a": 1}}, "is a mapping, not a list of models"),
        ("text", "the file holds a string"),
        (
            {"ocp4_workload_litemaas_models_list": [], "litellm_urll": "x"},
            "unknown top-level key `litellm_urll`",
        ),
    ],
)
def test_top_level_mistakes(document: Any, expected: str) -> None:
    assert expected in str(_error([("f.yml", document)]))


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("ocp4_workload_litemaas_models_list:\n  - model_name: [unclosed\n")
    with pytest.raises(ModelFileError, match=r"bad.yml: not valid YAML at line \d+"):
        load_files([str(path)])


def test_credential_references() -> None:
    assert parse_credential("env:KEY") == Credential("env", "env:KEY")
    assert parse_credential("file:/run/secrets/k") == Credential("file", "file:/run/secrets/k")
    assert parse_credential("os.environ/KEY") == Credential("litellm_env", "os.environ/KEY")
    files = {"/run/secrets/k": "sk-from-file\n"}
    assert (
        resolve_credential(parse_credential("env:KEY"), {"KEY": "sk-env"}, files.__getitem__)
        == "sk-env"
    )
    assert (
        resolve_credential(parse_credential("file:/run/secrets/k"), {}, files.__getitem__)
        == "sk-from-file"
    )
    # LiteLLM resolves os.environ/ itself: the reference is what it gets
    assert (
        resolve_credential(parse_credential("os.environ/KEY"), {}, files.__getitem__)
        == "os.environ/KEY"
    )


def test_unreadable_credentials_name_the_reference_and_the_fix() -> None:
    def missing(path: str) -> str:
        raise FileNotFoundError(2, "No such file or directory")

    with pytest.raises(
        LiteMaaSHooksError, match="environment variable KEY is not set or empty; export it"
    ):
        resolve_credential(parse_credential("env:KEY"), {}, missing)
    with pytest.raises(
        LiteMaaSHooksError,
        match=r"file:/nope: cannot read the file .*No such file or directory\); mount the Secret",
    ):
        resolve_credential(parse_credential("file:/nope"), {}, missing)
