"""Through PgBouncer (Debian's package), session and transaction pooling: connect without the
``options`` startup parameter, search_path still pinned (and never leaked to the pooled server
session), relay + backfill + status work, changes keep arriving (LISTEN in session pooling, polling
in transaction pooling, said once in the log and in ``status``)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest

from litemaas_hooks import cli, connections, dburl, outbox, reconcile, sql
from litemaas_hooks.connections import connect, pool_mode, pooled_options_dropped
from litemaas_hooks.errors import DatabaseUnavailableError
from litemaas_hooks.settings import load_settings
from litemaas_hooks_sandbox.cluster import LocalPostgres
from litemaas_hooks_sandbox.pgbouncer import LocalPgBouncer
from tests.helpers import (
    backend_models,
    eventually,
    insert,
    install,
    make_settings,
    outbox_empty,
    running,
    scalar,
)

pytestmark = pytest.mark.anyio

MODES = ["session", "transaction"]


@pytest.fixture(scope="module", params=MODES)
def bouncer(request: pytest.FixtureRequest, pg_cluster: LocalPostgres) -> Iterator[LocalPgBouncer]:
    with LocalPgBouncer(pg_cluster, pool_mode=request.param, pool_size=4) as pgb:
        yield pgb


def pooled(pgb: LocalPgBouncer, dsn: str) -> str:
    """The URL through the pooler; transaction pooling flagged as Prisma/LiteLLM flag it."""
    return pgb.through(dsn, **({"pgbouncer": "true"} if pgb.pool_mode == "transaction" else {}))


def pooled_settings(pgb: LocalPgBouncer, ldsn: str, bdsn: str, key: str, **kw: Any) -> Any:
    mode = {"pool_mode": "session"} if pgb.pool_mode == "session" else {}
    return make_settings(pooled(pgb, ldsn), pooled(pgb, bdsn), key, **mode, **kw)


async def test_pgbouncer_refuses_options_and_we_connect_pinned(
    bouncer: LocalPgBouncer, litellm_dsn: str, backend_dsn: str, master_key: str
) -> None:
    url = pooled(bouncer, litellm_dsn)
    with pytest.raises(psycopg.OperationalError, match="unsupported startup parameter"):
        psycopg.connect(
            url.split("?")[0] + "?options=-c%20search_path%3Dpg_catalog", connect_timeout=5
        )
    # told nothing of the pooler: one line saying what to set
    unflagged = load_settings({"LITELLM_DATABASE_URL": url.split("?")[0]})
    with pytest.raises(DatabaseUnavailableError) as exc:
        await connect(unflagged, "litellm")
    assert "points at a PgBouncer: set LITEMAAS_HOOKS_POOL_MODE=session" in str(exc.value)
    assert len(str(exc.value).splitlines()) == 1
    # the URL's own options (LiteLLM 1.108 puts its timeouts there)
    with_options = litellm_dsn + "?options=-c%20statement_timeout%3D42000"
    settings = pooled_settings(bouncer, with_options, backend_dsn, master_key)
    assert pool_mode(settings, "litellm") == bouncer.pool_mode
    conn = await connect(settings, "litellm")
    try:
        assert conn.prepare_threshold is None  # no server-side prepared statements through a pooler
        cur = await conn.execute("SELECT current_setting('statement_timeout')")
        timeout = (await cur.fetchone())[0]
        if bouncer.pool_mode == "session":  # applied to our session with set_config
            assert timeout == "42s"
        else:  # cannot pass a transaction pooler: the relay says so (pooled_options_dropped)
            assert pooled_options_dropped(settings, "litellm") == "-c statement_timeout=42000"
        for _ in range(3):  # each statement (own transaction in transaction pooling) is pinned
            cur = await conn.execute("SELECT current_setting('search_path')")
            assert (await cur.fetchone())[0] in ("pg_catalog, pg_temp", "pg_catalog,pg_temp")
        async with conn.transaction():
            cur = await conn.execute("SELECT current_setting('search_path')")
            assert (await cur.fetchone())[0] in ("pg_catalog, pg_temp", "pg_catalog,pg_temp")
    finally:
        await conn.close()
    if bouncer.pool_mode == "transaction":
        # the pin never outlives our transaction: the next client of the server session (LiteLLM's
        # unqualified raw SQL, say) sees the server's default search_path
        with psycopg.connect(url.split("?")[0], connect_timeout=5, prepare_threshold=None) as other:
            for _ in range(4):  # whichever of the pool's server sessions it gets
                path = other.execute("SELECT current_setting('search_path')").fetchone()
                assert path is not None
                assert "pg_catalog" not in path[0]


async def test_explicit_begin_is_one_pinned_transaction(
    bouncer: LocalPgBouncer, litellm_dsn: str, backend_dsn: str, master_key: str
) -> None:
    """The pipelined round trips' named ``begin`` (no psycopg transaction() around it): through a
    transaction pooler the statements up to ``commit`` are one transaction, search_path pinned."""
    settings = pooled_settings(bouncer, litellm_dsn, backend_dsn, master_key)
    conn = await connect(settings, "backend")
    pinned_paths = ("pg_catalog, pg_temp", "pg_catalog,pg_temp")
    try:
        for piped in (False, True):
            async with conn.pipeline() if piped else contextlib.nullcontext():
                await conn.execute(sql.query("backend", "begin"))
                first = await conn.execute("SELECT pg_catalog.txid_current()::text")
                path = await conn.execute("SELECT pg_catalog.current_setting('search_path')")
                second = await conn.execute("SELECT pg_catalog.txid_current()::text")
                await conn.execute(sql.query("backend", "commit"))
            one, two = (await first.fetchone())[0], (await second.fetchone())[0]
            assert one == two, f"pipelined={piped}: BEGIN did not open the statements' transaction"
            assert (await path.fetchone())[0] in pinned_paths
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    finally:
        await conn.close()


async def test_relay_through_pgbouncer(
    bouncer: LocalPgBouncer,
    litellm_dsn: str,
    backend_dsn: str,
    master_key: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await install(litellm_dsn, backend_dsn)
    settings = pooled_settings(
        bouncer,
        litellm_dsn,
        backend_dsn,
        master_key,
        pooled_poll_interval_seconds=0.2,
        reconcile_interval_seconds=3600.0,  # one full reconcile at start: lock or lease
    )
    caplog.set_level(logging.INFO, logger="litemaas_hooks")
    async with (
        running(settings) as (relay,),
        await psycopg.AsyncConnection.connect(litellm_dsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(backend_dsn, autocommit=True) as bc,
    ):
        for i in range(3):  # changes keep arriving, one after the other
            await insert(lc, f"pooled-{i}", master_key)
            await eventually(
                partial(_has, bc, f"pooled-{i}"), deadline_seconds=10, what=f"pooled-{i} synced"
            )
        await eventually(lambda: outbox_empty(lc), what="outbox drained")
        assert relay.stats.full_reconciles == 1
        # no session-level advisory lock left behind on a pooled server session; a relay's
        # transaction-level ones (a claim, a due-retire check) come and go, a leaked one stays
        async def no_advisory_lock() -> bool:
            query = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            return bool(await scalar(lc, query) == 0)

        await eventually(no_advisory_lock, deadline_seconds=5, what="no advisory lock held")
    polling = [r.getMessage() for r in caplog.records if "transaction-pooled" in r.getMessage()]
    if bouncer.pool_mode == "transaction":
        assert len(polling) == 1, polling
        assert "polled every 0.2s" in polling[0]
        assert "direct or session-pooled URL" in polling[0]
        assert master_key not in polling[0]
    else:
        assert polling == []


async def _has(conn: psycopg.AsyncConnection[Any], name: str) -> bool:
    return name in await backend_models(conn)


def test_backfill_and_status_through_pgbouncer(
    bouncer: LocalPgBouncer,
    litellm_dsn: str,
    backend_dsn: str,
    master_key: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import asyncio

    asyncio.run(install(litellm_dsn, backend_dsn))

    async def seed() -> None:
        async with await psycopg.AsyncConnection.connect(litellm_dsn, autocommit=True) as lc:
            for i in range(5):
                await insert(lc, f"bf-{i}", master_key)

    asyncio.run(seed())
    # 3 chunks: on a transaction-pooled URL they alternate between two backend connections; on a
    # session-pooled one (each connection holds a server connection) backfill keeps to one
    monkeypatch.setattr(reconcile, "CHUNK_NAMES", 2)
    names: list[str] = []
    real_connect = connections.connect

    async def spy(settings: Any, which: Any, **kw: Any) -> Any:
        names.append(kw.get("application_name", "litemaas-hooks"))
        return await real_connect(settings, which, **kw)

    monkeypatch.setattr(connections, "connect", spy)
    for k, v in {
        "LITELLM_DATABASE_URL": pooled(bouncer, litellm_dsn),
        "LITEMAAS_DATABASE_URL": pooled(bouncer, backend_dsn),
        "LITELLM_MASTER_KEY": master_key,
        "LITEMAAS_HOOKS_POOL_MODE": "session" if bouncer.pool_mode == "session" else "auto",
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("LITELLM_SALT_KEY", raising=False)
    assert cli.main(["backfill"]) == 0
    with psycopg.connect(backend_dsn) as bc:
        rows = bc.execute("SELECT id FROM models WHERE id LIKE 'bf-%%'").fetchall()
    assert len(rows) == 5
    assert (cli.SPARE_BACKEND_NAME in names) == (bouncer.pool_mode == "transaction")
    capsys.readouterr()
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert "HEALTHY" in out.splitlines()[0]
    assert master_key not in out
    if bouncer.pool_mode == "transaction":
        assert "pooling          : LITELLM_DATABASE_URL is transaction-pooled (PgBouncer)" in out
        assert "direct or session-pooled URL" in out
    else:
        assert "pooling" not in out
    assert load_settings().pool_mode in ("session", "auto")


async def test_litellm_in_container_pgbouncer_url_in_plugin_mode(
    pg_cluster: LocalPostgres,
    litellm_dsn: str,
    backend_dsn: str,
    master_key: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """LiteLLM 1.108's LITELLM_PGBOUNCER_ENABLED: its own code renders the PgBouncer config and the
    pooled DATABASE_URL the workers (and so the plugin) get; the relay works on that URL."""
    pgbouncer = pytest.importorskip("litellm.proxy.db.pgbouncer", reason="LiteLLM < 1.108 has none")
    await install(litellm_dsn, backend_dsn)
    upstream = litellm_dsn + "?connection_limit=5&pool_timeout=60"  # as the CLI left it
    pooled_urls: list[str] = []

    def litellm_config(root: Path, port: int) -> tuple[str, str, str]:
        knobs = pgbouncer.PgBouncerSettings(port=port)
        plan = pgbouncer.plan_pgbouncer(upstream, knobs, root, None)
        assert not isinstance(plan, pgbouncer.PgBouncerError), plan
        pooled_urls.append(plan.pooled_url)
        probe = dburl.parse(plan.pooled_url).conninfo  # libpq alone refuses Prisma's URL
        return plan.ini, plan.userlist(plan.upstream_password), probe

    pgb = LocalPgBouncer(pg_cluster).start(config=litellm_config)
    try:
        settings = load_settings(
            {
                # what the plugin reads inside the proxy (+ a parameter nobody knows yet)
                "DATABASE_URL": pooled_urls[0] + "&future_knob=1",
                "LITEMAAS_DATABASE_URL": backend_dsn,
                "LITELLM_MASTER_KEY": master_key,
            },
            pooled_poll_interval_seconds=0.2,
            reconcile_interval_seconds=0.0,
        )
        assert "pgbouncer=true" in pooled_urls[0]
        assert pool_mode(settings, "litellm") == "transaction"
        async with (
            running(settings),
            await psycopg.AsyncConnection.connect(litellm_dsn, autocommit=True) as lc,
            await psycopg.AsyncConnection.connect(backend_dsn, autocommit=True) as bc,
        ):
            await insert(lc, "in-container", master_key)
            await eventually(lambda: _has(bc, "in-container"), deadline_seconds=10, what="synced")
        unknown = [r.getMessage() for r in caplog.records if "future_knob" in r.getMessage()]
        assert len(unknown) == 1
        assert "DATABASE_URL has parameters neither libpq nor Prisma" in unknown[0]
    finally:
        pgb.stop()


async def test_reconcile_lease_has_one_winner(litellm_dsn: str, backend_dsn: str) -> None:
    """Transaction pooling replaces the session advisory lock with a lease row: one winner at a
    time, and the next run only once the last one finished and is old enough."""
    await install(litellm_dsn, backend_dsn)
    async with await psycopg.AsyncConnection.connect(litellm_dsn, autocommit=True) as conn:
        lease = {"min_age_seconds": 300.0, "lease_seconds": 600.0}
        assert await outbox.try_reconcile_lease(conn, runner="a", **lease)
        assert not await outbox.try_reconcile_lease(conn, runner="b", **lease)  # a runs
        await outbox.reconcile_finished(conn, runner="a", summary="ok")
        assert not await outbox.try_reconcile_lease(conn, runner="b", **lease)  # ran just now
        due_now = {"min_age_seconds": 0.0, "lease_seconds": 600.0}
        assert await outbox.try_reconcile_lease(conn, runner="b", **due_now)
