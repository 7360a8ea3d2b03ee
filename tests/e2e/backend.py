"""What the end-to-end tests check in the databases: backend rows, the relay, secrets nowhere."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from litemaas_hooks_sandbox.proxy import SandboxProxy
from tests.helpers import wait_until

ROW_COLUMNS = (
    "id",
    "name",
    "availability",
    "litellm_model_id",
    "api_base",
    "tpm",
    "rpm",
    "backend_model_name",
)


def row(dsn: str, model_id: str) -> dict[str, Any] | None:
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        query = sql.SQL("SELECT {} FROM public.models WHERE id = %s").format(
            sql.SQL(", ").join(map(sql.Identifier, ROW_COLUMNS))
        )
        return conn.execute(query, (model_id,)).fetchone()


def wait_row(
    dsn: str,
    model_id: str,
    proxy: SandboxProxy | None = None,
    deadline_seconds: float = 15.0,
    **expected: Any,
) -> tuple[dict[str, Any], float]:
    """Wait until the backend row ``model_id`` has the
    ``expected`` values; (row, seconds waited)."""
    found: dict[str, Any] | None = None

    def matches() -> bool:
        nonlocal found
        found = row(dsn, model_id)
        return found is not None and all(found.get(k) == v for k, v in expected.items())

    try:
        took = wait_until(
            matches,
            what=f"backend row {model_id} with {expected}",
            proxy=proxy,
            deadline_seconds=deadline_seconds,
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nlast row seen: {found}") from None
    assert found is not None
    return found, took


def relay_connected(litellm_dsn: str) -> bool:
    with psycopg.connect(litellm_dsn, autocommit=True) as conn:
        got = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE "
            "application_name LIKE 'litemaas-hooks[%%]:litellm'"
        ).fetchone()
        return got is not None and got[0] >= 1


def tables_containing(dsn: str, needle: str) -> list[str]:
    """Every table of the database (all user schemas) whose rows, as text, contain ``needle``."""
    found: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' AND table_schema "
            "NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        for schema, table in tables:
            query = sql.SQL("SELECT count(*) FROM {}.{} AS t WHERE strpos(t::text, %s) > 0").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            got = conn.execute(query, (needle,)).fetchone()
            if got is not None and got[0]:
                found.append(f"{schema}.{table}")
    return found
