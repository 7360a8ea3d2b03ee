"""Issue 20 item 2: every deploy/ flavour runs with least privilege.

- the install Job (the only container with the owners' URLs) creates the relay role
  (``install --grant-relay``; plugin mode: on the backend only) with the password of Secret
  ``litemaas-hooks-relay``;
- the standalone relay, and LiteLLM in plugin mode for the backend, log in as that role: URLs built
  from the same server and databases as the owners' URLs (read from the upstream sources), never an
  owner's URL or password; LiteLLM's own ``DATABASE_URL`` stays LiteLLM's;
- RHDP generates the password once (as ``ocp4_workload_litemaas`` does) and keeps it in the Secret.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import yaml

from litemaas_hooks import cli
from tests.deploy.render import (
    RELAY_SECRET,
    ROLE,
    Docs,
    env_of,
    find,
    install_of,
    ours,
    pod_specs,
)
from tests.deploy.upstream import jinja_yaml, owner_database_locations

PASSWORD_VAR = "LITEMAAS_HOOKS_RELAY_PASSWORD"
URL_VARS = ("LITEMAAS_DATABASE_URL", "LITELLM_DATABASE_URL")


def _job(docs: Docs) -> dict[str, Any]:
    (job,) = find(docs, "Job", "litemaas-hooks-install")
    container: dict[str, Any] = job["spec"]["template"]["spec"]["containers"][0]
    return container


def _install_steps(container: dict[str, Any]) -> list[Any]:
    steps = [shlex.split(step) for step in container["command"][2].split("&&")]
    return [
        cli._parser().parse_args(s[1:]) for s in steps if s[:2] == ["litemaas-hooks", "install"]
    ]


def _owner_refs(docs: Docs) -> set[tuple[str, str]]:
    """The (secret, key) pairs the install Job reads the owners' URLs from."""
    env = env_of(_job(docs))
    return {
        (env[v]["valueFrom"]["secretKeyRef"]["name"], env[v]["valueFrom"]["secretKeyRef"]["key"])
        for v in URL_VARS
    }


