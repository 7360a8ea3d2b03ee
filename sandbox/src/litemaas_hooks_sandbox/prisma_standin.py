"""A psycopg-backed stand-in for LiteLLM's Prisma client, for driving LiteLLM's real endpoint code.

A DB-backed ``litellm`` process cannot start here: prisma-client-py downloads its native query
engine from the internet. The demo and the tests therefore call LiteLLM's real model-management
endpoint functions in-process and give them this object as
``litellm.proxy.proxy_server.prisma_client``. Rows, encryption and timestamps then come from
LiteLLM's own code; this module only translates the Prisma calls into parameterised SQL (identifiers
quoted, every value a bound parameter).

What it reproduces of prisma-client-py (async interface):

* ``client.db.<model>`` for every model of LiteLLM's ``schema.prisma`` (shipped in the ``litellm``
  wheel, so it matches the installed LiteLLM) whose table exists in the database; tables found only
  in the database are served too. Field to column names follow ``@map``/``@@map``; only the fields
  the schema declares are returned (as the generated client would), intersected with the real
  columns.
* actions: ``find_unique``/``find_unique_or_raise``, ``find_first``/``find_first_or_raise``,
  ``find_many`` (``take``, ``skip``, ``order``, ``distinct``, ``include``), ``count``, ``create``,
  ``create_many`` (``skip_duplicates``), ``update`` and ``delete`` (``None`` when no row matched),
  ``update_many``, ``delete_many``, ``upsert`` (``{"create": ..., "update": ...}``).
* ``where``: equality, ``None``, ``AND``/``OR``/``NOT``, compound unique keys (``a_b: {a:..,
  b:..}``), ``equals``, ``not``, ``in``, ``not_in``, ``lt``/``lte``/``gt``/``gte``,
  ``contains``/``startswith``/ ``endswith`` (``mode="insensitive"``), list filters
  ``has``/``has_some``/``has_every``/``is_empty``, Json ``path`` +
  ``equals``/``array_contains``/``string_contains``. Anything else raises
  :class:`UnsupportedPrismaQuery` naming the construct, instead of guessing.
* writes: Json fields take a JSON string (the way LiteLLM passes them) or a Python value and are
  stored as the parsed JSON; DateTime values are stored in UTC (naive values are UTC) truncated to
  milliseconds; ``@default(uuid())``/``@default(cuid())`` are generated client-side like Prisma
  does; every ``@updatedAt`` field is set to "now" on create and on every update that does not set
  it explicitly. Scalar update operators
  ``set``/``increment``/``decrement``/``multiply``/``divide``/``push`` and
  ``connect``/``disconnect`` of a to-one relation are translated.
* reads return pydantic models (one class per Prisma model, named like it): attribute access,
  ``model_dump()``/``dict()``/``model_dump_json()``, Json fields as Python values, DateTime fields
  as timezone-aware UTC datetimes (what prisma-client-py returns), ``include`` relations as nested
  models.
* ``query_raw``/``query_first``/``execute_raw`` with PostgreSQL ``$1``-style parameters.
* ``tx()`` (``async with db.tx() as tx`` or ``start``/``commit``/``rollback``): one PostgreSQL
  transaction on one connection, nested ones as savepoints; ``batch_()`` runs its queued writes in
  one transaction on commit. Outside transactions every statement runs in autocommit mode.
* :class:`StandinPrismaClient` plays LiteLLM's ``PrismaClient`` wrapper: ``db``, ``writer_db``,
  ``read_db``, ``tx()``; any other attribute is LiteLLM's own ``PrismaClient`` method bound to this
  object (e.g. ``get_generic_data``), so such helpers run LiteLLM's code over this ``db``.

Accepted but not enforced: the ``timeout``/``max_wait`` of ``tx()``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import functools
import importlib.util
import json
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Final, Self

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict

from litemaas_hooks.errors import LiteMaaSHooksError
from litemaas_hooks.redaction import redact_dsn

__all__ = [
    "Catalog",
    "PrismaRecord",
    "RecordNotFoundError",
    "StandinDB",
    "StandinError",
    "StandinPrismaClient",
    "TableActions",
    "UnsupportedPrismaQuery",
    "default_prisma_schema_path",
    "parse_prisma_schema",
    "translate_raw_query",
]

Row = dict[str, Any]
Conn = psycopg.AsyncConnection[Row]

_UTC: Final = dt.UTC


class StandinError(LiteMaaSHooksError):
    """The Prisma stand-in could not serve a call."""


class UnsupportedPrismaQuery(StandinError, NotImplementedError):
    """A Prisma construct this stand-in does not translate (the message names it)."""


class RecordNotFoundError(StandinError):
    """``find_*_or_raise`` found no row (Prisma error P2025)."""

    code: ClassVar[str] = "P2025"


# --------------------------------------------------------------------------------------------------
# schema.prisma
# --------------------------------------------------------------------------------------------------

_SCALAR_TYPES: Final = frozenset(
    {"String", "Boolean", "Int", "BigInt", "Float", "Decimal", "DateTime", "Json", "Bytes"}
)


@dataclass(frozen=True)
class PrismaField:
    name: str
    type: str
    is_list: bool
    optional: bool
    column: str
    is_id: bool = False
    is_unique: bool = False
    default: str | None = None  # "uuid", "cuid", "now", "autoincrement", "value" or None
    updated_at: bool = False
    relation_name: str | None = None
    relation_fields: tuple[str, ...] = ()
    relation_references: tuple[str, ...] = ()


@dataclass
class PrismaModel:
    name: str
    table: str
    fields: dict[str, PrismaField] = field(default_factory=dict)
    id_fields: tuple[str, ...] = ()
    compound_uniques: dict[str, tuple[str, ...]] = field(default_factory=dict)


_BLOCK_RE: Final = re.compile(r"^\s*(model|enum|type|view)\s+(\w+)\s*\{", re.MULTILINE)
_FIELD_RE: Final = re.compile(r"^(\w+)\s+(Unsupported\(\"[^\"]*\"\)|\w+)(\[\])?(\?)?\s*(.*)$")
_QUOTED_RE: Final = re.compile(r'"([^"]*)"')
_LIST_RE: Final = re.compile(r"\[([^\]]*)\]")


def _strip_comment(line: str) -> str:
    out: list[str] = []
    in_string = False
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == '"':
            in_string = not in_string
        elif not in_string and line.startswith("//", i):
            break
        out.append(ch)
        i += 1
    return "".join(out).strip()


def _attribute_args(text: str, attribute: str) -> str | None:
    """The text inside ``@attribute(...)`` (balanced parentheses), or None when absent."""
    match = re.search(re.escape(attribute) + r"\(", text)
    if match is None:
        return None
    depth = 1
    start = match.end()
    i = start
    in_string = False
    while i < len(text) and depth:
        ch = text[i]
        if ch == '"':
            in_string = not in_string
        elif not in_string and ch == "(":
            depth += 1
        elif not in_string and ch == ")":
            depth -= 1
        i += 1
    return text[start : i - 1]


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _named_list(args: str, name: str) -> tuple[str, ...]:
    match = re.search(name + r"\s*:\s*\[([^\]]*)\]", args)
    return _names(match.group(1)) if match else ()


def _parse_field(line: str) -> PrismaField | None:
    match = _FIELD_RE.match(line)
    if match is None:
        return None
    name, type_name, list_mark, optional_mark, attrs = match.groups()
    if type_name.startswith("Unsupported("):
        return None
    mapped = _attribute_args(attrs, "@map")
    column = name
    if mapped is not None and (quoted := _QUOTED_RE.search(mapped)):
        column = quoted.group(1)
    default_args = _attribute_args(attrs, "@default")
    default: str | None = None
    if default_args is not None:
        compact = default_args.replace(" ", "")
        if compact.startswith("uuid("):
            default = "uuid"
        elif compact.startswith("cuid("):
            default = "cuid"
        elif compact == "now()":
            default = "now"
        elif compact == "autoincrement()":
            default = "autoincrement"
        else:
            default = "value"
    relation_args = _attribute_args(attrs, "@relation")
    relation_name: str | None = None
    relation_fields: tuple[str, ...] = ()
    relation_references: tuple[str, ...] = ()
    if relation_args is not None:
        first = relation_args.strip()
        if first.startswith('"') and (quoted := _QUOTED_RE.match(first)):
            relation_name = quoted.group(1)
        named = re.search(r"name\s*:\s*\"([^\"]*)\"", relation_args)
        if named:
            relation_name = named.group(1)
        relation_fields = _named_list(relation_args, "fields")
        relation_references = _named_list(relation_args, "references")
    return PrismaField(
        name=name,
        type=type_name,
        is_list=bool(list_mark),
        optional=bool(optional_mark),
        column=column,
        is_id=re.search(r"@id\b", attrs) is not None,
        is_unique=re.search(r"@unique\b", attrs) is not None,
        default=default,
        updated_at="@updatedAt" in attrs,
        relation_name=relation_name,
        relation_fields=relation_fields,
        relation_references=relation_references,
    )


def parse_prisma_schema(text: str) -> dict[str, PrismaModel]:
    """The models of a ``schema.prisma`` file, keyed by model name (enums and views are skipped)."""
    models: dict[str, PrismaModel] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        head = _BLOCK_RE.match(lines[i])
        i += 1
        if head is None:
            continue
        kind, name = head.groups()
        body: list[str] = []
        while i < len(lines) and _strip_comment(lines[i]) != "}":
            body.append(_strip_comment(lines[i]))
            i += 1
        i += 1
        if kind != "model":
            continue
        model = PrismaModel(name=name, table=name)
        for line in body:
            if not line:
                continue
            if line.startswith("@@map"):
                args = _attribute_args(line, "@@map") or ""
                if quoted := _QUOTED_RE.search(args):
                    model.table = quoted.group(1)
            elif line.startswith(("@@id", "@@unique")):
                attribute = "@@id" if line.startswith("@@id") else "@@unique"
                args = _attribute_args(line, attribute) or ""
                listed = _LIST_RE.search(args)
                names = _names(listed.group(1)) if listed else ()
                names = tuple(n.split("(")[0].strip() for n in names)
                named = re.search(r"name\s*:\s*\"([^\"]*)\"", args)
                key = named.group(1) if named else "_".join(names)
                if attribute == "@@id":
                    model.id_fields = names
                model.compound_uniques[key] = names
            elif not line.startswith("@@") and (parsed := _parse_field(line)) is not None:
                model.fields[parsed.name] = parsed
        if not model.id_fields:
            model.id_fields = tuple(f.name for f in model.fields.values() if f.is_id)
        models[name] = model
    return models


def default_prisma_schema_path() -> Path | None:
    """``litellm/proxy/schema.prisma`` of the installed LiteLLM (found without importing
    litellm)."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "proxy" / "schema.prisma"
        if candidate.is_file():
            return candidate
    return None


