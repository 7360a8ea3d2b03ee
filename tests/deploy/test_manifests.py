"""deploy/ validated offline, per install flavour (upstream Kustomize, upstream Helm via the
post-renderer, RHDP via the Ansible role) and mode (plugin, standalone):

- rendered for real (``kubectl kustomize``, ``deploy/helm/post-render.sh``, ``ansible-playbook``
  with the role's ``render`` state) on top of LiteMaaS's
  own manifests, read from the upstream sources;
- every secret, key and Deployment name we reference exists in that flavour's upstream manifests;
- Kubernetes schemas (``kubernetes-validate --strict``),
  OpenShift's restricted SCC rules, hooks, TTL, probes;
- plugin mode really wires config.yaml + the shim (==
  ``SHIM_SOURCE``), the mount and ``CONFIG_FILE_PATH``;
- ``ansible-playbook --syntax-check`` and ``ansible-lint`` on the RHDP role.
"""

from __future__ import annotations

import copy
import shlex
import subprocess
from pathlib import Path
from typing import Any

import yaml

from litemaas_hooks import cli
from litemaas_hooks.plugin import SHIM_SOURCE
from tests.deploy.render import (
    DEPLOY,
    RELAY_SECRET,
    ROLE,
    Docs,
    ansible_env,
    dump,
    env_of,
    find,
    install_of,
    ours,
    pod_specs,
    render,
    render_dir,
    rhdp_role_output,
    secret_refs,
)
from tests.deploy.upstream import (
    helm_install,
    kustomize,
    kustomize_install,
    rhdp_install,
    tool,
    unpacked,
)

CALLBACK = "litemaas_hooks.proxy_handler_instance"


# -- the tests ------------------------------------------------------------------------------------


def test_upstream_names_are_the_ones_the_issue_names() -> None:
    """Guards the parsing: the names read from the upstream
    sources are the ones LiteMaaS documents."""
    helm = helm_install()
    assert helm.litellm_name == "litemaas-litellm"
    assert {"database-url", "litellm-database-url"} <= helm.secrets["litemaas-backend"]
    assert {"database-url", "master-key"} <= helm.secrets["litemaas-litellm"]
    kust = kustomize_install()
    assert kust.litellm_name == "litellm"
    assert "database-url" in kust.secrets["backend-secret"]
    assert {"database-url", "master-key"} <= kust.secrets["litellm-secret"]
    rhdp = rhdp_install()
    assert rhdp.litellm_name == "litellm"
    assert "DATABASE_URL" in rhdp.secrets["litemaas-db"]
    assert "LITELLM_MASTER_KEY" in rhdp.secrets["litellm-secret"]
    assert not any("LITELLM_SALT_KEY" in keys for keys in rhdp.secrets.values())
    for install in (helm, kust, rhdp):
        assert (
            install.litellm_image
            == "quay.io/rh-aiservices-bu/litellm-non-root:main-v1.81.0-stable-custom"
        )


def test_every_secret_key_and_deployment_we_reference_exists_upstream(
    rendered: tuple[str, str, Docs],
) -> None:
    flavour, mode, docs = rendered
    install = install_of(flavour)
    refs = list(secret_refs(ours(docs) + find(docs, "Deployment", install.litellm_name)))
    assert refs
    for where, name, key in refs:
        if name == RELAY_SECRET:  # ours: the operator (Helm, Kustomize) or the role (RHDP) makes it
            assert key == "password", where
            continue
        assert name in install.secrets, (
            f"{flavour}/{mode}: {where} refers to secret {name!r}, not in {flavour}"
        )
        assert key in install.secrets[name], (
            f"{flavour}/{mode}: {where}: secret {name} has no key {key!r}"
        )
    wanted = {where.split(":")[1] for where, _, _ in refs if where.startswith("Job/")}
    assert {"LITEMAAS_DATABASE_URL", "LITELLM_DATABASE_URL", "LITELLM_MASTER_KEY"} <= wanted
    # LiteLLM's Deployment is still the upstream one (same name), not a second one
    assert len(find(docs, "Deployment", install.litellm_name)) == 1


