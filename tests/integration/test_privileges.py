"""Privilege boundaries: no role gains anything through our objects.

Four separate NON-superuser roles, as in a real deployment: the installer (runs `litemaas-hooks
install`; a member of both data owners' roles, may CREATE in both databases), LiteLLM's table owner
(owns LiteLLM's database and table, writes it), the backend owner (owns the LiteMaaS database, its
tables and update_updated_at_column()) and the relay (exactly `install --print-grants`). Each "door"
is tried as the hostile owner would: a function of theirs records ``current_user`` whenever it runs;
it must never run as anybody but its owner's own role (or not at all). Then the documented roles,
and a SUPERUSER installer (the last section).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from litemaas_hooks import litellm_source, outbox, privileges
from litemaas_hooks.connections import connect
from litemaas_hooks.migrations import apply_migrations
from litemaas_hooks.relay import Relay
from litemaas_hooks.settings import load_settings
from litemaas_hooks_sandbox.cluster import LocalPostgres
from tests.helpers import (
    DROP_TRIGGERS,
    REASON,
    RETIRE_FN,
    TABLE,
    WHO_TABLE,
    WRITE_FN,
    World,
    add,
    as_url,
    assert_no_secrets,
    audits,
    eventually,
    grant_relay,
    install_world,
    make_settings,
    matches_truth,
    outbox_empty,
    relay_roles,
    run_cli,
    run_sql,
    running,
    scalar,
    who,
)

pytestmark = pytest.mark.anyio



# -- door 3: the LiteLLM-side trigger --------------------------------------------------------------


async def test_litellm_owner_gains_nothing_through_the_trigger(
    installed: World, monkeypatch: Any, master_key: str
) -> None:
    """LiteLLM's table owner adds an enum type with a cast to json and a column of that type:
    to_jsonb(OLD) in a SECURITY DEFINER trigger ran the owner's cast as the installer. Now the
    trigger runs as the writer (SECURITY INVOKER) and never
    converts whole rows: the cast never runs as anyone else."""
    w = installed
    lown = w.as_(w.ldsn, w.lowner)
    run_sql(
        lown,
        WHO_TABLE,
        "CREATE TYPE public.esc AS ENUM ('a', 'b')",
        """CREATE FUNCTION public.esc_json(public.esc) RETURNS json LANGUAGE plpgsql AS $$
           BEGIN INSERT INTO public.who VALUES (current_user, 'cast'); RETURN '"x"'::json;
           END $$""",
        "CREATE CAST (public.esc AS json) WITH FUNCTION public.esc_json(public.esc)",
        f"ALTER TABLE {TABLE} ADD COLUMN esc public.esc DEFAULT 'a'",
    )
    # the cast really is a door: to_jsonb dispatches to it
    run_sql(lown, "SELECT to_jsonb(t) FROM (SELECT 'a'::public.esc AS e) AS t")
    assert who(lown) == {w.lowner}
    run_sql(lown, "DELETE FROM public.who")

    # re-install after the table changed (as the relay would)
    await install_world(w, monkeypatch, master_key)
    async with await psycopg.AsyncConnection.connect(lown, autocommit=True) as lc:
        await add(lc, "m", master_key)
        await lc.execute(f"UPDATE {TABLE} SET esc = 'b', model_info = model_info || '{{\"x\": 1}}'")
        await lc.execute(f"DELETE FROM {TABLE}")
    assert who(lown) <= {w.lowner}  # never the installer
    events = run_sql(w.ldsn, "SELECT op FROM litemaas_hooks.model_events ORDER BY id")
    assert [e[0] for e in events] == ["INSERT", "UPDATE", "DELETE"]
    secdef = run_sql(
        w.ldsn,
        "SELECT p.prosecdef, p.proconfig FROM pg_proc AS p "
        "WHERE p.oid = 'litemaas_hooks.record_model_event_v1()'::regprocedure",
    )
    assert secdef[0][0] is False
    assert "search_path=pg_catalog, pg_temp" in secdef[0][1]


# -- door 4: the backend's update_updated_at_column() ----------------------------------------------


async def test_backend_owner_gains_nothing_through_our_upsert(
    installed: World, monkeypatch: Any, master_key: str
) -> None:
    """The backend owner replaces its own update_updated_at_column(); our SECURITY DEFINER upsert
    fires it. The functions are owned by the owner of public.models,
    so it runs as that owner, never the installer."""
    w = installed
    bown = w.as_(w.bdsn, w.bowner)
    run_sql(
        bown,
        WHO_TABLE,
        """CREATE OR REPLACE FUNCTION public.update_updated_at_column() RETURNS trigger
           LANGUAGE plpgsql AS $$
           BEGIN INSERT INTO public.who VALUES (current_user, 'updated_at');
                 NEW.updated_at = now(); RETURN NEW; END
           $$""",
    )
    async with await psycopg.AsyncConnection.connect(w.ldsn, autocommit=True) as lc:
        await add(lc, "m", master_key, max_tokens=1)
        env = w.env(w.relay, w.relay, master_key)
        assert await run_cli(monkeypatch, env, "backfill", "--quiet") == 0
        await lc.execute(f"""UPDATE {TABLE} SET model_info = model_info || '{{"max_tokens": 2}}'""")
        assert await run_cli(monkeypatch, env, "backfill", "--quiet") == 0
    assert run_sql(w.bdsn, "SELECT max_tokens FROM models WHERE id = 'm'") == [(2,)]
    assert who(w.bdsn) == {w.bowner}  # it ran (the update), and only as its owner
    owners = run_sql(
        w.bdsn,
        "SELECT DISTINCT pg_get_userbyid(p.proowner) FROM pg_proc AS p "
        "WHERE p.pronamespace = 'litemaas_hooks'::regnamespace AND p.prosecdef",
    )
    assert owners == [(w.bowner,)]


# -- door 5: search_path in our client queries -----------------------------------------------------


async def test_database_owner_functions_never_shadow_builtins_in_our_queries(
    installed: World, monkeypatch: Any, master_key: str
) -> None:
    """LiteLLM's database owner creates public.unnest(text[]) and public.to_jsonb(<its row type>)
    (exact type matches beat pg_catalog's): our backfill, status, truth reads and relay connections
    pin search_path = pg_catalog, pg_temp, so none of them ever runs."""
    w = installed
    lown = w.as_(w.ldsn, w.lowner)
    run_sql(
        lown,
        WHO_TABLE,
        """CREATE FUNCTION public.unnest(text[]) RETURNS SETOF text LANGUAGE sql AS $$
           INSERT INTO public.who VALUES (current_user, 'unnest');
           SELECT x FROM pg_catalog.unnest($1) AS x $$""",
        f"""CREATE FUNCTION public.to_jsonb({TABLE}) RETURNS jsonb LANGUAGE sql AS $$
           INSERT INTO public.who VALUES (current_user, 'to_jsonb'); SELECT '{{}}'::jsonb $$""",
        "CREATE FUNCTION public.btrim(text) RETURNS text LANGUAGE sql AS $$ "
        "INSERT INTO public.who VALUES (current_user, 'btrim'); SELECT $1 $$",
    )
    # the doors are real for an unpinned session of the relay's role
    run_sql(w.as_(w.ldsn, w.relay), "SELECT count(*) FROM unnest(ARRAY['a']::text[])")
    assert who(w.ldsn) == {w.relay}
    run_sql(w.ldsn, "DELETE FROM public.who")

    async with await psycopg.AsyncConnection.connect(w.ldsn, autocommit=True) as lc:
        await add(lc, "m", master_key)
    env = w.env(w.relay, w.relay, master_key)
    assert await run_cli(monkeypatch, env, "backfill", "--quiet") == 0
    assert await run_cli(monkeypatch, env, "backfill", "--dry-run", "--quiet") == 0
    await run_cli(monkeypatch, env, "status")
    # backfill (to_jsonb(t)) and status ran none of the owner's functions
    assert who(w.ldsn) == set()
    settings = load_settings(env)
    conn = await connect(settings, "litellm")
    async with conn:
        truth = await litellm_source.read_truth(conn, ["m"], key=master_key)
        assert list(truth.deployments) == ["m"]
        cur = await conn.execute("SELECT replace(current_setting('search_path'), ' ', '')")
        assert await cur.fetchone() == ("pg_catalog,pg_temp",)
    relay = Relay(settings, name="pinned")
    rconn = await relay._connect(settings.litellm_dsn(), "litellm")
    async with rconn:
        cur = await rconn.execute("SELECT replace(current_setting('search_path'), ' ', '')")
        assert await cur.fetchone() == ("pg_catalog,pg_temp",)
    assert who(w.ldsn) == set()


# -- least privilege -------------------------------------------------------------------------------


async def test_relay_role_converges_and_can_do_nothing_else(
    installed: World, master_key: str
) -> None:
    """The relay role with exactly `install --print-grants`: a relay runs (create, update, rename,
    retire with cascade); directly, the role cannot retire a hand-made row, write an audit row of
    its choosing, un-hide an admin-hidden model, repoint a
    hand-made row, touch our bookkeeping or the tables."""
    w = installed
    async with (
        await psycopg.AsyncConnection.connect(w.as_(w.ldsn, w.lowner), autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(w.ldsn, autocommit=True) as sc,
        await psycopg.AsyncConnection.connect(w.bdsn, autocommit=True) as bc,
    ):
        await bc.execute(
            "INSERT INTO models (id, name, provider, api_base) "
            "VALUES ('hand', 'Hand made', 'custom', 'https://h')"
        )
        settings = make_settings(w.url(w.ldsn, w.relay), w.url(w.bdsn, w.relay), master_key)
        async with running(settings) as (relay,):
            for name in ("a", "b", "c"):
                await add(lc, name, master_key, max_tokens=3)

            async def added() -> bool:
                cur = await bc.execute("SELECT count(*) FROM models WHERE id IN ('a', 'b', 'c')")
                return (await cur.fetchone()) == (3,)

            await eventually(added, what="three models added")
            await lc.execute(
                f"UPDATE {TABLE} SET model_info = model_info || "
                """'{"max_tokens": 5}' WHERE model_name = 'a'"""
            )
            await lc.execute(f"UPDATE {TABLE} SET model_name = 'b2' WHERE model_name = 'b'")
            await lc.execute(f"DELETE FROM {TABLE} WHERE model_name = 'c'")

            async def synced() -> bool:
                cur = await bc.execute("SELECT id, availability FROM models ORDER BY id")
                rows: dict[str, str] = dict(await cur.fetchall())
                return rows == {
                    "a": "available",
                    "b": "unavailable",
                    "b2": "available",
                    "c": "unavailable",
                    "hand": "available",
                } and await outbox_empty(sc)

            await eventually(synced, what="relay with the printed grants")
            assert relay.stats.events_failed == 0
        assert await audits(bc) == {"b": 1, "c": 1}

        rel_b = w.as_(w.bdsn, w.relay)
        retire = "SELECT litemaas_hooks.retire_model_v1(%s, true, %s)"
        # a hand-made row is not the sync's to retire
        assert run_sql(rel_b, retire, params=("hand", REASON))[0][0]["retired"] is False
        # no free text in audit rows
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            run_sql(rel_b, retire, params=("a", "anything I like"))
        # an admin's hide stays: retire then upsert does not make it available
        await bc.execute("UPDATE models SET availability = 'unavailable' WHERE id = 'a'")
        assert run_sql(rel_b, retire, params=("a", REASON))[0][0]["retired"] is False
        a_id = await scalar(bc, "SELECT litellm_model_id FROM models WHERE id = 'a'")
        record = {
            "id": "a",
            "name": "a",
            "provider": "openai",
            "category": "chat",
            "deployment_ids": [a_id],
            "litellm_model_id": a_id,
            "metadata": {"litellm_params": {}},
            "features": ["chat"],
        }
        run_sql(
            rel_b,
            "SELECT * FROM litemaas_hooks.upsert_models_v1(%s::jsonb)",
            params=(json.dumps([record]),),
        )
        # nor does a forged deployment list ("the deployment the row described is gone") un-hide it
        forged = {
            **record,
            "deployment_ids": ["forged-deployment"],
            "litellm_model_id": "forged-deployment",
        }
        run_sql(
            rel_b,
            "SELECT * FROM litemaas_hooks.upsert_models_v1(%s::jsonb)",
            params=(json.dumps([forged]),),
        )
        # a hand-made row cannot be repointed
        hand = {**record, "id": "hand", "api_base": "https://evil.example"}
        run_sql(
            rel_b,
            "SELECT * FROM litemaas_hooks.upsert_models_v1(%s::jsonb)",
            params=(json.dumps([hand]),),
        )
        cur = await bc.execute(
            "SELECT id, availability, api_base FROM models WHERE id IN ('a', 'hand') ORDER BY id"
        )
        assert [(r[0], r[1]) for r in await cur.fetchall()] == [
            ("a", "unavailable"),
            ("hand", "available"),
        ]
        assert await audits(bc) == {"b": 1, "c": 1}
        assert (
            await (await bc.execute("SELECT api_base FROM models WHERE id = 'hand'")).fetchone()
        ) == ("https://h",)

    denied = {
        w.as_(w.bdsn, w.relay): (
            "SELECT * FROM public.models",
            "UPDATE public.models SET api_base = 'x'",
            "INSERT INTO public.audit_logs (action, resource_type) VALUES ('X', 'MODEL')",
            "SELECT * FROM litemaas_hooks.hidden_models",
            "DELETE FROM litemaas_hooks.schema_migrations",
            "CREATE TABLE litemaas_hooks.x (i int)",
        ),
        w.as_(w.ldsn, w.relay): (
            f"UPDATE {TABLE} SET model_name = 'x'",
            "DELETE FROM litemaas_hooks.schema_migrations",
            "UPDATE litemaas_hooks.schema_migrations SET checksum = 'x'",
            "CREATE TABLE litemaas_hooks.x (i int)",
            f"CREATE TRIGGER t AFTER INSERT ON {TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION litemaas_hooks.record_model_event_v1()",
        ),
    }
    for dsn, statements in denied.items():
        for statement in statements:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                run_sql(dsn, statement)


def test_nothing_of_ours_is_executable_by_public(
    installed: World, pg_cluster: LocalPostgres
) -> None:
    w = installed
    nobody = f"hk_nobody_{secrets.token_hex(3)}"
    with pg_cluster.connect() as admin:
        admin.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(nobody)))
    try:
        for dsn in (w.ldsn, w.bdsn):
            rows = run_sql(
                dsn,
                "SELECT p.oid::regprocedure::text, has_function_privilege(%s, p.oid, 'EXECUTE') "
                "FROM pg_proc AS p WHERE p.pronamespace = 'litemaas_hooks'::regnamespace",
                params=(nobody,),
            )
            assert rows, "no functions found"
            assert [fn for fn, can in rows if can] == []
    finally:
        with pg_cluster.connect() as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(nobody)))


async def test_plugin_mode_with_litellm_own_role(installed: World, master_key: str) -> None:
    """Plugin mode: the relay inside LiteLLM connects with LiteLLM's own role (the table owner) once
    it has `install --print-grants --relay-role <LiteLLM's role>`; it used to loop on `permission
    denied for schema litemaas_hooks`."""
    w = installed
    grant_relay(w, privileges.Roles(relay=w.lowner, backend=w.relay))
    # LiteLLM re-created its table (the trigger went with it): the plugin's relay puts it back
    run_sql(w.as_(w.ldsn, w.lowner), DROP_TRIGGERS)
    settings = make_settings(w.url(w.ldsn, w.lowner), w.url(w.bdsn, w.relay), master_key)
    async with (
        await psycopg.AsyncConnection.connect(w.as_(w.ldsn, w.lowner), autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(w.bdsn, autocommit=True) as bc,
        running(settings) as (relay,),
    ):
        await add(lc, "p1", master_key, max_tokens=1)
        await add(lc, "p2", master_key, max_tokens=2)
        await eventually(
            lambda: matches_truth(lc, bc, set()), what="plugin-mode relay as LiteLLM's role"
        )
        assert relay.stats.events_failed == 0
        assert (await outbox.trigger_state(lc)).ok


def test_readme_grants_are_the_printed_grants() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "privileges.md").read_text()
    section = page.split("## Grants of the relay", 1)[1]
    block = section.split("```sql", 1)[1].split("```", 1)[0]
    assert block.strip() == privileges.grants_sql().strip()


# -- issue 10 item 3: our DDL on LiteLLM's table ---------------------------------------------------


async def test_trigger_install_behind_an_open_litellm_transaction_gives_up_and_retries(
    installed: World,
) -> None:
    """The trigger (re-)install locks LiteLLM's table only with a short lock_timeout: behind an open
    LiteLLM transaction it gives up with a warning instead of queueing (which made LiteLLM's next
    statements hang), and a later install puts the trigger back."""
    w = installed
    lown = w.as_(w.ldsn, w.lowner)
    run_sql(lown, DROP_TRIGGERS)
    inst = w.as_(w.ldsn, w.installer)
    with psycopg.connect(lown) as open_tx, psycopg.connect(lown, autocommit=True) as other:
        # an open LiteLLM write
        open_tx.execute(f"UPDATE {TABLE} SET model_name = model_name WHERE false")
        warnings: list[str] = []
        async with await psycopg.AsyncConnection.connect(inst, autocommit=True) as conn:
            conn.add_notice_handler(lambda d: warnings.append(d.message_primary or ""))
            await asyncio.wait_for(apply_migrations(conn, "litellm"), timeout=30)
            assert not (await outbox.trigger_state(conn)).trigger_present
        assert any("was not (re-)installed" in m for m in warnings)
        other.execute("SET statement_timeout = '2s'")
        other.execute(
            f"INSERT INTO {TABLE} (model_id, model_name, "
            "litellm_params, model_info, created_by, updated_by) "
            "VALUES ('x', 'x', '{}', '{}', 't', 't')"
        )
        open_tx.rollback()
    async with await psycopg.AsyncConnection.connect(inst, autocommit=True) as conn:
        await apply_migrations(conn, "litellm")
        assert (await outbox.trigger_state(conn)).ok


def test_printed_install_sql_is_what_install_does(litellm_dsn: str, backend_dsn: str) -> None:
    """`install --print-sql`, applied by hand (as a DBA would after review), installs everything:
    the trigger is in place and `install` afterwards finds nothing to apply."""
    for dsn, side in ((litellm_dsn, "litellm"), (backend_dsn, "backend")):
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(privileges.install_sql(side).encode())  # type: ignore[arg-type]

    async def check() -> None:
        for dsn, side in ((litellm_dsn, "litellm"), (backend_dsn, "backend")):
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                result = await apply_migrations(conn, side)  # type: ignore[arg-type]
                assert result.applied == []
                if side == "litellm":
                    assert (await outbox.trigger_state(conn)).ok

    asyncio.run(check())


async def test_schema_squatted_by_the_database_owner_is_refused(
    world: World, monkeypatch: Any, master_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """LiteLLM's database owner creates schema litemaas_hooks and a schema_migrations table with a
    trigger before the first install: install must refuse (naming the objects) instead of inserting
    into it, which would run the owner's trigger as the installer."""
    w = world
    lown = w.as_(w.ldsn, w.lowner)
    run_sql(
        lown,
        WHO_TABLE,
        "CREATE SCHEMA litemaas_hooks",
        "GRANT USAGE, CREATE ON SCHEMA litemaas_hooks TO PUBLIC",
        """CREATE TABLE litemaas_hooks.schema_migrations (side text NOT NULL,
           version integer NOT NULL, name text NOT NULL, checksum text NOT NULL,
           applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (side, version))""",
        "GRANT ALL ON litemaas_hooks.schema_migrations TO PUBLIC",
        """CREATE FUNCTION public.spy() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN INSERT INTO public.who VALUES (current_user, 'squat'); RETURN NEW; END $$""",
        "CREATE TRIGGER spy BEFORE INSERT ON litemaas_hooks.schema_migrations "
        "FOR EACH ROW EXECUTE FUNCTION public.spy()",
    )
    capsys.readouterr()
    assert (
        await run_cli(
            monkeypatch, w.env(w.installer, w.installer, master_key), "install", "--litellm-only"
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "schema litemaas_hooks (owned by" in err
    assert w.lowner in err
    assert who(w.ldsn) == set()


# -- issue 20 item 5: plugin mode after an install by a DBA / a superuser
# ----------------------------


@pytest.mark.parametrize("installer", ["superuser", "dba", "owner", "plugin-job"])
async def test_plugin_mode_works_after_any_installer_without_extra_grants(
    world: World, monkeypatch: Any, master_key: str, installer: str
) -> None:
    """Plugin mode claims the outbox with LiteLLM's own role: after `install` by another role it got
    `permission denied for table model_events` and retried forever. Install now grants the owner of
    LiteLLM's table what the relay needs on our tables; no `--print-grants` for the LiteLLM side.
    Installers: a superuser, a DBA (member of both owners' roles), each database's owner itself, and
    the deploy/ plugin Job's own steps as a superuser (`install --backend-only --grant-relay`, then
    `install --litellm-only`: the relay role is made in the backend only)."""
    w = world
    superuser = {
        "LITELLM_DATABASE_URL": w.ldsn,
        "LITEMAAS_DATABASE_URL": w.bdsn,
        "LITELLM_MASTER_KEY": master_key,
    }
    if installer == "superuser":
        assert await run_cli(monkeypatch, superuser, "install") == 0
    elif installer == "owner":
        assert await run_cli(monkeypatch, w.env(w.lowner, w.bowner, master_key), "install") == 0
    elif installer == "dba":
        await install_world(w, monkeypatch, master_key)
    if installer == "plugin-job":
        env = {**superuser, privileges.RELAY_PASSWORD_ENV: w.password}
        argv = ("install", "--backend-only", "--grant-relay", "--relay-role", w.relay)
        assert await run_cli(monkeypatch, env, *argv) == 0
        assert await run_cli(monkeypatch, env, "install", "--litellm-only") == 0
        # nothing of the relay role in LiteLLM's database: LiteLLM's own role works the outbox there
        held = run_sql(
            w.ldsn,
            "SELECT count(*) FROM information_schema.role_table_grants WHERE grantee = %s",
            params=(w.relay,),
        )
        assert held == [(0,)]
    else:
        # the backend side: the relay role's grants only
        run_sql(w.bdsn, privileges.backend_grants(w.relay))
    settings = make_settings(w.url(w.ldsn, w.lowner), w.url(w.bdsn, w.relay), master_key)
    async with (
        await psycopg.AsyncConnection.connect(w.as_(w.ldsn, w.lowner), autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(w.bdsn, autocommit=True) as bc,
        running(settings) as (relay,),
    ):
        await add(lc, "p1", master_key, max_tokens=1)
        await eventually(
            lambda: matches_truth(lc, bc, set()), what="plugin-mode relay as LiteLLM's role"
        )
        assert relay.stats.events_failed == 0
        assert await outbox_empty(lc)


async def test_install_creates_the_relay_role_with_exactly_the_printed_grants(
    world: World, monkeypatch: Any, master_key: str
) -> None:
    """Issue 20 item 2 (the install Job's part): `install --grant-relay` creates the relay role
    from a
    Secret's password and grants it exactly `--print-grants`; the relay then works with it and with
    nothing more (it cannot read the backend's tables)."""
    w = world
    role = f"hk_made_{secrets.token_hex(3)}"
    env = {
        "LITELLM_DATABASE_URL": w.ldsn,
        "LITEMAAS_DATABASE_URL": w.bdsn,
        "LITELLM_MASTER_KEY": master_key,
        "LITEMAAS_HOOKS_RELAY_PASSWORD": w.password,
    }
    try:
        assert (
            await run_cli(monkeypatch, env, "install", "--grant-relay", "--relay-role", role) == 0
        )
        # again
        assert (
            await run_cli(monkeypatch, env, "install", "--grant-relay", "--relay-role", role) == 0
        )
        settings = make_settings(w.url(w.ldsn, role), w.url(w.bdsn, role), master_key)
        async with (
            await psycopg.AsyncConnection.connect(w.ldsn, autocommit=True) as lc,
            await psycopg.AsyncConnection.connect(w.bdsn, autocommit=True) as bc,
            running(settings) as (relay,),
        ):
            await add(lc, "r1", master_key, max_tokens=1)
            await eventually(
                lambda: matches_truth(lc, bc, set()), what="relay as the role install made"
            )
            assert relay.stats.events_failed == 0
        for statement in ("SELECT * FROM public.models", "SELECT * FROM public.subscriptions"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                run_sql(w.as_(w.bdsn, role), statement)
        granted = run_sql(
            w.bdsn,
            "SELECT count(*) FROM pg_proc AS p WHERE "
            "p.pronamespace = 'litemaas_hooks'::regnamespace "
            "AND has_function_privilege(%s, p.oid, 'EXECUTE')",
            params=(role,),
        )
        assert granted == [(len(privileges.RELAY_BACKEND_FUNCTIONS),)]
    finally:
        for dsn in (w.ldsn, w.bdsn):
            run_sql(dsn, sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        with w.pg.connect() as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


# -- the documented roles --------------------------------------------------------------------------


async def test_relay_and_backfill_work_with_the_readme_least_privilege_roles(
    dbs: tuple[str, str],
    master_key: str,
    pg_cluster: LocalPostgres,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    logs: list[str],
) -> None:
    """Injects: the relay and the backfill run as the roles of docs/privileges.md (granted by
    parsing that page's block): a backend role with USAGE on schema litemaas_hooks + EXECUTE on its
    functions, a LiteLLM role that may only read the model table and use the outbox.

    Asserts: backfill and relay (create, update, rename, retire with cascade) work and nothing is
    lost; the backend role can neither read nor write public.models directly, the LiteLLM role
    cannot write LiteLLM's table."""
    ldsn, bdsn = dbs
    l_role, b_role, role_password = relay_roles(pg_cluster, ldsn, bdsn)
    async with await psycopg.AsyncConnection.connect(b_role, autocommit=True) as restricted:
        for statement in ("SELECT * FROM public.models", "UPDATE public.models SET name = 'x'"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                await restricted.execute(statement)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await restricted.execute("SELECT * FROM litemaas_hooks.hidden_models")
    async with await psycopg.AsyncConnection.connect(l_role, autocommit=True) as restricted:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await restricted.execute(f"UPDATE {TABLE} SET model_name = 'x'")

    role_env = {
        "LITEMAAS_DATABASE_URL": as_url(b_role),
        "LITELLM_DATABASE_URL": as_url(l_role),
        "LITELLM_MASTER_KEY": master_key,
    }
    async with (
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
    ):
        for name in ("a", "b", "c"):
            await add(lc, name, master_key, max_tokens=3)
        capsys.readouterr()
        assert await run_cli(monkeypatch, role_env, "backfill") == 0
        backfill_out = capsys.readouterr()
        assert "created 3" in backfill_out.out
        await lc.execute("DELETE FROM litemaas_hooks.model_events")  # applied by the backfill
        assert await matches_truth(lc, bc, set())

        await bc.execute(
            "INSERT INTO users (id, username, email, oauth_provider, oauth_id) "
            "VALUES ('11111111-1111-1111-1111-111111111111', 'u', 'u@example.com', 'test', 'u')"
        )
        await bc.execute(
            "INSERT INTO subscriptions (user_id, model_id) "
            "VALUES ('11111111-1111-1111-1111-111111111111', 'c')"
        )
        settings = make_settings(as_url(l_role), as_url(b_role), master_key)
        async with running(settings) as (relay,):
            await add(lc, "d", master_key, max_tokens=4)
            await lc.execute(
                f"""UPDATE {TABLE} SET model_info = model_info || '{{"max_tokens": 5}}' """
                "WHERE model_name = 'a'"
            )
            await lc.execute(f"UPDATE {TABLE} SET model_name = 'b2' WHERE model_name = 'b'")
            await lc.execute(f"DELETE FROM {TABLE} WHERE model_name = 'c'")
            await eventually(
                lambda: matches_truth(lc, bc, {"b", "c"}), what="relay as least-privilege roles"
            )
            assert relay.stats.events_failed == 0
            assert relay.stats.reconnects == 0
        assert await audits(bc) == {"b": 1, "c": 1}
        assert await scalar(bc, "SELECT status FROM subscriptions") == "inactive"  # the cascade ran
    await assert_no_secrets(
        pg_cluster,
        ldsn,
        bdsn,
        [master_key, role_password],
        {"logs": "\n".join(logs), "backfill output": backfill_out.out + backfill_out.err},
    )


# -- a SUPERUSER installer: no owner's door opens onto it ------------------------------------------
# The installer here is the SUPERUSER (docs/privileges.md allows one); each owner tries each door,
# as a hostile owner would: code of theirs that records ``current_user`` and tries to make its owner
# SUPERUSER whenever it runs. It must never run as the superuser: the read or call is refused with
# one line instead, and the owner stays a plain role.
# Re-running install repairs what an owner altered.


def _super_env(w: World, key: str) -> dict[str, str]:
    return {
        "LITELLM_DATABASE_URL": w.ldsn,
        "LITEMAAS_DATABASE_URL": w.bdsn,
        "LITELLM_MASTER_KEY": key,
    }


def _is_superuser(dsn: str, role: str) -> bool:
    return bool(
        run_sql(dsn, "SELECT rolsuper FROM pg_roles WHERE rolname = %s", params=(role,))[0][0]
    )


def _escalating_body(role: str, returns: str) -> str:
    """plpgsql that records who runs it and tries to make ``role`` a superuser (works only as
    one)."""
    return f"""
        BEGIN
            INSERT INTO public.who VALUES (current_user, 'door');
            BEGIN EXECUTE 'ALTER ROLE {role} SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END;
            RETURN {returns};
        END"""


def _has_blocked(dsn: str) -> bool:
    rows = run_sql(
        dsn,
        "SELECT 1 FROM pg_attribute WHERE attrelid = "
        "%s::regclass AND attname = 'blocked' AND NOT attisdropped",
        params=(TABLE,),
    )
    return bool(rows)


@pytest.mark.parametrize("column", ["blocked", "model_name"])
async def test_litellm_owner_cast_on_a_column_type_of_its_own_never_runs_as_the_installer(
    world: World, monkeypatch: Any, capsys: pytest.CaptureFixture[str], master_key: str, column: str
) -> None:
    """LiteLLM's table owner turns a column we read into its own enum with its own casts to text and
    boolean: our reads (`blocked::text::boolean`, comparisons of model_name) would run them as
    whoever
    runs backfill/status. The column type is checked first: the read is refused, the cast never
    runs."""
    w = world
    env = _super_env(w, master_key)
    assert await run_cli(monkeypatch, env, "install") == 0  # the superuser installs
    async with await psycopg.AsyncConnection.connect(w.ldsn, autocommit=True) as lc:
        await add(lc, "m", master_key)
    lown = w.as_(w.ldsn, w.lowner)
    values = "'true', 'false'" if column == "blocked" else "'m'"
    stmts = [
        WHO_TABLE,
        f"CREATE TYPE public.esc AS ENUM ({values})",
        f"""CREATE FUNCTION public.esc_text(public.esc) RETURNS text LANGUAGE plpgsql AS $$
            {_escalating_body(w.lowner, "$1::name::text")} $$""",
        f"""CREATE FUNCTION public.esc_bool(public.esc) RETURNS boolean LANGUAGE plpgsql AS $$
            {_escalating_body(w.lowner, "false")} $$""",
        "CREATE CAST (public.esc AS text) WITH FUNCTION public.esc_text(public.esc) AS IMPLICIT",
        "CREATE CAST (public.esc AS boolean) WITH FUNCTION public.esc_bool(public.esc) AS IMPLICIT",
    ]
    if column == "blocked" and _has_blocked(w.ldsn):
        stmts += [
            f"ALTER TABLE {TABLE} ALTER COLUMN blocked DROP DEFAULT",
            f"ALTER TABLE {TABLE} ALTER COLUMN blocked TYPE "
            "public.esc USING blocked::text::public.esc",
        ]
    elif column == "blocked":  # LiteLLM 1.81: no such column yet; the owner adds it
        stmts.append(f"ALTER TABLE {TABLE} ADD COLUMN blocked public.esc DEFAULT 'false'")
    else:
        stmts.append(
            f"ALTER TABLE {TABLE} ALTER COLUMN model_name "
            "TYPE public.esc USING model_name::public.esc"
        )
    run_sql(lown, *stmts)
    # the cast really is a door when the superuser uses it
    run_sql(w.ldsn, "SELECT NULL::public.esc::text")
    assert who(w.ldsn) == {"postgres"}
    assert _is_superuser(w.ldsn, w.lowner)
    run_sql(w.ldsn, f"ALTER ROLE {w.lowner} NOSUPERUSER", "DELETE FROM public.who")
    capsys.readouterr()

    for argv in (["backfill"], ["status"]):
        await run_cli(monkeypatch, env, *argv)
    err = capsys.readouterr()
    assert "litemaas-hooks refuses to read it" in err.err + err.out, err
    assert who(w.ldsn) == set(), "the owner's cast ran"
    assert not _is_superuser(w.ldsn, w.lowner)


DOORS = {
    "SECURITY INVOKER": "ALTER FUNCTION litemaas_hooks.upsert_models_v1(jsonb) SECURITY INVOKER",
    "search_path": "ALTER FUNCTION litemaas_hooks.upsert_models_v1(jsonb) "
    "SET search_path = public, pg_catalog",
    "body replaced": """CREATE OR REPLACE FUNCTION litemaas_hooks.upsert_models_v1(p_models jsonb)
        RETURNS TABLE (model_id text, outcome text) LANGUAGE plpgsql SECURITY DEFINER
        SET search_path = pg_catalog, pg_temp AS $$ BEGIN PERFORM public.escalate(); END $$""",
    "snapshot invoker": "ALTER FUNCTION litemaas_hooks.models_snapshot_v1(text[]) SECURITY INVOKER",
}


@pytest.mark.parametrize("door", list(DOORS))
async def test_backend_owner_altering_our_functions_is_refused_before_any_call(
    world: World, monkeypatch: Any, capsys: pytest.CaptureFixture[str], master_key: str, door: str
) -> None:
    """The backend's table owner owns our SECURITY DEFINER functions and may alter them: made
    SECURITY
    INVOKER (its own triggers on public.models then fire as the caller), given its own search_path,
    or
    given its own body. Every call checks the function against what install recorded, in the same
    statement: the superuser's backfill refuses; after `install` again it works."""
    w = world
    env = _super_env(w, master_key)
    assert await run_cli(monkeypatch, env, "install") == 0
    async with await psycopg.AsyncConnection.connect(w.ldsn, autocommit=True) as lc:
        await add(lc, "m", master_key, max_tokens=1)
    bown = w.as_(w.bdsn, w.bowner)
    if door == "body replaced":  # needs CREATE on our schema too: say a DBA once granted it
        run_sql(w.bdsn, f"GRANT CREATE ON SCHEMA litemaas_hooks TO {w.bowner}")
    run_sql(
        bown,
        WHO_TABLE,
        f"""CREATE FUNCTION public.escalate() RETURNS void LANGUAGE plpgsql AS $$
            {_escalating_body(w.bowner, "")} $$""",
        f"""CREATE FUNCTION public.escalate_trg() RETURNS trigger LANGUAGE plpgsql AS $$
            {_escalating_body(w.bowner, "NEW")} $$""",
        "CREATE TRIGGER escalate BEFORE INSERT OR UPDATE ON public.models "
        "FOR EACH ROW EXECUTE FUNCTION public.escalate_trg()",
        DOORS[door],
    )
    capsys.readouterr()
    assert await run_cli(monkeypatch, env, "backfill") == 1
    err = capsys.readouterr().err
    assert "litemaas-hooks refuses to call litemaas_hooks." in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert w.installer not in who(w.bdsn)
    assert "postgres" not in who(w.bdsn)
    assert not _is_superuser(w.bdsn, w.bowner)
    assert run_sql(w.bdsn, "SELECT count(*) FROM models WHERE id = 'm'") == [(0,)]

    # the installer puts our definitions back; the owner's trigger now runs as its owner only
    assert await run_cli(monkeypatch, env, "install") == 0
    assert await run_cli(monkeypatch, env, "backfill") == 0
    assert run_sql(w.bdsn, "SELECT count(*) FROM models WHERE id = 'm'") == [(1,)]
    assert who(w.bdsn) == {w.bowner}
    assert not _is_superuser(w.bdsn, w.bowner)


def _owner_alters(w: World, door: str, statement: str) -> None:
    """The backend's data owner alters one of our functions (``statement``), its body calling an
    ``escalate()`` of its own (``who`` records whoever runs it). "body replaced" needs CREATE on
    our schema too: say a DBA once granted it."""
    if door == "body replaced":
        run_sql(w.bdsn, f"GRANT CREATE ON SCHEMA litemaas_hooks TO {w.bowner}")
    run_sql(
        w.as_(w.bdsn, w.bowner),
        WHO_TABLE,
        f"""CREATE FUNCTION public.escalate() RETURNS void LANGUAGE plpgsql AS $$
            {_escalating_body(w.bowner, "")} $$""",
        statement,
    )


async def _waits_refused(lc: psycopg.AsyncConnection[Any], function: str, column: str) -> None:
    """The event of model 'm' (``column``: new_model_name, old_model_name) waits with the check's
    refusal of ``function``, in one line like every error the outbox keeps."""
    refusal = f"litemaas-hooks refuses to call litemaas_hooks.{function}("
    query = f"SELECT last_error FROM litemaas_hooks.model_events WHERE {column} = 'm'"

    async def refused() -> bool:
        errors = await lc.execute(query.encode())
        return any(refusal in (e or "") for (e,) in await errors.fetchall())

    await eventually(refused, what="the event waits with the check's refusal")
    cur = await lc.execute("SELECT last_error FROM litemaas_hooks.model_events")
    assert all("\n" not in (e or "") for (e,) in await cur.fetchall())


WRITE_DOORS = {
    "SECURITY INVOKER": f"ALTER FUNCTION {WRITE_FN} SECURITY INVOKER",
    "body replaced": """CREATE OR REPLACE FUNCTION litemaas_hooks.write_models_v1(
        p_ids text[], p_models jsonb, p_source_ids text[], p_from_db boolean[], p_instance text,
        p_lock_timeout text, OUT busy text[], OUT ids text[], OUT outcomes text[])
        LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, pg_temp
        AS $$ BEGIN PERFORM public.escalate(); END $$""",
}


@pytest.mark.parametrize("door", list(WRITE_DOORS))
async def test_backend_owner_altering_the_relay_write_function_is_refused(
    world: World, monkeypatch: Any, master_key: str, door: str
) -> None:
    """write_models_v1 (an add or update in one call) calls the other functions unchecked (they run
    as their owner, who gains nothing), so its own check is what stands between an owner's
    alteration and a superuser relay: the write refuses with the one-line message, writes
    nothing another way, and the owner's code never runs."""
    w = world
    assert await run_cli(monkeypatch, _super_env(w, master_key), "install") == 0
    _owner_alters(w, door, WRITE_DOORS[door])
    async with (
        running(make_settings(w.ldsn, w.bdsn, master_key)),
        await psycopg.AsyncConnection.connect(w.ldsn, autocommit=True) as lc,
    ):
        await add(lc, "m", master_key, max_tokens=1)
        await _waits_refused(lc, "write_models_v1", "new_model_name")
    assert run_sql(w.bdsn, "SELECT count(*) FROM models WHERE id = 'm'") == [(0,)]
    assert who(w.bdsn) == set()
    assert not _is_superuser(w.bdsn, w.bowner)


RETIRE_DOORS = {
    "SECURITY INVOKER": f"ALTER FUNCTION {RETIRE_FN} SECURITY INVOKER",
    "body replaced": """CREATE OR REPLACE FUNCTION litemaas_hooks.retire_models_v1(
        p_ids text[], p_cascade boolean, p_reason text, p_grace_seconds double precision,
        p_instance text, p_hold boolean, p_lock_timeout text, OUT busy text[], OUT results jsonb)
        LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, pg_temp
        AS $$ BEGIN PERFORM public.escalate(); END $$""",
}


@pytest.mark.parametrize("door", list(RETIRE_DOORS))
async def test_backend_owner_altering_the_relay_retire_function_is_refused(
    world: World, monkeypatch: Any, master_key: str, door: str
) -> None:
    """retire_models_v1 (a delete in one call) calls try_lock_models_v1, models_snapshot_v1 and
    retire_model_v2 unchecked, like write_models_v1: its own check refuses the altered function
    with the one-line message, nothing is retired another way, and the owner's code never runs."""
    w = world
    assert await run_cli(monkeypatch, _super_env(w, master_key), "install") == 0
    async with (
        running(make_settings(w.ldsn, w.bdsn, master_key)),
        await psycopg.AsyncConnection.connect(w.ldsn, autocommit=True) as lc,
    ):
        model_id = await add(lc, "m", master_key, max_tokens=1)

        async def written() -> bool:
            return run_sql(w.bdsn, "SELECT count(*) FROM models WHERE id = 'm'") == [(1,)]

        await eventually(written, what="the model is written")
        _owner_alters(w, door, RETIRE_DOORS[door])
        await lc.execute(
            'DELETE FROM public."LiteLLM_ProxyModelTable" WHERE model_id = %s', (model_id,)
        )
        await _waits_refused(lc, "retire_models_v1", "old_model_name")
    assert run_sql(w.bdsn, "SELECT availability FROM models WHERE id = 'm'") == [("available",)]
    assert who(w.bdsn) == set()
    assert not _is_superuser(w.bdsn, w.bowner)


async def test_the_owner_cannot_rewrite_the_record_the_checks_use(installed: World) -> None:
    w = installed
    bown = w.as_(w.bdsn, w.bowner)
    for statement in (
        "UPDATE litemaas_hooks.function_checks SET secdef = false",
        "DELETE FROM litemaas_hooks.function_checks",
        "CREATE OR REPLACE FUNCTION litemaas_hooks.check_function_v1(p_fn "
        "regprocedure) RETURNS boolean "
        "LANGUAGE sql AS 'SELECT true'",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            run_sql(bown, statement)
