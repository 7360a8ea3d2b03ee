"""Helpers shared by the test modules (no test module imports from another): LiteLLM rows the way
LiteLLM writes them, relays run against real databases, backend state checks, the least-privilege
world of roles, the CLI run in-process or in a fresh interpreter, the backend's HTTP API.

Fixtures built on them live in ``tests/conftest.py`` and ``tests/integration/conftest.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from litemaas_hooks import cli, outbox, privileges
from litemaas_hooks.connections import use_fast_json
from litemaas_hooks.migrations import apply_migrations
from litemaas_hooks.relay import Relay
from litemaas_hooks.settings import Settings, load_settings
from litemaas_hooks_sandbox import litemaas_backend, seed
from litemaas_hooks_sandbox.cluster import LocalPostgres
from litemaas_hooks_sandbox.litellm_admin import encrypted_row
from litemaas_hooks_sandbox.proxy import SandboxProxy

ROOT = Path(__file__).resolve().parents[1]  # the repository
AConn = psycopg.AsyncConnection[Any]
TABLE = 'public."LiteLLM_ProxyModelTable"'
# the reason our retire functions record when no deployment of a name is left
REASON = "no deployment of this model_name is left in LiteLLM"
# no `blocked` column: LiteLLM 1.81's table has none (it came later)
INSERT_ROW = """
INSERT INTO public."LiteLLM_ProxyModelTable"
    (model_id, model_name, litellm_params, model_info, created_by, updated_by)
VALUES (%(model_id)s, %(model_name)s, %(litellm_params)s, %(model_info)s, %(created_by)s,
        %(updated_by)s)
"""
PARAMS = {
    "model": "openai/gpt-4o",
    "api_key": "sk-provider-secret-123456",
    "api_base": "https://llm.example/v1",
}
API_KEY = PARAMS["api_key"]


# -- LiteLLM rows ----------------------------------------------------------------------------------


def litellm_row(
    model_name: str,
    litellm_params: Mapping[str, Any],
    model_info: Mapping[str, Any] | None = None,
    *,
    key: str,
    model_id: str | None = None,
    blocked: bool = False,
) -> dict[str, Any]:
    """A table row built by LiteLLM's own row builder and encryption."""
    info = {"id": model_id or str(uuid.uuid4()), **(model_info or {})}
    row = dict(encrypted_row(model_name, dict(litellm_params), info, key=key))
    row["blocked"] = blocked
    return row


def insert_rows(dsn: str, rows: Iterable[Mapping[str, Any]]) -> None:
    seed.insert_rows(dsn, rows)


def execute(
    dsn: str, query: str, params: Mapping[str, Any] | tuple[Any, ...] | None = None
) -> list[Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query.encode(), params)
        return cur.fetchall() if cur.description else []


# What LiteLLM re-creating its table does to our triggers (all three statement-level ones go with
# it).
DROP_TRIGGERS = "; ".join(
    f'DROP TRIGGER {name} ON public."LiteLLM_ProxyModelTable"'
    for name in (
        "litemaas_hooks_model_events",
        "litemaas_hooks_model_events_insert",
        "litemaas_hooks_model_events_delete",
    )
)


async def insert(
    conn: AConn, name: str, key: str, *, model_id: str | None = None, **info: Any
) -> str:
    """INSERT one deployment of ``PARAMS`` with a description (LiteLLM's row builder)."""
    row = seed.as_insert_params(
        litellm_row(
            name, PARAMS, {"description": f"{name} desc", **info}, key=key, model_id=model_id
        )
    )
    await conn.execute(INSERT_ROW, row)
    return str(row["model_id"])


async def add(
    conn: AConn, name: str, key: str, *, model_id: str | None = None, **info: Any
) -> str:
    """INSERT one deployment the way LiteLLM writes it (its row builder and encryption)."""
    row = seed.as_insert_params(litellm_row(name, PARAMS, info, key=key, model_id=model_id))
    row.pop("blocked")
    await conn.execute(INSERT_ROW, row)
    return str(row["model_id"])