# --------------------------------------------------------------------------------------------------
# catalog: schema.prisma x the real database
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    field: str  # Prisma field name (what callers use)
    name: str  # database column
    sql_type: str  # format_type() of the column, used for casts
    is_array: bool
    elem_type: str | None
    default: str | None = None
    updated_at: bool = False
    prisma_list: bool = False  # a Prisma scalar list (``String[]``): read back as [] when NULL

    @property
    def is_json(self) -> bool:
        return self.sql_type in ("jsonb", "json")

    @property
    def elem_is_json(self) -> bool:
        return self.elem_type in ("jsonb", "json")

    @property
    def is_timestamp(self) -> bool:
        return self.sql_type.startswith("timestamp")

    @property
    def is_timestamptz(self) -> bool:
        return self.sql_type.startswith("timestamp") and "with time zone" in self.sql_type

    @property
    def is_date(self) -> bool:
        return self.sql_type == "date"


class PrismaRecord(BaseModel):
    """Base of the row objects (one subclass per Prisma model): fields live as pydantic extras."""

    model_config = ConfigDict(extra="allow", protected_namespaces=(), arbitrary_types_allowed=True)


@dataclass
class TableMeta:
    model: str
    table: str
    columns: dict[str, Column]
    relations: dict[str, PrismaField]
    id_fields: tuple[str, ...]
    compound_uniques: dict[str, tuple[str, ...]]
    record_class: type[PrismaRecord]

    def column(self, name: str) -> Column:
        try:
            return self.columns[name]
        except KeyError:
            raise UnsupportedPrismaQuery(
                f"{self.model} has no field {name!r} in this database"
            ) from None


_CATALOG_SQL: Final = """
SELECT c.relname AS table_name,
       a.attname AS column_name,
       format_type(a.atttypid, a.atttypmod) AS sql_type,
       t.typcategory = 'A' AS is_array,
       CASE WHEN t.typcategory = 'A' THEN format_type(t.typelem, NULL) END AS elem_type
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
WHERE n.nspname = current_schema()
  AND c.relkind IN ('r', 'p', 'v', 'm')
  AND a.attnum > 0
  AND NOT a.attisdropped
ORDER BY c.relname, a.attnum
"""


class Catalog:
    """Prisma models of ``schema.prisma`` mapped onto the tables that exist in the database."""

    def __init__(self, tables: Mapping[str, TableMeta]) -> None:
        self._by_accessor: dict[str, TableMeta] = {
            meta.model.lower(): meta for meta in tables.values()
        }
        self._by_model: dict[str, TableMeta] = {meta.model: meta for meta in tables.values()}

    def accessor(self, name: str) -> TableMeta | None:
        return self._by_accessor.get(name.lower())

    def model(self, name: str) -> TableMeta:
        try:
            return self._by_model[name]
        except KeyError:
            raise UnsupportedPrismaQuery(f"model {name!r} has no table in this database") from None

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(sorted(self._by_model))

    @classmethod
    async def load(cls, conn: Conn, prisma_schema: str | None) -> Catalog:
        cursor = await conn.execute(_CATALOG_SQL)
        db_columns: dict[str, dict[str, Row]] = {}
        for row in await cursor.fetchall():
            db_columns.setdefault(row["table_name"], {})[row["column_name"]] = row
        models = parse_prisma_schema(prisma_schema) if prisma_schema else {}
        tables: dict[str, TableMeta] = {}
        covered: set[str] = set()
        for model in models.values():
            existing = db_columns.get(model.table)
            if existing is None:
                continue
            covered.add(model.table)
            columns: dict[str, Column] = {}
            relations: dict[str, PrismaField] = {}
            for prisma_field in model.fields.values():
                if prisma_field.type in models:
                    relations[prisma_field.name] = prisma_field
                    continue
                db_col = existing.get(prisma_field.column)
                if db_col is None:
                    continue
                columns[prisma_field.name] = _column(db_col, prisma_field.name, prisma_field)
            tables[model.name] = _table_meta(model.name, model.table, columns, relations, model)
        for table, existing in db_columns.items():
            if table in covered or table.startswith("_prisma"):
                continue
            columns = {name: _column(db_col, name, None) for name, db_col in existing.items()}
            tables[table] = _table_meta(table, table, columns, {}, None)
        return cls(tables)


def _column(db_col: Row, field_name: str, prisma_field: PrismaField | None) -> Column:
    return Column(
        field=field_name,
        name=str(db_col["column_name"]),
        sql_type=str(db_col["sql_type"]),
        is_array=bool(db_col["is_array"]),
        elem_type=db_col["elem_type"],
        default=prisma_field.default if prisma_field else None,
        updated_at=prisma_field.updated_at if prisma_field else False,
        prisma_list=prisma_field.is_list if prisma_field else False,
    )


def _table_meta(
    model: str,
    table: str,
    columns: dict[str, Column],
    relations: dict[str, PrismaField],
    prisma_model: PrismaModel | None,
) -> TableMeta:
    record_class = type(model, (PrismaRecord,), {"__module__": __name__, "__qualname__": model})
    return TableMeta(
        model=model,
        table=table,
        columns=columns,
        relations=relations,
        id_fields=prisma_model.id_fields if prisma_model else (),
        compound_uniques=dict(prisma_model.compound_uniques) if prisma_model else {},
        record_class=record_class,
    )


# --------------------------------------------------------------------------------------------------
# value conversion
# --------------------------------------------------------------------------------------------------


