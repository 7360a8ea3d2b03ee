"""The shim file LiteLLM 1.81 needs next to its config.yaml (written by ``litemaas-hooks
write-shim``).

Kept apart from ``plugin.py`` so that writing it never imports LiteLLM.
"""

from __future__ import annotations

import os
from pathlib import Path

SHIM_FILENAME = "litemaas_hooks.py"
SHIM_SOURCE = """\
# Mounted next to LiteLLM's config.yaml: LiteLLM 1.81 loads `callbacks: ["litemaas_hooks.proxy_handler_instance"]`
# from <config dir>/litemaas_hooks.py only. The real code is the installed litemaas-hooks package.
# This file has the package's name, so it hides its own folder while importing the package (when the
# config folder is also the working directory or on sys.path, it would otherwise shadow the package).
import importlib
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
_path = sys.path[:]
_shadow = sys.modules.get("litemaas_hooks")
if _shadow is not None and not hasattr(_shadow, "__path__"):
    del sys.modules["litemaas_hooks"]  # this very file, imported as a module: not the package
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
try:
    _plugin = importlib.import_module("litemaas_hooks.plugin")  # fails clearly if the package is missing
finally:
    sys.path[:] = _path
proxy_handler_instance = _plugin.get_instance()
"""  # noqa: E501 (the shim's text, copied verbatim into deploy/: keep it as it is)


def write_shim(config_dir: str | os.PathLike[str]) -> Path:
    """Write ``SHIM_SOURCE`` as ``<config_dir>/litemaas_hooks.py`` (needed by LiteLLM 1.81)."""
    path = Path(config_dir) / SHIM_FILENAME
    path.write_text(SHIM_SOURCE, encoding="utf-8")
    return path