# -- direct table writes: values LiteLLM's own API would refuse -----------------------------------

# model_info and litellm_params as JSON text cast in SQL: the test's own JSON encoder never limits
# depth
INSERT_TEXT = f"""
INSERT INTO {TABLE} (model_id, model_name, litellm_params, model_info, created_by, updated_by)
VALUES (%(model_id)s, %(model_name)s, %(litellm_params)s::jsonb, %(model_info)s::jsonb, 'test',
        'test')
"""


@asynccontextmanager
async def conns(ldsn: str, bdsn: str) -> AsyncIterator[tuple[AConn, AConn]]:
    """Autocommit connections with the relay's JSON settings (orjson)."""
    async with (
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
    ):
        yield use_fast_json(lc), use_fast_json(bc)


def nested(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


def row_text(
    name: str,
    key: str,
    *,
    info: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    info_text: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A row from LiteLLM's own builder; ``info`` merged into model_info afterwards (as a direct
    table write would leave it), ``info_text`` = fields whose value is given as raw JSON text."""
    r = seed.as_insert_params(litellm_row(name, PARAMS, key=key))
    model_info = {**r["model_info"].obj, **(info or {})}
    text = json.dumps(model_info)
    for field, raw in (info_text or {}).items():
        text = text[:-1] + f', "{field}": {raw}}}'
    return {
        "model_id": r["model_id"],
        "model_name": name,
        # plain (unencrypted) values as a direct write leaves them; LiteLLM accepts plaintext too
        "litellm_params": json.dumps({**r["litellm_params"].obj, **(params or {})}),
        "model_info": text,
    }


async def add_text(lc: AConn, row: dict[str, Any]) -> None:
    await lc.execute(INSERT_TEXT.encode(), row)


async def add_good(lc: AConn, name: str, key: str) -> None:
    await add_text(lc, row_text(name, key, info={"max_tokens": 1}))


async def is_available(bc: AConn, name: str) -> bool:
    return (await backend_models(bc)).get(name) == "available"


# -- relays against real databases -----------------------------------------------------------------


async def install(litellm_dsn: str, backend_dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(litellm_dsn, autocommit=True) as conn:
        await apply_migrations(conn, "litellm")
    async with await psycopg.AsyncConnection.connect(backend_dsn, autocommit=True) as conn:
        await apply_migrations(conn, "backend")


def make_settings(
    litellm_dsn: str, backend_dsn: str, master_key: str, **overrides: Any
) -> Settings:
    knobs: dict[str, Any] = {
        "poll_interval_seconds": 30.0,  # long: a fast reaction can only come from LISTEN/NOTIFY
        "reconcile_interval_seconds": 0.0,
        "retry_base_seconds": 0.05,
        "retry_max_seconds": 0.2,
        "reconnect_max_seconds": 1.0,
        # the cascade at once, no mass-retire guard (tests/integration/test_retire_*.py test both)
        "retire_grace_seconds": 0.0,
        "retire_guard_min_models": 0,
        **overrides,
    }
    env = {
        "LITEMAAS_DATABASE_URL": backend_dsn,
        "LITELLM_DATABASE_URL": litellm_dsn,
        "LITELLM_MASTER_KEY": master_key,
    }
    return load_settings(env, **knobs)


@asynccontextmanager
async def running(
    settings: Settings, count: int = 1, **kwargs: Any
) -> AsyncIterator[list[Relay]]:
    """``count`` relays running until the block ends, each ready (connected, caught up)."""
    stop = asyncio.Event()
    relays = [Relay(settings, name=f"relay-{i}", **kwargs) for i in range(count)]
    tasks = [asyncio.create_task(r.run(stop)) for r in relays]
    try:
        ready: asyncio.Future[Any] = asyncio.ensure_future(
            asyncio.gather(*(r.ready.wait() for r in relays))
        )
        watched: set[asyncio.Future[Any]] = {ready, *tasks}
        done, _ = await asyncio.wait(watched, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        for task in tasks:
            if task in done:
                task.result()  # a relay that died at start: show why
        assert all(r.ready.is_set() for r in relays), "relays did not get ready within 30 s"
        yield relays
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)


async def eventually(
    check: Callable[[], Awaitable[bool]], *, deadline_seconds: float = 15.0, what: str = ""
) -> float:
    """Poll ``check`` until it is true; return how long it took. Fails at the deadline."""
    started = time.perf_counter()
    while True:
        if await check():
            return time.perf_counter() - started
        if time.perf_counter() - started > deadline_seconds:
            raise AssertionError(f"not true within {deadline_seconds}s: {what}")
        await asyncio.sleep(0.001)  # poll interval of this deadline loop


def wait_until(
    check: Callable[[], Any],
    *,
    what: str,
    deadline_seconds: float = 15.0,
    proxy: SandboxProxy | None = None,
) -> float:
    """Poll ``check`` until it is truthy; the seconds it took. Fails at the deadline, or at once
    when ``proxy`` exits, with the tail of its log."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        tail = proxy.log()[-4000:] if proxy is not None else ""
        if proxy is not None and not proxy.running():
            raise AssertionError(f"the proxy exited while waiting for: {what}\n{tail}")
        if time.monotonic() - started > deadline_seconds:
            raise AssertionError(f"not true within {deadline_seconds:g}s: {what}\n{tail}")
        time.sleep(0.005)  # poll interval of this deadline loop


async def outbox_empty(conn: AConn) -> bool:
    c = await outbox.counts(conn)
    return c.pending == 0 and c.claimed == 0


async def terminate(conn: AConn, application_name: str) -> None:
    """End the one session named ``application_name`` (the server side of a cut connection)."""
    cur = await conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
        (application_name,),
    )
    assert [r[0] for r in await cur.fetchall()] == [True], f"no connection named {application_name}"


