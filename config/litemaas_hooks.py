# Mounted next to LiteLLM's config.yaml: LiteLLM 1.81 loads `callbacks: ["litemaas_hooks.proxy_handler_instance"]`
# from <config dir>/litemaas_hooks.py only. The real code is the installed litemaas-hooks package.
import importlib

_plugin = importlib.import_module("litemaas_hooks.plugin")  # fails clearly if the package is not installed
proxy_handler_instance = _plugin.get_instance()
