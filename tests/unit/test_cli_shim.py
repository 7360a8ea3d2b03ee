"""The shim LiteLLM 1.81 needs next to config.yaml:
every shipped copy equals what the CLI writes."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from litemaas_hooks import cli
from litemaas_hooks.shim import SHIM_SOURCE

ROOT = Path(__file__).parents[2]
# the shipped copies: the kustomize/helm plugin ConfigMap, the RHDP role's files
COPIES = {
    "deploy/shared/plugin-config/litemaas_hooks.py",
    "deploy/rhdp/roles/ocp4_workload_litemaas_hooks/files/litemaas_hooks.py",
}
_SKIP_DIRS = {
    ".git",
    ".cache",
    "node_modules",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
}
_MARKER = "Mounted next to LiteLLM's config.yaml"  # the shim's first line


def _tree_files() -> list[Path]:
    out: list[Path] = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".venv")]
        out.extend(Path(folder) / f for f in files)
    return out


def test_every_shim_copy_in_the_tree_is_what_write_shim_writes(tmp_path: Path) -> None:
    """One source of truth (``litemaas_hooks.shim``): every file of the tree that is, or embeds, the
    shim equals the output of ``litemaas-hooks write-shim``. A copy found by name or by its first
    line that differs, or a new copy, fails here with the command that regenerates it."""
    assert cli.main(["write-shim", str(tmp_path)]) == 0
    written = (tmp_path / "litemaas_hooks.py").read_text(encoding="utf-8")
    named, embedding = set(), set()
    for path in _tree_files():
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("src/litemaas_hooks/") or rel.startswith("tests/"):
            continue  # the source itself (shim.py) and tests quoting it
        if path.name == "litemaas_hooks.py":
            named.add(rel)
        elif path.suffix in {".py", ".yaml", ".yml", ".j2", ".json", ".txt", ".md"}:
            with contextlib.suppress(UnicodeDecodeError, OSError):
                if _MARKER in path.read_text(encoding="utf-8"):
                    embedding.add(rel)
    assert named == COPIES, f"shim copies changed: {sorted(named ^ COPIES)}; list them in COPIES"
    assert not embedding, (
        f"{sorted(embedding)} embed the shim's text: load litemaas_hooks.py instead"
    )
    stale = sorted(rel for rel in named if (ROOT / rel).read_text(encoding="utf-8") != written)
    fix = "; ".join(f"litemaas-hooks write-shim {Path(rel).parent}" for rel in stale)
    assert not stale, f"{stale} differ from what write-shim writes; regenerate: {fix}"


def test_write_shim_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["write-shim", str(tmp_path)]) == 0
    assert (tmp_path / "litemaas_hooks.py").read_text(encoding="utf-8") == SHIM_SOURCE
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("how", ["as LiteLLM 1.81 loads it", "imported from the config folder"])
def test_shim_loads_the_package_even_from_its_own_folder(tmp_path: Path, how: str) -> None:
    """The shim is named like the package: from a working
    directory holding it, it must not shadow it."""
    import subprocess
    import sys

    cli.main(["write-shim", str(tmp_path)])
    if how == "as LiteLLM 1.81 loads it":
        load = (
            "import importlib.util; spec = "
            "importlib.util.spec_from_file_location('litemaas_hooks', "
            "'litemaas_hooks.py'); m = "
            "importlib.util.module_from_spec(spec); spec.loader.exec_module(m)"
        )
    else:
        load = "import litemaas_hooks as m"
    code = (
        f"import sys; sys.path.insert(0, ''); {load}; "
        "print(type(m.proxy_handler_instance).__name__)"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITEMAAS_HOOKS_ENABLED": "false",
    }
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "LiteMaaSHooks"