def _prisma_json_data(value: object) -> tuple[bool, object]:
    """prisma-client-py's ``prisma.Json`` wrapper (``Json(False)``): (is one, the wrapped value)."""
    kind = type(value)
    if kind.__name__ == "Json" and kind.__module__.startswith("prisma") and hasattr(value, "data"):
        return True, value.data
    return False, value


def _json_default(value: object) -> object:
    wrapped, data = _prisma_json_data(value)
    if wrapped:
        return data
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_dumps: Final = functools.partial(json.dumps, default=_json_default)


def _json_value(value: object, where: str) -> object:
    """Prisma's Json input: a str is JSON text (how LiteLLM passes ``json.dumps(...)``),
    ``prisma.Json(x)`` is ``x``, else a value."""
    wrapped, data = _prisma_json_data(value)
    if wrapped:
        return data
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise StandinError(
                f"{where}: a Json field was given a string that is not JSON text"
            ) from None
    return value


def _now() -> dt.datetime:
    now = dt.datetime.now(_UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _to_datetime(value: object, *, aware: bool) -> object:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day, tzinfo=_UTC)
    if not isinstance(value, dt.datetime):
        return value
    value = value.replace(tzinfo=_UTC) if value.tzinfo is None else value.astimezone(_UTC)
    value = value.replace(microsecond=value.microsecond // 1000 * 1000)  # Prisma keeps milliseconds
    return value if aware else value.replace(tzinfo=None)


def _scalar_to_db(col: Column, value: object, where: str) -> object:
    if value is None:
        return None
    if isinstance(value, enum.Enum):
        value = value.value
    if col.is_json:
        return Jsonb(_json_value(value, where), dumps=_dumps)
    if col.is_timestamp:
        return _to_datetime(value, aware=col.is_timestamptz)
    return value


def _to_db(col: Column, value: object, where: str) -> object:
    if value is None:
        return None
    if col.is_array:
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise StandinError(
                f"{where}: list field {col.field!r} needs a list, got {type(value).__name__}"
            )
        items = list(value)
        if col.elem_is_json:
            return [Jsonb(_json_value(v, where), dumps=_dumps) for v in items]
        if col.elem_type is not None and col.elem_type.startswith("timestamp"):
            aware = "with time zone" in col.elem_type
            return [_to_datetime(v, aware=aware) for v in items]
        return [v.value if isinstance(v, enum.Enum) else v for v in items]
    return _scalar_to_db(col, value, where)


def _from_db(col: Column, value: object) -> object:
    if value is None and col.prisma_list:
        return []
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=_UTC) if value.tzinfo is None else value.astimezone(_UTC)
    if (
        isinstance(value, list)
        and col.elem_type is not None
        and col.elem_type.startswith("timestamp")
    ):
        return [
            (v.replace(tzinfo=_UTC) if v.tzinfo is None else v.astimezone(_UTC))
            if isinstance(v, dt.datetime)
            else v
            for v in value
        ]
    return value


def _cuid() -> str:
    return "c" + format(int(time.time() * 1000), "x")[-8:] + secrets.token_hex(8)


# --------------------------------------------------------------------------------------------------
# SQL compilation
# --------------------------------------------------------------------------------------------------

Fragment = tuple[sql.Composable, list[Any]]

_PH: Final = sql.Placeholder()
_TRUE: Final = sql.SQL("TRUE")
_FALSE: Final = sql.SQL("FALSE")

_OP_ALIASES: Final = {
    "notIn": "not_in",
    "startsWith": "startswith",
    "endsWith": "endswith",
    "hasSome": "has_some",
    "hasEvery": "has_every",
    "isEmpty": "is_empty",
    "arrayContains": "array_contains",
    "stringContains": "string_contains",
    "isNot": "is_not",
}
_SCALAR_FILTER_OPS: Final = frozenset(
    {
        "equals",
        "not",
        "in",
        "not_in",
        "lt",
        "lte",
        "gt",
        "gte",
        "contains",
        "startswith",
        "endswith",
        "mode",
        "has",
        "has_some",
        "has_every",
        "is_empty",
    }
)
_JSON_FILTER_OPS: Final = frozenset(
    {"equals", "not", "path", "array_contains", "string_contains", "mode"}
)
_UPDATE_OPS: Final = frozenset(
    {"set", "increment", "decrement", "multiply", "divide", "push", "unset"}
)


def _op(name: str) -> str:
    return _OP_ALIASES.get(name, name)


def _typed(col: Column, *, array_of: bool = False) -> sql.Composable:
    type_sql = col.sql_type + ("[]" if array_of else "")
    return sql.SQL("{}::{}").format(_PH, sql.SQL(type_sql))


def _elem_typed(col: Column) -> sql.Composable:
    return sql.SQL("{}::{}").format(_PH, sql.SQL(col.elem_type or "text"))


def _like_pattern(value: object, kind: str) -> str:
    text = str(value).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    if kind == "contains":
        return f"%{text}%"
    if kind == "startswith":
        return f"{text}%"
    return f"%{text}"


def _join(parts: Sequence[Fragment], joiner: str, empty: sql.Composable) -> Fragment:
    if not parts:
        return empty, []
    if len(parts) == 1:
        return parts[0]
    params: list[Any] = []
    for _, p in parts:
        params.extend(p)
    combined = sql.SQL(f" {joiner} ").join(sql.SQL("({})").format(q) for q, _ in parts)
    return combined, params


def _direction(value: object) -> str:
    text = str(value.value if isinstance(value, enum.Enum) else value).lower()
    if text not in ("asc", "desc"):
        raise UnsupportedPrismaQuery(f"order direction {value!r} is not 'asc' or 'desc'")
    return text.upper()


