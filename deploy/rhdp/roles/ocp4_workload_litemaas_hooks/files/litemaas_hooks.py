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