def test_plugin_mode_wires_config_shim_mount_and_image(rendered: tuple[str, str, Docs]) -> None:
    flavour, mode, docs = rendered
    install = install_of(flavour)
    (litellm,) = find(docs, "Deployment", install.litellm_name)
    spec = litellm["spec"]["template"]["spec"]
    container = next(c for c in spec["containers"] if c["name"] == "litellm")
    env = env_of(container)
    if mode == "standalone":
        assert container["image"] == install.litellm_image
        assert "CONFIG_FILE_PATH" not in env
        assert "LITEMAAS_DATABASE_URL" not in env
        return
    assert container["image"] != install.litellm_image, (
        "LiteLLM must run the image with litemaas-hooks"
    )
    # the relay role's URL (test_least_privilege.py checks it is never an owner's)
    assert "$(LITEMAAS_HOOKS_RELAY_PASSWORD)@" in env["LITEMAAS_DATABASE_URL"]["value"]
    config_path = Path(env["CONFIG_FILE_PATH"]["value"])
    mount = next(m for m in container["volumeMounts"] if Path(m["mountPath"]) == config_path.parent)
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    (configmap,) = find(docs, "ConfigMap", volume["configMap"]["name"])
    assert set(configmap["data"]) >= {config_path.name, "litemaas_hooks.py"}
    assert configmap["data"]["litemaas_hooks.py"] == SHIM_SOURCE
    config = yaml.safe_load(configmap["data"][config_path.name])
    assert CALLBACK in config["litellm_settings"]["callbacks"]
    # LiteLLM's own env is kept
    assert "DATABASE_URL" in env
    assert "STORE_MODEL_IN_DB" in env


def test_jobs_and_relay_run_under_openshift_restricted_scc(rendered: tuple[str, str, Docs]) -> None:
    flavour, mode, docs = rendered
    specs = list(pod_specs(ours(docs)))
    assert {d["kind"] for d, _ in specs} == ({"Job"} if mode == "plugin" else {"Job", "Deployment"})
    for d, spec in specs:
        what = f"{flavour}/{mode} {d['kind']}/{d['metadata']['name']}"
        assert spec["securityContext"]["runAsNonRoot"] is True, what
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", what
        assert "runAsUser" not in spec["securityContext"], f"{what}: OpenShift assigns the UID"
        mounts: set[str] = set()
        empty_dirs = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, what
            assert sc["capabilities"]["drop"] == ["ALL"], what
            assert "runAsUser" not in sc, what
            mounts |= {m["mountPath"] for m in c.get("volumeMounts", []) if m["name"] in empty_dirs}
            home = env_of(c)["HOME"]["value"]
            assert any(home == m or home.startswith(m.rstrip("/") + "/") for m in mounts), (
                f"{what}: HOME not writable"
            )
            assert c["resources"]["limits"]["memory"], what


def test_job_is_a_rerunnable_hook_that_waits_for_litellm(rendered: tuple[str, str, Docs]) -> None:
    flavour, _mode, docs = rendered
    (job,) = find(docs, "Job", "litemaas-hooks-install")
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    annotations = job["metadata"].get("annotations") or {}
    if flavour != "rhdp":  # Ansible re-creates and waits for the Job itself
        # migrations before new code
        assert annotations["helm.sh/hook"] == "post-install,pre-upgrade"
        assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
        assert annotations["argocd.argoproj.io/hook"] == "PostSync"
        assert annotations["argocd.argoproj.io/hook-delete-policy"] == "BeforeHookCreation"
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:2] == ["sh", "-c"]
    steps = [shlex.split(step) for step in command[2].split("&&")]
    # install (plugin mode: backend with the relay role, then LiteLLM), then backfill
    assert [s[:2] for s in steps[:-1]] == [["litemaas-hooks", "install"]] * (len(steps) - 1)
    assert steps[-1][:2] == ["litemaas-hooks", "backfill"]
    for step in steps:  # the flags exist in the CLI we ship
        args = cli._parser().parse_args(step[1:])
        if step[1] == "install":
            assert args.wait_for_litellm >= 300