class _Compiler:
    def __init__(self, meta: TableMeta) -> None:
        self.meta = meta

    # ---- where ----
    def where(self, where: Mapping[str, Any] | None) -> Fragment:
        if not where:
            return _TRUE, []
        parts: list[Fragment] = []
        for key, value in where.items():
            if key in ("AND", "OR", "NOT"):
                subs = [value] if isinstance(value, Mapping) else list(value or [])
                compiled = [self.where(sub) for sub in subs]
                if key == "AND":
                    parts.append(_join(compiled, "AND", _TRUE))
                elif key == "OR":
                    parts.append(_join(compiled, "OR", _FALSE))
                else:
                    negated = [(sql.SQL("NOT ({})").format(q), p) for q, p in compiled]
                    parts.append(_join(negated, "AND", _TRUE))
            elif key in self.meta.compound_uniques and key not in self.meta.columns:
                if not isinstance(value, Mapping):
                    raise UnsupportedPrismaQuery(
                        f"{self.meta.model}.{key}: compound unique needs a mapping"
                    )
                for name in self.meta.compound_uniques[key]:
                    parts.append(self._field(self.meta.column(name), value.get(name)))
            elif key in self.meta.relations:
                raise UnsupportedPrismaQuery(
                    f"relation filter {self.meta.model}.{key} is not supported"
                )
            else:
                parts.append(self._field(self.meta.column(key), value))
        return _join(parts, "AND", _TRUE)

    def _field(self, col: Column, value: object) -> Fragment:
        ident = sql.Identifier(col.name)
        if value is None:
            return sql.SQL("{} IS NULL").format(ident), []
        if isinstance(value, Mapping) and self._is_filter(col, value):
            return self._ops(col, value)
        return self._equals(col, value)

    def _is_filter(self, col: Column, value: Mapping[str, Any]) -> bool:
        if not value:
            return False
        ops = {_op(k) for k in value}
        if col.is_json:
            return ops <= _JSON_FILTER_OPS
        unknown = ops - _SCALAR_FILTER_OPS
        if unknown:
            raise UnsupportedPrismaQuery(
                f"filter operator(s) {sorted(unknown)} on {self.meta.model}.{col.field} are not "
                "supported"
            )
        return True

    def _equals(self, col: Column, value: object) -> Fragment:
        ident = sql.Identifier(col.name)
        if value is None:
            return sql.SQL("{} IS NULL").format(ident), []
        return sql.SQL("{} = {}").format(ident, _typed(col)), [_to_db(col, value, "where")]

    def _ops(self, col: Column, value: Mapping[str, Any]) -> Fragment:
        if col.is_json:
            return self._json_ops(col, value)
        ident = sql.Identifier(col.name)
        insensitive = value.get("mode") == "insensitive"
        parts: list[Fragment] = []
        for raw_op, operand in value.items():
            op = _op(raw_op)
            if op == "mode":
                continue
            if op == "equals":
                parts.append(self._equals(col, operand))
            elif op == "not":
                if operand is None:
                    parts.append((sql.SQL("{} IS NOT NULL").format(ident), []))
                elif isinstance(operand, Mapping):
                    q, p = self._ops(col, operand)
                    parts.append((sql.SQL("NOT ({})").format(q), p))
                else:
                    parts.append(
                        (
                            sql.SQL("{} <> {}").format(ident, _typed(col)),
                            [_to_db(col, operand, "not")],
                        )
                    )
            elif op in ("in", "not_in"):
                items = [_to_db(col, v, op) for v in operand]
                if not items:
                    parts.append((_FALSE if op == "in" else _TRUE, []))
                    continue
                q = sql.SQL("{} = ANY({})").format(ident, _typed(col, array_of=True))
                parts.append((q if op == "in" else sql.SQL("NOT ({})").format(q), [items]))
            elif op in ("lt", "lte", "gt", "gte"):
                symbol = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}[op]
                q = sql.SQL("{} " + symbol + " {}").format(ident, _typed(col))
                parts.append((q, [_to_db(col, operand, op)]))
            elif op in ("contains", "startswith", "endswith"):
                like = sql.SQL("ILIKE" if insensitive else "LIKE")
                q = sql.SQL("{}::text {} {}").format(ident, like, _PH)
                parts.append((q, [_like_pattern(operand, op)]))
            elif op == "has":
                parts.append((sql.SQL("{} = ANY({})").format(_elem_typed(col), ident), [operand]))
            elif op in ("has_some", "has_every"):
                symbol = "&&" if op == "has_some" else "@>"
                q = sql.SQL("{} " + symbol + " {}").format(ident, _typed(col))
                parts.append((q, [_to_db(col, operand, op)]))
            elif op == "is_empty":
                symbol = "=" if operand else "<>"
                parts.append((sql.SQL("cardinality({}) " + symbol + " 0").format(ident), []))
        return _join(parts, "AND", _TRUE)

    def _json_ops(self, col: Column, value: Mapping[str, Any]) -> Fragment:
        path = value.get("path")
        target: sql.Composable = sql.Identifier(col.name)
        params: list[Any] = []
        if path is not None:
            path_list = [path] if isinstance(path, str) else [str(p) for p in path]
            target = sql.SQL("({} #> {}::text[])").format(target, _PH)
            params.append(path_list)
        parts: list[Fragment] = []
        for raw_op, operand in value.items():
            op = _op(raw_op)
            if op in ("path", "mode"):
                continue
            if op in ("equals", "not"):
                symbol = "=" if op == "equals" else "IS DISTINCT FROM"
                q = sql.SQL("{} " + symbol + " {}::jsonb").format(target, _PH)
                parts.append((q, [*params, Jsonb(operand, dumps=_dumps)]))
            elif op == "array_contains":
                items = operand if isinstance(operand, list) else [operand]
                q = sql.SQL("{} @> {}::jsonb").format(target, _PH)
                parts.append((q, [*params, Jsonb(items, dumps=_dumps)]))
            elif op == "string_contains":
                like = sql.SQL("ILIKE" if value.get("mode") == "insensitive" else "LIKE")
                q = sql.SQL("({} #>> '{{}}') {} {}").format(target, like, _PH)
                parts.append((q, [*params, _like_pattern(operand, "contains")]))
        return _join(parts, "AND", _TRUE)

    # ---- order ----
    def order(
        self, order: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None
    ) -> sql.Composable:
        if not order:
            return sql.SQL("")
        items = [order] if isinstance(order, Mapping) else list(order)
        parts: list[sql.Composable] = []
        for item in items:
            for key, direction in item.items():
                col = self.meta.column(key)
                nulls = ""
                if isinstance(direction, Mapping):
                    nulls = str(direction.get("nulls") or "")
                    direction = direction.get("sort", "asc")
                if str(direction).lower() not in ("asc", "desc"):
                    raise UnsupportedPrismaQuery(f"order direction {direction!r} is not supported")
                text = " DESC" if str(direction).lower() == "desc" else " ASC"
                if nulls in ("first", "last"):
                    text += f" NULLS {nulls.upper()}"
                parts.append(sql.SQL("{}" + text).format(sql.Identifier(col.name)))
        return sql.SQL(" ORDER BY ") + sql.SQL(", ").join(parts)

    # ---- select ----
    def select_list(self) -> sql.Composable:
        return sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(sql.Identifier(c.name), sql.Identifier(c.field))
            for c in self.meta.columns.values()
        )

    # ---- writes ----
    def insert_values(self, data: Mapping[str, Any]) -> dict[str, tuple[Column, object]]:
        values: dict[str, tuple[Column, object]] = {}
        for key, value in data.items():
            if key in self.meta.relations:
                self._relation_write(key, value, values)
                continue
            col = self.meta.column(key)
            if isinstance(value, Mapping) and not col.is_json and set(value) == {"set"}:
                value = value["set"]
            values[key] = (col, _to_db(col, value, f"{self.meta.model}.create"))
        # like Prisma: one "now" for every @default(now()) and @updatedAt field of the row
        now = _now()
        for col in self.meta.columns.values():
            if col.field in values:
                continue
            if col.default == "uuid":
                values[col.field] = (col, str(uuid.uuid4()))
            elif col.default == "cuid":
                values[col.field] = (col, _cuid())
            elif col.updated_at or (col.default == "now" and col.is_timestamp):
                values[col.field] = (col, _to_datetime(now, aware=col.is_timestamptz))
        return values

    def _relation_write(
        self, key: str, value: object, values: dict[str, tuple[Column, object]]
    ) -> None:
        relation = self.meta.relations[key]
        if not relation.relation_fields or not isinstance(value, Mapping):
            raise UnsupportedPrismaQuery(
                f"nested write on {self.meta.model}.{key} is not supported"
            )
        if "connect" in value and isinstance(value["connect"], Mapping):
            target = value["connect"]
            for fk, ref in zip(relation.relation_fields, relation.relation_references, strict=True):
                if ref not in target:
                    raise UnsupportedPrismaQuery(
                        f"connect on {self.meta.model}.{key} needs {ref!r}"
                    )
                col = self.meta.column(fk)
                values[fk] = (col, _to_db(col, target[ref], "connect"))
        elif value.get("disconnect") is True:
            for fk in relation.relation_fields:
                values[fk] = (self.meta.column(fk), None)
        else:
            raise UnsupportedPrismaQuery(f"nested write {sorted(value)} on {self.meta.model}.{key}")

    def set_clause(self, data: Mapping[str, Any]) -> Fragment | None:
        """The SET list of an update (None when there is nothing to write)."""
        parts: list[Fragment] = []
        touched: set[str] = set()
        plain: dict[str, tuple[Column, object]] = {}
        for key, value in data.items():
            if key in self.meta.relations:
                self._relation_write(key, value, plain)
                continue
            col = self.meta.column(key)
            touched.add(key)
            ident = sql.Identifier(col.name)
            if isinstance(value, Mapping) and not col.is_json:
                ops = set(value)
                if not ops <= _UPDATE_OPS or len(ops) != 1:
                    raise UnsupportedPrismaQuery(
                        f"update operator(s) {sorted(ops)} on {self.meta.model}.{key}"
                    )
                op, operand = next(iter(value.items()))
                if op == "set":
                    parts.append(
                        (
                            sql.SQL("{} = {}").format(ident, _typed(col)),
                            [_to_db(col, operand, "set")],
                        )
                    )
                elif op == "unset":
                    if operand:
                        parts.append((sql.SQL("{} = NULL").format(ident), []))
                elif op == "push":
                    items = operand if isinstance(operand, list) else [operand]
                    q = sql.SQL("{} = array_cat(coalesce({}, '{{}}'), {})").format(
                        ident, ident, _typed(col)
                    )
                    parts.append((q, [_to_db(col, items, "push")]))
                else:
                    symbol = {"increment": "+", "decrement": "-", "multiply": "*", "divide": "/"}[
                        op
                    ]
                    q = sql.SQL("{} = {} " + symbol + " {}").format(ident, ident, _typed(col))
                    parts.append((q, [operand]))
            else:
                q = sql.SQL("{} = {}").format(ident, _typed(col))
                parts.append((q, [_to_db(col, value, f"{self.meta.model}.update")]))
        for key, (col, db_value) in plain.items():
            touched.add(key)
            parts.append(
                (sql.SQL("{} = {}").format(sql.Identifier(col.name), _typed(col)), [db_value])
            )
        for col in self.meta.columns.values():
            if col.updated_at and col.field not in touched:  # Prisma's @updatedAt
                q = sql.SQL("{} = {}").format(sql.Identifier(col.name), _typed(col))
                parts.append((q, [_to_datetime(_now(), aware=col.is_timestamptz)]))
        if not parts:
            return None
        params: list[Any] = []
        for _, p in parts:
            params.extend(p)
        return sql.SQL(", ").join(q for q, _ in parts), params


