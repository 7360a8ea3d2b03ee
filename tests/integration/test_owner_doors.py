"""Issue 20 item 1: no owner can use our objects against a more privileged installer. The installer
here
is the SUPERUSER (README allows one); each owner tries each door, as a hostile owner would: code of
theirs that records ``current_user`` and tries to make its owner SUPERUSER whenever it runs. It must
never run as the superuser: the read or call is refused with one line instead, and the owner stays a
plain role. Re-running install repairs what an owner altered."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.helpers import TABLE, WHO_TABLE, World, add, run_cli, run_sql, who

pytestmark = pytest.mark.anyio


def _super_env(w: World, key: str) -> dict[str, str]:
    return {
        "LITELLM_DATABASE_URL": w.ldsn,
        "LITEMAAS_DATABASE_URL": w.bdsn,
        "LITELLM_MASTER_KEY": key,
    }


def _is_superuser(dsn: str, role: str) -> bool:
    return bool(run_sql(dsn, "SELECT rolsuper FROM pg_roles WHERE rolname = %s", params=(role,))[0][0])


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
        "SELECT 1 FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'blocked' AND NOT attisdropped",
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
            f"ALTER TABLE {TABLE} ALTER COLUMN blocked TYPE public.esc USING blocked::text::public.esc",
        ]
    elif column == "blocked":  # LiteLLM 1.81: no such column yet; the owner adds it
        stmts.append(f"ALTER TABLE {TABLE} ADD COLUMN blocked public.esc DEFAULT 'false'")
    else:
        stmts.append(
            f"ALTER TABLE {TABLE} ALTER COLUMN model_name TYPE public.esc USING model_name::public.esc"
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
    "search_path": "ALTER FUNCTION litemaas_hooks.upsert_models_v1(jsonb) SET search_path = public, pg_catalog",
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


async def test_the_owner_cannot_rewrite_the_record_the_checks_use(installed: World) -> None:
    w = installed
    bown = w.as_(w.bdsn, w.bowner)
    for statement in (
        "UPDATE litemaas_hooks.function_checks SET secdef = false",
        "DELETE FROM litemaas_hooks.function_checks",
        "CREATE OR REPLACE FUNCTION litemaas_hooks.check_function_v1(p_fn regprocedure) RETURNS boolean "
        "LANGUAGE sql AS 'SELECT true'",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            run_sql(bown, statement)