def test_relay_has_probes_metrics_service_and_servicemonitor(
    rendered: tuple[str, str, Docs],
) -> None:
    _flavour, mode, docs = rendered
    # the series are in LiteLLM's /metrics (deploy/monitoring/podmonitor-litellm.yaml)
    if mode != "standalone":
        assert not find(docs, "Deployment", "litemaas-hooks-relay")
        return
    (relay,) = find(docs, "Deployment", "litemaas-hooks-relay")
    (service,) = find(docs, "Service", "litemaas-hooks-relay")
    container = relay["spec"]["template"]["spec"]["containers"][0]
    port = next(p for p in container["ports"] if p["name"] == "metrics")
    assert env_of(container)["LITEMAAS_HOOKS_HTTP_PORT"]["value"] == str(port["containerPort"])
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["command"] == ["litemaas-hooks", "relay"]
    labels = relay["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    monitor = yaml.safe_load((DEPLOY / "monitoring" / "servicemonitor-relay.yaml").read_text())
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"


def test_rendered_manifests_pass_kubernetes_schemas(rendered: tuple[str, str, Docs]) -> None:
    flavour, mode, docs = rendered
    path = render_dir(f"validate-{flavour}-{mode}") / "all.yaml"
    dump(path, docs)
    # OpenShift 4.14 = Kubernetes 1.27, the oldest LiteMaaS's RHDP collection lists
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "-k", "1.27", "--quiet", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_job_is_the_same_in_every_flavour() -> None:
    """The three copies of the install Job differ only in
    secret names/keys, image and hook annotations."""

    def normalised(flavour: str) -> dict[str, Any]:
        (job,) = find(render(flavour, "plugin"), "Job", "litemaas-hooks-install")
        job["metadata"].pop("annotations", None)
        spec = job["spec"]["template"]["spec"]
        for c in spec["containers"]:
            c["image"] = "IMAGE"
            for e in c["env"]:
                if "valueFrom" in e:
                    e["valueFrom"] = "SECRET"
        spec["containers"][0]["command"][2] = spec["containers"][0]["command"][2].replace(
            "900", "N"
        )
        job["spec"]["activeDeadlineSeconds"] = "N"
        return job

    reference = normalised("kustomize")
    assert normalised("helm") == reference
    assert normalised("rhdp") == reference


def test_shim_and_config_copies_are_identical() -> None:
    shared = DEPLOY / "shared" / "plugin-config"
    assert (shared / "litemaas_hooks.py").read_text() == SHIM_SOURCE
    assert (ROLE / "files" / "litemaas_hooks.py").read_text() == SHIM_SOURCE
    assert (ROLE / "files" / "config.yaml").read_text() == (shared / "config.yaml").read_text()


def test_rhdp_patch_and_unpatch_restore_litellm() -> None:
    """state=absent's strategic-merge patch gives RHDP's LiteLLM Deployment back as it was."""
    out = rhdp_role_output()
    (out / "kustomization.yaml").write_text(
        "resources: [litellm.yaml]\npatches:\n  - path: role/litemaas-hooks-litellm-patch.yml\n"
        "  - path: role/litemaas-hooks-litellm-unpatch.yml\n"
    )
    (restored,) = find(kustomize(out), "Deployment")
    original = copy.deepcopy(rhdp_install().litellm_deployment)
    restored["spec"]["template"]["metadata"].pop("annotations", None)
    assert not restored["spec"]["template"]["spec"].get("volumes")
    restored["spec"]["template"]["spec"].pop("volumes", None)
    container = restored["spec"]["template"]["spec"]["containers"][0]
    if not container.get("volumeMounts"):
        container.pop("volumeMounts", None)
    assert restored == original


def test_rhdp_role_switches_the_manual_sync_off() -> None:
    vars_file = {
        "ocp4_workload_litemaas_models_sync_from_litellm": False,
        "ocp4_workload_litemaas_models_cleanup_orphaned": False,
    }
    assert not (DEPLOY / "rhdp" / "vars").exists(), (
        "models are added with the role's model list now"
    )
    upstream = yaml.safe_load(
        (
            unpacked("rhpds.litemaas-f4545df")
            / "roles"
            / "ocp4_workload_litemaas_models"
            / "defaults"
            / "main.yml"
        ).read_text()
    )
    assert set(vars_file) <= set(upstream), "the manual sync's variables were renamed upstream"
    tasks = yaml.safe_load((ROLE / "tasks" / "workload.yml").read_text())
    set_facts = [t["ansible.builtin.set_fact"] for t in tasks if "ansible.builtin.set_fact" in t]
    assert set_facts == [vars_file]


def test_ansible_syntax_check_and_lint() -> None:
    env = ansible_env()
    playbook = str(DEPLOY / "rhdp" / "playbooks" / "litemaas_hooks.yml")
    syntax = subprocess.run(
        [tool("ansible-playbook"), "--syntax-check", playbook],
        capture_output=True,
        text=True,
        env=env,
        cwd=DEPLOY / "rhdp",
        check=False,
    )
    assert syntax.returncode == 0, syntax.stdout + syntax.stderr
    lint = subprocess.run(
        [tool("ansible-lint"), "--offline", "--nocolor", "playbooks/litemaas_hooks.yml", "roles/"],
        capture_output=True,
        text=True,
        env=env,
        cwd=DEPLOY / "rhdp",
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
