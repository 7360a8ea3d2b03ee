"""Opening the two database connections with errors that say which variable to fix.

``connect`` opens one; ``check_database`` then tells whether the URL points at the right kind of
database (LiteLLM's table on the LiteLLM side, the backend's ``models`` on the backend side), and
whether ``litemaas-hooks install`` ran there, each failure one sentence naming the variable.

Every connection of ours runs with ``search_path = pg_catalog, pg_temp`` (``pinned``): the queries
we send name our and LiteLLM's/the backend's objects by schema, and nothing a database user creates
in ``public`` or in a schema of its own name (a ``public.unnest(text[])``, an operator, a
``to_jsonb`` for a row type) can take the place of a built-in function while an operator runs
``backfill`` or ``status``.
"""

from __future__ import annotations

import contextlib
import json
import shlex
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import Any, Literal, Self

import orjson
import psycopg
from psycopg.abc import Params, Query
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import Row, class_row
from psycopg.types.json import set_json_dumps, set_json_loads

from litemaas_hooks import sql
from litemaas_hooks.errors import (
    DatabaseUnavailableError,
    NotInstalledError,
    WrongDatabaseError,
    first_line,
)
from litemaas_hooks.redaction import redact_dsn, scrub
from litemaas_hooks.settings import Settings, Which

DATABASE_NAMES = {"backend": "the backend (LiteMaaS) database", "litellm": "LiteLLM's database"}


PINNED_SEARCH_PATH = "pg_catalog, pg_temp"
_PIN_OPTION = "-c search_path=pg_catalog,pg_temp"


def pinned(dsn: str) -> str:
    """``dsn`` with ``search_path`` pinned to ``pg_catalog, pg_temp`` for the session (any other
    ``options`` of the DSN, e.g. a statement_timeout, are kept; a search_path there is
    overridden)."""
    try:
        options = str(conninfo_to_dict(dsn).get("options") or "")
    except psycopg.ProgrammingError:
        return dsn  # unparsable: connecting reports it, with the password hidden
    return make_conninfo(dsn, options=f"{options} {_PIN_OPTION}".strip())


# -- pooled connections (PgBouncer) ----------------------------------------------------------
# PgBouncer refuses the ``options`` startup parameter (our search_path pin), keeps no server-side
# prepared statement across clients, and in transaction pooling hands each transaction to any server
# session: LISTEN and session advisory locks mean nothing there. ``pool_mode`` says which applies:
# ``LITEMAAS_HOOKS_POOL_MODE`` (direct|session|transaction), or ``auto``: transaction pooling for a
# URL with Prisma's ``pgbouncer=true`` (LiteLLM 1.108's in-container PgBouncer URL has it), else
# direct.

PoolMode = Literal["direct", "session", "transaction"]
_PIN_SQL = b"SET LOCAL search_path TO pg_catalog, pg_temp"


def pool_mode(settings: Settings, which: Which) -> PoolMode:
    """How the connection to ``which`` reaches PostgreSQL (see above)."""
    mode = settings.pool_mode
    if mode in ("direct", "session", "transaction"):
        return mode  # type: ignore[return-value]
    return "transaction" if settings.database_url_of(which).pgbouncer else "direct"


def _setting_pairs(options: str) -> list[tuple[str, str]] | None:
    """``-c a=1 -c b=2`` (also ``-ca=1``, ``--a=1``) -> [(a, 1), (b, 2)]; None for anything else."""
    tokens = shlex.split(options)
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        word = tokens[i]
        if word == "-c" and i + 1 < len(tokens):
            word, i = "-c" + tokens[i + 1], i + 1
        if not word.startswith(("-c", "--")) or "=" not in word[2:]:
            return None
        name, _, value = word[2:].partition("=")
        out.append((name.strip(), value))
        i += 1
    return out


def _opens_transaction(query: Any) -> bool:
    """``query`` is an explicit ``BEGIN`` / ``START TRANSACTION`` (comments ahead of it allowed)."""
    if isinstance(query, bytes):
        query = query.decode("utf-8", "replace")
    if not isinstance(query, str):
        return False
    lines = [ln for ln in query.strip().splitlines() if not ln.lstrip().startswith("--")]
    words = " ".join(lines).split()
    head = [w.upper().rstrip(";") for w in words[:2]]
    return bool(head) and (head[0] == "BEGIN" or head == ["START", "TRANSACTION"])