# --------------------------------------------------------------------------------------------------
# raw queries
# --------------------------------------------------------------------------------------------------


def translate_raw_query(query: str, args: Sequence[object]) -> tuple[str, list[object]]:
    """Turn PostgreSQL ``$n`` parameters (what Prisma's ``query_raw`` takes) into psycopg ``%s``
    ones.

    String literals, quoted identifiers, dollar-quoted strings and comments are left alone; every
    ``%`` is doubled so psycopg does not read it as a placeholder.
    """
    out: list[str] = []
    params: list[object] = []
    i = 0
    n = len(query)
    while i < n:
        ch = query[i]
        if ch in ("'", '"'):
            j = i + 1
            while j < n:
                if query[j] == ch:
                    if j + 1 < n and query[j + 1] == ch:
                        j += 2
                        continue
                    break
                j += 1
            out.append(query[i : j + 1].replace("%", "%%"))
            i = j + 1
        elif query.startswith("--", i):
            j = query.find("\n", i)
            j = n if j == -1 else j
            out.append(query[i:j].replace("%", "%%"))
            i = j
        elif query.startswith("/*", i):
            j = query.find("*/", i + 2)
            j = n if j == -1 else j + 2
            out.append(query[i:j].replace("%", "%%"))
            i = j
        elif ch == "$":
            digits = re.match(r"\$(\d+)", query[i:])
            tag = re.match(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$", query[i:])
            if digits:
                index = int(digits.group(1))
                if index < 1 or index > len(args):
                    raise StandinError(
                        f"raw query uses ${index} but {len(args)} argument(s) were given"
                    )
                out.append("%s")
                params.append(args[index - 1])
                i += len(digits.group(0))
            elif tag:
                delimiter = tag.group(0)
                j = query.find(delimiter, i + len(delimiter))
                j = n if j == -1 else j + len(delimiter)
                out.append(query[i:j].replace("%", "%%"))
                i = j
            else:
                out.append(ch)
                i += 1
        elif ch == "%":
            out.append("%%")
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out), params


def _raw_arg(value: object) -> object:
    if isinstance(value, Mapping):
        return Jsonb(value, dumps=_dumps)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | set | frozenset):
        # Prisma sends any sequence as a JSON array (a PostgreSQL array for $n::text[])
        return list(value)
    wrapped, data = _prisma_json_data(value)
    if wrapped:
        return Jsonb(data, dumps=_dumps)
    return value