async def run_cli(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *argv: str) -> int:
    """``litemaas-hooks ARGV`` in this process (same code as the console script; a thread, since it
    runs its own event loop) with ``env``."""
    with monkeypatch.context() as m:
        for k, v in env.items():
            m.setenv(k, v)
        m.delenv("LITELLM_SALT_KEY", raising=False)
        m.delenv("DATABASE_URL", raising=False)
        return await asyncio.to_thread(cli.main, list(argv))


# -- reading state back ----------------------------------------------------------------------------


async def rows(conn: AConn, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    cur = await conn.execute(query.encode(), params)
    return list(await cur.fetchall())


async def scalar(conn: AConn, query: str | sql.SQL | sql.Composed, params: Any = None) -> Any:
    """The first column of the first row (None without a row)."""
    cur = await conn.execute(query, params)
    row = await cur.fetchone()
    return None if row is None else row[0]


async def backend_models(conn: AConn) -> dict[str, str]:
    """``{model id: availability}`` of the backend's models table."""
    return {str(i): str(a) for i, a in await rows(conn, "SELECT id, availability FROM models")}


availability = backend_models


async def all_are(bc: AConn, names: list[str], state: str) -> bool:
    have = await backend_models(bc)
    return all(have.get(n) == state for n in names)


async def audits(bc: AConn) -> dict[str, int]:
    """Retirement audit rows per model."""
    cur = await bc.execute(
        "SELECT resource_id, count(*) FROM audit_logs "
        "WHERE action LIKE 'MODEL_MARKED_UNAVAILABLE%%' GROUP BY 1"
    )
    return {str(k): int(v) for k, v in await cur.fetchall()}


async def litellm_truth(lc: AConn) -> dict[str, int | None]:
    """LiteLLM's names and the max_tokens the backend must show for each."""
    cur = await lc.execute(
        f"SELECT model_name, max((model_info->>'max_tokens')::int) FROM {TABLE} GROUP BY 1".encode()
    )
    return {str(n): t for n, t in await cur.fetchall()}


async def matches_truth(lc: AConn, bc: AConn, retired: set[str]) -> bool:
    """The outbox is drained and the backend equals LiteLLM: every name available with its values,
    every name that left LiteLLM after reaching the backend retired."""
    if not await outbox_empty(lc):
        return False
    truth = await litellm_truth(lc)
    cur = await bc.execute("SELECT id, availability, max_tokens FROM models")
    have = {str(i): (str(a), t) for i, a, t in await cur.fetchall()}
    want = {n: ("available", t) for n, t in truth.items()}
    want.update({n: ("unavailable", have[n][1]) for n in retired if n in have and n not in truth})
    return have == want


async def backend_dump(bdsn: str) -> str:
    """Every row of every table of every (non-system) schema of the backend database, as text."""
    parts: list[str] = []
    async with await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT schemaname, tablename FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
        )
        for schema, table in await cur.fetchall():
            query = sql.SQL("SELECT t::text FROM {}.{} AS t").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            found = await conn.execute(query)
            parts.extend(f"{schema}.{table}: {r[0]}" for r in await found.fetchall())
    return "\n".join(parts)


