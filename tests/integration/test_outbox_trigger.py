"""The outbox trigger on LiteLLM's model table: what it records, that it never fails LiteLLM's
write, and that install is idempotent and repairs a dropped trigger."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

import psycopg
import pytest
from psycopg import sql as pgsql

from litemaas_hooks import litellm_source, outbox, privileges, sql
from litemaas_hooks.errors import MigrationError
from litemaas_hooks.migrations import apply_migrations
from litemaas_hooks_sandbox.cluster import LocalPostgres
from tests.helpers import DROP_TRIGGERS, TABLE

pytestmark = pytest.mark.anyio

INSERT = """
INSERT INTO public."LiteLLM_ProxyModelTable"
    (model_id, model_name, litellm_params, model_info, created_by, updated_by)
VALUES (%(model_id)s, %(model_name)s, %(params)s::jsonb, %(info)s::jsonb, 'test', 'test')
"""
SECRET = "sk-secret-" + secrets.token_hex(8)
PARAMS = json.dumps({"model": "openai/gpt-4o", "api_key": SECRET, "api_base": "https://x.example"})


async def _install(dsn: str) -> outbox.TriggerState:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await apply_migrations(conn, "litellm")
        return await outbox.trigger_state(conn)


@pytest.fixture
def installed(litellm_dsn: str) -> str:
    state = asyncio.run(_install(litellm_dsn))
    assert state.ok, state
    return litellm_dsn


def _events(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    cur = conn.execute(
        "SELECT row_to_json(e)::jsonb FROM litemaas_hooks.model_events AS e ORDER BY id"
    )
    return [row[0] for row in cur.fetchall()]


def _insert(conn: psycopg.Connection[Any], model_id: str, name: str) -> None:
    conn.execute(INSERT, {"model_id": model_id, "model_name": name, "params": PARAMS, "info": "{}"})


def test_trigger_records_insert_update_rename_delete_without_secrets(installed: str) -> None:
    with psycopg.connect(installed, autocommit=True) as conn:
        _insert(conn, "id-1", "gpt-4o")
        # Prisma bumps updated_at/updated_by on every write: alone, not a change of the model
        conn.execute(
            'UPDATE "LiteLLM_ProxyModelTable" SET updated_at '
            "= now(), updated_by = %s WHERE model_id = %s",
            ("someone", "id-1"),
        )
        conn.execute(
            'UPDATE "LiteLLM_ProxyModelTable" SET model_info '
            """= '{"description": "d"}' WHERE model_id = 'id-1'"""
        )
        has_blocked = conn.execute(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_name = 'LiteLLM_ProxyModelTable' AND column_name = 'blocked'"
        ).fetchone() == (1,)
        if has_blocked:  # LiteLLM >= 1.8x; 1.81's table has no blocked column
            conn.execute(
                """UPDATE "LiteLLM_ProxyModelTable" SET blocked = true WHERE model_id = 'id-1'"""
            )
        conn.execute(
            'UPDATE "LiteLLM_ProxyModelTable" SET model_name '
            "= 'gpt-4o-new' WHERE model_id = 'id-1'"
        )
        conn.execute("""DELETE FROM "LiteLLM_ProxyModelTable" WHERE model_id = 'id-1'""")
        events = _events(conn)

    summary = [(e["op"], e["model_id"], e["old_model_name"], e["new_model_name"]) for e in events]
    assert summary == [
        ("INSERT", "id-1", None, "gpt-4o"),
        ("UPDATE", "id-1", "gpt-4o", "gpt-4o"),  # model_info
        *([("UPDATE", "id-1", "gpt-4o", "gpt-4o")] if has_blocked else []),  # blocked
        ("UPDATE", "id-1", "gpt-4o", "gpt-4o-new"),
        ("DELETE", "id-1", "gpt-4o-new", None),
    ]
    assert all(e["status"] == "pending" and e["attempts"] == 0 for e in events)
    text = json.dumps(events)
    assert SECRET not in text
    assert "api_key" not in text
    assert "x.example" not in text
    assert "openai/" not in text


def test_trigger_notifies_after_commit(installed: str) -> None:
    with (
        psycopg.connect(installed, autocommit=True) as listener,
        psycopg.connect(installed) as writer,
    ):
        listener.execute("LISTEN litemaas_hooks_model_events")
        _insert(writer, "id-n", "notify-me")
        # nothing before the commit
        assert list(listener.notifies(timeout=0.05)) == []
        started = time.perf_counter()
        writer.commit()
        got = next(iter(listener.notifies(timeout=5, stop_after=1)), None)
        latency = time.perf_counter() - started
    assert got is not None
    assert got.channel == outbox.CHANNEL
    assert got.payload == ""  # secret-free and collapsible
    assert latency < 1.0


def test_team_delete_of_many_rows_notifies_once(installed: str) -> None:
    with (
        psycopg.connect(installed, autocommit=True) as listener,
        psycopg.connect(installed) as writer,
    ):
        listener.execute("LISTEN litemaas_hooks_model_events")
        for i in range(20):
            _insert(writer, f"id-{i}", f"team-model-{i}")
        writer.commit()
        received = list(listener.notifies(timeout=0.5))
        assert len(received) == 1  # identical payloads in one transaction collapse
        assert len(_events(writer)) == 20


class _Warnings:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def __call__(self, diag: psycopg.errors.Diagnostic) -> None:
        if diag.severity_nonlocalized == "WARNING" and diag.message_primary:
            self.messages.append(diag.message_primary)


def test_dropped_outbox_never_fails_litellm_insert(installed: str) -> None:
    with psycopg.connect(installed, autocommit=True) as conn:
        conn.execute("DROP TABLE litemaas_hooks.model_events")
        warnings = _Warnings()
        conn.add_notice_handler(warnings)
        _insert(conn, "id-1", "still-works")
        conn.execute(
            "UPDATE \"LiteLLM_ProxyModelTable\" SET model_name = 'renamed' WHERE model_id = 'id-1'"
        )
        conn.execute("""DELETE FROM "LiteLLM_ProxyModelTable" WHERE model_id = 'id-1'""")
        assert conn.execute('SELECT count(*) FROM "LiteLLM_ProxyModelTable"').fetchone() == (0,)
    assert len(warnings.messages) == 3
    assert all("litemaas-hooks: could not record" in m for m in warnings.messages)
    assert "INSERT of LiteLLM model id-1" in warnings.messages[0]
    assert SECRET not in " ".join(warnings.messages)


def test_full_outbox_never_fails_litellm_insert(installed: str) -> None:
    # a constraint every new row violates stands for any write error (disk full, quota, ...)
    with psycopg.connect(installed, autocommit=True) as conn:
        conn.execute(
            "ALTER TABLE litemaas_hooks.model_events ADD CONSTRAINT full_ CHECK (false) NOT VALID"
        )
        warnings = _Warnings()
        conn.add_notice_handler(warnings)
        _insert(conn, "id-1", "still-works")
        assert conn.execute('SELECT model_name FROM "LiteLLM_ProxyModelTable"').fetchall() == [
            ("still-works",)
        ]
        assert _events(conn) == []
    assert len(warnings.messages) == 1
    assert "23514" in warnings.messages[0]


UPDATE_ALL = """UPDATE "LiteLLM_ProxyModelTable" SET model_info = model_info || '{"n": 1}'"""


@pytest.mark.parametrize("mode", ["ACCESS EXCLUSIVE", "SHARE"])
def test_locked_outbox_never_fails_litellm_writes_under_its_statement_timeout(
    installed: str, mode: str
) -> None:
    """Issue 10 item 3: a 20-row UPDATE by LiteLLM under statement_timeout = 500ms, while a
    transaction holds a lock on the outbox (LOCK / VACUUM FULL / ALTER TABLE take these). Each row's
    trigger gives up after lock_timeout (a few ms) instead of 1 s, so the statement completes (it
    failed with QueryCanceled before) and LiteLLM's write is kept."""
    with psycopg.connect(installed, autocommit=True) as conn:
        for i in range(20):
            _insert(conn, f"id-{i}", f"m-{i}")
        conn.execute("DELETE FROM litemaas_hooks.model_events")
    with (
        psycopg.connect(installed) as locker,
        psycopg.connect(installed, autocommit=True) as litellm,
    ):
        locker.execute(f"LOCK TABLE litemaas_hooks.model_events IN {mode} MODE")
        warnings = _Warnings()
        litellm.add_notice_handler(warnings)
        litellm.execute("SET statement_timeout = '500ms'")
        litellm.execute(UPDATE_ALL)
        locker.rollback()
        changed = litellm.execute(
            """SELECT count(*) FROM "LiteLLM_ProxyModelTable" WHERE model_info ->> 'n' = '1'"""
        ).fetchone()
        assert changed == (20,)
        assert _events(litellm) == []  # not recorded: left to the periodic reconcile
    assert len(warnings.messages) == 1  # one per statement (statement-level triggers, issue 20)
    assert all("55P03" in m for m in warnings.messages)  # lock_not_available, not a 1 s wait


