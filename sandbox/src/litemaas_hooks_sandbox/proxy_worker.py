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
_background: set[asyncio.Task[Any]] = set()


def _expose_generated_names() -> None:
    """What ``prisma generate`` puts into ``prisma/__init__.py`` and LiteLLM imports from there
    (``from prisma import Json``): the field types of ``prisma.fields``. The package is not generated
    here (no engines), so the worker adds those names to the imported module; the stand-in unwraps them."""
    import prisma
    import prisma.fields

    for name in ("Json", "Base64"):  # prisma/_fields.py's __all__, re-exported by the generated __init__
        if not hasattr(prisma, name) and hasattr(prisma.fields, name):
            setattr(prisma, name, getattr(prisma.fields, name))


async def _connect_standin(proxy_logging_obj: object) -> Any:
    from litemaas_hooks_sandbox.prisma_standin import StandinPrismaClient

    _expose_generated_names()

    dsn = os.environ.get(DSN_ENV)
    if not dsn:
        raise RuntimeError(f"{DSN_ENV} is not set: the sandbox launcher passes the LiteLLM database DSN in it")
    os.environ["DATABASE_URL"] = dsn  # only inside the worker, after the CLI has started (see above)
    client = await StandinPrismaClient.connect(dsn, proxy_logging_obj=proxy_logging_obj)
    # LiteLLM's own post-connect steps of setup_prisma_client, over the stand-in: the spend views the Admin
    # UI's usage pages read (1.108: start_view_setup_task; 1.81: a check_view_exists task) and the spend-log
    # row count (1.81)
    try:
        if hasattr(client, "start_view_setup_task"):
            client.start_view_setup_task()
        else:
            for step in ("check_view_exists", "_set_spend_logs_row_count_in_proxy_state"):
                if hasattr(client, step):
                    task = asyncio.get_running_loop().create_task(getattr(client, step)())
                    _background.add(task)
                    task.add_done_callback(_background.discard)
    except Exception as exc:  # a view LiteLLM cannot build over the stand-in: its pages say so, startup goes on
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