async def outbox_errors(ldsn: str) -> str:
    """Every error message the relay recorded in the LiteLLM database (outbox, reconcile state)."""
    async with await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT coalesce(last_error, '') FROM litemaas_hooks.model_events "
            "UNION ALL SELECT coalesce(last_summary, '') FROM litemaas_hooks.reconcile_state"
        )
        return "\n".join(r[0] for r in await cur.fetchall())


async def assert_no_secrets(
    pg: LocalPostgres, ldsn: str, bdsn: str, secret_values: list[str], texts: dict[str, str]
) -> None:
    """No secret in the backend database, the outbox errors, or the given texts (logs, output)."""
    dump = await backend_dump(bdsn)
    assert "public.models: " in dump  # the dump really holds the synced rows
    where = {"backend database": dump, "outbox errors": await outbox_errors(ldsn), **texts}
    for secret in [API_KEY, pg.password, *secret_values]:
        assert len(secret) >= 8
        for place, text in where.items():
            assert secret not in text, f"a secret leaked into {place}"


# -- retire cascades: a user with subscriptions and keys -------------------------------------------

USER = "11111111-1111-1111-1111-111111111111"
CASCADE = "MODEL_MARKED_UNAVAILABLE_WITH_CASCADE"


async def subscribe(bc: AConn, names: list[str]) -> dict[str, str]:
    """One user with an active subscription to each name and one API key per name linked to it:
    ``{name: key id}``."""
    await bc.execute(
        "INSERT INTO users (id, username, email, oauth_provider, oauth_id) "
        "VALUES (%s, 'alice', 'alice@example.com', 'test', 'alice') ON CONFLICT DO NOTHING",
        (USER,),
    )
    keys = {}
    for name in names:
        await bc.execute(
            "INSERT INTO subscriptions (user_id, model_id) VALUES (%s, %s)", (USER, name)
        )
        key = await scalar(
            bc,
            "INSERT INTO api_keys (user_id, key_hash, key_prefix) "
            "VALUES (%s, %s, 'sk-') RETURNING id",
            (USER, f"hash-{name}"),
        )
        await bc.execute(
            "INSERT INTO api_key_models (api_key_id, model_id) VALUES (%s, %s)", (key, name)
        )
        keys[name] = str(key)
    return keys


async def user_state(bc: AConn) -> tuple[int, int, int]:
    """(active subscriptions, active keys, key links)"""
    subs = await scalar(bc, "SELECT count(*) FROM subscriptions WHERE status = 'active'")
    keys = await scalar(bc, "SELECT count(*) FROM api_keys WHERE is_active")
    links = await scalar(bc, "SELECT count(*) FROM api_key_models")
    return int(subs), int(keys), int(links)


