"""Privilege boundaries (issue 9): no role gains anything through our objects.

Four separate NON-superuser roles, as in a real deployment: the installer (runs `litemaas-hooks install`;
a member of both data owners' roles, may CREATE in both databases), LiteLLM's table owner (owns LiteLLM's
database and table, writes it), the backend owner (owns the LiteMaaS database, its tables and
update_updated_at_column()) and the relay (exactly `install --print-grants`). Each "door" of the issue is
tried as the hostile owner would: a function of theirs records ``current_user`` whenever it runs; it must
never run as anybody but its owner's own role (or not at all).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from litemaas_hooks import cli, litellm_source, outbox, privileges
from litemaas_hooks.connections import connect
from litemaas_hooks.migrations import apply_migrations
from litemaas_hooks.relay import Relay
from litemaas_hooks.settings import load_settings
from litemaas_hooks_sandbox.cluster import LocalPostgres
from tests.helpers import DROP_TRIGGERS
from tests.integration.test_failures import TABLE, add, audits, matches_truth
from tests.integration.test_relay import eventually, make_settings, outbox_empty, running

pytestmark = pytest.mark.anyio

REASON = "no deployment of this model_name is left in LiteLLM"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class World:
    pg: LocalPostgres
    ldsn: str  # superuser DSNs
    bdsn: str
    installer: str
    lowner: str
    bowner: str
    relay: str
    password: str

    def as_(self, dsn: str, role: str) -> str:
        return make_conninfo(dsn, user=role, password=self.password)

    def url(self, dsn: str, role: str) -> str:
        p = conninfo_to_dict(dsn)
        return f"postgresql://{role}:{self.password}@{p['host']}:{p['port']}/{p['dbname']}"

    def env(self, lrole: str, brole: str, key: str) -> dict[str, str]:
        return {
            "LITELLM_DATABASE_URL": self.url(self.ldsn, lrole),
            "LITEMAAS_DATABASE_URL": self.url(self.bdsn, brole),
            "LITELLM_MASTER_KEY": key,
        }


def _run(dsn: str, *statements: str | sql.Composable, params: Any = None) -> list[Any]:
    out: list[Any] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            cur = conn.execute(statement.encode() if isinstance(statement, str) else statement, params)
            out = cur.fetchall() if cur.description else []
    return out


def _owned_tables(dsn: str) -> list[str]:
    rows = _run(dsn, "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'public'")
    return [r[0] for r in rows]


@pytest.fixture
def world(pg_cluster: LocalPostgres, litellm_dsn: str, backend_dsn: str) -> Iterator[World]:
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
    with pg_cluster.connect() as admin:
        for role in roles:
            admin.execute(
                sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(w.password)
                )
            )
    for dsn, owner in ((w.ldsn, w.lowner), (w.bdsn, w.bowner)):
        db = sql.Identifier(conninfo_to_dict(dsn)["dbname"])
        o = sql.Identifier(owner)
        stmts: list[sql.Composable] = [
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(db, o),
            sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(db, sql.Identifier(w.installer)),
            sql.SQL("GRANT {} TO {}").format(o, sql.Identifier(w.installer)),
        ]
        stmts += [sql.SQL("ALTER TABLE {} OWNER TO {}").format(sql.SQL(t), o) for t in _owned_tables(dsn)]
        if owner == w.bowner:
            stmts.append(sql.SQL("ALTER FUNCTION public.update_updated_at_column() OWNER TO {}").format(o))
        _run(dsn, *stmts)
    try:
        yield w
    finally:
        with pg_cluster.connect() as admin:
            for dsn in (w.ldsn, w.bdsn):
                _run(dsn, *(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(r)) for r in roles))
                _run(
                    dsn,
                    sql.SQL("ALTER DATABASE {} OWNER TO postgres").format(
                        sql.Identifier(conninfo_to_dict(dsn)["dbname"])
                    ),
                )
            for role in roles:
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


async def _cli(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *argv: str) -> int:
    with monkeypatch.context() as m:
        for k, v in env.items():
            m.setenv(k, v)
        m.delenv("LITELLM_SALT_KEY", raising=False)
        m.delenv("DATABASE_URL", raising=False)
        return await asyncio.to_thread(cli.main, list(argv))


async def _install(w: World, monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    assert await _cli(monkeypatch, w.env(w.installer, w.installer, key), "install") == 0


def _grant_relay(w: World, roles: privileges.Roles) -> None:
    """Exactly what `install --print-grants` prints, run by a DBA (the superuser)."""
    for side, text in privileges.grants_by_database(roles).items():
        _run(w.ldsn if side == "litellm" else w.bdsn, text)


def _who(dsn: str) -> set[str]:
    return {r[0] for r in _run(dsn, "SELECT DISTINCT who FROM public.who")}


WHO_TABLE = "CREATE TABLE public.who (who text, via text); GRANT INSERT ON public.who TO PUBLIC"


@pytest.fixture
def installed(world: World, monkeypatch: pytest.MonkeyPatch, master_key: str) -> World:
    asyncio.run(_install(world, monkeypatch, master_key))
    _grant_relay(world, privileges.Roles(relay=world.relay))
    return world


# -- door 3: the LiteLLM-side trigger ---------------------------------------------------------------


async def test_litellm_owner_gains_nothing_through_the_trigger(
    installed: World, monkeypatch: Any, master_key: str
) -> None:
    """LiteLLM's table owner adds an enum type with a cast to json and a column of that type: to_jsonb(OLD)
    in a SECURITY DEFINER trigger ran the owner's cast as the installer. Now the trigger runs as the writer
    (SECURITY INVOKER) and never converts whole rows: the cast never runs as anyone else."""
    w = installed
    lown = w.as_(w.ldsn, w.lowner)
    _run(
        lown,
        WHO_TABLE,
        "CREATE TYPE public.esc AS ENUM ('a', 'b')",
        """CREATE FUNCTION public.esc_json(public.esc) RETURNS json LANGUAGE plpgsql AS $$
           BEGIN INSERT INTO public.who VALUES (current_user, 'cast'); RETURN '"x"'::json; END $$""",
        "CREATE CAST (public.esc AS json) WITH FUNCTION public.esc_json(public.esc)",
        f"ALTER TABLE {TABLE} ADD COLUMN esc public.esc DEFAULT 'a'",
    )
    # the cast really is a door: to_jsonb dispatches to it
    _run(lown, "SELECT to_jsonb(t) FROM (SELECT 'a'::public.esc AS e) AS t")
    assert _who(lown) == {w.lowner}
    _run(lown, "DELETE FROM public.who")

    await _install(w, monkeypatch, master_key)  # re-install after the table changed (as the relay would)
    async with await psycopg.AsyncConnection.connect(lown, autocommit=True) as lc:
        await add(lc, "m", master_key)
        await lc.execute(f"UPDATE {TABLE} SET esc = 'b', model_info = model_info || '{{\"x\": 1}}'")
        await lc.execute(f"DELETE FROM {TABLE}")
    assert _who(lown) <= {w.lowner}  # never the installer
    events = _run(w.ldsn, "SELECT op FROM litemaas_hooks.model_events ORDER BY id")
    assert [e[0] for e in events] == ["INSERT", "UPDATE", "DELETE"]
    secdef = _run(
        w.ldsn,
        "SELECT p.prosecdef, p.proconfig FROM pg_proc AS p "
        "WHERE p.oid = 'litemaas_hooks.record_model_event_v1()'::regprocedure",
    )
    assert secdef[0][0] is False
    assert "search_path=pg_catalog, pg_temp" in secdef[0][1]


# -- door 4: the backend's update_updated_at_column() -------------------------------------------------


async def test_backend_owner_gains_nothing_through_our_upsert(
    installed: World, monkeypatch: Any, master_key: str
) -> None:
    """The backend owner replaces its own update_updated_at_column(); our SECURITY DEFINER upsert fires it.
    The functions are owned by the owner of public.models, so it runs as that owner, never the installer."""
    w = installed
    bown = w.as_(w.bdsn, w.bowner)
    _run(
        bown,
        WHO_TABLE,
        """CREATE OR REPLACE FUNCTION public.update_updated_at_column() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN INSERT INTO public.who VALUES (current_user, 'updated_at'); NEW.updated_at = now(); RETURN NEW; END
           $$""",
    )
    async with await psycopg.AsyncConnection.connect(w.ldsn, autocommit=True) as lc:
        await add(lc, "m", master_key, max_tokens=1)
        env = w.env(w.relay, w.relay, master_key)
        assert await _cli(monkeypatch, env, "backfill", "--quiet") == 0
        await lc.execute(f"""UPDATE {TABLE} SET model_info = model_info || '{{"max_tokens": 2}}'""")
        assert await _cli(monkeypatch, env, "backfill", "--quiet") == 0
    assert _run(w.bdsn, "SELECT max_tokens FROM models WHERE id = 'm'") == [(2,)]
    assert _who(w.bdsn) == {w.bowner}  # it ran (the update), and only as its owner
    owners = _run(
        w.bdsn,
        "SELECT DISTINCT pg_get_userbyid(p.proowner) FROM pg_proc AS p "
        "WHERE p.pronamespace = 'litemaas_hooks'::regnamespace AND p.prosecdef",
    )
    assert owners == [(w.bowner,)]


# -- door 5: search_path in our client queries -------------------------------------------------------


async def test_database_owner_functions_never_shadow_builtins_in_our_queries(
    installed: World, monkeypatch: Any, master_key: str
) -> None:
    """LiteLLM's database owner creates public.unnest(text[]) and public.to_jsonb(<its row type>) (exact
    type matches beat pg_catalog's): our backfill, status, truth reads and relay connections pin
    search_path = pg_catalog, pg_temp, so none of them ever runs."""
    w = installed
    lown = w.as_(w.ldsn, w.lowner)
    _run(
        lown,
        WHO_TABLE,
        """CREATE FUNCTION public.unnest(text[]) RETURNS SETOF text LANGUAGE sql AS $$
           INSERT INTO public.who VALUES (current_user, 'unnest'); SELECT x FROM pg_catalog.unnest($1) AS x $$""",
        f"""CREATE FUNCTION public.to_jsonb({TABLE}) RETURNS jsonb LANGUAGE sql AS $$
           INSERT INTO public.who VALUES (current_user, 'to_jsonb'); SELECT '{{}}'::jsonb $$""",
        "CREATE FUNCTION public.btrim(text) RETURNS text LANGUAGE sql AS $$ "
        "INSERT INTO public.who VALUES (current_user, 'btrim'); SELECT $1 $$",
    )
    # the doors are real for an unpinned session of the relay's role
    _run(w.as_(w.ldsn, w.relay), "SELECT count(*) FROM unnest(ARRAY['a']::text[])")
    assert _who(w.ldsn) == {w.relay}
    _run(w.ldsn, "DELETE FROM public.who")

    async with await psycopg.AsyncConnection.connect(w.ldsn, autocommit=True) as lc:
        await add(lc, "m", master_key)
    env = w.env(w.relay, w.relay, master_key)
    assert await _cli(monkeypatch, env, "backfill", "--quiet") == 0
    assert await _cli(monkeypatch, env, "backfill", "--dry-run", "--quiet") == 0
    await _cli(monkeypatch, env, "status")
    assert _who(w.ldsn) == set()  # backfill (to_jsonb(t)) and status ran none of the owner's functions
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
    assert _who(w.ldsn) == set()


# -- least privilege ---------------------------------------------------------------------------------


async def test_relay_role_converges_and_can_do_nothing_else(installed: World, master_key: str) -> None:
    """The relay role with exactly `install --print-grants`: a relay runs (create, update, rename, retire
    with cascade); directly, the role cannot retire a hand-made row, write an audit row of its choosing,
    un-hide an admin-hidden model, repoint a hand-made row, touch our bookkeeping or the tables."""
    w = installed
    async with (
        await psycopg.AsyncConnection.connect(w.as_(w.ldsn, w.lowner), autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(w.ldsn, autocommit=True) as sc,
        await psycopg.AsyncConnection.connect(w.bdsn, autocommit=True) as bc,
    ):
        await bc.execute(
            "INSERT INTO models (id, name, provider, api_base) VALUES ('hand', 'Hand made', 'custom', 'https://h')"
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
                f"""UPDATE {TABLE} SET model_info = model_info || '{{"max_tokens": 5}}' WHERE model_name = 'a'"""
            )
            await lc.execute(f"UPDATE {TABLE} SET model_name = 'b2' WHERE model_name = 'b'")
            await lc.execute(f"DELETE FROM {TABLE} WHERE model_name = 'c'")

            async def synced() -> bool:
                cur = await bc.execute("SELECT id, availability FROM models ORDER BY id")
                rows = dict(await cur.fetchall())
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
        assert _run(rel_b, retire, params=("hand", REASON))[0][0]["retired"] is False
        # no free text in audit rows
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            _run(rel_b, retire, params=("a", "anything I like"))
        # an admin's hide stays: retire then upsert does not make it available
        await bc.execute("UPDATE models SET availability = 'unavailable' WHERE id = 'a'")
        assert _run(rel_b, retire, params=("a", REASON))[0][0]["retired"] is False
        a_id = (await (await bc.execute("SELECT litellm_model_id FROM models WHERE id = 'a'")).fetchone())[0]
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
        _run(rel_b, "SELECT * FROM litemaas_hooks.upsert_models_v1(%s::jsonb)", params=(json.dumps([record]),))
        # nor does a forged deployment list ("the deployment the row described is gone") un-hide it
        forged = {**record, "deployment_ids": ["forged-deployment"], "litellm_model_id": "forged-deployment"}
        _run(rel_b, "SELECT * FROM litemaas_hooks.upsert_models_v1(%s::jsonb)", params=(json.dumps([forged]),))
        # a hand-made row cannot be repointed
        hand = {**record, "id": "hand", "api_base": "https://evil.example"}
        _run(rel_b, "SELECT * FROM litemaas_hooks.upsert_models_v1(%s::jsonb)", params=(json.dumps([hand]),))
        cur = await bc.execute("SELECT id, availability, api_base FROM models WHERE id IN ('a', 'hand') ORDER BY id")
        assert [(r[0], r[1]) for r in await cur.fetchall()] == [("a", "unavailable"), ("hand", "available")]
        assert await audits(bc) == {"b": 1, "c": 1}
        assert (await (await bc.execute("SELECT api_base FROM models WHERE id = 'hand'")).fetchone()) == ("https://h",)

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
                _run(dsn, statement)


def test_nothing_of_ours_is_executable_by_public(installed: World, pg_cluster: LocalPostgres) -> None:
    w = installed
    nobody = f"hk_nobody_{secrets.token_hex(3)}"
    with pg_cluster.connect() as admin:
        admin.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(nobody)))
    try:
        for dsn in (w.ldsn, w.bdsn):
            rows = _run(
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
    """Plugin mode: the relay inside LiteLLM connects with LiteLLM's own role (the table owner) once it has
    `install --print-grants --relay-role <LiteLLM's role>`; it used to loop on `permission denied for
    schema litemaas_hooks`."""
    w = installed
    _grant_relay(w, privileges.Roles(relay=w.lowner, backend=w.relay))
    # LiteLLM re-created its table (the trigger went with it): the plugin's relay puts it back
    _run(w.as_(w.ldsn, w.lowner), DROP_TRIGGERS)
    settings = make_settings(w.url(w.ldsn, w.lowner), w.url(w.bdsn, w.relay), master_key)
    async with (
        await psycopg.AsyncConnection.connect(w.as_(w.ldsn, w.lowner), autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(w.bdsn, autocommit=True) as bc,
        running(settings) as (relay,),
    ):
        await add(lc, "p1", master_key, max_tokens=1)
        await add(lc, "p2", master_key, max_tokens=2)
        await eventually(lambda: matches_truth(lc, bc, set()), what="plugin-mode relay as LiteLLM's role")
        assert relay.stats.events_failed == 0
        assert (await outbox.trigger_state(lc)).ok


def test_readme_grants_are_the_printed_grants() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Database privileges", 1)[1]
    block = section.split("```sql", 1)[1].split("```", 1)[0]
    assert block.strip() == privileges.grants_sql().strip()


# -- issue 10 item 3: our DDL on LiteLLM's table ------------------------------------------------------


async def test_trigger_install_behind_an_open_litellm_transaction_gives_up_and_retries(installed: World) -> None:
    """The trigger (re-)install locks LiteLLM's table only with a short lock_timeout: behind an open LiteLLM
    transaction it gives up with a warning instead of queueing (which made LiteLLM's next statements hang),
    and a later install puts the trigger back."""
    w = installed
    lown = w.as_(w.ldsn, w.lowner)
    _run(lown, DROP_TRIGGERS)
    inst = w.as_(w.ldsn, w.installer)
    with psycopg.connect(lown) as open_tx, psycopg.connect(lown, autocommit=True) as other:
        open_tx.execute(f"UPDATE {TABLE} SET model_name = model_name WHERE false")  # an open LiteLLM write
        warnings: list[str] = []
        async with await psycopg.AsyncConnection.connect(inst, autocommit=True) as conn:
            conn.add_notice_handler(lambda d: warnings.append(d.message_primary or ""))
            await asyncio.wait_for(apply_migrations(conn, "litellm"), timeout=30)
            assert not (await outbox.trigger_state(conn)).trigger_present
        assert any("was not (re-)installed" in m for m in warnings)
        other.execute("SET statement_timeout = '2s'")
        other.execute(
            f"INSERT INTO {TABLE} (model_id, model_name, litellm_params, model_info, created_by, updated_by) "
            "VALUES ('x', 'x', '{}', '{}', 't', 't')"
        )
        open_tx.rollback()
    async with await psycopg.AsyncConnection.connect(inst, autocommit=True) as conn:
        await apply_migrations(conn, "litellm")
        assert (await outbox.trigger_state(conn)).ok


def test_printed_install_sql_is_what_install_does(litellm_dsn: str, backend_dsn: str) -> None:
    """`install --print-sql`, applied by hand (as a DBA would after review), installs everything: the
    trigger is in place and `install` afterwards finds nothing to apply."""
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
    """LiteLLM's database owner creates schema litemaas_hooks and a schema_migrations table with a trigger
    before the first install: install must refuse (naming the objects) instead of inserting into it, which
    would run the owner's trigger as the installer."""
    w = world
    lown = w.as_(w.ldsn, w.lowner)
    _run(
        lown,
        WHO_TABLE,
        "CREATE SCHEMA litemaas_hooks",
        "GRANT USAGE, CREATE ON SCHEMA litemaas_hooks TO PUBLIC",
        """CREATE TABLE litemaas_hooks.schema_migrations (side text NOT NULL, version integer NOT NULL,
           name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),
           PRIMARY KEY (side, version))""",
        "GRANT ALL ON litemaas_hooks.schema_migrations TO PUBLIC",
        """CREATE FUNCTION public.spy() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN INSERT INTO public.who VALUES (current_user, 'squat'); RETURN NEW; END $$""",
        "CREATE TRIGGER spy BEFORE INSERT ON litemaas_hooks.schema_migrations "
        "FOR EACH ROW EXECUTE FUNCTION public.spy()",
    )
    capsys.readouterr()
    assert await _cli(monkeypatch, w.env(w.installer, w.installer, master_key), "install", "--litellm-only") == 1
    err = capsys.readouterr().err
    assert "schema litemaas_hooks (owned by" in err
    assert w.lowner in err
    assert _who(w.ldsn) == set()


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
        assert await _cli(monkeypatch, superuser, "install") == 0
    elif installer == "owner":
        assert await _cli(monkeypatch, w.env(w.lowner, w.bowner, master_key), "install") == 0
    elif installer == "dba":
        await _install(w, monkeypatch, master_key)
    if installer == "plugin-job":
        env = {**superuser, privileges.RELAY_PASSWORD_ENV: w.password}
        argv = ("install", "--backend-only", "--grant-relay", "--relay-role", w.relay)
        assert await _cli(monkeypatch, env, *argv) == 0
        assert await _cli(monkeypatch, env, "install", "--litellm-only") == 0
        # nothing of the relay role in LiteLLM's database: LiteLLM's own role works the outbox there
        held = _run(
            w.ldsn,
            "SELECT count(*) FROM information_schema.role_table_grants WHERE grantee = %s",
            params=(w.relay,),
        )
        assert held == [(0,)]
    else:
        # the backend side: the relay role's grants only
        _run(w.bdsn, privileges.backend_grants(w.relay))
    settings = make_settings(w.url(w.ldsn, w.lowner), w.url(w.bdsn, w.relay), master_key)
    async with (
        await psycopg.AsyncConnection.connect(w.as_(w.ldsn, w.lowner), autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(w.bdsn, autocommit=True) as bc,
        running(settings) as (relay,),
    ):
        await add(lc, "p1", master_key, max_tokens=1)
        await eventually(lambda: matches_truth(lc, bc, set()), what="plugin-mode relay as LiteLLM's role")
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
        assert await _cli(monkeypatch, env, "install", "--grant-relay", "--relay-role", role) == 0
        assert await _cli(monkeypatch, env, "install", "--grant-relay", "--relay-role", role) == 0  # again
        settings = make_settings(w.url(w.ldsn, role), w.url(w.bdsn, role), master_key)
        async with (
            await psycopg.AsyncConnection.connect(w.ldsn, autocommit=True) as lc,
            await psycopg.AsyncConnection.connect(w.bdsn, autocommit=True) as bc,
            running(settings) as (relay,),
        ):
            await add(lc, "r1", master_key, max_tokens=1)
            await eventually(lambda: matches_truth(lc, bc, set()), what="relay as the role install made")
            assert relay.stats.events_failed == 0
        for statement in ("SELECT * FROM public.models", "SELECT * FROM public.subscriptions"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                _run(w.as_(w.bdsn, role), statement)
        granted = _run(
            w.bdsn,
            "SELECT count(*) FROM pg_proc AS p WHERE p.pronamespace = 'litemaas_hooks'::regnamespace "
            "AND has_function_privilege(%s, p.oid, 'EXECUTE')",
            params=(role,),
        )
        assert granted == [(len(privileges.RELAY_BACKEND_FUNCTIONS),)]
    finally:
        for dsn in (w.ldsn, w.bdsn):
            _run(dsn, sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        with w.pg.connect() as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
