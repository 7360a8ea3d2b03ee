"""Fixtures of the integration tests (helpers they use: ``tests/helpers.py``)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Iterator

import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from litemaas_hooks import privileges
from litemaas_hooks_sandbox.cluster import LocalPostgres
from tests.helpers import World, grant_relay, install, install_world, owned_tables, run_sql


@pytest.fixture
async def dbs(litellm_dsn: str, backend_dsn: str) -> tuple[str, str]:
    """The LiteLLM and the backend database, both installed: (LiteLLM DSN, backend DSN)."""
    await install(litellm_dsn, backend_dsn)
    return litellm_dsn, backend_dsn


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, hooks_env: dict[str, str]) -> dict[str, str]:
    """``hooks_env`` set in the process environment, no ``LITELLM_SALT_KEY`` or ``DATABASE_URL``
    (a test module may define its own ``env``: ``test_cli``, ``test_uninstall``)."""
    for k, v in hooks_env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("LITELLM_SALT_KEY", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return hooks_env


@pytest.fixture
def logs() -> Iterator[list[str]]:
    """Every record of the ``litemaas_hooks`` loggers, formatted (with tracebacks).

    A handler on the package logger itself, so it sees the records even after ``cli.main`` turned
    propagation off; the logger's configuration is restored afterwards."""
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    logger = logging.getLogger("litemaas_hooks")
    saved = (logger.level, list(logger.handlers), logger.propagate)
    handler = Collect(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        logger.level, logger.handlers[:], logger.propagate = saved[0], saved[1], saved[2]


@pytest.fixture
def world(pg_cluster: LocalPostgres, litellm_dsn: str, backend_dsn: str) -> Iterator[World]:
    """Four NON-superuser roles: the installer (a member of both owners' roles, may CREATE in both
    databases), LiteLLM's table owner, the backend owner and the relay (no grants yet)."""
    suffix = secrets.token_hex(3)
    w = World(
        pg_cluster,
        litellm_dsn,
        backend_dsn,
        f"hk_installer_{suffix}",
        f"hk_litellm_{suffix}",
        f"hk_backend_{suffix}",
        f"hk_relay_{suffix}",
        secrets.token_hex(16),
    )
    roles = (w.installer, w.lowner, w.bowner, w.relay)
    create = sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}")
    with pg_cluster.connect() as admin:
        for role in roles:
            admin.execute(create.format(sql.Identifier(role), sql.Literal(w.password)))
    for dsn, owner in ((w.ldsn, w.lowner), (w.bdsn, w.bowner)):
        db = sql.Identifier(str(conninfo_to_dict(dsn)["dbname"]))
        o = sql.Identifier(owner)
        stmts: list[sql.Composed] = [
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(db, o),
            sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(db, sql.Identifier(w.installer)),
            sql.SQL("GRANT {} TO {}").format(o, sql.Identifier(w.installer)),
        ]
        stmts += [
            sql.SQL("ALTER TABLE {} OWNER TO {}").format(sql.SQL(t), o)
            for t in owned_tables(dsn)
        ]
        if owner == w.bowner:
            stmts.append(
                sql.SQL("ALTER FUNCTION public.update_updated_at_column() OWNER TO {}").format(o)
            )
        run_sql(dsn, *stmts)
    try:
        yield w
    finally:
        with pg_cluster.connect() as admin:
            for dsn in (w.ldsn, w.bdsn):
                drop = sql.SQL("DROP OWNED BY {} CASCADE")
                run_sql(dsn, *(drop.format(sql.Identifier(r)) for r in roles))
                dbname = sql.Identifier(str(conninfo_to_dict(dsn)["dbname"]))
                run_sql(dsn, sql.SQL("ALTER DATABASE {} OWNER TO postgres").format(dbname))
            for role in roles:
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def installed(world: World, monkeypatch: pytest.MonkeyPatch, master_key: str) -> World:
    """``world`` after `litemaas-hooks install` as the installer, the relay granted exactly what
    `install --print-grants` prints."""
    asyncio.run(install_world(world, monkeypatch, master_key))
    grant_relay(world, privileges.Roles(relay=world.relay))
    return world
