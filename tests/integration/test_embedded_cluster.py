"""The embedded PostgreSQL server and the two schemas (LiteLLM's,
the backend's migrations) act like the real thing."""

from __future__ import annotations

import re

import psycopg
import pytest
from psycopg import errors

from litemaas_hooks_sandbox import cluster
from litemaas_hooks_sandbox.cluster import LocalPostgres, PostgresNotFoundError, find_pg_bindir
from litemaas_hooks_sandbox.litellm_schema import (
    apply_litellm_schema,
    litellm_extras_version,
    litellm_migrations,
)
from litemaas_hooks_sandbox.litemaas_schema import SYSTEM_USER_ID, apply_litemaas_schema

# LiteLLM_ProxyModelTable as DESIGN.md / the Prisma schema describe it
PROXY_MODEL_COLUMNS = {
    "model_id": "text",
    "model_name": "text",
    "litellm_params": "jsonb",
    "model_info": "jsonb",
    "blocked": "boolean",
    "created_at": "timestamp(3) without time zone",
    "created_by": "text",
    "updated_at": "timestamp(3) without time zone",
    "updated_by": "text",
}

# models as reference/litemaas-backend.md lists it: column -> (type, default or None)
MODELS_COLUMNS = {
    "id": ("character varying(255)", None),
    "name": ("character varying(255)", None),
    "provider": ("character varying(100)", None),
    "description": ("text", None),
    "category": ("character varying(100)", None),
    "context_length": ("integer", None),
    "input_cost_per_token": ("numeric(15,10)", None),
    "output_cost_per_token": ("numeric(15,10)", None),
    "supports_vision": ("boolean", "false"),
    "supports_function_calling": ("boolean", "false"),
    "supports_tool_choice": ("boolean", "false"),
    "supports_parallel_function_calling": ("boolean", "false"),
    "supports_streaming": ("boolean", "true"),
    "features": ("text[]", None),
    "availability": ("character varying(50)", "'available'::character varying"),
    "version": ("character varying(50)", None),
    "metadata": ("jsonb", "'{}'::jsonb"),
    "api_base": ("character varying(500)", None),
    "tpm": ("integer", None),
    "rpm": ("integer", None),
    "max_tokens": ("integer", None),
    "litellm_model_id": ("character varying(255)", None),
    "created_at": ("timestamp with time zone", "CURRENT_TIMESTAMP"),
    "updated_at": ("timestamp with time zone", "CURRENT_TIMESTAMP"),
    "backend_model_name": ("character varying(255)", None),
    "restricted_access": ("boolean", "false"),
    "encrypted_api_key": ("text", None),
}


def _columns(conn: psycopg.Connection, table: str) -> dict[str, tuple[str, str | None]]:
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), pg_get_expr(d.adbin, d.adrelid)"
        " FROM pg_attribute a LEFT JOIN pg_attrdef d ON "
        "d.adrelid = a.attrelid AND d.adnum = a.attnum"
        " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
        (table,),
    ).fetchall()
    return {name: (typ, default) for name, typ, default in rows}


def _add_model(conn: psycopg.Connection, model_id: str) -> None:
    conn.execute(
        "INSERT INTO models (id, name, provider) VALUES (%s, %s, 'openai')", (model_id, model_id)
    )


# -- LiteLLM schema -------------------------------------------------------------------------------


def test_litellm_schema_is_the_real_one(litellm_dsn: str) -> None:
    with psycopg.connect(litellm_dsn) as conn:
        cols = _columns(conn, '"LiteLLM_ProxyModelTable"')
        expected = dict(PROXY_MODEL_COLUMNS)
        # LiteLLM 1.81 (litellm-proxy-extras 0.4.23) predates /model/block
        if "blocked" not in cols:
            expected.pop("blocked")
        assert {name: typ for name, (typ, _) in cols.items()} == expected
        pk = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = '\"LiteLLM_ProxyModelTable\"'::regclass AND contype = 'p'"
        ).fetchone()
        assert pk == ("PRIMARY KEY (model_id)",)
        # every migration of the installed wheel is recorded, as `prisma migrate deploy` would
        recorded = [
            r[0] for r in conn.execute('SELECT migration_name FROM "_prisma_migrations" ORDER BY 1')
        ]
        assert recorded == [m.name for m in litellm_migrations()]
        if len(recorded) > 100:  # newer wheels have a folder with spaces in its name
            assert any(" " in name for name in recorded)
        # the single-statement CREATE INDEX CONCURRENTLY migrations ran outside a transaction block
        concurrent = [
            (m.name, index)
            for m in litellm_migrations()
            for index in re.findall(r'CREATE INDEX CONCURRENTLY IF NOT EXISTS "([^"]+)"', m.sql)
        ]
        assert concurrent or len(recorded) < 100  # older wheels (LiteLLM 1.81) have none
        for migration_name, index in concurrent:
            valid = conn.execute(
                "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)",
                (f'"{index}"',),
            ).fetchone()
            assert valid == (True,), migration_name


