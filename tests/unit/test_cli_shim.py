"""The shim LiteLLM 1.81 needs next to config.yaml: the shipped sample equals what the CLI writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from litemaas_hooks import cli
from litemaas_hooks.shim import SHIM_SOURCE


def test_sample_shim_matches_the_package() -> None:
    sample = Path(__file__).parents[2] / "config" / "litemaas_hooks.py"
    assert sample.read_text(encoding="utf-8") == SHIM_SOURCE


def test_write_shim_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["write-shim", str(tmp_path)]) == 0
    assert (tmp_path / "litemaas_hooks.py").read_text(encoding="utf-8") == SHIM_SOURCE
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("how", ["as LiteLLM 1.81 loads it", "imported from the config folder"])
def test_shim_loads_the_package_even_from_its_own_folder(tmp_path: Path, how: str) -> None:
    """The shim is named like the package: from a working directory holding it, it must not shadow it."""
    import subprocess
    import sys

    cli.main(["write-shim", str(tmp_path)])
    if how == "as LiteLLM 1.81 loads it":
        load = (
            "import importlib.util; spec = importlib.util.spec_from_file_location('litemaas_hooks', "
            "'litemaas_hooks.py'); m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)"
        )
    else:
        load = "import litemaas_hooks as m"
    code = f"import sys; sys.path.insert(0, ''); {load}; print(type(m.proxy_handler_instance).__name__)"
    env = {"PATH": "/usr/bin:/bin", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITEMAAS_HOOKS_ENABLED": "false"}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "LiteMaaSHooks"