def _raw_result(value: object) -> object:
    """A raw-query value the way prisma-client-py returns it: its engine sends date/time/uuid values
    as strings (ISO 8601) and ``deserialize_raw_results`` turns only bigint/decimal/json into Python
    values (decimal into float); LiteLLM's code parses the strings itself."""
    if isinstance(value, dt.datetime):
        aware = value.replace(tzinfo=_UTC) if value.tzinfo is None else value.astimezone(_UTC)
        return aware.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list):
        return [_raw_result(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------------
# connections and sessions
# --------------------------------------------------------------------------------------------------


async def _connect(conninfo: str) -> Conn:
    try:
        conn = await psycopg.AsyncConnection.connect(
            conninfo, autocommit=True, row_factory=dict_row, prepare_threshold=None
        )
    except psycopg.OperationalError as exc:
        raise StandinError(
            f"cannot connect to the LiteLLM database {redact_dsn(conninfo)}: {exc}"
        ) from None
    await conn.execute("SET TIME ZONE 'UTC'")
    return conn


class _Pool:
    """A handful of autocommit connections; one is lent per statement or per transaction."""

    def __init__(self, conninfo: str, *, max_idle: int = 4) -> None:
        self._conninfo = conninfo
        self._max_idle = max_idle
        self._idle: list[Conn] = []
        self._all: set[Conn] = set()
        self.closed = False

    async def acquire(self) -> Conn:
        if self.closed:
            raise StandinError("the Prisma stand-in was disconnected")
        while self._idle:
            conn = self._idle.pop()
            if (
                not conn.closed
                and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            ):
                return conn
            self._all.discard(conn)
            await conn.close()
        conn = await _connect(self._conninfo)
        self._all.add(conn)
        return conn

    async def release(self, conn: Conn) -> None:
        healthy = (
            not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        )
        if healthy and not self.closed and len(self._idle) < self._max_idle:
            self._idle.append(conn)
            return
        self._all.discard(conn)
        await conn.close()

    async def close(self) -> None:
        self.closed = True
        conns = list(self._all)
        self._idle.clear()
        self._all.clear()
        for conn in conns:
            await conn.close()


class _Session:
    """Where statements run: the pool (autocommit) or one connection inside a transaction."""

    def __init__(self, pool: _Pool, conn: Conn | None = None, depth: int = 0) -> None:
        self.pool = pool
        self.conn = conn
        self.depth = depth

    async def run(
        self, query: sql.Composable | str, params: Sequence[Any]
    ) -> tuple[list[Row], int]:
        conn = self.conn if self.conn is not None else await self.pool.acquire()
        try:
            cursor = conn.cursor()
            # composed/translated, never user text
            await cursor.execute(query, params)  # type: ignore[arg-type]
            rows = await cursor.fetchall() if cursor.description is not None else []
            return rows, cursor.rowcount
        finally:
            if self.conn is None:
                await self.pool.release(conn)

    async def begin(self) -> _Session:
        if self.conn is None:
            conn = await self.pool.acquire()
            try:
                await conn.execute("BEGIN")
            except BaseException:
                await self.pool.release(conn)
                raise
            return _Session(self.pool, conn, 1)
        depth = self.depth + 1
        await self.conn.execute(
            sql.SQL("SAVEPOINT {}").format(sql.Identifier(f"standin_sp_{depth}"))
        )
        return _Session(self.pool, self.conn, depth)

    async def end(self, parent: _Session, *, commit: bool) -> None:
        assert self.conn is not None
        if parent.conn is None:
            try:
                await self.conn.execute("COMMIT" if commit else "ROLLBACK")
            finally:
                await self.pool.release(self.conn)
            return
        name = sql.Identifier(f"standin_sp_{self.depth}")
        if commit:
            await self.conn.execute(sql.SQL("RELEASE SAVEPOINT {}").format(name))
        else:
            await self.conn.execute(sql.SQL("ROLLBACK TO SAVEPOINT {}").format(name))
            await self.conn.execute(sql.SQL("RELEASE SAVEPOINT {}").format(name))


# --------------------------------------------------------------------------------------------------
# model actions
# --------------------------------------------------------------------------------------------------


class TableActions:
    """``client.db.<model>``: the prisma-client-py actions of one model."""

    def __init__(self, db: StandinDB, meta: TableMeta) -> None:
        self._db = db
        self._meta = meta
        self._c = _Compiler(meta)

    def __repr__(self) -> str:
        return f"<TableActions {self._meta.model}>"

    @property
    def _table(self) -> sql.Identifier:
        return sql.Identifier(self._meta.table)

    async def _records(
        self, rows: Sequence[Row], include: Mapping[str, Any] | None
    ) -> list[PrismaRecord]:
        out: list[PrismaRecord] = []
        for row in rows:
            data: dict[str, Any] = {
                c.field: _from_db(c, row.get(c.field)) for c in self._meta.columns.values()
            }
            if include:
                for name, spec in include.items():
                    if spec:
                        data[name] = await self._include(name, spec, data)
            out.append(self._meta.record_class.model_validate(data))
        return out

    async def _include(self, name: str, spec: object, data: Mapping[str, Any]) -> object:
        relation = self._meta.relations.get(name)
        if relation is None:
            raise UnsupportedPrismaQuery(f"{self._meta.model} has no relation {name!r}")
        target = self._db.catalog.model(relation.type)
        options: Mapping[str, Any] = spec if isinstance(spec, Mapping) else {}
        actions = TableActions(self._db, target)
        if relation.relation_fields:  # this side holds the foreign key
            where = {
                ref: data.get(fk)
                for fk, ref in zip(
                    relation.relation_fields, relation.relation_references, strict=True
                )
            }
            if any(v is None for v in where.values()):
                return None
            return await actions.find_first(where=where, include=options.get("include"))
        back = next(
            (
                f
                for f in target.relations.values()
                if f.type == self._meta.model
                and f.relation_fields
                and f.relation_name == relation.relation_name
            ),
            None,
        )
        if back is None:
            raise UnsupportedPrismaQuery(f"cannot resolve relation {self._meta.model}.{name}")
        where = {
            fk: data.get(ref)
            for fk, ref in zip(back.relation_fields, back.relation_references, strict=True)
        }
        extra = options.get("where")
        if extra:
            where = {"AND": [where, extra]}
        if relation.is_list:
            return await actions.find_many(
                where=where,
                take=options.get("take"),
                skip=options.get("skip"),
                order=options.get("order") or options.get("order_by"),
                include=options.get("include"),
            )
        return await actions.find_first(where=where, include=options.get("include"))

    async def _select(
        self,
        where: Mapping[str, Any] | None,
        *,
        take: int | None = None,
        skip: int | None = None,
        order: Any = None,
        lock: bool = False,
    ) -> list[Row]:
        where_sql, params = self._c.where(where)
        query = sql.SQL("SELECT {} FROM {} WHERE {}{}").format(
            self._c.select_list(), self._table, where_sql, self._c.order(order)
        )
        if take is not None:
            if take < 0:
                raise UnsupportedPrismaQuery("negative take is not supported")
            query = query + sql.SQL(" LIMIT {}").format(sql.Literal(int(take)))
        if skip:
            query = query + sql.SQL(" OFFSET {}").format(sql.Literal(int(skip)))
        if lock:
            query = query + sql.SQL(" FOR UPDATE")
        rows, _ = await self._db.session.run(query, params)
        return rows

    # ---- reads ----
    async def find_unique(
        self, where: Mapping[str, Any], include: Mapping[str, Any] | None = None
    ) -> PrismaRecord | None:
        rows = await self._select(where, take=2)
        records = await self._records(rows[:1], include)
        return records[0] if records else None

    async def find_unique_or_raise(
        self, where: Mapping[str, Any], include: Mapping[str, Any] | None = None
    ) -> PrismaRecord:
        record = await self.find_unique(where=where, include=include)
        if record is None:
            raise RecordNotFoundError(f"no {self._meta.model} row matches {sorted(where)}")
        return record

    async def find_many(
        self,
        take: int | None = None,
        skip: int | None = None,
        where: Mapping[str, Any] | None = None,
        cursor: Mapping[str, Any] | None = None,
        include: Mapping[str, Any] | None = None,
        order: Any = None,
        distinct: Sequence[str] | None = None,
        **unsupported: Any,
    ) -> list[PrismaRecord]:
        if cursor:
            raise UnsupportedPrismaQuery("find_many(cursor=...) is not supported")
        if unsupported:
            if "order_by" in unsupported and order is None:
                order = unsupported.pop("order_by")
            if unsupported:
                raise UnsupportedPrismaQuery(
                    f"find_many arguments {sorted(unsupported)} are not supported"
                )
        if distinct:
            rows = await self._select(where, order=order)
            seen: set[tuple[Any, ...]] = set()
            kept: list[Row] = []
            for row in rows:
                key = tuple(json.dumps(row.get(f), default=str, sort_keys=True) for f in distinct)
                if key not in seen:
                    seen.add(key)
                    kept.append(row)
            start = skip or 0
            rows = kept[start : start + take] if take is not None else kept[start:]
        else:
            rows = await self._select(where, take=take, skip=skip, order=order)
        return await self._records(rows, include)

    async def find_first(
        self,
        skip: int | None = None,
        where: Mapping[str, Any] | None = None,
        cursor: Mapping[str, Any] | None = None,
        include: Mapping[str, Any] | None = None,
        order: Any = None,
        distinct: Sequence[str] | None = None,
    ) -> PrismaRecord | None:
        records = await self.find_many(
            take=1,
            skip=skip,
            where=where,
            cursor=cursor,
            include=include,
            order=order,
            distinct=distinct,
        )
        return records[0] if records else None

    async def find_first_or_raise(
        self,
        skip: int | None = None,
        where: Mapping[str, Any] | None = None,
        cursor: Mapping[str, Any] | None = None,
        include: Mapping[str, Any] | None = None,
        order: Any = None,
        distinct: Sequence[str] | None = None,
    ) -> PrismaRecord:
        record = await self.find_first(
            skip=skip, where=where, cursor=cursor, include=include, order=order, distinct=distinct
        )
        if record is None:
            raise RecordNotFoundError(f"no {self._meta.model} row matches the filter")
        return record

    async def count(
        self,
        select: Mapping[str, Any] | None = None,
        take: int | None = None,
        skip: int | None = None,
        where: Mapping[str, Any] | None = None,
        cursor: Mapping[str, Any] | None = None,
    ) -> int:
        if select or cursor:
            raise UnsupportedPrismaQuery("count(select=..., cursor=...) is not supported")
        where_sql, params = self._c.where(where)
        inner = sql.SQL("SELECT 1 FROM {} WHERE {}").format(self._table, where_sql)
        if take is not None:
            inner = inner + sql.SQL(" LIMIT {}").format(sql.Literal(int(take)))
        if skip:
            inner = inner + sql.SQL(" OFFSET {}").format(sql.Literal(int(skip)))
        rows, _ = await self._db.session.run(
            sql.SQL("SELECT count(*) AS n FROM ({}) AS s").format(inner), params
        )
        return int(rows[0]["n"])

    async def group_by(
        self,
        by: Sequence[str],
        *,
        where: Mapping[str, Any] | None = None,
        take: int | None = None,
        skip: int | None = None,
        order: Any = None,
        count: Mapping[str, Any] | bool | None = None,
        sum: Mapping[str, Any] | None = None,  # prisma-client-py's argument names
        avg: Mapping[str, Any] | None = None,
        min: Mapping[str, Any] | None = None,
        max: Mapping[str, Any] | None = None,
        having: Mapping[str, Any] | None = None,
    ) -> list[Row]:
        """prisma-client-py's ``group_by``: one dict per group, ``{field: value, "_sum": {field: n},
        ...}``.

        ``count`` takes ``True`` (rows, as ``_count: {"_all": n}``) or ``{field: True, "_all":
        True}``; ``order`` a field of ``by`` or an aggregate (``{"_sum": {"spend": "desc"}}``), one
        or a list."""
        if having:
            raise UnsupportedPrismaQuery(
                f"{self._meta.model}.group_by(having=...) is not supported"
            )
        if not by:
            raise UnsupportedPrismaQuery(
                f"{self._meta.model}.group_by needs at least one field in by=[...]"
            )
        by_cols = [self._meta.column(name) for name in by]
        selects: list[sql.Composable] = [
            sql.SQL("{} AS {}").format(sql.Identifier(c.name), sql.Identifier(c.field))
            for c in by_cols
        ]
        aggregates: list[tuple[str, str, str]] = []  # (prisma key "_sum", field, output alias)
        specs: dict[str, Mapping[str, Any] | bool | None] = {
            "_count": count,
            "_sum": sum,
            "_avg": avg,
            "_min": min,
            "_max": max,
        }
        for key, spec in specs.items():
            if not spec:
                continue
            fields = ["_all"] if spec is True else [f for f, on in dict(spec).items() if on]
            for name in fields:
                alias = f"{key}__{name}"
                if name == "_all":
                    if key != "_count":
                        raise UnsupportedPrismaQuery(f"group_by {key} of _all is not supported")
                    expr: sql.Composable = sql.SQL("count(*)")
                else:
                    column = sql.Identifier(self._meta.column(name).name)
                    fn = {
                        "_count": "count",
                        "_sum": "sum",
                        "_avg": "avg",
                        "_min": "min",
                        "_max": "max",
                    }[key]
                    expr = sql.SQL(fn + "({})").format(column)
                selects.append(sql.SQL("{} AS {}").format(expr, sql.Identifier(alias)))
                aggregates.append((key, name, alias))
        where_sql, params = self._c.where(where)
        query = sql.SQL("SELECT {} FROM {} WHERE {} GROUP BY {}").format(
            sql.SQL(", ").join(selects),
            self._table,
            where_sql,
            sql.SQL(", ").join(sql.Identifier(c.name) for c in by_cols),
        )
        orders: list[sql.Composable] = []
        for item in [order] if isinstance(order, Mapping) else list(order or []):
            for key, direction in item.items():
                if isinstance(direction, Mapping):  # {"_sum": {"spend": "desc"}}
                    for name, inner in direction.items():
                        alias = f"{key}__{name}"
                        if alias not in {a for _, _, a in aggregates}:
                            raise UnsupportedPrismaQuery(
                                f"group_by order on {key}.{name} needs that aggregate selected"
                            )
                        orders.append(
                            sql.SQL("{} " + _direction(inner)).format(sql.Identifier(alias))
                        )
                else:
                    orders.append(
                        sql.SQL("{} " + _direction(direction)).format(
                            sql.Identifier(self._meta.column(key).name)
                        )
                    )
        if orders:
            query = query + sql.SQL(" ORDER BY ") + sql.SQL(", ").join(orders)
        if take is not None:
            query = query + sql.SQL(" LIMIT {}").format(sql.Literal(int(take)))
        if skip:
            query = query + sql.SQL(" OFFSET {}").format(sql.Literal(int(skip)))
        rows, _ = await self._db.session.run(query, params)
        out: list[Row] = []
        for row in rows:
            group: Row = {c.field: _from_db(c, row[c.field]) for c in by_cols}
            for key, name, alias in aggregates:
                value = row[alias]
                if isinstance(value, Decimal):
                    value = (
                        int(value)
                        if value == value.to_integral_value() and key != "_avg"
                        else float(value)
                    )
                elif isinstance(value, dt.datetime):
                    value = (
                        value.replace(tzinfo=_UTC)
                        if value.tzinfo is None
                        else value.astimezone(_UTC)
                    )
                group.setdefault(key, {})[name] = value
            out.append(group)
        return out

    # ---- writes ----
    async def create(
        self, data: Mapping[str, Any], include: Mapping[str, Any] | None = None
    ) -> PrismaRecord:
        values = self._c.insert_values(data)
        if values:
            query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING {}").format(
                self._table,
                sql.SQL(", ").join(sql.Identifier(col.name) for col, _ in values.values()),
                sql.SQL(", ").join(_typed(col) for col, _ in values.values()),
                self._c.select_list(),
            )
        else:
            query = sql.SQL("INSERT INTO {} DEFAULT VALUES RETURNING {}").format(
                self._table, self._c.select_list()
            )
        rows, _ = await self._db.session.run(query, [v for _, v in values.values()])
        return (await self._records(rows, include))[0]

    async def create_many(
        self, data: Sequence[Mapping[str, Any]], *, skip_duplicates: bool | None = None
    ) -> int:
        total = 0
        async with self._db.tx() as tx:
            session = tx.session
            for item in data:
                values = self._c.insert_values(item)
                query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                    self._table,
                    sql.SQL(", ").join(sql.Identifier(col.name) for col, _ in values.values()),
                    sql.SQL(", ").join(_typed(col) for col, _ in values.values()),
                )
                if skip_duplicates:
                    query = query + sql.SQL(" ON CONFLICT DO NOTHING")
                _, count = await session.run(query, [v for _, v in values.values()])
                total += max(count, 0)
        return total

    async def _update_rows(
        self, data: Mapping[str, Any], where: Mapping[str, Any] | None
    ) -> tuple[list[Row], int]:
        set_clause = self._c.set_clause(data)
        if set_clause is None:  # nothing to write: behave like a read
            rows = await self._select(where)
            return rows, len(rows)
        set_sql, set_params = set_clause
        where_sql, where_params = self._c.where(where)
        query = sql.SQL("UPDATE {} SET {} WHERE {} RETURNING {}").format(
            self._table, set_sql, where_sql, self._c.select_list()
        )
        return await self._db.session.run(query, [*set_params, *where_params])

    async def update(
        self,
        data: Mapping[str, Any],
        where: Mapping[str, Any],
        include: Mapping[str, Any] | None = None,
    ) -> PrismaRecord | None:
        rows, _ = await self._update_rows(data, where)
        records = await self._records(rows[:1], include)
        return records[0] if records else None

    async def update_many(
        self, data: Mapping[str, Any], where: Mapping[str, Any] | None = None
    ) -> int:
        rows, _ = await self._update_rows(data, where)
        return len(rows)

    async def upsert(
        self,
        where: Mapping[str, Any],
        data: Mapping[str, Any],
        include: Mapping[str, Any] | None = None,
    ) -> PrismaRecord:
        create_data = dict(data.get("create") or {})
        update_data = data.get("update") or {}
        # the unique key the row is looked up by is part of the new row
        for key, value in where.items():
            if (
                key in self._meta.columns
                and key not in create_data
                and not isinstance(value, Mapping)
            ):
                create_data[key] = value
        async with self._db.tx() as tx:
            actions = TableActions(tx, self._meta)
            existing = await actions._select(where, take=1, lock=True)
            if existing:
                updated = await actions.update(data=update_data, where=where, include=include)
                assert updated is not None
                return updated
            return await actions.create(data=create_data, include=include)

    async def delete(
        self, where: Mapping[str, Any], include: Mapping[str, Any] | None = None
    ) -> PrismaRecord | None:
        before: PrismaRecord | None = None
        if include:
            before = await self.find_unique(where=where, include=include)
        where_sql, params = self._c.where(where)
        query = sql.SQL("DELETE FROM {} WHERE {} RETURNING {}").format(
            self._table, where_sql, self._c.select_list()
        )
        rows, _ = await self._db.session.run(query, params)
        if not rows:
            return None
        return before if before is not None else (await self._records(rows[:1], None))[0]

    async def delete_many(self, where: Mapping[str, Any] | None = None) -> int:
        where_sql, params = self._c.where(where)
        _, count = await self._db.session.run(
            sql.SQL("DELETE FROM {} WHERE {}").format(self._table, where_sql), params
        )
        return max(count, 0)


