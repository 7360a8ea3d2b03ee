"""The LiteLLM callback plugin: runs the relay inside every LiteLLM worker.

Mount it in LiteLLM's ``config.yaml``::

    litellm_settings:
      callbacks: ["litemaas_hooks.proxy_handler_instance"]

LiteLLM resolves that name while it loads its config, on its running event loop, once per worker
process. ``get_instance()`` then builds one ``LiteMaaSHooks`` per process, whose constructor starts
the relay as a background task on that loop. The plugin overrides no request hook: LLM requests
never wait on it.

- Settings come from the environment (``LITEMAAS_DATABASE_URL``, ``LITELLM_DATABASE_URL`` else
  ``DATABASE_URL``; see ``settings.py``). When they are missing or invalid the plugin logs ONE error
  and stays inert: it never prevents the proxy from starting or serving.
- Before relaying it waits (up to ``PROXY_READY_TIMEOUT_SECONDS``) until the proxy finished loading
  its config, i.e. until ``litellm.proxy.proxy_server.llm_router`` is set. Then:
  - the decryption key follows LiteLLM's precedence: ``LITELLM_SALT_KEY``, else the proxy's
    ``master_key`` (which may come from ``general_settings.master_key`` in config.yaml), else
    ``LITELLM_MASTER_KEY``; read on every use, so a rotated key is picked up;
  - config-file models (never in the database) are read from the router on every converge, so they
    are synced and never retired for being absent from the table.
- A read-only status route, ``GET /litemaas-hooks/status``, is added to the proxy, protected by
  LiteLLM's own ``user_api_key_auth`` and restricted to proxy admins.
- LiteLLM 1.81 resolves a callback name ONLY from a file next to config.yaml (``<config dir>/
  litemaas_hooks.py``), never from site-packages; 1.108 prefers that file and falls back to
  site-packages. So, with the package installed in LiteLLM's image, also mount the two-line shim
  ``SHIM_SOURCE`` as ``litemaas_hooks.py`` beside config.yaml (``write_shim(config_dir)``); it works
  with every version.
- Without a running event loop (e.g. imported by a test or a script) nothing starts; call
  ``instance.start()`` later from inside a running loop.
- Crash-only: LiteLLM workers exit on SIGTERM without cancelling tasks; nothing needs flushing.

Works with litellm 1.81.x and 1.108.x (only ``CustomLogger``, ``proxy_server.llm_router``,
``proxy_server.master_key``, ``proxy_server.app`` and ``user_api_key_auth`` are used).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from litemaas_hooks import litellm_adapter, logs
from litemaas_hooks.errors import ProxyNotReadyError, describe
from litemaas_hooks.redaction import scrub
from litemaas_hooks.relay import Relay
from litemaas_hooks.settings import Settings, env_secrets, load_settings
from litemaas_hooks.shim import SHIM_FILENAME, SHIM_SOURCE, write_shim

__all__ = ["SHIM_FILENAME", "SHIM_SOURCE", "LiteMaaSHooks", "get_instance", "write_shim"]

log = logging.getLogger("litemaas_hooks.plugin")

PROXY_READY_TIMEOUT_SECONDS = 300.0
STATUS_ROUTE = "/litemaas-hooks/status"


def _proxy_config_models() -> list[dict[str, Any]]:
    mod = litellm_adapter.proxy_server_module()
    if mod is None or getattr(mod, "llm_router", None) is None:
        raise ProxyNotReadyError(
            "the LiteLLM proxy's router is not loaded (yet), so its config-file models are unknown"
        )
    return litellm_adapter.router_config_models()


class LiteMaaSHooks(CustomLogger):
    """LiteLLM callback object that runs the litemaas-hooks relay in the proxy's event loop."""

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        autostart: bool = True,
        in_proxy: bool | None = None,
    ) -> None:
        """
        :param environ: settings source (default: the process environment).
        :param autostart: start the relay now when a loop is running (else call ``start()``).
        :param in_proxy: whether this process is a LiteLLM proxy (router, master key, status route);
            default: detected (``litellm.proxy.proxy_server`` is imported).
        """
        super().__init__()
        self._in_proxy = in_proxy
        self.settings: Settings | None = None
        self.error: str | None = None
        self.relay: Relay | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._pid = os.getpid()
        try:
            settings = load_settings(environ)
            settings.backend_dsn()
            settings.litellm_dsn()
        except Exception as exc:  # never let a setting break the proxy
            self.error = scrub(str(exc), env_secrets(environ)).rstrip(".")
            log.error(
                "litemaas-hooks: model sync is OFF in this LiteLLM worker: %s. The proxy itself "
                "runs normally; fix the setting and restart LiteLLM to enable the sync.",
                self.error,
            )
            return
        self.settings = settings
        logs.configure(settings.log_level, settings.secrets(), json_lines=settings.json_log_lines)
        if not settings.enabled:
            log.info("litemaas-hooks: LITEMAAS_HOOKS_ENABLED=false: model sync is off")
            return
        if autostart:
            self.start()

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> bool:
        """Start the relay task on the running loop. False when inert or when there is no running
        loop."""
        if self.settings is None or not self.settings.enabled:
            return False
        if self.running:
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            log.info("litemaas-hooks: no running event loop yet; call start() from inside the loop")
            return False
        self._stop = asyncio.Event()
        relay = self._run(self.settings, self._stop)
        self._task = loop.create_task(relay, name="litemaas-hooks-relay")
        self._task.add_done_callback(self._on_done)
        return True

    async def stop(self) -> None:
        """Stop the relay (tests; the proxy itself just exits, which is safe)."""
        if self._stop is not None:
            self._stop.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    def _on_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            secrets = self.settings.secrets() if self.settings else []
            log.error("litemaas-hooks: the relay stopped: %s", scrub(describe(exc), secrets))

    async def _run(self, settings: Settings, stop: asyncio.Event) -> None:
        in_proxy = await self._wait_for_proxy(stop)
        self.relay = Relay(
            settings,
            config_models=_proxy_config_models if in_proxy else None,
            key=self._key if in_proxy else None,
            name=f"litemaas-hooks[{os.getpid()}]",
        )
        if in_proxy:
            self._add_status_route()
        await self.relay.run(stop)

    async def _wait_for_proxy(self, stop: asyncio.Event) -> bool:
        """True once the proxy loaded its config (router set); False when not inside a proxy."""
        mod = litellm_adapter.proxy_server_module()
        if mod is None or self._in_proxy is False:
            return False
        log.debug("litemaas-hooks: waiting for the proxy to load its config (router)")
        deadline = time.monotonic() + PROXY_READY_TIMEOUT_SECONDS
        while getattr(mod, "llm_router", None) is None and not stop.is_set():
            if time.monotonic() > deadline:
                log.warning(
                    "litemaas-hooks: the proxy's router is still not loaded after %.0fs; relaying "
                    "anyway (names whose config-file models are unknown are retried until it is)",
                    PROXY_READY_TIMEOUT_SECONDS,
                )
                break
            await asyncio.sleep(0.1)
        return True

    def _key(self) -> str | None:
        """LiteLLM's precedence: LITELLM_SALT_KEY, else the proxy's master key, else
        LITELLM_MASTER_KEY."""
        settings = self.settings
        if settings is not None and settings.litellm_salt_key is not None:
            salt = settings.litellm_salt_key.get_secret_value()
            if salt:
                return salt
        master = litellm_adapter.proxy_master_key()
        if master:
            return master
        return settings.decryption_key() if settings is not None else None

    # -- optional read-only status route --------------------------------------------------------

    def _add_status_route(self) -> None:
        try:
            from fastapi import Depends, HTTPException
            from fastapi.responses import JSONResponse
            from litellm.proxy.auth.user_api_key_auth import user_api_key_auth

            mod = litellm_adapter.proxy_server_module()
            app = getattr(mod, "app", None)
            if app is None:
                return
            if any(getattr(r, "path", None) == STATUS_ROUTE for r in app.router.routes):
                return
            plugin = self

            async def litemaas_hooks_status(auth: Any = Depends(user_api_key_auth)) -> Any:  # noqa: B008
                role = getattr(auth, "user_role", None)
                if getattr(role, "value", role) != "proxy_admin":
                    detail = "litemaas-hooks status: proxy admins only"
                    raise HTTPException(status_code=403, detail=detail)
                return JSONResponse(await plugin.status())

            app.add_api_route(
                STATUS_ROUTE, litemaas_hooks_status, methods=["GET"], include_in_schema=False
            )
            # ahead of any catch-all route the proxy registered earlier
            routes = app.router.routes
            routes.insert(0, routes.pop())
        except Exception as exc:
            log.warning("litemaas-hooks: status route not added: %s", type(exc).__name__)

    async def status(self) -> dict[str, Any]:
        """Health of the sync as seen from this worker (the status report + this relay's
        counters)."""
        from litemaas_hooks.status import collect_status

        out: dict[str, Any] = {
            "worker_pid": os.getpid(),
            "error": self.error,
            "relay": None,
            "status": None,
        }
        if self.relay is not None:
            out["relay"] = self.relay.stats.to_dict()
        if self.settings is not None:
            report = await collect_status(
                self.settings, key=self._key, config_models=_proxy_config_models
            )
            out["status"] = json.loads(report.to_json())
        return out


def __getattr__(name: str) -> Any:
    if name == "proxy_handler_instance":
        return get_instance()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_instance: LiteMaaSHooks | None = None
_lock = threading.Lock()


def get_instance() -> LiteMaaSHooks:
    """The process-wide plugin instance (a fresh one in a forked child: tasks do not survive a
    fork)."""
    global _instance
    with _lock:
        if _instance is None or _instance._pid != os.getpid():
            _instance = LiteMaaSHooks()
        elif not _instance.running:
            _instance.start()  # constructed without a loop earlier; the loop may be running now
        return _instance
