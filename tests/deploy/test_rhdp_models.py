"""The RHDP role applies the guide's model files (the collection's
``ocp4_workload_litemaas_models_list``).

Rendered by the role itself (``state=render``) from the guide's Scenario 1 file, as the guide writes
it (its literal keys included): a Secret holding the model file with ``file:`` references and each
key as a file, and a Job running ``litemaas-hooks apply`` on it, the master key from LiteLLM's
Secret. No key reaches the Job, and the file passes ``apply``'s own checks.
"""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from litemaas_hooks.model_file import parse_documents
from tests.deploy.render import render_dir, run_rhdp_role
from tests.deploy.upstream import tool

SCENARIO_1 = {  # the guide's "Scenario 1: Add Single Model via Playbook", unchanged
    "litellm_url": "https://litellm-admin.apps.cluster.example.com",
    "litellm_master_key": "sk-guide-master-xxxxx",
    "ocp4_workload_litemaas_models_namespace": "litemaas",
    "ocp4_workload_litemaas_models_backend_enabled": True,
    "ocp4_workload_litemaas_models_list": [
        {
            "model_name": "granite-8b-code-instruct-128k",
            "litellm_model": "openai/granite-3-2-8b-instruct",
            "api_base": "https://granite-model.apps.cluster.example.com/v1",
            "api_key": "sk-guide-model-yyyyy",
            "display_name": "Granite 8B Code Instruct",
            "description": "IBM Granite 8B Code Instruct model",
            "provider": "openshift-ai",
            "category": "code",
            "context_length": 131072,
            "rpm": 120,
            "tpm": 100000,
        },
        {  # a reference stays a reference
            "model_name": "llama-3-8b-instruct",
            "litellm_model": "openai/llama-3-8b-instruct",
            "api_base": "https://llama-model.apps.cluster.example.com/v1",
            "api_key": "os.environ/LLAMA_API_KEY",
            "context_length": 8192,
        },
    ],
}


@cache
def rendered() -> dict[str, Any]:
    out = render_dir("rhdp-models")
    vars_file = out / "my-model.yml"
    vars_file.write_text(yaml.safe_dump(SCENARIO_1))
    run_rhdp_role(out, f"@{vars_file}")
    role = out / "role"
    return {
        "secret": yaml.safe_load((role / "litemaas-hooks-models-secret.yml").read_text()),
        "job": yaml.safe_load((role / "litemaas-hooks-apply-job.yml").read_text()),
        "texts": {p.name: p.read_text() for p in role.iterdir()},
        "dir": role,
    }


def test_the_secret_holds_a_reference_file_and_the_keys() -> None:
    secret = rendered()["secret"]
    assert (secret["kind"], secret["metadata"]["name"]) == ("Secret", "litemaas-hooks-models")
    data = secret["stringData"]
    assert data["api-key-1"] == "sk-guide-model-yyyyy"
    models = yaml.safe_load(data["models.yml"])["ocp4_workload_litemaas_models_list"]
    assert models[0]["api_key"] == "file:/etc/litemaas-hooks/models/api-key-1"
    assert models[1]["api_key"] == "os.environ/LLAMA_API_KEY"
    assert "api-key-2" not in data
    # the file is what `litemaas-hooks apply` accepts without --allow-inline-keys
    specs = parse_documents([("models.yml", yaml.safe_load(data["models.yml"]))])
    assert [(s.model_name, s.context_length, s.rpm) for s in specs] == [
        ("granite-8b-code-instruct-128k", 131072, 120),
        ("llama-3-8b-instruct", 8192, None),
    ]


def test_the_job_runs_apply_with_the_secret_and_no_key_in_it() -> None:
    job = rendered()["job"]
    assert job["metadata"]["name"] == "litemaas-hooks-apply"
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    command = ["litemaas-hooks", "apply", "/etc/litemaas-hooks/models/models.yml"]
    assert container["command"][:3] == command
    assert "--prune" not in container["command"]
    env = {e["name"]: e for e in container["env"]}
    assert env["LITELLM_URL"]["value"] == "http://litellm:4000"
    assert env["LITELLM_MASTER_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "litellm-secret",
        "key": "LITELLM_MASTER_KEY",
    }
    assert {"name": "models", "secret": {"secretName": "litemaas-hooks-models"}} in pod["volumes"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    texts = rendered()["texts"]
    for name, text in texts.items():
        assert "sk-guide-master-xxxxx" not in text, name  # the file's master key is never used
        if name != "litemaas-hooks-models-secret.yml":
            assert "sk-guide-model-yyyyy" not in text, name


def test_the_models_manifests_pass_kubernetes_schemas(tmp_path: Path) -> None:
    role = rendered()["dir"]
    for name in ("litemaas-hooks-models-secret.yml", "litemaas-hooks-apply-job.yml"):
        result = subprocess.run(
            [tool("kubernetes-validate"), "--strict", "-k", "1.27", "--quiet", str(role / name)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
