"""The ``DATABASE_URL`` the installed ``litellm`` CLI leaves for Prisma (its own code, run).

``cli_database_url`` runs LiteLLM's ``run_server`` (the ``litellm`` console script) in a child
process with the given environment and config.yaml, and stops it right after the CLI rewrote
``DATABASE_URL``: 1.108 then asks ``prisma_cli_available()``, 1.81 runs ``prisma`` through
``subprocess.run``; both are replaced in the child by a function that prints ``DATABASE_URL`` and
exits. Nothing of the rewrite is re-implemented here, so a parameter a LiteLLM release starts
appending shows up in the result.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

_PROBE = r"""
import os, subprocess, sys
def _report(*args, **kwargs):
    sys.stdout.write("\nLITEMAAS_PROBE_DATABASE_URL=" + os.environ.get("DATABASE_URL", "") + "\n")
    sys.stdout.flush()
    os._exit(0)
try:
    # 1.108: asked right after the rewrite
    import litellm_proxy_extras.prisma_toolchain as toolchain
    toolchain.prisma_cli_available = _report
except ImportError:
    pass
subprocess.run = _report  # 1.81: `prisma` is run right after the rewrite
from litellm.proxy.proxy_cli import run_server
run_server.main(args=sys.argv[1:], standalone_mode=True)
sys.stdout.write("\nLITEMAAS_PROBE_NO_DATABASE_URL\n")
"""

_MARK = "LITEMAAS_PROBE_DATABASE_URL="


def cli_database_url(
    env: Mapping[str, str], config_yaml: str | None, tmp_path: Path, *, timeout: float = 120.0
) -> str:
    """``DATABASE_URL`` as LiteLLM's CLI rewrote it for ``env`` (+ ``config_yaml`` when given)."""
    args = [sys.executable, "-c", _PROBE]
    if config_yaml is not None:
        config = tmp_path / "config.yaml"
        config.write_text(config_yaml, encoding="utf-8")
        args += ["--config", str(config)]
    child_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "LITELLM_", "LITEMAAS_"))
    }
    child_env.pop("DIRECT_URL", None)
    child_env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_MODE": "PRODUCTION", **env})
    proc = subprocess.run(
        args,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith(_MARK):
            return line[len(_MARK) :]
    raise AssertionError(
        "the litellm CLI did not reach its DATABASE_URL rewrite (has proxy_cli.py changed?): "
        f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    )