def test_litellm_schema_reapply_is_a_noop(litellm_dsn: str) -> None:
    result = apply_litellm_schema(litellm_dsn)
    assert result.applied == ()
    assert len(result.already_applied) == len(litellm_migrations())
    assert result.extras_version == litellm_extras_version()


# -- backend schema -------------------------------------------------------------------------------


def test_backend_models_table_matches_reference(backend_dsn: str) -> None:
    with psycopg.connect(backend_dsn) as conn:
        assert _columns(conn, "models") == MODELS_COLUMNS
        indexes = {
            r[0] for r in conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'models'")
        }
        for column in (
            "provider",
            "category",
            "availability",
            "litellm_model_id",
            "restricted_access",
        ):
            assert any(d.endswith(f"USING btree ({column})") for d in indexes), column
        assert conn.execute(
            "SELECT username FROM users WHERE id = %s", (SYSTEM_USER_ID,)
        ).fetchone() == ("system",)


def test_subscription_to_unknown_model_violates_subscriptions_model_id_fkey(
    backend_dsn: str,
) -> None:
    with psycopg.connect(backend_dsn, autocommit=True) as conn:
        fk = conn.execute(
            "SELECT confdeltype FROM pg_constraint WHERE conname = 'subscriptions_model_id_fkey'"
            " AND conrelid = 'subscriptions'::regclass AND confrelid = 'models'::regclass"
        ).fetchone()
        assert fk == ("a",)  # NO ACTION: no ON DELETE rule
        with pytest.raises(errors.ForeignKeyViolation) as info:
            conn.execute(
                "INSERT INTO subscriptions (user_id, model_id) VALUES (%s, 'only-in-litellm')",
                (SYSTEM_USER_ID,),
            )
        assert info.value.sqlstate == "23503"
        assert info.value.diag.constraint_name == "subscriptions_model_id_fkey"
        # once the model exists the same subscription works, and the model can no longer be deleted
        _add_model(conn, "only-in-litellm")
        conn.execute(
            "INSERT INTO subscriptions (user_id, model_id) VALUES (%s, 'only-in-litellm')",
            (SYSTEM_USER_ID,),
        )
        with pytest.raises(errors.ForeignKeyViolation):
            conn.execute("DELETE FROM models WHERE id = 'only-in-litellm'")
        with pytest.raises(errors.CheckViolation):
            conn.execute("UPDATE subscriptions SET status = 'retired'")


def test_updated_at_trigger(backend_dsn: str) -> None:
    with psycopg.connect(backend_dsn, autocommit=True) as conn:
        # created a minute ago, so "the trigger moved updated_at" needs no waiting for the clock
        conn.execute(
            "INSERT INTO models (id, name, provider, created_at, updated_at) VALUES "
            "('granite/8b', 'granite/8b', 'openai', now() - "
            "interval '1 minute', now() - interval '1 minute')"
        )
        before = conn.execute(
            "SELECT created_at, updated_at FROM models WHERE id = 'granite/8b'"
        ).fetchone()
        assert before is not None
        assert before[0] == before[1]
        conn.execute("UPDATE models SET description = 'x' WHERE id = 'granite/8b'")
        after = conn.execute(
            "SELECT created_at, updated_at FROM models WHERE id = 'granite/8b'"
        ).fetchone()
        assert after is not None
        assert after[0] == before[0]
        assert after[1] > before[1]
        trigger = conn.execute(
            "SELECT pg_get_triggerdef(oid) FROM pg_trigger "
            "WHERE tgname = 'update_models_updated_at'"
        ).fetchone()
        assert trigger is not None
        assert (
            "BEFORE UPDATE ON public.models FOR EACH ROW "
            "EXECUTE FUNCTION update_updated_at_column()" in (trigger[0])
        )


