"""images/: base images cannot be pulled here (no container engine), so the Containerfiles are
linted (hadolint) and checked structurally, and their install steps run for real:

- ``install-into-litellm.sh`` (the exact step of
  Containerfile.plugin) in a fresh venv holding litellm
  1.81.0: litemaas-hooks is added, litellm's version
  (and every other installed package) is unchanged;
- the relay image's environment (litellm 1.81.0 without proxy extras + our package) installs and
  backfills against real PostgreSQL.

Venvs are built offline from uv's cache (warmed by ``scripts/install-deploy-tools.sh``); pip runs
with ``PIP_NO_INDEX=1``: nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from tests.deploy.upstream import CACHE, ROOT, helm_install, tool
from tests.helpers import execute, insert_rows, litellm_row

IMAGES = ROOT / "images"
FORK = "quay.io/rh-aiservices-bu/litellm-non-root:main-v1.81.0-stable-custom"
OFFLINE = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_TELEMETRY_DISABLED": "True",
    "PIP_NO_INDEX": "1",
}


def _uv() -> str:
    return str(Path(tool("python")).parent / "uv")


def _run(
    *cmd: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stdout}\n{result.stderr}"
    return result


def _versions(python: Path) -> dict[str, str]:
    out = _run(
        str(python),
        "-c",
        "import json; from importlib.metadata import distributions as d; "
        "print(json.dumps({x.metadata['Name'].lower(): x.version for x in d()}))",
    )
    versions: dict[str, str] = json.loads(out.stdout)
    return versions


@cache
def _wheel() -> Path:
    out = CACHE / "images" / "wheel"
    shutil.rmtree(out, ignore_errors=True)
    _run(_uv(), "build", "--wheel", "--offline", "--quiet", "-o", str(out), str(ROOT))
    (wheel,) = out.glob("litemaas_hooks-*.whl")
    return wheel


def _venv(name: str, *specs: str) -> Path:
    """A fresh venv (with pip) holding ``specs``, installed offline from uv's cache."""
    path = CACHE / "images" / name
    shutil.rmtree(path, ignore_errors=True)
    _run(_uv(), "venv", "--offline", "--quiet", "--seed", "--python", sys.executable, str(path))
    if specs:
        _run(
            _uv(),
            "pip",
            "install",
            "--offline",
            "--quiet",
            "--python",
            str(path / "bin" / "python"),
            *specs,
        )
    return path / "bin" / "python"


