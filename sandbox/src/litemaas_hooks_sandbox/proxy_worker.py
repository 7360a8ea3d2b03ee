"""Runs inside the sandbox's LiteLLM proxy process: gives LiteLLM the psycopg-backed Prisma
stand-in.

The proxy is LiteLLM's own ``litellm`` CLI with ``DATABASE_URL`` in its environment, as LiteMaaS
starts it (:mod:`litemaas_hooks_sandbox.proxy`). The CLI rewrites ``DATABASE_URL`` for Prisma and
serves ``proxy_server.app`` with uvicorn in the same process; at startup LiteLLM builds its Prisma
client from that URL, which needs Prisma's native engines (downloaded from the internet, so not
here). Only that client is replaced, and nothing in LiteLLM's files or in the environment our plugin
reads changes. Two ways in, chosen by :mod:`litemaas_hooks_sandbox.proxy`:

* LiteLLM >= 1.108:
  ``LITELLM_WORKER_STARTUP_HOOKS=litemaas_hooks_sandbox.proxy_worker:install_standin``. The lifespan
  ``proxy_startup_event`` runs that hook first and only then ``if prisma_client is None:
  setup_prisma_client(...)``; a hook that sets ``litellm.proxy.proxy_server.prisma_client``
  therefore keeps LiteLLM from building its own.
* LiteLLM 1.81 (no such setting): a ``sitecustomize`` on the proxy's ``PYTHONPATH`` calls
  :func:`install_import_hook`, which replaces ``ProxyStartupEvent._setup_prisma_client`` with one
  returning the stand-in the moment ``litellm.proxy.proxy_server`` is imported (by the CLI, before
  uvicorn starts).

Either way the stand-in connects to the ``DATABASE_URL`` LiteLLM hands to its Prisma client (the
CLI's rewritten URL; Prisma's own query parameters are pool settings of its engine, see
:func:`standin_conninfo`), and the worker records the environment it runs with in
``worker-env.json`` in its working directory (variable names, ``DATABASE_URL`` with the password
masked: no secret), so tests can assert what our plugin, loaded in the same process, was given.

After connecting, LiteLLM's own view setup (``start_view_setup_task``) runs over the stand-in, so
the spend pages of the Admin UI find their views.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import importlib.machinery
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

WORKER_ENV_FILE: Final = "worker-env.json"
# what the record tells about (names only, never values; DATABASE_URL masked)
WATCHED_ENV: Final = (
    "DATABASE_URL",
    "DIRECT_URL",
    "LITELLM_DATABASE_URL",
    "LITEMAAS_DATABASE_URL",
    "LITELLM_MASTER_KEY",
    "LITELLM_SALT_KEY",
    "CONFIG_FILE_PATH",
    "STORE_MODEL_IN_DB",
    "DISABLE_SCHEMA_UPDATE",
    "LITELLM_MODE",
)
_PROXY_SERVER: Final = "litellm.proxy.proxy_server"

_log = logging.getLogger("litemaas_hooks_sandbox.proxy_worker")
_background: set[asyncio.Task[Any]] = set()


def _libpq_keywords() -> frozenset[str]:
    from psycopg import pq

    return frozenset(d.keyword.decode() for d in pq.Conninfo.get_defaults())


def standin_conninfo(database_url: str) -> str:
    """The libpq URL the stand-in connects to for LiteLLM's ``database_url``.

    What Prisma's engine connects to: the URL's target with the query parameters libpq knows
    (``host``, ``port``, ``sslmode``, ``options``, ...). The others (``connection_limit``,
    ``pool_timeout``, ``socket_timeout``, ``pgbouncer``, ...) configure Prisma's engine and its
    pool, which the stand-in replaces. This is the Prisma side only; how our plugin reads the same
    URL is its own business.
    """
    parts = urlsplit(database_url)
    known = _libpq_keywords()
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k in known]
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def _masked_url(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def record_environment(path: Path | None = None) -> None:
    """Write what this worker runs with (see the module docstring) to ``worker-env.json``."""
    env = os.environ
    record = {
        "pid": os.getpid(),
        "set": sorted(name for name in WATCHED_ENV if name in env),
        "DATABASE_URL": _masked_url(env.get("DATABASE_URL")),
    }
    target = path or Path.cwd() / WORKER_ENV_FILE
    target.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def _expose_generated_names() -> None:
    """What ``prisma generate`` puts into ``prisma/__init__.py`` and LiteLLM imports from there
    (``from prisma import Json``): the field types of ``prisma.fields``. The package is not
    generated here (no engines), so the worker adds those names to the imported module; the stand-in
    unwraps them."""
    import prisma
    import prisma.fields

    # prisma/_fields.py's __all__, re-exported by the generated __init__
    for name in ("Json", "Base64"):
        if not hasattr(prisma, name) and hasattr(prisma.fields, name):
            setattr(prisma, name, getattr(prisma.fields, name))


async def _connect_standin(database_url: str | None, proxy_logging_obj: object) -> Any:
    from litemaas_hooks_sandbox.prisma_standin import StandinPrismaClient

    record_environment()
    if not database_url:
        raise RuntimeError("DATABASE_URL is not set: the sandbox launcher starts LiteLLM with it")
    _expose_generated_names()
    client = await StandinPrismaClient.connect(
        standin_conninfo(database_url), proxy_logging_obj=proxy_logging_obj
    )
    # LiteLLM's own post-connect steps of setup_prisma_client, over the stand-in: the spend views
    # the Admin UI's usage pages read (1.108: start_view_setup_task; 1.81: a check_view_exists task)
    # and the spend-log row count (1.81)
    try:
        if hasattr(client, "start_view_setup_task"):
            client.start_view_setup_task()
        else:
            for step in ("check_view_exists", "_set_spend_logs_row_count_in_proxy_state"):
                if hasattr(client, step):
                    task = asyncio.get_running_loop().create_task(getattr(client, step)())
                    _background.add(task)
                    task.add_done_callback(_background.discard)
    # a view LiteLLM cannot build over the stand-in: its pages say so, startup goes on
    except Exception as exc:
        _log.warning("LiteLLM view setup over the Prisma stand-in failed: %s", exc)
    return client


async def install_standin() -> None:
    """``LITELLM_WORKER_STARTUP_HOOKS`` entry (LiteLLM >= 1.108): set
    ``proxy_server.prisma_client``."""
    from litellm.proxy import proxy_server

    proxy_server.prisma_client = await _connect_standin(
        os.environ.get("DATABASE_URL"), proxy_server.proxy_logging_obj
    )


def _patch_setup_prisma_client(proxy_server: ModuleType) -> None:
    """LiteLLM 1.81: make ``ProxyStartupEvent._setup_prisma_client`` return the stand-in."""

    async def setup(*args: Any, **kwargs: Any) -> Any:
        database_url = kwargs.get("database_url", args[0] if args else None)
        logging_obj = kwargs.get("proxy_logging_obj", proxy_server.proxy_logging_obj)
        return await _connect_standin(database_url, logging_obj)

    event = proxy_server.ProxyStartupEvent
    names = [n for n in ("_setup_prisma_client", "setup_prisma_client") if hasattr(event, n)]
    if not names:
        raise RuntimeError("this LiteLLM has no ProxyStartupEvent._setup_prisma_client to replace")
    for name in names:
        setattr(event, name, classmethod(lambda cls, *a, **k: setup(*a, **k)))


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Finds ``litellm.proxy.proxy_server`` like the path finder does and patches it once
    executed."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _PROXY_SERVER:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        execute = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            execute(module)
            _patch_setup_prisma_client(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install_import_hook() -> None:
    """Patch LiteLLM 1.81's Prisma client setup when its proxy server module gets imported
    (sitecustomize)."""
    if not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())


SITECUSTOMIZE: Final = (
    "# written by litemaas_hooks_sandbox.proxy: the Prisma stand-in for LiteLLM 1.81 (see "
    "proxy_worker)\nfrom litemaas_hooks_sandbox.proxy_worker import install_import_hook\n"
    "\ninstall_import_hook()\n"
)
