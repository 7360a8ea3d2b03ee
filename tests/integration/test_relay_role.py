"""docs/relay-role.md, line by line: what the relay role (exactly `install --print-grants`) can and
cannot do. One test per line of the doc's table (``test_line_<line>``); a line without a test, or a
test without a line, fails ``test_every_line_has_a_test``.

The roles are the `world` fixture's (non-superusers as in a real deployment: installer, LiteLLM's
table owner, the backend owner, the relay role); the shared-database line makes its own.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from litemaas_hooks import privileges
from litemaas_hooks_sandbox.cluster import LocalPostgres
from tests.helpers import (
    REASON,
    TABLE,
    World,
    add,
    audits,
    eventually,
    make_settings,
    matches_truth,
    run_cli,
    run_sql,
    running,
)

pytestmark = pytest.mark.anyio

DOC = Path(__file__).resolve().parents[2] / "docs" / "relay-role.md"
USER = "22222222-2222-2222-2222-222222222222"
BACKEND_TABLES = ("models", "subscriptions", "api_keys", "api_key_models", "audit_logs", "users")
OUR_BACKEND_TABLES = (
    "hidden_models",
    "model_sources",
    "pending_retires",
    "retire_cascades",
    "model_instances",
)
DUE_NOW = "UPDATE litemaas_hooks.pending_retires SET due_at = now() - interval '1 second'"
RETIRE_V1 = "SELECT litemaas_hooks.retire_model_v1(%s, true, %s)"
RETIRE_V2 = "SELECT litemaas_hooks.retire_model_v2(%s, true, %s, %s, NULL, %s)"
# the relay's delete as one call (lock, then each name decided and retired by retire_model_v2)
RETIRE_MANY = (
    "SELECT results FROM litemaas_hooks.retire_models_v1(%s, true, %s, %s, NULL, %s, '2s')"
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def doc_lines() -> list[str]:
    """The first cell of every row of the doc's table (`line`), in order."""
    lines = []
    for row in DOC.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| `([a-z0-9-]+)` \|", row)
        if m:
            lines.append(m.group(1))
    assert lines, f"{DOC} has no table rows"
    return lines


def test_every_line_has_a_test() -> None:
    lines = doc_lines()
    assert len(lines) == len(set(lines)), "a line of docs/relay-role.md appears twice"
    wanted = {"test_line_" + line.replace("-", "_") for line in lines}
    have = {name for name in globals() if name.startswith("test_line_")}
    problems = [f"line `{n[10:].replace('_', '-')}` has no test {n}" for n in sorted(wanted - have)]
    problems += [f"{n} tests no line of docs/relay-role.md" for n in sorted(have - wanted)]
    assert not problems, "\n".join(problems)


# -- helpers ---------------------------------------------------------------------------------------


def _denied(dsn: str, *statements: str) -> None:
    for statement in statements:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            run_sql(dsn, statement)


def _synced(bdsn: str, name: str, *, availability: str = "available") -> None:
    """A backend row a sync wrote (litellm_model_id and LiteLLM metadata set)."""
    run_sql(
        bdsn,
        "INSERT INTO models (id, name, provider, availability, litellm_model_id, metadata) "
        "VALUES (%s, %s, 'openai', %s, %s, '{\"litellm_params\": {}}')",
        params=(name, name, availability, f"dep-{name}"),
    )


def _hand_made(bdsn: str, name: str) -> None:
    run_sql(
        bdsn,
        "INSERT INTO models (id, name, provider, description, api_base) "
        "VALUES (%s, 'Hand made', 'custom', 'only the admins know', 'https://internal.example')",
        params=(name,),
    )


def _user(bdsn: str, user: str = USER) -> None:
    run_sql(
        bdsn,
        "INSERT INTO users (id, username, email, oauth_provider, oauth_id) "
        "VALUES (%s, %s, %s, 'test', %s) ON CONFLICT DO NOTHING",
        params=(user, f"u{user[:4]}", f"u{user[:4]}@example.com", f"u{user[:4]}"),
    )


def _subscribe(bdsn: str, name: str, user: str = USER) -> None:
    insert = "INSERT INTO subscriptions (user_id, model_id) VALUES (%s, %s)"
    run_sql(bdsn, insert, params=(user, name))


def _availability(bdsn: str) -> dict[str, str]:
    return {str(i): str(a) for i, a in run_sql(bdsn, "SELECT id, availability FROM models")}