def _directives(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_containerfiles_pass_hadolint() -> None:
    _run(
        tool("hadolint"), str(IMAGES / "Containerfile.plugin"), str(IMAGES / "Containerfile.relay")
    )


def test_plugin_image_builds_on_litemaas_fork_as_root_and_runs_as_its_user() -> None:
    steps = _directives(IMAGES / "Containerfile.plugin")
    args = {
        rest.split("=", 1)[0]: rest.split("=", 1)[1]
        for word, rest in steps
        if word == "ARG" and "=" in rest
    }
    assert args["BASE_IMAGE"] == FORK == helm_install().litellm_image  # what LiteMaaS deploys
    assert ("FROM", "${BASE_IMAGE}") in steps
    users = [(i, rest) for i, (word, rest) in enumerate(steps) if word == "USER"]
    runs = [i for i, (word, _) in enumerate(steps) if word == "RUN"]
    assert users[0][1] == "0", "install as root"
    assert users[0][0] < runs[0]
    assert users[-1][1] == "${LITELLM_USER}", "then back to the image's user"
    assert users[-1][0] > runs[-1]
    assert args["LITELLM_USER"] not in {"0", "root"}
    # LiteMaaS starts `/usr/bin/python3.13 /usr/bin/litellm`
    assert args["PYTHON"] == "/usr/bin/python3.13"
    (run,) = [rest for word, rest in steps if word == "RUN"]
    assert (
        'PYTHON="${PYTHON}" sh /tmp/litemaas-hooks/install-into-litellm.sh /tmp/litemaas-hooks'
        in run
    )
    for word, rest in steps:  # everything copied exists in the repository
        if word == "COPY" and not rest.startswith("--from"):
            for source in rest.split()[:-1]:
                assert (ROOT / source).exists(), source


def test_relay_image_holds_the_litellm_version_litemaas_runs_and_runs_as_any_uid() -> None:
    steps = _directives(IMAGES / "Containerfile.relay")
    args = {
        rest.split("=", 1)[0]: rest.split("=", 1)[1]
        for word, rest in steps
        if word == "ARG" and "=" in rest
    }
    fork_version = re.search(r"v(\d+\.\d+\.\d+)", helm_install().litellm_image)
    assert fork_version is not None
    assert args["LITELLM_VERSION"] == fork_version.group(1)
    (run,) = [rest for word, rest in steps if word == "RUN"]
    # litellm without proxy extras, and us: nothing else
    assert '"litellm==${LITELLM_VERSION}" /src' in run
    assert ("USER", "1001:0") in steps
    env = " ".join(rest for word, rest in steps if word == "ENV")
    assert "LITEMAAS_HOOKS_HTTP_PORT=9464" in env
    assert "LITELLM_LOCAL_MODEL_COST_MAP=True" in env
    assert ("EXPOSE", "9464") in steps


@dataclass
class Installed:
    python: Path
    before: dict[str, str]
    after: dict[str, str]
    stdout: str


@pytest.fixture(scope="module")
def installed() -> Installed:
    """LiteMaaS's image stand-in -- LiteLLM 1.81.0 with its dependencies, and ours so that pip can
    run offline (the constraint file pins each of them too) --
    then Containerfile.plugin's install step, as it is."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    python = _venv("litellm-1.81", "litellm==1.81.0", *deps)
    before = _versions(python)
    env = {**os.environ, **OFFLINE, "PYTHON": str(python)}
    out = _run("sh", str(IMAGES / "install-into-litellm.sh"), str(_wheel()), env=env)
    return Installed(python, before, _versions(python), out.stdout)


@pytest.mark.slow
def test_install_into_litellm_keeps_litellm_and_every_installed_package(
    installed: Installed,
) -> None:
    assert installed.before["litellm"] == "1.81.0"
    assert "litemaas-hooks" not in installed.before
    assert "litellm 1.81.0 unchanged" in installed.stdout
    after = dict(installed.after)
    assert after.pop("litemaas-hooks") == _versions(Path(sys.executable))["litemaas-hooks"]
    assert after == installed.before  # nothing replaced, nothing else added


@pytest.mark.slow
def test_install_into_litellm_refuses_an_interpreter_without_litellm() -> None:
    python = _venv("no-litellm")
    result = subprocess.run(
        ["sh", str(IMAGES / "install-into-litellm.sh"), str(_wheel())],
        capture_output=True,
        text=True,
        env={**os.environ, **OFFLINE, "PYTHON": str(python)},
        check=False,
    )
    assert result.returncode == 1
    assert "has no litellm installed" in result.stderr


@pytest.mark.slow
def test_litellm_1_81_without_proxy_extras_plus_ours_installs_and_backfills(
    installed: Installed, hooks_env: dict[str, str], master_key: str
) -> None:
    """What Containerfile.relay holds (litellm 1.81.0 without its proxy extras + litemaas-hooks) is
    enough for install + backfill, decryption included (PyNaCl is a dependency of ours: litellm 1.81
    has it only in its [proxy] extra)."""
    assert "fastapi" not in installed.after  # no proxy extras
    cli = str(installed.python.parent / "litemaas-hooks")
    env = {**os.environ, **OFFLINE, **hooks_env}
    insert_rows(
        hooks_env["LITELLM_DATABASE_URL"],
        [litellm_row("slim-model", {"model": "openai/slim", "api_key": "sk-x"}, key=master_key)],
    )
    _run(cli, "install", "--wait-for-litellm", "10", env=env, cwd=CACHE)
    out = _run(cli, "backfill", "--quiet", env=env, cwd=CACHE)
    assert "created 1" in out.stdout
    assert execute(hooks_env["LITEMAAS_DATABASE_URL"], "SELECT id FROM models") == [("slim-model",)]
