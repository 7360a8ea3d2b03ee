"""Our deploy/ manifests rendered for real, per flavour (upstream Kustomize, upstream Helm via the
post-renderer, RHDP via the Ansible role) and mode (plugin, standalone), on top of LiteMaaS's own
manifests (``tests/deploy/upstream.py``), and the lookups the deploy tests share. The ``rendered``
fixture (every flavour and mode) is in ``tests/deploy/conftest.py``."""

from __future__ import annotations

import copy
import os
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.upstream import (
    CACHE,
    LITEMAAS,
    ROOT,
    Install,
    helm_install,
    kustomize,
    kustomize_install,
    rhdp_install,
    tool,
    unpacked,
)

DEPLOY = ROOT / "deploy"
ROLE = DEPLOY / "rhdp" / "roles" / "ocp4_workload_litemaas_hooks"
MODES = ("plugin", "standalone")
FLAVOURS = ("kustomize", "helm", "rhdp")
RELAY_SECRET = "litemaas-hooks-relay"  # the relay role's password
Docs = list[dict[str, Any]]


def install_of(flavour: str) -> Install:
    return {"kustomize": kustomize_install, "helm": helm_install, "rhdp": rhdp_install}[flavour]()


def dump(path: Path, docs: Docs) -> None:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def render_dir(name: str) -> Path:
    path = CACHE / "render" / name
    if path.exists():
        subprocess.run(["rm", "-rf", str(path)], check=True)
    path.mkdir(parents=True)
    return path


def _upstream_objects(install: Install) -> Docs:
    secrets = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": n},
            "stringData": {k: "x" for k in sorted(keys)},
        }
        for n, keys in sorted(install.secrets.items())
    ]
    return [copy.deepcopy(install.litellm_deployment), *secrets]


def ansible_env() -> dict[str, str]:
    home = CACHE / "ansible"
    return {
        **os.environ,
        "ANSIBLE_HOME": str(home),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "ANSIBLE_REMOTE_TEMP": str(home / "tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_CONFIG": str(DEPLOY / "rhdp" / "ansible.cfg"),
        "PATH": f"{Path(tool('ansible-playbook')).parent}:{os.environ['PATH']}",
    }


def run_rhdp_role(out: Path, *extra_vars: str) -> Path:
    """The RHDP role's ``render`` state into ``out / "role"`` (``extra_vars``: more ``-e``
    arguments, e.g. ``@vars.yml``); returns ``out``."""
    result = subprocess.run(
        [
            tool("ansible-playbook"),
            str(DEPLOY / "rhdp" / "playbooks" / "litemaas_hooks.yml"),
            *(arg for var in extra_vars for arg in ("-e", var)),
            "-e",
            "ocp4_workload_litemaas_hooks_state=render",
            "-e",
            f"ocp4_workload_litemaas_hooks_render_dir={out / 'role'}",
        ],
        capture_output=True,
        text=True,
        env=ansible_env(),
        cwd=DEPLOY / "rhdp",
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@cache
def rhdp_role_output() -> Path:
    """The role's ``render`` state, run once: every manifest it applies, for both modes."""
    return run_rhdp_role(render_dir("rhdp"))


def load(path: Path) -> Docs:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def render_rhdp(mode: str) -> Docs:
    out = rhdp_role_output()
    role = out / "role"
    docs = load(role / f"litemaas-hooks-install-job-{mode}.yml")
    install = rhdp_install()
    if mode == "plugin":
        docs += load(role / "litemaas-hooks-litellm-config.yml")
        # the role's strategic-merge patch, applied to RHDP's own LiteLLM Deployment
        dump(out / "litellm.yaml", [install.litellm_deployment])
        (out / "kustomization.yaml").write_text(
            "resources: [litellm.yaml]\npatches:\n  - path: role/litemaas-hooks-litellm-patch.yml\n"
        )
        docs += kustomize(out)
    else:
        docs += load(role / "litemaas-hooks-relay.yml")
        docs.append(copy.deepcopy(install.litellm_deployment))
    return docs


_rendered: dict[tuple[str, str], Docs] = {}


def render(flavour: str, mode: str) -> Docs:
    """The manifests of one flavour and mode (rendered once per test run; callers get a copy)."""
    if (flavour, mode) not in _rendered:
        _rendered[flavour, mode] = _render(flavour, mode)
    return copy.deepcopy(_rendered[flavour, mode])


def _render(flavour: str, mode: str) -> Docs:
    install = install_of(flavour)
    if flavour == "rhdp":
        return render_rhdp(mode)
    if flavour == "helm":
        stdin = yaml.safe_dump_all(_upstream_objects(install), sort_keys=False)
        result = subprocess.run(
            [str(DEPLOY / "helm" / "post-render.sh"), mode],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return [d for d in yaml.safe_load_all(result.stdout) if d]
    # upstream Kustomize: its own litellm-deployment.yaml and secret files + our component
    out = render_dir(f"kustomize-{mode}")
    base = unpacked(LITEMAAS) / "deployment" / "kustomize"
    (out / "litellm-deployment.yaml").write_text((base / "litellm-deployment.yaml").read_text())
    resources = ["litellm-deployment.yaml"]
    for secret in sorted(base.glob("*secret.yaml.template")):
        name = secret.name.removesuffix(".template")
        (out / name).write_text(secret.read_text())
        resources.append(name)
    component = os.path.relpath(DEPLOY / "kustomize" / mode, out)
    (out / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": resources, "components": [component]}, sort_keys=False)
    )
    return kustomize(out)


# -- helpers --------------------------------------------------------------------------------------


def find(docs: Docs, kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        d for d in docs if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)
    ]


def ours(docs: Docs) -> Docs:
    return [
        d
        for d in docs
        if (d["metadata"].get("labels") or {}).get("app.kubernetes.io/name") == "litemaas-hooks"
    ]


def pod_specs(docs: Docs) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for d in docs:
        if d["kind"] in {"Deployment", "Job"}:
            yield d, d["spec"]["template"]["spec"]


def secret_refs(docs: Docs) -> Iterator[tuple[str, str, str]]:
    for d, spec in pod_specs(docs):
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            for env in c.get("env", []):
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    yield (
                        f"{d['kind']}/{d['metadata']['name']}:{env['name']}",
                        ref["name"],
                        ref["key"],
                    )


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in container.get("env", [])}
