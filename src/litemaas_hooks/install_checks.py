"""What ``install`` verifies beyond applying migrations: our objects are all there (and what it
repaired), and the backend's ``models`` schema is one the sync can write (clear messages naming
column or table).

- ``owned_objects(side)``: every table, index and function our SQL files create, by name (parsed
  from the files, so a new object is covered without a list to maintain).
- ``missing(conn, objects)``: those of them absent now. ``install`` compares before / after and
  returns what it re-created in ``InstallResult.repaired``.
- ``check_backend_schema(conn)``: before anything is applied, the columns and tables the sync writes
  exist with usable types.
- ``probe_backend_writes(conn)``: after install, inside a savepoint that is always rolled back, one
  probe model is upserted and retired through our own functions: an extra NOT NULL column, a CHECK
  on availability, a missing ``api_key_models`` table or a trigger of the admin's that rejects our
  writes show up now, named, instead of at the first real retire.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from litemaas_hooks import sql
from litemaas_hooks.errors import MigrationError, describe
from litemaas_hooks.settings import Which

_TABLE = re.compile(
    r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?litemaas_hooks\.(\w+)", re.IGNORECASE
)
_INDEX = re.compile(
    r"CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)\s+ON\s+litemaas_hooks\.", re.I
)
_FUNCTION = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+litemaas_hooks\.(\w+)\s*\(", re.IGNORECASE
)
_DROP_TABLE = re.compile(r"DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?litemaas_hooks\.(\w+)", re.IGNORECASE)
_DROP_INDEX = re.compile(r"DROP\s+INDEX\s+(?:IF\s+EXISTS\s+)?litemaas_hooks\.(\w+)", re.IGNORECASE)
_DROP_FUNCTION = re.compile(
    r"DROP\s+FUNCTION\s+(?:IF\s+EXISTS\s+)?litemaas_hooks\.(\w+)\s*\(", re.IGNORECASE
)

PROBE_ID = "litemaas-hooks-install-probe"


@dataclass(frozen=True, order=True)
class Owned:
    kind: str  # table | index | function
    name: str

    def __str__(self) -> str:
        return f"{self.kind} litemaas_hooks.{self.name}"


def objects_in(text: str) -> set[Owned]:
    """The objects ``text`` leaves behind, statements read in order: created, minus those a later
    ``DROP TABLE|INDEX|FUNCTION`` removes (a migration retiring an object of an earlier one)."""
    steps = [
        (m.start(), kind, m.group(1), created)
        for pattern, kind, created in (
            (_TABLE, "table", True),
            (_INDEX, "index", True),
            (_FUNCTION, "function", True),
            (_DROP_TABLE, "table", False),
            (_DROP_INDEX, "index", False),
            (_DROP_FUNCTION, "function", False),
        )
        for m in pattern.finditer(text)
    ]
    out: set[Owned] = set()
    for _, kind, name, created in sorted(steps):
        (out.add if created else out.discard)(Owned(kind, name))
    return out


def owned_objects(side: Which) -> set[Owned]:
    """Every object our SQL leaves in a database of ``side`` (migrations in order, then
    repeatables)."""
    return objects_in("\n".join(s.sql for s in (*sql.migrations(side), *sql.repeatables(side))))


async def missing(conn: psycopg.AsyncConnection[Any], objects: set[Owned]) -> set[Owned]:
    relations = sorted(o.name for o in objects if o.kind in {"table", "index"})
    functions = sorted(o.name for o in objects if o.kind == "function")
    cur = await conn.execute(sql.query("common", "owned_relations_present"), {"names": relations})
    present_rel = {str(r[0]) for r in await cur.fetchall()}
    cur = await conn.execute(sql.query("common", "owned_functions_present"), {"names": functions})
    present_fn = {str(r[0]) for r in await cur.fetchall()}
    return {
        o
        for o in objects
        if (o.kind == "function" and o.name not in present_fn)
        or (o.kind != "function" and o.name not in present_rel)
    }


# -- the backend's models schema ------------------------------------------------------------------

# column -> the type families the sync can write into it
_REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("text",),
    "name": ("text",),
    "provider": ("text",),
    "description": ("text",),
    "category": ("text",),
    "context_length": ("integer",),
    "input_cost_per_token": ("numeric",),
    "output_cost_per_token": ("numeric",),
    "supports_vision": ("boolean",),
    "supports_function_calling": ("boolean",),
    "supports_tool_choice": ("boolean",),
    "supports_parallel_function_calling": ("boolean",),
    "supports_streaming": ("boolean",),
    "features": ("text[]",),
    "availability": ("text",),
    "version": ("text",),
    "metadata": ("jsonb", "json"),
    "api_base": ("text",),
    "tpm": ("integer",),
    "rpm": ("integer",),
    "max_tokens": ("integer",),
    "litellm_model_id": ("text",),
    "backend_model_name": ("text",),
}
_TEXT_TYPES = {"text", "character varying", "character", "citext"}
_INT_TYPES = {"integer", "bigint", "smallint"}


def _family(data_type: str, udt: str) -> str:
    if data_type == "ARRAY":
        return (
            "text[]"
            if udt.lstrip("_") in {"text", "varchar", "bpchar", "citext"}
            else f"{udt.lstrip('_')}[]"
        )
    if data_type in _TEXT_TYPES or udt == "citext":
        return "text"
    if data_type in _INT_TYPES:
        return "integer"
    if data_type in {"numeric", "double precision", "real"}:
        return "numeric"
    return data_type


async def check_backend_schema(conn: psycopg.AsyncConnection[Any]) -> None:
    """Raise MigrationError naming every column or table of ``public.models`` the sync cannot
    use."""
    cur = await conn.execute(sql.query("common", "table_exists"), {"table": "public.models"})
    row = await cur.fetchone()
    if not (row and row[0]):
        raise MigrationError(
            "table public.models does not exist in the backend database: check "
            "LITEMAAS_DATABASE_URL (it must point at the LiteMaaS backend's database) and start "
            "the LiteMaaS backend once so it creates its schema, then run `litemaas-hooks "
            "install` again"
        )
    cur = await conn.execute(sql.query("common", "backend_models_columns"))
    columns = {str(c): _family(str(t), str(u)) for c, t, u in await cur.fetchall()}
    problems: list[str] = []
    for column, families in _REQUIRED_COLUMNS.items():
        have = columns.get(column)
        if have is None:
            problems.append(f"column public.models.{column} is missing")
        elif have not in families:
            problems.append(
                f"column public.models.{column} is {have}, the sync writes {' or '.join(families)}"
            )
    if problems:
        raise MigrationError(
            "the backend's models table is not the LiteMaaS schema litemaas-hooks writes: "
            + "; ".join(problems)
            + ". Upgrade the LiteMaaS backend (its migrations add these columns) or align the "
            "column types, then run `litemaas-hooks install` again"
        )


async def probe_backend_writes(conn: psycopg.AsyncConnection[Any], *, cascade: bool = True) -> None:
    """Upsert and retire a probe model through our functions inside a savepoint that is rolled back.

    Raises MigrationError naming the column, constraint or table that rejects the sync's writes."""
    record: dict[str, Any] = {
        "id": PROBE_ID,
        "name": PROBE_ID,
        "provider": "openai",
        "description": None,
        "category": "Language Model",
        "features": [],
        "version": "1.0",
        "metadata": {"litellm_model_info": {}, "litellm_params": {}},
        "litellm_model_id": PROBE_ID,
        "backend_model_name": PROBE_ID,
        "deployment_ids": [PROBE_ID],
        "all_blocked": False,
    }
    step = "creating a model"
    try:
        async with conn.transaction(force_rollback=True):
            await conn.execute(sql.query("backend", "upsert_models"), {"models": Jsonb([record])})
            step = (
                "retiring a model (availability 'unavailable', cascade to subscriptions and API "
                "keys)"
            )
            await conn.execute(
                sql.query("backend", "retire_model"),
                {
                    "id": PROBE_ID,
                    "cascade": cascade,
                    "reason": "no deployment of this model_name is left in LiteLLM",
                },
            )
    except psycopg.Error as exc:
        raise MigrationError(_probe_message(exc, step)) from exc