# --------------------------------------------------------------------------------------------------
# the db object, transactions, batches
# --------------------------------------------------------------------------------------------------


class TransactionManager:
    """What ``db.tx()`` returns: ``async with`` it, or ``start()`` then
    ``commit()``/``rollback()``."""

    def __init__(self, db: StandinDB) -> None:
        self._db = db
        self._session: _Session | None = None

    async def start(self) -> StandinDB:
        if self._session is not None:
            raise StandinError("transaction already started")
        self._session = await self._db.session.begin()
        return StandinDB(self._db.catalog, self._session, owner=False)

    async def commit(self) -> None:
        await self._finish(commit=True)

    async def rollback(self) -> None:
        await self._finish(commit=False)

    async def _finish(self, *, commit: bool) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.end(self._db.session, commit=commit)

    async def __aenter__(self) -> StandinDB:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._finish(commit=exc is None)


class _BatchActions:
    def __init__(self, batch: Batch, accessor: str) -> None:
        self._batch = batch
        self._accessor = accessor

    def __getattr__(self, method: str) -> Callable[..., None]:
        if method not in (
            "create",
            "create_many",
            "update",
            "update_many",
            "upsert",
            "delete",
            "delete_many",
        ):
            raise AttributeError(method)

        def queue(*args: Any, **kwargs: Any) -> None:
            async def run(tx: StandinDB) -> object:
                actions = getattr(tx, self._accessor)
                result: object = await getattr(actions, method)(*args, **kwargs)
                return result

            self._batch.ops.append(run)

        return queue