def test_api_key_models_cascade_and_reapply_keeps_data(backend_dsn: str) -> None:
    with psycopg.connect(backend_dsn, autocommit=True) as conn:
        _add_model(conn, "m1")
        key = conn.execute(
            "INSERT INTO api_keys (user_id, key_hash, "
            "key_prefix) VALUES (%s, 'h', 'sk-') RETURNING id",
            (SYSTEM_USER_ID,),
        ).fetchone()
        assert key is not None
        conn.execute(
            "INSERT INTO api_key_models (api_key_id, model_id) VALUES (%s, 'm1')", (key[0],)
        )
    apply_litemaas_schema(backend_dsn)  # a backend restart re-runs its migrations
    with psycopg.connect(backend_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM api_key_models").fetchone() == (1,)
        conn.execute("DELETE FROM api_keys")
        assert conn.execute("SELECT count(*) FROM api_key_models").fetchone() == (0,)


# -- fixtures and topology ----------------------------------------------------------------------


def test_each_test_gets_fresh_separate_databases(
    litellm_dsn: str, backend_dsn: str, shared_dsn: str
) -> None:
    assert len({litellm_dsn, backend_dsn, shared_dsn}) == 3
    with psycopg.connect(backend_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM models").fetchone() == (0,)  # no leftovers
        assert conn.execute("SELECT to_regclass('\"LiteLLM_ProxyModelTable\"')").fetchone() == (
            None,
        )
    with psycopg.connect(shared_dsn) as conn:
        row = conn.execute(
            "SELECT to_regclass('\"LiteLLM_ProxyModelTable\"') "
            "IS NOT NULL, to_regclass('models') IS NOT NULL"
        ).fetchone()
        assert row == (True, True)


def test_hooks_env_and_master_key(
    hooks_env: dict[str, str], backend_dsn: str, litellm_dsn: str, master_key: str
) -> None:
    assert hooks_env == {
        "LITEMAAS_DATABASE_URL": backend_dsn,
        "LITELLM_DATABASE_URL": litellm_dsn,
        "LITELLM_MASTER_KEY": master_key,
    }
    assert re.fullmatch(r"sk-[0-9a-f]{64}", master_key)


# -- the server itself -----------------------------------------------------------------------------


def test_password_is_required(pg_cluster: LocalPostgres, backend_dsn: str) -> None:
    dbname = backend_dsn.rsplit("/", 1)[1]
    attempts = [
        f"postgresql://postgres@127.0.0.1:{pg_cluster.port}/{dbname}",
        f"postgresql://postgres:wrong@127.0.0.1:{pg_cluster.port}/{dbname}",
        f"host={pg_cluster.socket_dir} port={pg_cluster.port} user=postgres dbname={dbname}",
    ]
    for dsn in attempts:
        with pytest.raises(psycopg.OperationalError) as info:
            psycopg.connect(dsn, connect_timeout=5).close()
        assert "password" in str(info.value)
        assert pg_cluster.password not in str(info.value)
    with psycopg.connect(backend_dsn) as conn:  # the right password works
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
    assert pg_cluster.password not in repr(pg_cluster)
    assert pg_cluster.password not in pg_cluster.log_path.read_text(errors="replace")
    assert not (pg_cluster.root_dir / "pwfile").exists()


def test_start_stop_cleans_up() -> None:
    pg = LocalPostgres()
    with pg:
        root, port = pg.root_dir, pg.port
        with psycopg.connect(pg.dsn("postgres")) as conn:
            assert conn.execute("SHOW fsync").fetchone() == ("off",)
            assert conn.execute("SHOW max_connections").fetchone() == ("200",)
            assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
    assert not pg.running
    assert not root.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(
            f"postgresql://postgres:{pg.password}@127.0.0.1:{port}/postgres", connect_timeout=2
        )
    pg.stop()  # idempotent


def test_missing_binaries_error_lists_places_and_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cluster.BINDIR_ENV, raising=False)
    monkeypatch.setattr("litemaas_hooks_sandbox.cluster.glob.glob", lambda _pattern: [])
    monkeypatch.setattr("litemaas_hooks_sandbox.cluster.shutil.which", lambda _name: None)
    with pytest.raises(PostgresNotFoundError) as info:
        find_pg_bindir()
    message = str(info.value)
    for place in ("LITEMAAS_HOOKS_PG_BINDIR", "/usr/lib/postgresql/*/bin", "pg_config", "$PATH"):
        assert place in message
    assert "apt-get install -y postgresql" in message
