"""Opening the two database connections with errors that say which variable to fix.

``connect`` opens one; ``check_database`` then tells whether the URL points at the right kind of
database (LiteLLM's table on the LiteLLM side, the backend's ``models`` on the backend side), and
whether ``litemaas-hooks install`` ran there, each failure one sentence naming the variable.

Every connection of ours runs with ``search_path = pg_catalog, pg_temp`` (``pinned``): the queries we
send name our and LiteLLM's/the backend's objects by schema, and nothing a database user creates in
``public`` or in a schema of its own name (a ``public.unnest(text[])``, an operator, a ``to_jsonb`` for a
row type) can take the place of a built-in function while an operator runs ``backfill`` or ``status``.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import class_row
from psycopg.types.json import set_json_dumps, set_json_loads

from litemaas_hooks import sql
from litemaas_hooks.errors import DatabaseUnavailableError, NotInstalledError, WrongDatabaseError
from litemaas_hooks.redaction import redact_dsn, scrub
from litemaas_hooks.settings import Settings

Which = Literal["backend", "litellm"]

DATABASE_NAMES = {"backend": "the backend (LiteMaaS) database", "litellm": "LiteLLM's database"}


PINNED_SEARCH_PATH = "pg_catalog, pg_temp"
_PIN_OPTION = "-c search_path=pg_catalog,pg_temp"


def pinned(dsn: str) -> str:
    """``dsn`` with ``search_path`` pinned to ``pg_catalog, pg_temp`` for the session (any other
    ``options`` of the DSN, e.g. a statement_timeout, are kept; a search_path there is overridden)."""
    try:
        options = str(conninfo_to_dict(dsn).get("options") or "")
    except psycopg.ProgrammingError:
        return dsn  # unparsable: connecting reports it, with the password hidden
    return make_conninfo(dsn, options=f"{options} {_PIN_OPTION}".strip())


def _dumps(value: Any) -> bytes | str:
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # e.g. integers beyond 64 bits
        return json.dumps(value, default=str)


def _loads(data: str | bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:  # e.g. integers beyond 64 bits, which the json module reads fine
        return json.loads(data)


def use_fast_json(conn: psycopg.AsyncConnection[Any]) -> psycopg.AsyncConnection[Any]:
    """JSON/JSONB of this connection through orjson (several times faster than the json module)."""
    set_json_loads(_loads, conn)
    set_json_dumps(_dumps, conn)
    return conn


def first_line(exc: BaseException) -> str:
    """The first line of an error's text (PostgreSQL errors add DETAIL/HINT lines), or its type."""
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def connect_error_message(settings: Settings, which: Which, exc: BaseException) -> str:
    """One line: which database, which variable (with the URL, password masked), why, what to check."""
    var = settings.dsn_variable(which)
    dsn = settings.backend_dsn() if which == "backend" else settings.litellm_dsn()
    reason = scrub(first_line(exc), settings.secrets()).removeprefix("connection failed: ")
    return (
        f"cannot connect to {DATABASE_NAMES[which]} ({var}={redact_dsn(dsn)}): {reason}. Check {var}, that the "
        "server is reachable from here and that the user and password are right."
    )


async def connect(settings: Settings, which: Which, *, application_name: str = "litemaas-hooks") -> Any:
    """An autocommit AsyncConnection to one of the databases (transactions are always explicit)."""
    dsn = settings.backend_dsn() if which == "backend" else settings.litellm_dsn()
    try:
        conn = await psycopg.AsyncConnection.connect(
            pinned(dsn), autocommit=True, application_name=application_name, connect_timeout=10
        )
    except psycopg.Error as exc:
        raise DatabaseUnavailableError(connect_error_message(settings, which, exc)) from None
    return use_fast_json(conn)


@dataclass
class DatabaseKind:
    database: str
    has_litellm_table: bool
    has_backend_models: bool
    has_outbox: bool
    has_backend_functions: bool