def _probe_message(exc: psycopg.Error, step: str) -> str:
    d = exc.diag
    where = ".".join(p for p in (d.schema_name, d.table_name, d.column_name) if p)
    what = describe(exc)
    fix = (
        "Make the backend schema accept it (see docs/troubleshooting.md) and run "
        "`litemaas-hooks install` again."
    )
    state = exc.sqlstate or ""
    if state == "23502":
        fix = (
            f"Column {where or '?'} is NOT NULL without a default and litemaas-hooks does not "
            "write it: give it a DEFAULT (ALTER TABLE public.models ALTER COLUMN ... SET DEFAULT "
            "...) or drop NOT NULL."
        )
    elif state == "23514":
        fix = (
            f"Constraint {d.constraint_name or '?'} on {where or 'public.models'} rejects the "
            "value: the sync writes availability 'available' and 'unavailable' (a retired "
            "model); allow both."
        )
    elif state == "42P01":
        fix = (
            "A table the retire cascade writes is missing (public.subscriptions, "
            "public.api_key_models, public.api_keys, public.audit_logs): upgrade the LiteMaaS "
            "backend schema, or turn the cascade off with LITEMAAS_HOOKS_RETIRE_CASCADE=false."
        )
    elif state == "42703":
        fix = "A column the sync writes is missing: upgrade the LiteMaaS backend schema."
    return (
        f"the backend database rejects what the sync writes ({step}): {what}"
        + (f" [{where}]" if where else "")
        + f". {fix}"
    )