class Batch:
    """What ``db.batch_()`` returns: writes are queued and run in one transaction by
    ``commit()``."""

    def __init__(self, db: StandinDB) -> None:
        self._db = db
        self.ops: list[Callable[[StandinDB], Awaitable[object]]] = []

    def __getattr__(self, name: str) -> _BatchActions:
        if name.startswith("_") or self._db.catalog.accessor(name) is None:
            raise AttributeError(name)
        return _BatchActions(self, name)

    def execute_raw(self, query: str, *args: object) -> None:
        async def run(tx: StandinDB) -> object:
            return await tx.execute_raw(query, *args)

        self.ops.append(run)

    async def commit(self) -> None:
        ops, self.ops = self.ops, []
        async with self._db.tx() as tx:
            for op in ops:
                await op(tx)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.commit()


class StandinDB:
    """Plays prisma-client-py's ``Prisma`` object (LiteLLM's ``prisma_client.db``)."""

    def __init__(self, catalog: Catalog, session: _Session, *, owner: bool) -> None:
        self.catalog = catalog
        self.session = session
        self._owner = owner
        self._actions: dict[str, TableActions] = {}

    def __getattr__(self, name: str) -> TableActions:
        if name.startswith("_"):
            raise AttributeError(name)
        meta = self.catalog.accessor(name)
        if meta is None:
            raise AttributeError(f"the LiteLLM database has no table for Prisma model {name!r}")
        actions = self._actions.get(name)
        if actions is None:
            actions = self._actions[name] = TableActions(self, meta)
        return actions

    async def query_raw(self, query: str, *args: object, model: object = None) -> list[Row]:
        text, params = translate_raw_query(query, args)
        rows, _ = await self.session.run(text, [_raw_arg(p) for p in params])
        return [{k: _raw_result(v) for k, v in row.items()} for row in rows]

    async def query_first(self, query: str, *args: object, model: object = None) -> Row | None:
        rows = await self.query_raw(query, *args)
        return rows[0] if rows else None

    async def execute_raw(self, query: str, *args: object) -> int:
        text, params = translate_raw_query(query, args)
        _, count = await self.session.run(text, [_raw_arg(p) for p in params])
        return max(count, 0)

    def tx(self, *, max_wait: object = None, timeout: object = None) -> TransactionManager:
        return TransactionManager(self)

    def batch_(self) -> Batch:
        return Batch(self)

    def is_connected(self) -> bool:
        return not self.session.pool.closed

    @property
    def engine_generation(self) -> int:
        """LiteLLM 1.108's ``PrismaWrapper.engine_generation`` (bumped when it replaces its Prisma
        engine).

        UI-session auth compares it with the generation a key was cached under: without it every
        request with the Admin UI's session key is 401. This stand-in has no engine to replace:
        always 0."""
        return 0

    async def connect(self, timeout: object = None) -> None:  # noqa: ASYNC109  # Prisma's signature
        return None

    # ASYNC109: Prisma's signature
    async def disconnect(self, timeout: object = None) -> None:  # noqa: ASYNC109
        if self._owner:
            await self.session.pool.close()

    @classmethod
    async def open(cls, conninfo: str, *, prisma_schema: str | Path | None = None) -> StandinDB:
        """Connect, read the database's tables and LiteLLM's ``schema.prisma`` (default: the
        installed one)."""
        pool = _Pool(conninfo)
        conn = await pool.acquire()
        try:
            schema_text = _read_schema(prisma_schema)
            catalog = await Catalog.load(conn, schema_text)
        finally:
            await pool.release(conn)
        if catalog.accessor("litellm_proxymodeltable") is None:
            await pool.close()
            raise StandinError(
                f'{redact_dsn(conninfo)} has no "LiteLLM_ProxyModelTable": apply LiteLLM\'s schema '
                "first "
                "(the migrations of the litellm-proxy-extras wheel)"
            )
        return cls(catalog, _Session(pool), owner=True)


def _read_schema(prisma_schema: str | Path | None) -> str | None:
    if isinstance(prisma_schema, str) and "model " in prisma_schema:
        return prisma_schema
    path = Path(prisma_schema) if prisma_schema is not None else default_prisma_schema_path()
    if path is None or not path.is_file():
        return None
    return path.read_text(encoding="utf-8")


class StandinPrismaClient:
    """Plays LiteLLM's ``litellm.proxy.utils.PrismaClient`` for the endpoint code.

    ``db``/``writer_db``/``read_db`` are the :class:`StandinDB`; ``tx()`` opens a transaction on it.
    Any other attribute is looked up on LiteLLM's own ``PrismaClient`` class and bound to this
    object, so its helpers (``get_generic_data``, ``jsonify_object``, ...) run LiteLLM's code
    against this ``db``.
    """

    def __init__(self, db: StandinDB, *, proxy_logging_obj: object = None) -> None:
        self.db = db
        self.proxy_logging_obj = proxy_logging_obj
        self.iam_token_db_auth = False
        # the plain state LiteLLM's own PrismaClient.__init__ sets (1.108: its spend/baseline
        # accounting queue, the background tasks it stops at shutdown, the engine watchdog's
        # bookkeeping), so its methods bound to this object find them; there is no Prisma engine
        # process to watch
        self.token_auth = None
        self.baseline_accounting_transactions: list[Any] = []
        self.baseline_accounting_lock = asyncio.Lock()
        self._db_reconnect_lock = asyncio.Lock()
        self._db_health_watchdog_task: asyncio.Task[Any] | None = None
        self._view_setup_task: asyncio.Task[Any] | None = None
        self._db_last_reconnect_attempt_ts = 0.0
        self._db_reconnect_cooldown_seconds = 15
        self._db_read_only_recreate_ts = 0.0
        self._db_read_only_recreate_streak = 0
        self._db_health_watchdog_interval_seconds = 30
        self._db_health_watchdog_enabled = False
        self._db_health_watchdog_probe_timeout_seconds = 5.0
        self._db_watchdog_reconnect_timeout_seconds = 30.0
        self._db_auth_reconnect_timeout_seconds = 2.0
        self._db_auth_reconnect_lock_timeout_seconds = 0.1
        self._consecutive_reconnect_failures = 0
        self._failed_recreate_generations: Mapping[Any, int] = {}
        self._reconnect_escalation_threshold = 3
        self._engine_pidfd = -1
        self._engine_pid = 0
        self._watching_engine = False
        self._engine_confirmed_dead = False
        self._engine_wait_thread: Any = None

    @classmethod
    async def connect(
        cls,
        conninfo: str,
        *,
        prisma_schema: str | Path | None = None,
        proxy_logging_obj: object = None,
    ) -> StandinPrismaClient:
        db = await StandinDB.open(conninfo, prisma_schema=prisma_schema)
        return cls(db, proxy_logging_obj=proxy_logging_obj)

    @property
    def writer_db(self) -> StandinDB:
        return self.db

    @property
    def read_db(self) -> StandinDB:
        return self.db

    def tx(self, *, timeout: object = None) -> TransactionManager:
        return self.db.tx(timeout=timeout)

    async def disconnect(self) -> None:
        await self.db.disconnect()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        from litellm.proxy.utils import (
            PrismaClient,  # the real wrapper's helpers, bound to this object
        )

        attribute = getattr(PrismaClient, name, None)
        if attribute is None:
            raise AttributeError(f"LiteLLM's PrismaClient has no attribute {name!r}")
        if callable(attribute) and not isinstance(attribute, type):
            return attribute.__get__(self, type(self))
        return attribute