class _TxPinnedCursor(psycopg.AsyncCursor[Row]):
    """Transaction pooling: a statement outside a transaction runs in one of its own, so that the
    search_path pin (``SET LOCAL`` at BEGIN, ``_TxPinnedConnection``) covers it and ends with it."""

    async def execute(
        self,
        query: Query,
        params: Params | None = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> Self:
        conn = self.connection
        q: Any = query  # psycopg's overloads (a Template takes no params) do not matter here
        if _opens_transaction(q):
            # an explicit BEGIN (the pipelined round trips' named query ``begin``): the pin follows
            # it in the same transaction (and the same pipeline), never a transaction around it
            await super().execute(q, params, prepare=prepare, binary=binary)
            await psycopg.AsyncCursor(conn).execute(_PIN_SQL)
            return self
        if conn.autocommit and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            async with conn.transaction():
                return await super().execute(q, params, prepare=prepare, binary=binary)
        return await super().execute(q, params, prepare=prepare, binary=binary)


class _TxPinnedConnection(psycopg.AsyncConnection[Row]):
    """Transaction pooling: every transaction pins search_path for itself (never for the server
    session, which PgBouncer hands to other clients next, LiteLLM's among them)."""

    @contextlib.asynccontextmanager
    async def transaction(
        self,
        savepoint_name: str | None = None,
        force_rollback: bool = False,  # noqa: FBT001, FBT002 (psycopg's signature)
    ) -> AsyncIterator[psycopg.AsyncTransaction]:
        outer = self.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        async with super().transaction(savepoint_name, force_rollback) as tx:
            if outer:
                await self.execute(_PIN_SQL)
            yield tx


async def open_connection(
    settings: Settings, which: Which, dsn: str, *, application_name: str, **kwargs: Any
) -> psycopg.AsyncConnection[Any]:
    """Connect to ``dsn`` (the URL of ``which``) as its pool mode allows, search_path pinned:

    - direct: the ``options`` startup parameter (``pinned``), as always;
    - session pooling: no ``options``; ``SET search_path`` (and the URL's own ``-c`` options) once,
      for the session, which stays ours until we disconnect; no server-side prepared statements;
    - transaction pooling: no ``options``; every transaction pins search_path with ``SET LOCAL``, a
      lone statement gets a transaction of its own; no server-side prepared statements. The URL's
      own ``options`` cannot follow (log line at the relay's start, fix: ALTER ROLE ... SET).
    psycopg errors propagate (the callers turn them into one line naming the variable).
    """
    mode = pool_mode(settings, which)
    if mode == "direct":
        conn = await psycopg.AsyncConnection.connect(
            pinned(dsn), application_name=application_name, **kwargs
        )
        return conn
    params = conninfo_to_dict(dsn)
    options = str(params.pop("options", "") or "")
    plain = make_conninfo("", **params)
    if mode == "session":
        conn = await psycopg.AsyncConnection.connect(
            plain, application_name=application_name, prepare_threshold=None, **kwargs
        )
        pairs = [*(_setting_pairs(options) or []), ("search_path", PINNED_SEARCH_PATH)]
        for name, value in pairs:
            await conn.execute("SELECT pg_catalog.set_config(%s, %s, false)", (name, value))
        return conn
    tx_conn: psycopg.AsyncConnection[Any] = await _TxPinnedConnection.connect(
        plain,
        application_name=application_name,
        prepare_threshold=None,
        cursor_factory=_TxPinnedCursor,
        **kwargs,
    )
    return tx_conn


def pooled_options_dropped(settings: Settings, which: Which) -> str | None:
    """The URL's own ``options`` a transaction-pooled connection cannot carry (None when none)."""
    if pool_mode(settings, which) != "transaction":
        return None
    dsn = settings.backend_dsn() if which == "backend" else settings.litellm_dsn()
    try:
        return str(conninfo_to_dict(dsn).get("options") or "") or None
    except psycopg.ProgrammingError:
        return None


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


def connect_error_message(settings: Settings, which: Which, exc: BaseException) -> str:
    """One line: which database, which variable (with the URL, password masked), why, what to
    check."""
    var = settings.dsn_variable(which)
    dsn = settings.backend_dsn() if which == "backend" else settings.litellm_dsn()
    reason = scrub(first_line(exc), settings.secrets()).removeprefix("connection failed: ")
    if "unsupported startup parameter" in reason:  # PgBouncer, and we were told nothing of it
        where = f"{DATABASE_NAMES[which]} ({var}={redact_dsn(dsn)})"
        return (
            f"cannot connect to {where}: {reason}. {var} points at a PgBouncer: set "
            "LITEMAAS_HOOKS_POOL_MODE=session (session pooling) or add pgbouncer=true to the URL "
            "(transaction pooling)."
        )
    tls = _tls_check(reason, var)
    if tls is not None:
        where = f"{DATABASE_NAMES[which]} ({var}={redact_dsn(dsn)})"
        return f"cannot connect to {where}: {reason}. {tls}"
    return (
        f"cannot connect to {DATABASE_NAMES[which]} ({var}={redact_dsn(dsn)}): {reason}. Check "
        f"{var}, that the server is reachable from here and that the user and password are right."
    )


_TLS_WORDS = ("ssl", "certificate", "tls")


def _tls_check(reason: str, var: str) -> str | None:
    """What to check when the connection failed on TLS (None for any other failure)."""
    lowered = reason.lower()
    if not any(word in lowered for word in _TLS_WORDS):
        return None
    if "does not support ssl" in lowered:
        return (
            f"The server does not offer TLS: turn ssl on there, or lower sslmode in {var} "
            "(prefer/disable) if an unencrypted connection is acceptable."
        )
    return (
        f"Check the sslrootcert of {var}: it must be the CA that signed the server's certificate "
        "(AWS RDS: the region's or the global bundle), readable from here; with "
        "sslmode=verify-full the host in the URL must be a name the certificate lists; "
        "sslmode=require encrypts without checking the certificate."
    )


async def connect(
    settings: Settings, which: Which, *, application_name: str = "litemaas-hooks"
) -> Any:
    """An autocommit AsyncConnection to one of the databases (transactions are always explicit)."""
    dsn = settings.backend_dsn() if which == "backend" else settings.litellm_dsn()
    try:
        conn = await open_connection(
            settings,
            which,
            dsn,
            autocommit=True,
            application_name=application_name,
            connect_timeout=10,
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
    in_recovery: bool = False  # a hot standby / read replica (pg_is_in_recovery())
    read_only: bool = False  # transaction_read_only: a standby, or a read-only session


async def database_kind(conn: psycopg.AsyncConnection[Any]) -> DatabaseKind:
    async with conn.cursor(row_factory=class_row(DatabaseKind)) as cur:
        await cur.execute(sql.query("common", "database_kind"))
        row = await cur.fetchone()
    assert row is not None
    return row


def kind_problem(
    settings: Settings, which: Which, kind: DatabaseKind, *, installed: bool
) -> str | None:
    """Why this database is not what ``which`` needs (None when it is)."""
    var = settings.dsn_variable(which)
    other = settings.dsn_variable("litellm" if which == "backend" else "backend")
    db = f'database "{kind.database}"'
    if which == "litellm" and not kind.has_litellm_table:
        if kind.has_backend_models:
            return (
                f"{var} points at {db}, which is the LiteMaaS backend database (it has the "
                "backend's models "
                f'table, not LiteLLM\'s "LiteLLM_ProxyModelTable"): are {var} and {other} swapped?'
            )
        return (
            f'{var} points at {db}, which has no table public."LiteLLM_ProxyModelTable": the URL '
            "is not LiteLLM's database, or LiteLLM has not started on it yet (start the proxy once "
            "with STORE_MODEL_IN_DB=True, it creates its tables)"
        )
    if which == "backend" and not kind.has_backend_models:
        if kind.has_litellm_table:
            return (
                f"{var} points at {db}, which is LiteLLM's database (it has "
                '"LiteLLM_ProxyModelTable", not the backend\'s models table): '
                f"are {var} and {other} swapped?"
            )
        return (
            f"{var} points at {db}, which has no table public.models: the URL is not a LiteMaaS "
            "backend database or the backend has not started yet (it creates its tables when it "
            "first starts)"
        )
    if installed and which == "litellm" and not kind.has_outbox:
        return (
            f"litemaas-hooks is not installed in LiteLLM's {db} (no outbox "
            "litemaas_hooks.model_events): run `litemaas-hooks install` first"
        )
    if installed and which == "backend" and not kind.has_backend_functions:
        return (
            f"litemaas-hooks is not installed in the backend {db} (no function "
            "litemaas_hooks.upsert_models_v1): run `litemaas-hooks install` first"
        )
    return None


async def check_databases(
    settings: Settings,
    conns: dict[Which, psycopg.AsyncConnection[Any]],
    *,
    installed: Collection[Which] = (),
) -> None:
    """Raise one error naming every connection that points at the wrong database, or, for the sides
    in ``installed``, lacks litemaas-hooks' schema."""
    wrong: list[str] = []
    missing: dict[Which, str] = {}
    kinds: dict[Which, DatabaseKind] = {}
    for which, conn in conns.items():
        kind = kinds[which] = await database_kind(conn)
        problem = kind_problem(settings, which, kind, installed=which in installed)
        if problem is None:
            continue
        if (which == "litellm" and kind.has_litellm_table) or (
            which == "backend" and kind.has_backend_models
        ):
            missing[which] = kind.database
        else:
            wrong.append(problem)
    lite, back = kinds.get("litellm"), kinds.get("backend")
    if (
        len(wrong) == 2
        and lite is not None
        and back is not None
        and lite.has_backend_models
        and back.has_litellm_table
    ):
        lvar, bvar = settings.dsn_variable("litellm"), settings.dsn_variable("backend")
        raise WrongDatabaseError(
            f"the two URLs are swapped: {lvar} points at the LiteMaaS backend database "
            f'"{lite.database}" and {bvar} at LiteLLM\'s database "{back.database}": '
            "exchange their values"
        )
    if wrong:
        raise WrongDatabaseError("\n".join(wrong))
    if missing:
        where = " nor in ".join(
            f'LiteLLM\'s database "{db}"' if which == "litellm" else f'the backend database "{db}"'
            for which, db in missing.items()
        )
        raise NotInstalledError(
            f"litemaas-hooks is not installed in {where}: run `litemaas-hooks install` first"
        )
