"""The names LiteMaaS's real deployments use, read from the upstream sources (``shared/upstream``
tarballs, unpacked into the gitignored ``.cache/upstream``), and the offline tools of
``scripts/install-deploy-tools.sh``.

- upstream Kustomize (``deployment/kustomize``): plain YAML (secret ``*.yaml.template`` files hold
  ``${VAR}`` placeholders inside strings only);
- upstream Helm (``deployment/helm/litemaas``): no ``helm`` binary here, so the templates are
  parsed: the ``fullname`` rule of ``_helpers.tpl`` for a release name, secret keys from
  ``stringData``, the LiteLLM container and image from the Deployment template and ``values.yaml``;
- RHDP (``roles/ocp4_workload_litemaas/templates/*.yml.j2``): Jinja statements dropped, expressions
  replaced by a placeholder, then YAML.
"""

from __future__ import annotations

import os
import re
import subprocess
import tarfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("LITEMAAS_HOOKS_CACHE_DIR", ROOT / ".cache"))
LITEMAAS = "litemaas-v0.4.0"
RHDP = "rhpds.litemaas-f4545df"
TOOLS = Path(os.environ.get("DEPLOY_TOOLS_VENV", ROOT / ".venv-deploy-tools"))


def upstream_dir() -> Path:
    explicit = os.environ.get("LITEMAAS_HOOKS_UPSTREAM_DIR")
    if explicit:
        return Path(explicit)
    for candidate in (
        ROOT.parent / "shared" / "upstream",
        ROOT.parent.parent / "shared" / "upstream",
    ):
        if (candidate / f"{LITEMAAS}.tar.gz").is_file():
            return candidate
    pytest.fail(
        f"upstream tarballs not found beside the repository ({ROOT.parent}/shared/upstream); "
        "set LITEMAAS_HOOKS_UPSTREAM_DIR"
    )


@cache
def unpacked(name: str) -> Path:
    """``<cache>/upstream/<name>``: the tarball's tree,
    unpacked once (deployment and role files only)."""
    target = CACHE / "upstream"
    marker = target / f".{name}.unpacked"
    if not marker.is_file():
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(upstream_dir() / f"{name}.tar.gz") as tar:
            wanted = [
                m
                for m in tar.getmembers()
                if re.match(rf"{re.escape(name)}/(deployment|roles|playbooks)/", m.name)
                and (m.isfile() or m.isdir())
            ]
            tar.extractall(target, members=wanted, filter="data")
        marker.write_text("ok\n")
    return target / name


def tool(name: str) -> str:
    path = TOOLS / "bin" / name
    if not path.exists():
        pytest.fail(
            f"{path} is missing: run `bash scripts/install-deploy-tools.sh` (bootstrap.sh does)"
        )
    return str(path)


@dataclass
class Install:
    """What one LiteMaaS install flavour defines."""

    flavour: str
    secrets: dict[str, set[str]] = field(default_factory=dict)  # secret name -> keys
    litellm_deployment: dict[str, Any] = field(default_factory=dict)  # the full Deployment object
    litellm_image: str = ""

    @property
    def litellm_name(self) -> str:
        return str(self.litellm_deployment["metadata"]["name"])


def _secret_keys(doc: dict[str, Any]) -> set[str]:
    return set((doc.get("stringData") or {}) | (doc.get("data") or {}))


@cache
def kustomize_install() -> Install:
    base = unpacked(LITEMAAS) / "deployment" / "kustomize"
    out = Install("kustomize")
    for path in sorted(base.glob("*secret.yaml.template")):
        doc = yaml.safe_load(path.read_text())
        out.secrets[doc["metadata"]["name"]] = _secret_keys(doc)
    out.litellm_deployment = yaml.safe_load((base / "litellm-deployment.yaml").read_text())
    out.litellm_image = out.litellm_deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    return out


def helm_fullname(release: str, chart_dir: Path) -> str:
    """``litemaas.fullname`` of _helpers.tpl (no overrides):
    the release name when it contains the chart's."""
    helpers = (chart_dir / "templates" / "_helpers.tpl").read_text()
    assert "{{- if contains $name .Release.Name }}" in helpers, "the chart's fullname rule changed"
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())["name"]
    return release if chart in release else f"{release}-{chart}"


def _helm_component_name(chart_dir: Path, component: str, release: str) -> str:
    helpers = (chart_dir / "templates" / "_helpers.tpl").read_text()
    m = re.search(
        r'define "litemaas\.'
        + component
        + r'\.fullname" -}}\s*\{\{- printf "%s-(\w+)" \(include "litemaas\.fullname" \.\)',
        helpers,
    )
    assert m, f"litemaas.{component}.fullname not found in _helpers.tpl"
    return f"{helm_fullname(release, chart_dir)}-{m.group(1)}"


def _helm_string_data(template: str) -> set[str]:
    block = template.split("stringData:", 1)[1]
    return {m.group(1) for m in re.finditer(r"^  ([A-Za-z0-9_-]+):", block, re.MULTILINE)}


