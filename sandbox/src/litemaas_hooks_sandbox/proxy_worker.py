"""Runs inside the sandbox's LiteLLM proxy process: gives LiteLLM the psycopg-backed Prisma stand-in.

Nothing in LiteLLM's files is changed. Two ways in, chosen by :mod:`litemaas_hooks_sandbox.proxy`:

* LiteLLM >= 1.108 (``litellm`` CLI): ``LITELLM_WORKER_STARTUP_HOOKS=litemaas_hooks_sandbox.proxy_worker:
  install_standin``. The lifespan ``proxy_startup_event`` runs that hook first and only then
  ``if prisma_client is None: setup_prisma_client(...)``; a hook that sets
  ``litellm.proxy.proxy_server.prisma_client`` therefore keeps LiteLLM from building its own (which would
  need Prisma's native engines, downloaded from the internet).
* LiteLLM 1.81 (no such setting): ``python -m litemaas_hooks_sandbox.proxy_worker --config ... --port ...``
  replaces ``ProxyStartupEvent._setup_prisma_client`` at runtime with one returning the stand-in and
  serves ``proxy_server.app`` with uvicorn, like the CLI does.

The LiteLLM DSN comes in ``LITEMAAS_SANDBOX_LITELLM_DSN`` and becomes ``DATABASE_URL`` only here, inside
the worker: given to the ``litellm`` CLI, ``DATABASE_URL`` makes it run ``npm install prisma`` and a
migration step (and exit 2 offline). With it set in the worker, LiteLLM's code paths that check for a
database (UI login, ``/model/new`` with ``STORE_MODEL_IN_DB``) see one.

After connecting, LiteLLM's own view setup (``start_view_setup_task``) runs over the stand-in, so the
spend pages of the Admin UI find their views.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from typing import Any, Final

DSN_ENV: Final = "LITEMAAS_SANDBOX_LITELLM_DSN"

_log = logging.getLogger("litemaas_hooks_sandbox.proxy_worker")


async def _connect_standin(proxy_logging_obj: object) -> Any:
    from litemaas_hooks_sandbox.prisma_standin import StandinPrismaClient

    dsn = os.environ.get(DSN_ENV)
    if not dsn:
        raise RuntimeError(f"{DSN_ENV} is not set: the sandbox launcher passes the LiteLLM database DSN in it")
    os.environ["DATABASE_URL"] = dsn  # only inside the worker, after the CLI has started (see above)
    client = await StandinPrismaClient.connect(dsn, proxy_logging_obj=proxy_logging_obj)
    try:
        client.start_view_setup_task()  # LiteLLM's own view setup, over the stand-in
    except Exception as exc:  # a LiteLLM version without it, or a view it cannot build
        _log.warning("LiteLLM view setup over the Prisma stand-in failed: %s", exc)
    return client


async def install_standin() -> None:
    """``LITELLM_WORKER_STARTUP_HOOKS`` entry (LiteLLM >= 1.108): set ``proxy_server.prisma_client``."""
    from litellm.proxy import proxy_server

    proxy_server.prisma_client = await _connect_standin(proxy_server.proxy_logging_obj)


def _patch_setup_prisma_client() -> None:
    """LiteLLM 1.81: make ``ProxyStartupEvent._setup_prisma_client`` return the stand-in."""
    from litellm.proxy import proxy_server

    async def setup(*args: Any, **kwargs: Any) -> Any:
        return await _connect_standin(kwargs.get("proxy_logging_obj", proxy_server.proxy_logging_obj))

    names = [n for n in ("_setup_prisma_client", "setup_prisma_client") if hasattr(proxy_server.ProxyStartupEvent, n)]
    if not names:
        raise RuntimeError("this LiteLLM has no ProxyStartupEvent._setup_prisma_client to replace")
    for name in names:
        setattr(proxy_server.ProxyStartupEvent, name, classmethod(lambda cls, *a, **k: setup(*a, **k)))


def main(argv: list[str] | None = None) -> int:
    """Serve ``proxy_server.app`` with uvicorn, the stand-in patched in (the way for LiteLLM 1.81)."""
    parser = argparse.ArgumentParser(prog="python -m litemaas_hooks_sandbox.proxy_worker")
    parser.add_argument("--config", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    # what `litellm --config` does before starting uvicorn
    os.environ["CONFIG_FILE_PATH"] = args.config
    import uvicorn

    _patch_setup_prisma_client()
    from litellm.proxy import proxy_server

    config = uvicorn.Config(proxy_server.app, host=args.host, port=args.port, log_level="info", loop="asyncio")
    asyncio.run(uvicorn.Server(config).serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