async def cascades(bc: AConn) -> int:
    query = "SELECT count(*) FROM audit_logs WHERE action = %s"
    return int(await scalar(bc, query, (CASCADE,)))


async def pending(bc: AConn) -> dict[str, bool]:
    """{model: held}"""
    query = "SELECT model_id, held_at FROM litemaas_hooks.pending_retires"
    return {str(m): h is not None for m, h in await rows(bc, query)}


# -- least privilege: separate non-superuser roles (fixtures: tests/integration/conftest.py) -------


@dataclass
class World:
    """The installer, LiteLLM's table owner, the backend owner and the relay, as separate roles."""

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


def run_sql(dsn: str, *statements: str | sql.SQL | sql.Composed, params: Any = None) -> list[Any]:
    """Run ``statements`` in autocommit; the rows of the last one (none: ``[]``)."""
    out: list[Any] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            query = statement.encode() if isinstance(statement, str) else statement
            cur = conn.execute(query, params)
            out = cur.fetchall() if cur.description else []
    return out


# the relay's one-statement functions (an add or update; a delete), as ALTER FUNCTION names them
WRITE_FN = "litemaas_hooks.write_models_v1(text[], jsonb, text[], boolean[], text, text)"
RETIRE_FN = (
    "litemaas_hooks.retire_models_v1(text[], boolean, text, double precision, text, boolean, text)"
)

# what the relay's warning says to do when one of its one-statement functions is missing or not
# granted (the install, or the relay role's grants, older than the relay)
FUNCTION_FIX = (
    "re-run `litemaas-hooks install`, and re-apply `install --print-grants` (or "
    "`install --grant-relay`) for the relay role"
)


def withdraw_function(w: World, signature: str, missing: str) -> None:
    """The backend as an older release left it for the relay role: ``missing`` is "not granted"
    (grants of an older `install --print-grants`: 42501) or "not installed" (an older install:
    42883)."""
    if missing == "not granted":
        run_sql(w.bdsn, f"REVOKE EXECUTE ON FUNCTION {signature} FROM {w.relay}")
    else:
        run_sql(w.bdsn, f"DROP FUNCTION {signature}")


def fallback_warnings(logs: list[str], function: str) -> list[str]:
    """The relay's warnings naming ``function`` (its bare name)."""
    return [line for line in logs if line.startswith("WARNING") and function in line]


def assert_warned_once(logs: list[str], function: str) -> None:
    """Exactly one warning named ``function``, and it names the fix."""
    warned = fallback_warnings(logs, function)
    assert len(warned) == 1, warned
    assert FUNCTION_FIX in warned[0], warned


def track_functions(dsn: str) -> None:
    """The database of ``dsn`` counts the calls of PL/pgSQL functions (sessions opened from now
    on): ``function_calls`` reads them."""
    db = sql.Identifier(str(conninfo_to_dict(dsn)["dbname"]))
    run_sql(dsn, sql.SQL("ALTER DATABASE {} SET track_functions = 'pl'").format(db))


async def function_calls(conn: AConn) -> dict[str, int]:
    """Calls of our functions the database counted (a session's counts are in once it ended, or
    within a second or so)."""
    query = "SELECT funcname, calls FROM pg_stat_user_functions WHERE schemaname = 'litemaas_hooks'"
    return {str(name): int(n) for name, n in await rows(conn, query)}


def owned_tables(dsn: str) -> list[str]:
    query = (
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'public'"
    )
    return [r[0] for r in run_sql(dsn, query)]