def test_statement_timeout_firing_inside_the_trigger_never_fails_litellm_write(
    installed: str,
) -> None:
    """QueryCanceled is not caught by WHEN OTHERS: LiteLLM's own statement_timeout firing while the
    trigger waits must not fail LiteLLM's write. The trigger's lock_timeout is raised to 10 s here
    so that the statement_timeout (200 ms) is what fires, inside the trigger."""
    with psycopg.connect(installed, autocommit=True) as admin:
        admin.execute(
            "ALTER FUNCTION litemaas_hooks.record_model_event_v1() SET lock_timeout = '10s'"
        )
    with (
        psycopg.connect(installed) as locker,
        psycopg.connect(installed, autocommit=True) as litellm,
    ):
        locker.execute("LOCK TABLE litemaas_hooks.model_events IN ACCESS EXCLUSIVE MODE")
        warnings = _Warnings()
        litellm.add_notice_handler(warnings)
        litellm.execute("SET statement_timeout = '200ms'")
        _insert(litellm, "id-1", "kept")
        locker.rollback()
        assert litellm.execute('SELECT model_name FROM "LiteLLM_ProxyModelTable"').fetchall() == [
            ("kept",)
        ]
    assert len(warnings.messages) == 1
    assert "57014" in warnings.messages[0]  # query_canceled, caught


