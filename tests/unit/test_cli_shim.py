"""The shim LiteLLM 1.81 needs next to config.yaml: the shipped sample equals what the CLI writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from litemaas_hooks import cli
from litemaas_hooks.plugin import SHIM_SOURCE


def test_sample_shim_matches_the_package() -> None:
    sample = Path(__file__).parents[2] / "config" / "litemaas_hooks.py"
    assert sample.read_text(encoding="utf-8") == SHIM_SOURCE


def test_write_shim_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["write-shim", str(tmp_path)]) == 0
    assert (tmp_path / "litemaas_hooks.py").read_text(encoding="utf-8") == SHIM_SOURCE
    assert "wrote" in capsys.readouterr().out