async def install_world(w: World, monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    """`litemaas-hooks install` as the installer role."""
    assert await run_cli(monkeypatch, w.env(w.installer, w.installer, key), "install") == 0


def grant_relay(w: World, roles: privileges.Roles) -> None:
    """Exactly what `install --print-grants` prints, run by a DBA (the superuser)."""
    for side, text in privileges.grants_by_database(roles).items():
        run_sql(w.ldsn if side == "litellm" else w.bdsn, text)


# a hostile owner's function records who ran it here
WHO_TABLE = "CREATE TABLE public.who (who text, via text); GRANT INSERT ON public.who TO PUBLIC"


def who(dsn: str) -> set[str]:
    return {r[0] for r in run_sql(dsn, "SELECT DISTINCT who FROM public.who")}


def relay_roles(pg: LocalPostgres, ldsn: str, bdsn: str) -> tuple[str, str, str]:
    """Create the two least-privilege roles exactly as docs/privileges.md grants them.

    Returns (LiteLLM DSN as the LiteLLM-side role, backend DSN as the backend role, their
    password)."""
    suffix = secrets.token_hex(3)
    lrole, brole = f"hooks_relay_l_{suffix}", f"hooks_relay_b_{suffix}"
    password = secrets.token_hex(16)
    with pg.connect() as admin:
        for role in (lrole, brole):
            create = sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}")
            admin.execute(create.format(sql.Identifier(role), sql.Literal(password)))
    page = (ROOT / "docs" / "privileges.md").read_text()
    grants = page.split("## Grants of the relay", 1)[1].split("```sql", 1)[1].split("```", 1)[0]
    backend_part, litellm_part = re.split(
        r"^-- LiteLLM database.*$", grants, maxsplit=1, flags=re.MULTILINE
    )
    for dsn, part, role in ((bdsn, backend_part, brole), (ldsn, litellm_part, lrole)):
        statements = [s.strip() for s in part.split(";")]
        with psycopg.connect(dsn, autocommit=True) as conn:
            for statement in statements:
                lines = [
                    ln
                    for ln in statement.splitlines()
                    if ln.strip() and not ln.strip().startswith("--")
                ]
                if lines:
                    text = "\n".join(lines).replace("litemaas_hooks_relay", f'"{role}"')
                    conn.execute(text.encode())
    return (
        make_conninfo(ldsn, user=lrole, password=password),
        make_conninfo(bdsn, user=brole, password=password),
        password,
    )


def as_url(conninfo: str) -> str:
    """A key=value conninfo as a postgresql:// URL (the settings want URLs)."""
    p = conninfo_to_dict(conninfo)
    return f"postgresql://{p['user']}:{p['password']}@{p['host']}:{p['port']}/{p['dbname']}"


# -- the CLI in a fresh interpreter ----------------------------------------------------------------

# run the CLI in a fresh interpreter and report whether LiteLLM got imported
DETECT = (
    "print('LITELLM_IMPORTED' if any(m.split('.')[0] == 'litellm' for m in sys.modules) "
    "else 'NO_LITELLM')"
)
PROBE = (
    f"import sys\nfrom litemaas_hooks import cli\nrc = cli.main(sys.argv[1:])\n{DETECT}\n"
    "sys.exit(rc)\n"
)


def probe_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without any database URL, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LITEMAAS_", "LITELLM_DATABASE")) and k != "DATABASE_URL"
    }
    env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", **extra})
    return env


def probe(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """``litemaas-hooks ARGV`` in a fresh interpreter: (exit code, stdout, stderr); stdout ends
    with LITELLM_IMPORTED or NO_LITELLM."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        env=probe_env(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


# -- the real LiteMaaS backend's HTTP API ----------------------------------------------------------


def add_user(dsn: str, username: str = "alice") -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO public.users "
            "(username, email, full_name, oauth_provider, oauth_id, roles) "
            "VALUES (%s, %s, 'Alice', 'openshift', %s, ARRAY['user'])",
            (username, f"{username}@example.com", f"oauth-{username}"),
        )


def subscribe_via_api(
    server: litemaas_backend.BackendServer, token: str, model: str
) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/api/v1/subscriptions",
        json={"modelId": model},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
