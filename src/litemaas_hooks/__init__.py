"""litemaas-hooks: keep the LiteMaaS backend ``models`` table in sync with LiteLLM's models.

Data flow (one module per step)::

    LiteLLM_ProxyModelTable --trigger--> outbox (sql/litellm) --relay.py--> reconcile.py
        --> mapping.py / planning.py (pure) --> backend_sink.py
        --> sql/backend functions --> public.models

``litemaas_hooks.proxy_handler_instance`` is the LiteLLM callback object (see ``plugin.py``). It is
created lazily, on first attribute access, so importing the package never imports LiteLLM's proxy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from litemaas_hooks.plugin import LiteMaaSHooks

    proxy_handler_instance: LiteMaaSHooks


def __getattr__(name: str) -> Any:
    if name == "proxy_handler_instance":
        from litemaas_hooks import plugin

        instance = plugin.get_instance()
        globals()[name] = instance
        return instance
    raise AttributeError(f"module 'litemaas_hooks' has no attribute {name!r}")
