"""Issue 20 item 5: `install` never takes a lock that makes a LiteLLM write lose its event. Its
repeatable
steps ran CREATE INDEX IF NOT EXISTS on the outbox, which takes a SHARE lock before finding the
index and
holds it until install commits: the trigger (5 ms lock_timeout) gave up on every LiteLLM write
meanwhile."""

from __future__ import annotations

import psycopg
import pytest

from litemaas_hooks import sql
from tests.helpers import add, eventually, install

pytestmark = pytest.mark.anyio

# lock modes that conflict with the ROW EXCLUSIVE lock an INSERT into the outbox needs
CONFLICTING = ("ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")


async def test_a_litellm_write_during_a_reinstall_keeps_its_event(
    litellm_dsn: str, backend_dsn: str, master_key: str
) -> None:
    await install(litellm_dsn, backend_dsn)
    async with (
        await psycopg.AsyncConnection.connect(litellm_dsn, autocommit=True) as ic,
        await psycopg.AsyncConnection.connect(litellm_dsn, autocommit=True) as lc,
    ):
        async with ic.transaction():  # install's transaction, still open
            await ic.execute("SET LOCAL search_path = pg_catalog, pg_temp")
            for rep in sql.repeatables("litellm"):
                await ic.execute(rep.sql.encode())
            cur = await ic.execute(
                "SELECT relation::regclass::text, mode FROM pg_locks WHERE pid = pg_backend_pid() "
                "AND locktype = 'relation' AND mode = ANY(%s) "
                "AND relation IN (SELECT oid FROM pg_class WHERE "
                "relnamespace = 'litemaas_hooks'::regnamespace)",
                (list(CONFLICTING),),
            )
            assert await cur.fetchall() == []
            warnings: list[str] = []
            lc.add_notice_handler(lambda d: warnings.append(d.message_primary or ""))
            model_id = await add(lc, "during-install", master_key)  # LiteLLM writes meanwhile
            assert not [w for w in warnings if "could not record" in w], warnings
        cur = await lc.execute(
            "SELECT op FROM litemaas_hooks.model_events WHERE model_id = %s", (model_id,)
        )
        assert await cur.fetchall() == [("INSERT",)]


async def test_install_says_when_it_had_to_wait(litellm_dsn: str, backend_dsn: str) -> None:
    from litemaas_hooks.cli import install_line
    from litemaas_hooks.migrations import WAIT_REPORT_SECONDS, apply_migrations

    await install(litellm_dsn, backend_dsn)
    async with (
        await psycopg.AsyncConnection.connect(litellm_dsn, autocommit=True) as holder,
        await psycopg.AsyncConnection.connect(litellm_dsn, autocommit=True) as ic,
        await psycopg.AsyncConnection.connect(litellm_dsn, autocommit=True) as watch,
    ):
        import asyncio

        await holder.execute("BEGIN")
        await holder.execute("LOCK TABLE litemaas_hooks.reconcile_state IN ACCESS EXCLUSIVE MODE")
        pid = ic.info.backend_pid
        task = asyncio.create_task(apply_migrations(ic, "litellm"))

        async def install_waited_long_enough() -> bool:
            cur = await watch.execute(
                "SELECT wait_event_type = 'Lock' AND "
                "clock_timestamp() - query_start > %s * interval '1 s' "
                "FROM pg_stat_activity WHERE pid = %s",
                (WAIT_REPORT_SECONDS + 0.1, pid),
            )
            row = await cur.fetchone()
            return bool(row and row[0])

        await eventually(install_waited_long_enough, what="install waits for the lock")
        await holder.execute("COMMIT")
        result = await task
    assert result.waited
    assert "00_tables" in result.waited[0]
    assert "waited for a lock held by another transaction" in install_line("litellm", "db", result)


async def test_install_recognises_its_own_objects_when_its_records_are_gone(
    litellm_dsn: str,
    backend_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A role deleted our schema_migrations rows: install failed on "relation model_events already
    exists"; it now recognises its own objects, records them again and repairs nothing else."""
    from litemaas_hooks import cli

    await install(litellm_dsn, backend_dsn)
    for dsn in (litellm_dsn, backend_dsn):
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as c:
            await c.execute("DELETE FROM litemaas_hooks.schema_migrations")
    monkeypatch.setenv("LITELLM_DATABASE_URL", litellm_dsn)
    monkeypatch.setenv("LITEMAAS_DATABASE_URL", backend_dsn)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    capsys.readouterr()
    import asyncio

    assert await asyncio.to_thread(cli.main, ["install"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "recognised its own objects of 0001_outbox" in out, out
    assert "recognised its own objects of 0001_sync_functions" in out, out
    for dsn in (litellm_dsn, backend_dsn):
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as c:
            cur = await c.execute("SELECT count(*) FROM litemaas_hooks.schema_migrations")
            row = await cur.fetchone()
            assert row is not None
            assert row[0] > 0