def _password_ref(env: dict[str, Any], where: str) -> None:
    ref = env[PASSWORD_VAR]["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == (RELAY_SECRET, "password"), where


def _relay_containers(flavour: str, mode: str, docs: Docs) -> list[tuple[str, dict[str, Any]]]:
    """The containers that run the relay: the standalone Deployment's, or LiteLLM's in plugin
    mode."""
    if mode == "standalone":
        (relay,) = find(docs, "Deployment", "litemaas-hooks-relay")
        return [("relay", c) for c in relay["spec"]["template"]["spec"]["containers"]]
    (litellm,) = find(docs, "Deployment", install_of(flavour).litellm_name)
    return [("litellm", c) for c in litellm["spec"]["template"]["spec"]["containers"]]


def test_install_job_creates_the_relay_role_from_the_secret(
    rendered: tuple[str, str, Docs],
) -> None:
    flavour, mode, docs = rendered
    container = _job(docs)
    _password_ref(env_of(container), f"{flavour}/{mode} Job")
    installs = _install_steps(container)
    granting = [a for a in installs if a.grant_relay]
    assert len(granting) == 1, f"{flavour}/{mode}: exactly one install step runs --grant-relay"
    (grant,) = granting
    assert grant.relay_role == "litemaas_hooks_relay"
    assert grant.backend_role is None
    if mode == "plugin":
        # LiteLLM's own role works the outbox (install grants it that): the relay role is made in
        # the backend database only, and LiteLLM's password is never touched
        assert grant.backend_only
        assert not grant.litellm_only
        assert any(a.litellm_only for a in installs), "the LiteLLM side is installed too"
    else:
        assert not grant.backend_only
        assert not grant.litellm_only
    for args in installs:
        assert args.wait_for_litellm >= 300


def test_no_relay_or_plugin_container_gets_an_owner_url_or_secret(
    rendered: tuple[str, str, Docs],
) -> None:
    flavour, mode, docs = rendered
    owners = _owner_refs(docs)
    assert owners, "the Job reads the owners' URLs"
    role = next(a.relay_role for a in _install_steps(_job(docs)) if a.grant_relay)
    locations = owner_database_locations(flavour)
    upstream_litellm = env_of(
        install_of(flavour).litellm_deployment["spec"]["template"]["spec"]["containers"][0]
    )
    for kind, container in _relay_containers(flavour, mode, docs):
        where = f"{flavour}/{mode} {kind}"
        env = env_of(container)
        for name, e in env.items():
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if not ref or (ref["name"], ref["key"]) not in owners:
                continue
            # only LiteLLM's own variable, exactly as LiteMaaS defines it, may hold its own URL
            assert kind == "litellm", f"{where}: {name} is an owner's URL"
            assert name not in URL_VARS, f"{where}: {name} is an owner's URL"
            assert upstream_litellm.get(name) == e, f"{where}: {name} is an owner's URL"
        for sources in container.get("envFrom") or []:
            assert "secretRef" not in sources, f"{where}: envFrom a Secret"
        _password_ref(env, where)
        urls = ("LITEMAAS_DATABASE_URL",) if kind == "litellm" else URL_VARS
        for var in urls:
            side = "backend" if var == "LITEMAAS_DATABASE_URL" else "litellm"
            expected = f"postgresql://{role}:$({PASSWORD_VAR})@{locations[side]}"
            assert env[var].get("value") == expected, f"{where}: {var}"
        if kind == "litellm":
            # LiteLLM's own database URL stays LiteLLM's (the plugin claims the outbox with it)
            assert "LITELLM_DATABASE_URL" not in env or env[
                "LITELLM_DATABASE_URL"
            ] == upstream_litellm.get("LITELLM_DATABASE_URL")
            assert env["DATABASE_URL"] == upstream_litellm["DATABASE_URL"]


def test_every_env_reference_is_defined_before_it(rendered: tuple[str, str, Docs]) -> None:
    """Kubernetes expands ``$(VAR)`` only from variables listed earlier in the same container."""
    flavour, mode, docs = rendered
    checked = 0
    for d, spec in pod_specs(
        ours(docs) + find(docs, "Deployment", install_of(flavour).litellm_name)
    ):
        for c in spec["containers"]:
            seen: set[str] = set()
            for e in c.get("env", []):
                for var in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", e.get("value", "")):
                    assert var in seen, (
                        f"{flavour}/{mode} {d['metadata']['name']}: {e['name']} uses {var}"
                    )
                    checked += 1
                seen.add(e["name"])
    assert checked >= 1


def test_rhdp_generates_the_relay_password_once_and_keeps_it_in_a_secret() -> None:
    tasks = yaml.safe_load((ROLE / "tasks" / "workload.yml").read_text())
    names = [t["name"] for t in tasks]
    look = next(i for i, t in enumerate(tasks) if "kubernetes.core.k8s_info" in t)
    info = tasks[look]["kubernetes.core.k8s_info"]
    assert (info["kind"], info["name"]) == (
        "Secret",
        "{{ ocp4_workload_litemaas_hooks_relay_secret }}",
    )
    make = tasks[look + 1]
    assert make["when"] == f"{tasks[look]['register']}.resources | length == 0", (
        "only when it is missing"
    )
    assert "litemaas-hooks-relay-secret.yml.j2" in make["kubernetes.core.k8s"]["definition"]
    assert tasks[look]["no_log"] is True
    assert make["no_log"] is True
    job = next(i for i, n in enumerate(names) if n.startswith("Run the install Job"))
    assert look < job, "the Secret exists before the Job needs it"
    template = (ROLE / "templates" / "litemaas-hooks-relay-secret.yml.j2").read_text()
    assert (
        "lookup('ansible.builtin.password', '/dev/null length=32 chars=ascii_letters,digits')"
        in template
    )
    (secret,) = jinja_yaml(template)
    assert secret["kind"] == "Secret"
    assert set(secret["stringData"]) == {"password"}
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert defaults["ocp4_workload_litemaas_hooks_relay_secret"] == RELAY_SECRET
    removed = yaml.safe_load((ROLE / "tasks" / "remove_workload.yml").read_text())[0]["loop"]
    assert {
        "api_version": "v1",
        "kind": "Secret",
        "name": "{{ ocp4_workload_litemaas_hooks_relay_secret }}",
    } in removed