def test_another_litellm_writer_role_with_the_printed_writer_grants(
    installed: str, pg_cluster: LocalPostgres
) -> None:
    """A role other than the table's owner writing LiteLLM's table: the SECURITY INVOKER trigger
    records its changes once it has exactly `install --print-grants --litellm-role NAME`'s writer
    grants, and that role can still neither read nor change the outbox."""
    role = f"litellm_app_{secrets.token_hex(3)}"
    password = secrets.token_hex(12)
    with psycopg.connect(installed, autocommit=True) as admin:
        admin.execute(
            pgsql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(pgsql.Identifier(role), password)
        )
        admin.execute(
            pgsql.SQL(
                'GRANT SELECT, INSERT, UPDATE, DELETE ON public."LiteLLM_ProxyModelTable" TO {}'
            ).format(pgsql.Identifier(role))
        )
    try:
        dsn = psycopg.conninfo.make_conninfo(installed, user=role, password=password)
        with psycopg.connect(dsn, autocommit=True) as app:
            warnings = _Warnings()
            app.add_notice_handler(warnings)
            _insert(app, "id-0", "without-grants")  # kept, not recorded (a warning says why)
            assert len(warnings.messages) == 1
            assert "42501" in warnings.messages[0]
        with psycopg.connect(installed, autocommit=True) as admin:
            admin.execute(privileges.litellm_writer_grants(role).encode())
        with psycopg.connect(dsn, autocommit=True) as app:
            warnings = _Warnings()
            app.add_notice_handler(warnings)
            _insert(app, "id-1", "from-app-role")
            assert warnings.messages == []
            for statement in (
                "SELECT * FROM litemaas_hooks.model_events",
                "UPDATE litemaas_hooks.model_events SET status = 'dead'",
                "DELETE FROM litemaas_hooks.model_events",
                "INSERT INTO litemaas_hooks.model_events (op, status) VALUES ('RESYNC', 'dead')",
                "SELECT litemaas_hooks.record_model_event_v1()",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    app.execute(statement)
        with psycopg.connect(installed, autocommit=True) as admin:
            assert [e["new_model_name"] for e in _events(admin)] == ["from-app-role"]
    finally:
        with psycopg.connect(installed, autocommit=True) as admin:
            admin.execute(pgsql.SQL("DROP OWNED BY {}").format(pgsql.Identifier(role)))
            admin.execute(pgsql.SQL("DROP ROLE {}").format(pgsql.Identifier(role)))


def _trigger_oid(conn: psycopg.Connection[Any]) -> int | None:
    row = conn.execute(
        "SELECT oid FROM pg_trigger WHERE tgname = "
        "'litemaas_hooks_model_events' AND NOT tgisinternal"
    ).fetchone()
    return None if row is None else int(row[0])


async def test_install_twice_is_a_no_op(installed: str) -> None:
    with psycopg.connect(installed, autocommit=True) as conn:
        before = _trigger_oid(conn)
    async with await psycopg.AsyncConnection.connect(installed, autocommit=True) as aconn:
        result = await apply_migrations(aconn, "litellm")
    assert result.applied == []
    assert result.already == [f"{m.version:04d}_{m.name}" for m in sql.migrations("litellm")]
    assert result.already[0] == "0001_outbox"
    with psycopg.connect(installed, autocommit=True) as conn:
        assert _trigger_oid(conn) == before  # not dropped and re-created


async def test_install_upgrades_an_install_that_still_has_deployment_changes(
    installed: str,
) -> None:
    """Injects: the state an install of the previous release leaves (migrations 0001, 0003 and 0006
    applied, not 0005; ``litemaas_hooks.deployment_changes``
    present, with rows, as every claim wrote it).
    Asserts: ``install`` applies exactly 0005, which drops the table, reports nothing as repaired (a
    table a later migration dropped is not "ours and missing"), the relay's grants no longer name
    it, and the next install is a no-op."""
    from litemaas_hooks import install_checks

    with psycopg.connect(installed, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE litemaas_hooks.deployment_changes (model_id "
            "text PRIMARY KEY, last_event_id bigint NOT NULL)"
        )
        conn.execute("INSERT INTO litemaas_hooks.deployment_changes VALUES ('id-1', 7)")
        conn.execute(
            "DELETE FROM litemaas_hooks.schema_migrations WHERE side = 'litellm' AND version = 5"
        )
    async with await psycopg.AsyncConnection.connect(installed, autocommit=True) as aconn:
        result = await apply_migrations(aconn, "litellm")
        assert result.applied == ["0005_drop_deployment_changes"]
        assert result.repaired == []
        again = await apply_migrations(aconn, "litellm")
        assert (again.applied, again.repaired) == ([], [])
    with psycopg.connect(installed, autocommit=True) as conn:
        assert conn.execute(
            "SELECT to_regclass('litemaas_hooks.deployment_changes')"
        ).fetchone() == (None,)
    owned = install_checks.owned_objects("litellm")
    assert install_checks.Owned("table", "deployment_changes") not in owned
    assert install_checks.Owned("table", "model_events") in owned
    assert all("deployment_changes" not in table for table, _ in privileges.RELAY_LITELLM_TABLES)


async def test_install_recreates_a_dropped_or_disabled_trigger(installed: str) -> None:
    with psycopg.connect(installed, autocommit=True) as conn:
        conn.execute(DROP_TRIGGERS)
    async with await psycopg.AsyncConnection.connect(installed, autocommit=True) as aconn:
        state = await outbox.trigger_state(aconn)
        assert state.outbox_present
        assert not state.trigger_present
        assert not state.ok
        await apply_migrations(aconn, "litellm")
        assert (await outbox.trigger_state(aconn)).ok

    with psycopg.connect(installed, autocommit=True) as conn:
        conn.execute(
            'ALTER TABLE "LiteLLM_ProxyModelTable" DISABLE TRIGGER litemaas_hooks_model_events'
        )
    async with await psycopg.AsyncConnection.connect(installed, autocommit=True) as aconn:
        state = await outbox.trigger_state(aconn)
        assert state.trigger_present
        assert not state.trigger_enabled
        await apply_migrations(aconn, "litellm")
        assert (await outbox.trigger_state(aconn)).ok

    with psycopg.connect(installed, autocommit=True) as conn:
        _insert(conn, "id-1", "after-repair")
        assert [e["new_model_name"] for e in _events(conn)] == ["after-repair"]


async def test_install_after_litellm_recreated_its_table(installed: str) -> None:
    # LiteLLM's schema tooling may drop and re-create its table: the trigger goes with it
    with psycopg.connect(installed, autocommit=True) as conn:
        conn.execute(
            'CREATE TABLE "LiteLLM_ProxyModelTable_copy" '
            '(LIKE "LiteLLM_ProxyModelTable" INCLUDING ALL)'
        )
        conn.execute('DROP TABLE "LiteLLM_ProxyModelTable"')
        conn.execute(
            'ALTER TABLE "LiteLLM_ProxyModelTable_copy" RENAME TO "LiteLLM_ProxyModelTable"'
        )
    async with await psycopg.AsyncConnection.connect(installed, autocommit=True) as aconn:
        assert not (await outbox.trigger_state(aconn)).trigger_present
        await apply_migrations(aconn, "litellm")
        assert (await outbox.trigger_state(aconn)).ok


async def test_install_without_litellm_table_fails_clearly(pg_cluster: LocalPostgres) -> None:
    name = f"t_empty_{secrets.token_hex(3)}"
    pg_cluster.create_database(name)
    try:
        async with await psycopg.AsyncConnection.connect(
            pg_cluster.dsn(name), autocommit=True
        ) as aconn:
            with pytest.raises(MigrationError) as info:
                await apply_migrations(aconn, "litellm")
            message = str(info.value)
            assert '"LiteLLM_ProxyModelTable" does not exist' in message
            assert "STORE_MODEL_IN_DB" in message
            assert "litemaas-hooks install" in message
            # the whole install rolled back: nothing half-made is left behind
            state = await outbox.trigger_state(aconn)
            assert not state.outbox_present
            assert not state.table_present
    finally:
        pg_cluster.drop_database(name)


def test_outbox_queries_lifecycle(installed: str) -> None:
    async def scenario() -> None:
        async with await psycopg.AsyncConnection.connect(installed, autocommit=True) as conn:
            await conn.execute(
                INSERT, {"model_id": "a", "model_name": "m-a", "params": "{}", "info": "{}"}
            )
            await conn.execute(
                INSERT, {"model_id": "b", "model_name": "m-b", "params": "{}", "info": "{}"}
            )
            claimed = await outbox.claim(conn, worker="w1", batch_size=10)
            assert [e.names for e in claimed] == [frozenset({"m-a"}), frozenset({"m-b"})]
            assert all(e.attempts == 1 for e in claimed)
            # nothing left for another relay
            assert await outbox.claim(conn, worker="w2", batch_size=10) == []
            # another worker cannot complete our claims
            assert await outbox.complete(conn, worker="w2", ids=[claimed[0].id]) == 0
            assert await outbox.complete(conn, worker="w1", ids=[claimed[0].id]) == 1
            failed = await outbox.fail(
                conn,
                worker="w1",
                errors={claimed[1].id: "boom"},
                max_attempts=2,
                retry_base_seconds=10,
                retry_max_seconds=60,
            )
            assert [(r.status, r.attempts) for r in failed] == [("pending", 1)]
            due = await outbox.next_due_seconds(conn)
            assert due is not None
            assert 8.9 < due <= 11.0
            assert await outbox.claim(conn, worker="w1", batch_size=10) == []  # not due yet
            counts = await outbox.counts(conn)
            assert (counts.pending, counts.claimed, counts.dead) == (1, 0, 0)
            assert counts.oldest_pending_age_seconds is not None
            await conn.execute("UPDATE litemaas_hooks.model_events SET next_attempt_at = now()")
            again = await outbox.claim(conn, worker="w1", batch_size=10)
            assert [e.attempts for e in again] == [2]
            failed = await outbox.fail(
                conn,
                worker="w1",
                errors={again[0].id: "boom 2"},
                max_attempts=2,
                retry_base_seconds=10,
                retry_max_seconds=60,
            )
            assert [r.status for r in failed] == ["dead"]
            dead = await outbox.dead_events(conn)
            assert [(d.new_model_name, d.last_error, d.attempts) for d in dead] == [
                ("m-b", "boom 2", 2)
            ]
            assert await outbox.replay_dead(conn) == 1
            assert (await outbox.counts(conn)).dead == 0
            replayed = await outbox.claim(conn, worker="w1", batch_size=10)
            assert [e.attempts for e in replayed] == [1]
            # a relay that died holding a claim: recovered after the stall timeout
            assert (
                await outbox.recover_stalled(conn, stall_timeout_seconds=3600, max_attempts=5) == []
            )
            recovered = await outbox.recover_stalled(
                conn, stall_timeout_seconds=0.000001, max_attempts=5
            )
            assert [r.status for r in recovered] == ["pending"]
            resync_id = await outbox.enqueue_resync(conn, "m-c")
            claimed = await outbox.claim(conn, worker="w3", batch_size=10)
            assert {e.id for e in claimed} >= {resync_id}
            assert await outbox.release(conn, worker="w3", reason="test") == len(claimed)
            # a release is not an attempt: the same claim again counts the same attempt number
            reclaimed = await outbox.claim(conn, worker="w3", batch_size=10)
            assert {(e.id, e.attempts) for e in reclaimed} == {(e.id, e.attempts) for e in claimed}

    asyncio.run(scenario())


# the three ways of claim_batch: pipelined with BEGIN/COMMIT (transaction pooling), pipelined in
# one implicit transaction, and one statement (claim_batch_v1)
CLAIM_MODES: dict[str, dict[str, Any]] = {
    "begin-commit": {"explicit_transaction": True},
    "implicit": {"explicit_transaction": False},
    "function": {"via_function": True},
}


@pytest.mark.parametrize("mode", sorted(CLAIM_MODES))
def test_claim_batch_claims_reads_and_completes_in_one_round_trip(
    installed: str, mode: str
) -> None:
    """claim_batch: the claimed names' deployments come with the claim, the previous batch's done
    events are deleted with it, and a name another relay holds a claim on is left to that relay
    (one relay at a time converges a name: its truth is never older than another's write)."""

    async def scenario() -> None:
        async with (
            await psycopg.AsyncConnection.connect(installed, autocommit=True) as c1,
            await psycopg.AsyncConnection.connect(installed, autocommit=True) as c2,
        ):
            for model_id, name in (("a1", "m-a"), ("a2", "m-a"), ("b1", "m-b")):
                await c1.execute(
                    INSERT,
                    {"model_id": model_id, "model_name": name, "params": PARAMS, "info": "{}"},
                )
            blocked = await litellm_source.has_blocked_column(c1)  # LiteLLM 1.81: no such column
            first = await outbox.claim_batch(
                c1, worker="w1", batch_size=1, blocked_column=blocked, **CLAIM_MODES[mode]
            )
            assert [e.names for e in first.events] == [frozenset({"m-a"})]
            # both deployments of the claimed name, read in the claim's transaction; nothing else
            assert sorted(r["model_id"] for r in first.rows) == ["a1", "a2"]
            # m-a is changed again meanwhile: w2 must not claim it while w1 holds m-a (it gets m-b)
            await c2.execute(
                'UPDATE "LiteLLM_ProxyModelTable" SET '
                "model_info = '{\"x\": 1}' WHERE model_id = %s",
                ("a1",),
            )
            second = await outbox.claim_batch(
                c2,
                worker="w2",
                batch_size=10,
                blocked_column=blocked,
                **CLAIM_MODES[mode],
            )
            assert [e.names for e in second.events] == [frozenset({"m-b"})]
            assert [r["model_id"] for r in second.rows] == ["b1"]
            assert second.next_due_seconds is not None  # m-a's update, due now
            assert second.next_due_seconds <= 0
            # w1 applied its batch: completion goes with its next
            # claim, which may now take m-a again
            done = [first.events[0].id]
            third = await outbox.claim_batch(
                c1,
                worker="w1",
                batch_size=10,
                done=done,
                blocked_column=blocked,
                **CLAIM_MODES[mode],
            )
            assert third.completed == 1
            # a2's insert, a1's update
            assert [e.names for e in third.events] == [frozenset({"m-a"})] * 2
            assert sorted(r["model_id"] for r in third.rows) == ["a1", "a2"]
            # nothing due left; a claim of nothing reads nothing
            done = [second.events[0].id]
            fourth = await outbox.claim_batch(
                c2,
                worker="w2",
                batch_size=10,
                done=done,
                blocked_column=blocked,
                **CLAIM_MODES[mode],
            )
            assert (fourth.events, fourth.rows, fourth.completed, fourth.next_due_seconds) == (
                [],
                [],
                1,
                None,
            )
            remaining = await (
                await c1.execute("SELECT count(*) FROM litemaas_hooks.model_events")
            ).fetchone()
            assert remaining == (2,)  # third's claims, not completed yet
            assert c1.info.transaction_status == psycopg.pq.TransactionStatus.IDLE

    asyncio.run(scenario())


@pytest.mark.parametrize("explicit", [True, False], ids=["begin-commit", "implicit"])
def test_claim_batch_error_leaves_no_open_transaction(installed: str, explicit: bool) -> None:
    async def scenario() -> None:
        async with await psycopg.AsyncConnection.connect(installed, autocommit=True) as conn:
            await conn.execute(
                INSERT, {"model_id": "a", "model_name": "m-a", "params": PARAMS, "info": "{}"}
            )
            await conn.execute(
                'ALTER TABLE "LiteLLM_ProxyModelTable" DROP COLUMN IF EXISTS blocked'
            )
            # LiteLLM 1.81's table read as 1.108's
            with pytest.raises(psycopg.errors.UndefinedColumn):
                await outbox.claim_batch(
                    conn,
                    worker="w1",
                    batch_size=10,
                    blocked_column=True,
                    explicit_transaction=explicit,
                )
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            # rolled back: the event was not claimed
            again = await outbox.claim_batch(
                conn,
                worker="w1",
                batch_size=10,
                blocked_column=False,
                explicit_transaction=explicit,
            )
            assert [e.attempts for e in again.events] == [1]
            assert [r["blocked"] for r in again.rows] == [False]

    asyncio.run(scenario())


def test_a_pipeline_without_begin_is_one_transaction(installed: str) -> None:
    """What ``claim_batch(explicit_transaction=False)`` relies on: the statements of a psycopg
    pipeline in autocommit mode, up to its one Sync, are one transaction (PostgreSQL's implicit
    transaction): the claim lock its recover statement takes is still held by its claim, and is
    gone after."""

    async def scenario() -> None:
        async with await psycopg.AsyncConnection.connect(installed, autocommit=True) as conn:
            locks = (
                "SELECT pg_catalog.now(), (SELECT count(*) FROM pg_catalog.pg_locks "
                "WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid())"
            )
            async with conn.pipeline():
                first = await conn.execute(
                    "SELECT pg_catalog.now(), pg_catalog.pg_advisory_xact_lock(42)"
                )
                second = await conn.execute(locks)
            began, _ = await first.fetchone() or (None, None)
            same, held = await second.fetchone() or (None, None)
            assert same == began, "two transactions"
            assert held == 1, "the lock was released between the statements"
            after = await (await conn.execute(locks)).fetchone()
            assert after is not None
            assert after[1] == 0

    asyncio.run(scenario())


async def test_trigger_body_follows_the_table_and_survives_a_dropped_column(installed: str) -> None:
    """The trigger compares the columns present at install time (no whole-row cast): a column
    LiteLLM adds counts after the next install, and a column
    it drops before that never breaks recording."""
    with psycopg.connect(installed, autocommit=True) as conn:
        conn.execute('ALTER TABLE "LiteLLM_ProxyModelTable" ADD COLUMN extra text')
    async with await psycopg.AsyncConnection.connect(installed, autocommit=True) as aconn:
        await apply_migrations(aconn, "litellm")
    with psycopg.connect(installed, autocommit=True) as conn:
        warnings = _Warnings()
        conn.add_notice_handler(warnings)
        _insert(conn, "id-1", "m")
        conn.execute("""UPDATE "LiteLLM_ProxyModelTable" SET extra = 'x' WHERE model_id = 'id-1'""")
        conn.execute('ALTER TABLE "LiteLLM_ProxyModelTable" DROP COLUMN extra')
        conn.execute(
            """UPDATE "LiteLLM_ProxyModelTable" SET model_name = 'm2' WHERE model_id = 'id-1'"""
        )
        ops = [(e["op"], e["new_model_name"]) for e in _events(conn)]
    assert ops == [("INSERT", "m"), ("UPDATE", "m"), ("UPDATE", "m2")]
    assert warnings.messages == []


# -- columns LiteLLM adds or drops after install ---------------------------------------------------
# The trigger compared the columns LiteLLM's table had at install: after LiteLLM 1.81 -> 1.108 added
# `blocked`, blocking a model made no event until `install` ran again. It now compares every column
# the table has at the time of the write.


def test_a_column_litellm_adds_after_install_is_compared_without_reinstall(installed: str) -> None:
    with psycopg.connect(installed, autocommit=True) as conn:
        has_blocked = conn.execute(
            "SELECT 1 FROM pg_attribute WHERE attrelid = "
            "%s::regclass AND attname = 'blocked' AND NOT attisdropped",
            (TABLE,),
        ).fetchall()
        column = "blocked_later" if has_blocked else "blocked"  # what LiteLLM's next schema adds
        _insert(conn, "id-1", "m")
        conn.execute(f"ALTER TABLE {TABLE} ADD COLUMN {column} boolean NOT NULL DEFAULT false")
        conn.execute("DELETE FROM litemaas_hooks.model_events")

        conn.execute(f"UPDATE {TABLE} SET {column} = true")  # a model blocked: a change
        assert [e["op"] for e in _events(conn)] == ["UPDATE"]
        conn.execute("DELETE FROM litemaas_hooks.model_events")

        conn.execute(f"UPDATE {TABLE} SET updated_at = now() + interval '1 s'")  # bookkeeping only
        assert _events(conn) == []

        conn.execute(f"ALTER TABLE {TABLE} DROP COLUMN {column}")  # and a column LiteLLM drops
        conn.execute(f"""UPDATE {TABLE} SET model_info = model_info || '{{"x": 1}}'""")
        assert [e["op"] for e in _events(conn)] == ["UPDATE"]


def test_one_subtransaction_per_statement_not_per_row(installed: str) -> None:
    """A row-level trigger with a BEGIN ... EXCEPTION block opened a subtransaction (with its own
    xid) per
    row: a LiteLLM transaction touching more than 64 rows overflowed the backend's subtransaction
    cache.
    Count the transaction ids a 200-row UPDATE and a DELETE consume (each subtransaction that writes
    takes one)."""
    with psycopg.connect(installed, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO {TABLE} (model_id, model_name, "
            "litellm_params, model_info, created_by, updated_by) "
            "SELECT 'id-' || i, 'm-' || i, '{}'::jsonb, "
            "'{}'::jsonb, 'x', 'x' FROM generate_series(1, 200) AS i"
        )
        conn.execute("DELETE FROM litemaas_hooks.model_events")
    next_xid = "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint"  # assigns none itself
    with psycopg.connect(installed, autocommit=True) as watch, psycopg.connect(installed) as conn:
        before = watch.execute(next_xid).fetchone()
        conn.execute(
            f"""UPDATE {TABLE} SET model_info = model_info || '{{"n": 1}}'"""
        )  # one transaction
        conn.execute(f"DELETE FROM {TABLE} WHERE model_id = 'id-1'")
        conn.commit()
        after = watch.execute(next_xid).fetchone()
        assert before is not None
        assert after is not None
        # the transaction's own id + one per statement's subtransaction, not one per row (201)
        assert after[0] - before[0] <= 3
        assert len(_events(watch)) == 201
