"""Fixtures of the end-to-end tests: a real LiteLLM
proxy process (sandbox launcher) on real databases.

``e2e_databases`` (module): a LiteLLM database and a backend database cloned from the session
templates, ``install``-ed (both sides' migrations and functions). ``e2e_proxy`` (module): the
sandbox proxy on them, started as LiteMaaS starts LiteLLM (``litellm`` CLI, ``DATABASE_URL``,
config.yaml + shim mounted), in a network namespace with only loopback when possible, its relay
connected. One proxy per module keeps the start-up cost (~20 s) to one per flow.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from litemaas_hooks.migrations import apply_migrations
from litemaas_hooks_sandbox.cluster import LocalPostgres
from litemaas_hooks_sandbox.proxy import SandboxProxy, start_proxy
from tests.e2e import backend
from tests.helpers import wait_until


@dataclass(frozen=True)
class Databases:
    litellm_dsn: str
    backend_dsn: str


def install(litellm_dsn: str, backend_dsn: str) -> None:
    async def run() -> None:
        for dsn, side in ((litellm_dsn, "litellm"), (backend_dsn, "backend")):
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                await apply_migrations(conn, side)  # type: ignore[arg-type]

    asyncio.run(run())


@pytest.fixture(scope="module")
def e2e_databases(pg_cluster: LocalPostgres) -> Iterator[Databases]:
    suffix = secrets.token_hex(3)
    names = (f"e2e_litellm_{suffix}", f"e2e_backend_{suffix}")
    pg_cluster.create_database(names[0], template="tpl_litellm")
    pg_cluster.create_database(names[1], template="tpl_litemaas")
    try:
        dbs = Databases(pg_cluster.dsn(names[0]), pg_cluster.dsn(names[1]))
        install(dbs.litellm_dsn, dbs.backend_dsn)
        yield dbs
    finally:
        for name in names:
            pg_cluster.drop_database(name)


@pytest.fixture(scope="module")
def e2e_proxy(e2e_databases: Databases, master_key: str) -> Iterator[SandboxProxy]:
    proxy = start_proxy(
        e2e_databases.litellm_dsn,
        backend_dsn=e2e_databases.backend_dsn,
        master_key=master_key,
        env={"LITEMAAS_HOOKS_LOG_LEVEL": "DEBUG"},
    )
    try:
        # as LiteMaaS starts LiteLLM: the plugin reads DATABASE_URL as the CLI rewrote it for Prisma
        seen = proxy.worker_env()
        assert "connection_limit=" in seen["DATABASE_URL"], seen
        assert "LITELLM_DATABASE_URL" not in seen["set"], seen
        wait_until(
            lambda: backend.relay_connected(e2e_databases.litellm_dsn),
            what="the plugin's relay is connected",
            proxy=proxy,
            deadline_seconds=60,
        )
        yield proxy
    finally:
        proxy.stop()
    log = proxy.log()
    assert master_key not in log, "the master key reached the proxy log"
