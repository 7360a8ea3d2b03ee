"""Opening the two database connections with errors that say which variable to fix.

Every connection of ours runs with ``search_path = pg_catalog, pg_temp`` (``pinned``): the queries we
send name our and LiteLLM's/the backend's objects by schema, and nothing a database user creates in
``public`` or in a schema of its own name (a ``public.unnest(text[])``, an operator, a ``to_jsonb`` for a
row type) can take the place of a built-in function while an operator runs ``backfill`` or ``status``.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import orjson
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import set_json_dumps, set_json_loads

from litemaas_hooks.errors import DatabaseUnavailableError
from litemaas_hooks.redaction import redact_dsn, scrub
from litemaas_hooks.settings import Settings

Which = Literal["backend", "litellm"]

_HELP = {
    "backend": "LITEMAAS_DATABASE_URL (the LiteMaaS backend database)",
    "litellm": "LITELLM_DATABASE_URL, else DATABASE_URL (LiteLLM's database)",
}


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


async def connect(settings: Settings, which: Which, *, application_name: str = "litemaas-hooks") -> Any:
    """An autocommit AsyncConnection to one of the databases (transactions are always explicit)."""
    dsn = settings.backend_dsn() if which == "backend" else settings.litellm_dsn()
    try:
        conn = await psycopg.AsyncConnection.connect(
            pinned(dsn), autocommit=True, application_name=application_name, connect_timeout=10
        )
        return use_fast_json(conn)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailableError(
            f"cannot connect to the {which} database at {redact_dsn(dsn)}: "
            f"{scrub(reason, settings.secrets())}. Check {_HELP[which]}, that the server is reachable "
            "from here and that the user and password are right."
        ) from None