@cache
def helm_install(release: str = "litemaas") -> Install:
    chart = unpacked(LITEMAAS) / "deployment" / "helm" / "litemaas"
    templates = chart / "templates"
    out = Install("helm")
    for component, template in (
        ("litellm", "litellm-secret.yaml"),
        ("backend", "backend-secret.yaml"),
    ):
        text = (templates / template).read_text()
        assert f'name: {{{{ include "litemaas.{component}.fullname" . }}}}' in text
        out.secrets[_helm_component_name(chart, component, release)] = _helm_string_data(text)
    deployment = (templates / "litellm-deployment.yaml").read_text()
    assert 'name: {{ include "litemaas.litellm.fullname" . }}' in deployment
    containers = re.findall(r"^        - name: (\S+)\n          image:", deployment, re.MULTILINE)
    assert containers == ["litellm"], containers
    values = yaml.safe_load((chart / "values.yaml").read_text())
    image = f"{values['litellm']['image']['repository']}:{values['litellm']['image']['tag']}"
    out.litellm_image = image
    # the chart's env refers to its own secret: database-url
    # and master-key (checked against the template)
    for key in ("database-url", "master-key"):
        assert f"key: {key}" in deployment
    labels = {"app.kubernetes.io/component": "ai-proxy", "app.kubernetes.io/instance": release}
    out.litellm_deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": _helm_component_name(chart, "litellm", release), "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "litellm",
                            "image": image,
                            "ports": [{"containerPort": 4000, "name": "http"}],
                            "env": [
                                {
                                    "name": "DATABASE_URL",
                                    "valueFrom": {
                                        "secretKeyRef": {
                                            "name": _helm_component_name(chart, "litellm", release),
                                            "key": "database-url",
                                        }
                                    },
                                },
                                {"name": "STORE_MODEL_IN_DB", "value": "True"},
                            ],
                        }
                    ]
                },
            },
        },
    }
    return out


def jinja_yaml(text: str) -> list[dict[str, Any]]:
    """YAML documents of an RHDP Jinja template: statements
    dropped, expressions -> a placeholder."""
    lines = [line for line in text.splitlines() if not re.match(r"\s*\{%.*%\}\s*$", line)]
    body = re.sub(r"\{\{.*?\}\}", "JINJA", "\n".join(lines))
    return [d for d in yaml.safe_load_all(body) if d]


@cache
def rhdp_install() -> Install:
    templates = unpacked(RHDP) / "roles" / "ocp4_workload_litemaas" / "templates"
    out = Install("rhdp")
    # the templates that define LiteLLM, its secrets and the
    # database secret (the others hold no names we use)
    for name in (
        "litemaas-ha-deployment.yml.j2",
        "litemaas-postgres.yml.j2",
        "litemaas-backend.yml.j2",
    ):
        for doc in jinja_yaml((templates / name).read_text()):
            if doc.get("kind") == "Secret":
                out.secrets.setdefault(doc["metadata"]["name"], set()).update(_secret_keys(doc))
            if doc.get("kind") == "Deployment" and doc["metadata"]["name"] == "litellm":
                out.litellm_deployment = doc
    defaults = yaml.safe_load((templates.parent / "defaults" / "main.yml").read_text())
    out.litellm_image = (
        f"{defaults['ocp4_workload_litemaas_litellm_image']}:{defaults['ocp4_workload_litemaas_litellm_tag']}"
    )
    # the values the templates fill in (replicas, resources come from role variables)
    out.litellm_deployment["spec"]["replicas"] = 2
    container = out.litellm_deployment["spec"]["template"]["spec"]["containers"][0]
    container["image"] = out.litellm_image
    container["resources"] = {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "2", "memory": "2Gi"},
    }
    return out


def kustomize(directory: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@cache
def owner_database_locations(flavour: str, release: str = "litemaas") -> dict[str, str]:
    """Where each flavour's owner URLs point (``host:port/db?params``, no credentials), read
    from the upstream sources: the relay role's URLs must point at the same server and databases."""
    if flavour == "kustomize":
        base = unpacked(LITEMAAS) / "deployment" / "kustomize"
        backend = yaml.safe_load((base / "backend-secret.yaml.template").read_text())
        litellm = yaml.safe_load((base / "litellm-secret.yaml.template").read_text())
        urls = {
            "backend": backend["stringData"]["database-url"],
            "litellm": litellm["stringData"]["database-url"],
        }
        return {side: url.split("@", 1)[1] for side, url in urls.items()}
    if flavour == "helm":
        chart = unpacked(LITEMAAS) / "deployment" / "helm" / "litemaas"
        helpers = (chart / "templates" / "_helpers.tpl").read_text()
        out = {}
        for side in ("backend", "litellm"):
            block = helpers.split(f'define "litemaas.{side}.databaseUrl"', 1)[1]
            block = block.split("{{- end }}\n{{- end }}", 1)[0]
            m = re.search(r'printf "postgresql://%s:%s@%s(:\d+/[^"]+)"', block)
            assert m, f"litemaas.{side}.databaseUrl changed"
            assert 'include "litemaas.postgresql.host"' in block
            host = re.search(
                r'define "litemaas.postgresql.host" -}}\s*'
                r'\{\{- include "litemaas.postgresql.fullname"',
                helpers,
            )
            assert host, "litemaas.postgresql.host changed"
            assert 'printf "%s-postgresql" (include "litemaas.fullname" .)' in helpers
            out[side] = f"{helm_fullname(release, chart)}-postgresql{m.group(1)}"
        return out
    assert flavour == "rhdp"
    role = unpacked(RHDP) / "roles" / "ocp4_workload_litemaas"
    text = (role / "templates" / "litemaas-postgres.yml.j2").read_text()
    m = re.search(
        r'DATABASE_URL: "postgresql://\{\{[^}]+\}\}:\{\{[^}]+\}\}@([^/]+)/\{\{ (\w+) \}\}([^"]*)"',
        text,
    )
    assert m, "litemaas-db DATABASE_URL changed"
    defaults = yaml.safe_load((role / "defaults" / "ha.yml").read_text())
    location = f"{m.group(1)}/{defaults[m.group(2)]}{m.group(3)}"
    # one database: LiteLLM's Deployment reads the same DATABASE_URL (test_upstream_names_...)
    return {"backend": location, "litellm": location}