async def database_kind(conn: psycopg.AsyncConnection[Any]) -> DatabaseKind:
    async with conn.cursor(row_factory=class_row(DatabaseKind)) as cur:
        await cur.execute(sql.query("common", "database_kind"))
        row = await cur.fetchone()
    assert row is not None
    return row


def kind_problem(settings: Settings, which: Which, kind: DatabaseKind, *, installed: bool) -> str | None:
    """Why this database is not what ``which`` needs (None when it is)."""
    var = settings.dsn_variable(which)
    other = settings.dsn_variable("litellm" if which == "backend" else "backend")
    db = f'database "{kind.database}"'
    if which == "litellm" and not kind.has_litellm_table:
        if kind.has_backend_models:
            return (
                f"{var} points at {db}, which is the LiteMaaS backend database (it has the backend's models "
                f'table, not LiteLLM\'s "LiteLLM_ProxyModelTable"): are {var} and {other} swapped?'
            )
        return (
            f'{var} points at {db}, which has no table public."LiteLLM_ProxyModelTable": the URL is not '
            "LiteLLM's database, or LiteLLM has not started on it yet (start the proxy once with "
            "STORE_MODEL_IN_DB=True, it creates its tables)"
        )
    if which == "backend" and not kind.has_backend_models:
        if kind.has_litellm_table:
            return (
                f'{var} points at {db}, which is LiteLLM\'s database (it has "LiteLLM_ProxyModelTable", not '
                f"the backend's models table): are {var} and {other} swapped?"
            )
        return (
            f"{var} points at {db}, which has no table public.models: the URL is not a LiteMaaS backend "
            "database or the backend has not started yet (it creates its tables when it first starts)"
        )
    if installed and which == "litellm" and not kind.has_outbox:
        return (
            f"litemaas-hooks is not installed in LiteLLM's {db} (no outbox litemaas_hooks.model_events): "
            "run `litemaas-hooks install` first"
        )
    if installed and which == "backend" and not kind.has_backend_functions:
        return (
            f"litemaas-hooks is not installed in the backend {db} (no function litemaas_hooks.upsert_models_v1): "
            "run `litemaas-hooks install` first"
        )
    return None


async def check_databases(
    settings: Settings, conns: dict[Which, psycopg.AsyncConnection[Any]], *, installed: Collection[Which] = ()
) -> None:
    """Raise one error naming every connection that points at the wrong database, or, for the sides in
    ``installed``, lacks litemaas-hooks' schema."""
    wrong: list[str] = []
    missing: dict[Which, str] = {}
    kinds: dict[Which, DatabaseKind] = {}
    for which, conn in conns.items():
        kind = kinds[which] = await database_kind(conn)
        problem = kind_problem(settings, which, kind, installed=which in installed)
        if problem is None:
            continue
        if (which == "litellm" and kind.has_litellm_table) or (which == "backend" and kind.has_backend_models):
            missing[which] = kind.database
        else:
            wrong.append(problem)
    lite, back = kinds.get("litellm"), kinds.get("backend")
    if len(wrong) == 2 and lite is not None and back is not None and lite.has_backend_models and back.has_litellm_table:
        lvar, bvar = settings.dsn_variable("litellm"), settings.dsn_variable("backend")
        raise WrongDatabaseError(
            f'the two URLs are swapped: {lvar} points at the LiteMaaS backend database "{lite.database}" and '
            f'{bvar} at LiteLLM\'s database "{back.database}": exchange their values'
        )
    if wrong:
        raise WrongDatabaseError("\n".join(wrong))
    if missing:
        where = " nor in ".join(
            f'LiteLLM\'s database "{db}"' if which == "litellm" else f'the backend database "{db}"'
            for which, db in missing.items()
        )
        raise NotInstalledError(f"litemaas-hooks is not installed in {where}: run `litemaas-hooks install` first")