def _record(name: str) -> dict[str, Any]:
    return {
        "id": name,
        "name": name,
        "provider": "openai",
        "category": "chat",
        "deployment_ids": [f"dep-{name}"],
        "litellm_model_id": f"dep-{name}",
        "metadata": {"litellm_params": {}},
        "features": ["chat"],
        "api_base": "https://evil.example",
    }


def _upsert(dsn: str, *names: str) -> None:
    records = json.dumps([_record(n) for n in names])
    run_sql(dsn, "SELECT * FROM litemaas_hooks.upsert_models_v1(%s::jsonb)", params=(records,))


WRITE = "SELECT * FROM litemaas_hooks.write_models_v1(%s, %s::jsonb, %s, %s, %s, '2s')"


def _write(dsn: str, *names: str) -> None:
    """The relay's add/update as one call (lock, upsert, sources, instances)."""
    params = (list(names), json.dumps([_record(n) for n in names]), list(names))
    run_sql(dsn, WRITE, params=(*params, [True] * len(names), "me"))


# -- the lines -------------------------------------------------------------------------------------


async def test_line_converges(installed: World, master_key: str) -> None:
    w = installed
    settings = make_settings(w.url(w.ldsn, w.relay), w.url(w.bdsn, w.relay), master_key)
    async with (
        await psycopg.AsyncConnection.connect(w.as_(w.ldsn, w.lowner), autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(w.bdsn, autocommit=True) as bc,
        running(settings) as (relay,),
    ):
        for name in ("a", "b", "c"):
            await add(lc, name, master_key, max_tokens=3)
        await eventually(lambda: matches_truth(lc, bc, set()), what="created")
        await lc.execute(f"UPDATE {TABLE} SET model_name = 'b2' WHERE model_name = 'b'")
        await lc.execute(f"DELETE FROM {TABLE} WHERE model_name = 'c'")
        await eventually(lambda: matches_truth(lc, bc, {"b", "c"}), what="renamed and retired")
        assert relay.stats.events_failed == 0
        assert await audits(bc) == {"b": 1, "c": 1}


def test_line_no_backend_tables(installed: World) -> None:
    w = installed
    rel = w.as_(w.bdsn, w.relay)
    for table in BACKEND_TABLES:
        column = run_sql(
            w.bdsn,
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position LIMIT 1",
            params=(table,),
        )[0][0]
        _denied(
            rel,
            f"SELECT * FROM public.{table} LIMIT 1",
            f"DELETE FROM public.{table}",
            f"UPDATE public.{table} SET {column} = {column}",
        )
    _denied(rel, "INSERT INTO public.audit_logs (action, resource_type) VALUES ('X', 'MODEL')")
    for table in OUR_BACKEND_TABLES:
        _denied(rel, f"SELECT * FROM litemaas_hooks.{table}", f"DELETE FROM litemaas_hooks.{table}")


def test_line_hand_made_unread(installed: World) -> None:
    w = installed
    _hand_made(w.bdsn, "hand")
    _synced(w.bdsn, "synced")
    rel = w.as_(w.bdsn, w.relay)
    for ids in (["hand", "synced"], None):
        rows = run_sql(
            rel,
            "SELECT to_jsonb(s) FROM litemaas_hooks.models_snapshot_v1(%s) AS s",
            params=(ids,),
        )
        by_id = {r[0]["id"]: r[0] for r in rows}
        assert {k for k, v in by_id["hand"].items() if v is not None} == {"id"}, by_id["hand"]
        assert by_id["synced"]["name"] == "synced"  # a synced row is read as before
        assert by_id["synced"]["availability"] == "available"


def test_line_hand_made_untouched(installed: World) -> None:
    w = installed
    _hand_made(w.bdsn, "hand")
    rel = w.as_(w.bdsn, w.relay)
    before = run_sql(w.bdsn, "SELECT to_jsonb(m) FROM models AS m WHERE id = 'hand'")
    _upsert(rel, "hand")
    _write(rel, "hand")
    assert run_sql(rel, RETIRE_V1, params=("hand", REASON))[0][0]["retired"] is False
    assert run_sql(rel, RETIRE_V2, params=("hand", REASON, 0, False))[0][0]["retired"] is False
    many = run_sql(rel, RETIRE_MANY, params=(["hand"], REASON, 0, False))[0][0]
    assert many == {"hand": {"skipped": "hand_made"}}
    assert run_sql(w.bdsn, "SELECT to_jsonb(m) FROM models AS m WHERE id = 'hand'") == before


def test_line_admin_hidden(installed: World) -> None:
    w = installed
    _synced(w.bdsn, "hid", availability="unavailable")  # hidden by an admin: no hidden_models row
    rel = w.as_(w.bdsn, w.relay)
    assert run_sql(rel, RETIRE_V1, params=("hid", REASON))[0][0]["retired"] is False
    assert run_sql(rel, RETIRE_V2, params=("hid", REASON, 0, False))[0][0]["retired"] is False
    many = run_sql(rel, RETIRE_MANY, params=(["hid"], REASON, 0, False))[0][0]
    assert many == {"hid": {"skipped": "already_unavailable"}}
    _upsert(rel, "hid")
    _write(rel, "hid")
    assert _availability(w.bdsn)["hid"] == "unavailable"
    assert run_sql(w.bdsn, "SELECT count(*) FROM litemaas_hooks.hidden_models") == [(0,)]


def test_line_subscriptions_never_wait(installed: World) -> None:
    """The relay role calls every granted function on every model in one transaction and leaves it
    open; a new subscription to each model (a foreign-key check on its row) does not wait at all."""
    w = installed
    names = ["live", "hand", "hid", "pend"]
    _synced(w.bdsn, "live")
    _hand_made(w.bdsn, "hand")
    _synced(w.bdsn, "hid", availability="unavailable")
    _synced(w.bdsn, "pend")
    _user(w.bdsn)
    for name in names:
        _subscribe(w.bdsn, name)  # existing subscriptions: the cascade deactivates them
    key = run_sql(
        w.bdsn,
        "INSERT INTO api_keys (user_id, key_hash, key_prefix) VALUES (%s, 'h', 'sk-') RETURNING id",
        params=(USER,),
    )[0][0]
    run_sql(
        w.bdsn,
        "INSERT INTO api_key_models (api_key_id, model_id) VALUES (%s, 'live')",
        params=(key,),
    )
    rel = w.as_(w.bdsn, w.relay)
    run_sql(rel, RETIRE_V2, params=("pend", REASON, 3600, False))  # a pending cascade (grace)
    other = "33333333-3333-3333-3333-333333333333"
    _user(w.bdsn, other)
    calls: list[tuple[str, tuple[Any, ...] | None]] = [
        ("SELECT litemaas_hooks.lock_models_v1(%s)", (names,)),
        ("SELECT litemaas_hooks.try_lock_models_v1(%s, false)", (names,)),
        ("SELECT litemaas_hooks.try_lock_models_v1(%s, true)", (names,)),
        ("SELECT count(*) FROM litemaas_hooks.models_snapshot_v1(%s)", (names,)),
        ("SELECT count(*) FROM litemaas_hooks.model_ids_v1()", None),
        ("SELECT count(*) FROM litemaas_hooks.db_model_ids_v1(%s)", (names,)),
        ("SELECT litemaas_hooks.note_model_sources_v1(%s, %s)", (names, [True] * len(names))),
        ("SELECT litemaas_hooks.note_model_instances_v1(%s, 'me')", (names,)),
        ("SELECT count(*) FROM litemaas_hooks.served_elsewhere_v1(%s, 'other')", (names,)),
        ("SELECT litemaas_hooks.hold_retires_v1(%s, 'why')", (["nothing"],)),
        ("SELECT count(*) FROM litemaas_hooks.claim_due_retires_v1(100)", None),
        ("SELECT litemaas_hooks.retire_guard_total_v1()", None),
        ("SELECT litemaas_hooks.next_retire_due_v1()", None),
        ("SELECT count(*) FROM litemaas_hooks.retire_queue_v1()", None),
        ("SELECT litemaas_hooks.check_function_v1('litemaas_hooks.model_ids_v1()')", None),
        (
            "SELECT * FROM litemaas_hooks.upsert_models_v1(%s::jsonb)",
            (json.dumps([_record("live")]),),
        ),
        (WRITE, (names, json.dumps([_record("live")]), names, [True] * len(names), "me")),
        (RETIRE_MANY, (names, REASON, 0, False)),
    ]
    for name in names:
        calls += [
            ("SELECT litemaas_hooks.cascade_pending_v1(%s, %s)", (name, REASON)),
            (RETIRE_V2, (name, REASON, 0, False)),
            (RETIRE_V1, (name, REASON)),
        ]
    with psycopg.connect(rel) as open_tx, psycopg.connect(w.bdsn, autocommit=True) as backend:
        for statement, params in calls:
            open_tx.execute(statement.encode(), params)
        # a retire really happened in the open transaction (the cascade touched rows)
        assert _availability(w.bdsn)["live"] == "available"  # not committed
        backend.execute("SET lock_timeout = '2s'")
        for name in names:
            backend.execute(
                "INSERT INTO subscriptions (user_id, model_id) VALUES (%s, %s)", (other, name)
            )
        open_tx.rollback()


def test_line_audit_rows(installed: World) -> None:
    w = installed
    _synced(w.bdsn, "a")
    rel = w.as_(w.bdsn, w.relay)
    for statement, params in (
        (RETIRE_V1, ("a", "anything I like")),
        (RETIRE_V2, ("a", "anything I like", 0, False)),
        (RETIRE_MANY, (["a"], "anything I like", 0, False)),
        ("SELECT litemaas_hooks.cascade_pending_v1(%s, %s)", ("a", "anything I like")),
    ):
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            run_sql(rel, statement, params=params)
    _hand_made(w.bdsn, "hand")
    run_sql(rel, RETIRE_V1, params=("hand", REASON))
    run_sql(rel, RETIRE_V1, params=("nobody", REASON))
    assert run_sql(w.bdsn, "SELECT count(*) FROM audit_logs") == [(0,)]
    assert run_sql(rel, RETIRE_V1, params=("a", REASON))[0][0]["retired"] is True
    rows = run_sql(w.bdsn, "SELECT resource_id, metadata->>'reason' FROM audit_logs")
    assert rows == [("a", REASON)]
    assert run_sql(rel, RETIRE_V1, params=("a", REASON))[0][0]["retired"] is False  # no second row
    assert run_sql(w.bdsn, "SELECT count(*) FROM audit_logs") == [(1,)]


@pytest.fixture
def shared_world(pg_cluster: LocalPostgres, shared_dsn: str, master_key: str) -> Iterator[str]:
    """One shared database (RHDP), installed by the superuser, and a relay role with exactly the
    printed grants in it; yields the relay role's DSN."""
    role = f"hk_relay_{secrets.token_hex(3)}"
    password = secrets.token_hex(16)
    with pg_cluster.connect() as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
    env = {"LITELLM_DATABASE_URL": shared_dsn, "LITEMAAS_DATABASE_URL": shared_dsn}
    mp = pytest.MonkeyPatch()
    try:
        assert asyncio.run(run_cli(mp, {**env, "LITELLM_MASTER_KEY": master_key}, "install")) == 0
        for text in privileges.grants_by_database(privileges.Roles(relay=role)).values():
            run_sql(shared_dsn, text)
        yield psycopg.conninfo.make_conninfo(shared_dsn, user=role, password=password)
    finally:
        mp.undo()
        run_sql(shared_dsn, sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        with pg_cluster.connect() as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


async def test_line_live_name(shared_dsn: str, shared_world: str, master_key: str) -> None:
    rel = shared_world
    async with await psycopg.AsyncConnection.connect(shared_dsn, autocommit=True) as lc:
        await add(lc, "live", master_key, max_tokens=1)
        await add(lc, "back", master_key, max_tokens=1)
    for name in ("live", "gone", "back"):
        _synced(shared_dsn, name)
    run_sql(shared_dsn, f"DELETE FROM {TABLE} WHERE model_name = 'back'")
    # a pending cascade of a name that then came back in LiteLLM (no relay ran yet)
    assert run_sql(rel, RETIRE_V2, params=("back", REASON, 3600, False))[0][0]["retired"] is True
    async with await psycopg.AsyncConnection.connect(shared_dsn, autocommit=True) as lc:
        await add(lc, "back", master_key, max_tokens=1)
    for statement, params in (
        (RETIRE_V1, ("live", REASON)),
        (RETIRE_V2, ("live", REASON, 0, False)),
    ):
        result = run_sql(rel, statement, params=params)[0][0]
        assert result["retired"] is False
        assert result["litellm_has_it"] is True
    # its grace period over: the cascade is still refused (LiteLLM has the name again)
    run_sql(shared_dsn, DUE_NOW)
    cascade = run_sql(rel, "SELECT litemaas_hooks.cascade_pending_v1('back', %s)", params=(REASON,))
    assert cascade[0][0]["cascaded"] is False
    assert cascade[0][0]["litellm_has_it"] is True
    # a name LiteLLM does not have is retired as before
    assert run_sql(rel, RETIRE_V1, params=("gone", REASON))[0][0]["retired"] is True
    assert _availability(shared_dsn)["live"] == "available"
    assert run_sql(shared_dsn, "SELECT resource_id FROM audit_logs") == [("gone",)]


async def test_line_live_name_two_databases(
    installed: World,
    monkeypatch: pytest.MonkeyPatch,
    master_key: str,
) -> None:
    w = installed
    relay_env = w.env(w.relay, w.relay, master_key)
    async with await psycopg.AsyncConnection.connect(
        w.as_(w.ldsn, w.lowner), autocommit=True
    ) as lc:
        await add(lc, "a", master_key, max_tokens=1)
        assert await run_cli(monkeypatch, relay_env, "backfill", "--quiet") == 0
    _user(w.bdsn)
    _subscribe(w.bdsn, "a")
    rel = w.as_(w.bdsn, w.relay)
    result = run_sql(rel, RETIRE_V2, params=("a", REASON, 0, False))[0][0]
    assert result["retired"] is True  # the backend cannot see LiteLLM's database
    assert result["subscriptionsDeactivated"] == 1
    assert await run_cli(monkeypatch, relay_env, "backfill", "--quiet") == 0
    assert _availability(w.bdsn)["a"] == "available"
    assert (
        await run_cli(
            monkeypatch, w.env(w.installer, w.installer, master_key), "restore", "--yes", "a"
        )
        == 0
    )
    assert run_sql(w.bdsn, "SELECT status FROM subscriptions WHERE model_id = 'a'") == [("active",)]


def test_line_grace_period(installed: World) -> None:
    w = installed
    _synced(w.bdsn, "p")
    _user(w.bdsn)
    _subscribe(w.bdsn, "p")
    rel = w.as_(w.bdsn, w.relay)
    assert run_sql(rel, RETIRE_V2, params=("p", REASON, 3600, False))[0][0]["pending"] is True
    early = run_sql(rel, "SELECT litemaas_hooks.cascade_pending_v1('p', %s)", params=(REASON,))
    assert early[0][0]["cascaded"] is False
    assert run_sql(w.bdsn, "SELECT status FROM subscriptions") == [("active",)]
    assert run_sql(w.bdsn, "SELECT count(*) FROM litemaas_hooks.pending_retires") == [(1,)]
    # once due (the grace period over), the same call cascades
    run_sql(w.bdsn, DUE_NOW)
    due = run_sql(rel, "SELECT litemaas_hooks.cascade_pending_v1('p', %s)", params=(REASON,))
    assert due[0][0]["cascaded"] is True
    assert run_sql(w.bdsn, "SELECT status FROM subscriptions") == [("inactive",)]


def test_line_guard_and_restore(installed: World) -> None:
    w = installed
    _synced(w.bdsn, "held")
    _user(w.bdsn)
    _subscribe(w.bdsn, "held")
    rel = w.as_(w.bdsn, w.relay)
    _denied(
        rel,
        "SELECT * FROM litemaas_hooks.claim_held_retires_v1(NULL)",
        f"SELECT litemaas_hooks.cascade_held_v1('held', '{REASON}')",
        "SELECT litemaas_hooks.restore_model_v1('held', true)",
        "SELECT litemaas_hooks.cascade_model_v1('held')",
    )
    held = run_sql(rel, RETIRE_V2, params=("held", REASON, 0, True))[0][0]
    assert held["held"] is True
    done = run_sql(rel, "SELECT litemaas_hooks.cascade_pending_v1('held', %s)", params=(REASON,))
    assert done[0][0]["cascaded"] is False
    assert run_sql(w.bdsn, "SELECT status FROM subscriptions") == [("active",)]
    assert run_sql(w.bdsn, "SELECT held_at IS NOT NULL FROM litemaas_hooks.pending_retires") == [
        (True,)
    ]


def test_line_bookkeeping(installed: World) -> None:
    w = installed
    for dsn in (w.as_(w.bdsn, w.relay), w.as_(w.ldsn, w.relay)):
        _denied(
            dsn,
            "DELETE FROM litemaas_hooks.schema_migrations",
            "UPDATE litemaas_hooks.schema_migrations SET checksum = 'x'",
            "INSERT INTO litemaas_hooks.schema_migrations (side, version, name, checksum) "
            "VALUES ('backend', 999, 'x', 'x')",
            "CREATE TABLE litemaas_hooks.x (i int)",
            "CREATE FUNCTION litemaas_hooks.x() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        )
    rel = w.as_(w.bdsn, w.relay)
    _denied(
        rel,
        "DELETE FROM litemaas_hooks.function_checks",
        "UPDATE litemaas_hooks.function_checks SET body_md5 = 'x'",
        "ALTER FUNCTION litemaas_hooks.model_ids_v1() SECURITY INVOKER",
        "CREATE OR REPLACE FUNCTION litemaas_hooks.model_ids_v1() RETURNS SETOF text "
        "LANGUAGE sql AS 'SELECT NULL::text'",
    )


def test_line_litellm_side(installed: World) -> None:
    w = installed
    rel = w.as_(w.ldsn, w.relay)
    run_sql(rel, f"SELECT count(*) FROM {TABLE}")
    with psycopg.connect(rel) as conn:  # the outbox: claim, complete, replay (rolled back)
        conn.execute(
            "INSERT INTO litemaas_hooks.model_events (op, model_id, new_model_name) "
            "VALUES ('INSERT', 'x', 'x')"
        )
        conn.execute("UPDATE litemaas_hooks.model_events SET attempts = attempts")
        conn.execute("DELETE FROM litemaas_hooks.model_events")
        conn.execute("UPDATE litemaas_hooks.reconcile_state SET last_started_at = last_started_at")
        conn.execute("DELETE FROM litemaas_hooks.cost_map_memo")
        conn.rollback()
    _denied(
        rel,
        f"UPDATE {TABLE} SET model_name = 'x'",
        f"DELETE FROM {TABLE}",
        f"INSERT INTO {TABLE} (model_id, model_name, litellm_params, model_info, created_by, "
        "updated_by) VALUES ('x', 'x', '{}', '{}', 't', 't')",
        f"CREATE TRIGGER t AFTER INSERT ON {TABLE} "
        "FOR EACH ROW EXECUTE FUNCTION litemaas_hooks.record_model_event_v1()",
        "DELETE FROM litemaas_hooks.reconcile_state",
        "INSERT INTO litemaas_hooks.reconcile_state DEFAULT VALUES",
    )
    allowed = {"model_events", "reconcile_state", "cost_map_memo"}
    ours = [
        r[0]
        for r in run_sql(
            w.ldsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'litemaas_hooks'"
        )
    ]
    for table in sorted(set(ours) - allowed - {"schema_migrations"}):
        _denied(rel, f"DELETE FROM litemaas_hooks.{table}")
    # nothing else of LiteLLM's: its keys, users, spend
    others = run_sql(
        w.ldsn,
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
        "WHERE schemaname = 'public' AND tablename <> 'LiteLLM_ProxyModelTable'",
    )
    assert others
    for (table,) in others:
        _denied(rel, f"SELECT 1 FROM {table} LIMIT 1")


def test_line_only_granted_functions(installed: World) -> None:
    w = installed
    query = (
        "SELECT p.oid::regprocedure::text FROM pg_proc AS p "
        "WHERE p.pronamespace = 'litemaas_hooks'::regnamespace "
        "AND has_function_privilege(%s, p.oid, 'EXECUTE')"
    )
    for dsn, granted in (
        (w.bdsn, privileges.RELAY_BACKEND_FUNCTIONS),
        (w.ldsn, privileges.RELAY_LITELLM_FUNCTIONS),
    ):
        expected = {
            str(run_sql(dsn, "SELECT %s::regprocedure::text", params=(fn,))[0][0]) for fn in granted
        }
        assert {r[0] for r in run_sql(dsn, query, params=(w.relay,))} == expected
    nobody = "PUBLIC"
    for dsn in (w.bdsn, w.ldsn):
        rows = run_sql(
            dsn,
            "SELECT count(*) FROM pg_proc AS p, "
            "aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS a "
            "WHERE p.pronamespace = 'litemaas_hooks'::regnamespace AND a.grantee = 0 "
            "AND a.privilege_type = 'EXECUTE'",
        )
        assert rows == [(0,)], f"{nobody} may execute functions of ours ({dsn})"
