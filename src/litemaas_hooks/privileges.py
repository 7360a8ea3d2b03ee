"""What `litemaas-hooks install` runs and the grants a DBA gives, as text to review before applying.

``grants_sql`` is the single source of the least-privilege grants: docs/privileges.md holds
its output for the default role name, and the tests create their roles from it. ``install_sql`` is
the whole SQL `install` would run on one database (migrations not yet applied are run once and
recorded; the repeatable scripts run every time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql as pgsql

from litemaas_hooks import sql
from litemaas_hooks.errors import ConfigError
from litemaas_hooks.migrations import checksum
from litemaas_hooks.settings import Which

# the variable's name, not a password
RELAY_PASSWORD_ENV = "LITEMAAS_HOOKS_RELAY_PASSWORD"  # noqa: S105

DEFAULT_RELAY_ROLE = "litemaas_hooks_relay"

# The deploy/ manifests put the password into the relay's URL as is: only characters a URL's
# userinfo takes unescaped, and long enough to resist guessing.
RELAY_PASSWORD_MIN = 16
_URL_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

# The backend functions the relay calls (sql/backend/queries.sql), by signature. Only these: EXECUTE
# is revoked from PUBLIC on every function of ours.
RELAY_BACKEND_FUNCTIONS: tuple[str, ...] = (
    "litemaas_hooks.lock_models_v1(text[])",
    "litemaas_hooks.models_snapshot_v1(text[])",
    "litemaas_hooks.model_ids_v1()",
    "litemaas_hooks.upsert_models_v1(jsonb)",
    "litemaas_hooks.retire_model_v1(text, boolean, text)",
    "litemaas_hooks.try_lock_models_v1(text[], boolean)",
    "litemaas_hooks.note_model_sources_v1(text[], boolean[])",
    "litemaas_hooks.db_model_ids_v1(text[])",
    # retire safety (migration 0005): grace period, mass-retire guard, LiteLLM instances
    "litemaas_hooks.retire_model_v2(text, boolean, text, double precision, text, boolean)",
    "litemaas_hooks.claim_due_retires_v1(integer)",
    "litemaas_hooks.cascade_pending_v1(text, text)",
    "litemaas_hooks.hold_retires_v1(text[], text)",
    "litemaas_hooks.retire_guard_total_v1()",
    "litemaas_hooks.next_retire_due_v1()",
    "litemaas_hooks.note_model_instances_v1(text[], text)",
    "litemaas_hooks.retire_queue_v1()",
    "litemaas_hooks.served_elsewhere_v1(text[], text)",
    # an add or update as one checked call (try_lock, upsert and the notes inside)
    "litemaas_hooks.write_models_v1(text[], jsonb, text[], boolean[], text, text)",
    # a delete as one checked call (try_lock, the rows and retire_model_v2 inside)
    "litemaas_hooks.retire_models_v1("
    "text[], boolean, text, double precision, text, boolean, text)",
    # every call above checks first that the function is still what install left
    # (92_function_checks)
    "litemaas_hooks.check_function_v1(regprocedure)",
)

# The relay's working tables in LiteLLM's database and what it does with them. Never
# schema_migrations (our bookkeeping: only `install` writes it).
RELAY_LITELLM_TABLES: tuple[tuple[str, str], ...] = (
    # claim, complete (delete), fail/release/recover (update); `resync` and `replay` insert/update
    ("litemaas_hooks.model_events", "SELECT, INSERT, UPDATE, DELETE"),
    # the fleet-wide "last full reconcile" row
    ("litemaas_hooks.reconcile_state", "SELECT, UPDATE"),
    # LiteLLM's cost-map answers shared between processes (merged; old versions' rows pruned)
    ("litemaas_hooks.cost_map_memo", "SELECT, INSERT, UPDATE, DELETE"),
)

# The LiteLLM-side functions the relay calls (SECURITY INVOKER: the relay's own privileges above).
RELAY_LITELLM_FUNCTIONS: tuple[str, ...] = (
    # the claim as one statement (sql/litellm/repeatable/20_claim_batch.sql)
    "litemaas_hooks.claim_batch_v1(text, integer, double precision, bigint[], integer, integer)",
)

# What a writer of LiteLLM's table needs for the SECURITY INVOKER trigger (install grants it to the
# table's owner itself, sql/litellm/repeatable/95_writer_grants.sql).
WRITER_COLUMNS = "op, model_id, old_model_name, new_model_name"


@dataclass(frozen=True)
class Roles:
    relay: str = DEFAULT_RELAY_ROLE
    backend: str | None = None  # the role of LITEMAAS_DATABASE_URL for the relay; default: relay
    litellm_writers: tuple[str, ...] = ()  # other roles that write LiteLLM's table

    @property
    def backend_role(self) -> str:
        return self.backend or self.relay


def _ident(name: str) -> str:
    """A role name as SQL: bare when it is a plain lower-case identifier (readable), else quoted."""
    return pgsql.Identifier(name).as_string(None) if not _plain(name) else name


def _plain(name: str) -> bool:
    return (
        bool(name)
        and name[0].isalpha()
        and all(c.islower() or c.isdigit() or c == "_" for c in name)
    )


def backend_grants(role: str) -> str:
    r = _ident(role)
    lines = [
        "-- backend database: USAGE on our schema and EXECUTE on the functions the relay calls, "
        "nothing",
        "-- else (no table privilege: the SECURITY DEFINER functions, owned by the owner of "
        "public.models, write)",
        f"GRANT USAGE ON SCHEMA litemaas_hooks TO {r};",
    ]
    lines += [f"GRANT EXECUTE ON FUNCTION {fn} TO {r};" for fn in RELAY_BACKEND_FUNCTIONS]
    return "\n".join(lines)


def litellm_relay_grants(role: str) -> str:
    r = _ident(role)
    lines = [
        "-- LiteLLM database: read the model table, work the outbox (never schema_migrations)",
        f'GRANT SELECT ON public."LiteLLM_ProxyModelTable" TO {r};',
        f"GRANT USAGE ON SCHEMA litemaas_hooks TO {r};",
    ]
    lines += [f"GRANT {privs} ON {table} TO {r};" for table, privs in RELAY_LITELLM_TABLES]
    lines.append(f"GRANT USAGE ON SEQUENCE litemaas_hooks.model_events_id_seq TO {r};")
    lines += [f"GRANT EXECUTE ON FUNCTION {fn} TO {r};" for fn in RELAY_LITELLM_FUNCTIONS]
    return "\n".join(lines)


def litellm_writer_grants(role: str) -> str:
    r = _ident(role)
    return "\n".join(
        [
            f"-- LiteLLM database: {role} writes LiteLLM's table, so the trigger records its "
            f"changes as {role}",
            f"GRANT USAGE ON SCHEMA litemaas_hooks TO {r};",
            f"GRANT INSERT ({WRITER_COLUMNS}) ON litemaas_hooks.model_events TO {r};",
            f"GRANT USAGE ON SEQUENCE litemaas_hooks.model_events_id_seq TO {r};",
        ]
    )


def grants_by_database(roles: Roles = Roles()) -> dict[Which, str]:
    """The GRANT statements to run in each database (as a superuser or the objects' owners)."""
    litellm = [
        litellm_relay_grants(roles.relay),
        *(litellm_writer_grants(w) for w in roles.litellm_writers),
    ]
    return {"backend": backend_grants(roles.backend_role), "litellm": "\n\n".join(litellm)}


def grants_sql(roles: Roles = Roles()) -> str:
    """The GRANT statements for a relay role (standalone relay, or LiteLLM's role in plugin mode),
    per database, plus those for other roles writing LiteLLM's table."""
    return "\n\n".join(grants_by_database(roles).values()) + "\n"


def install_sql(side: Which) -> str:
    """Every statement `install` runs on one database, in order, in one transaction."""
    db = "backend (LiteMaaS)" if side == "backend" else "LiteLLM"
    out = [
        f"-- ===== litemaas-hooks install: {db} database (one transaction) =====",
        "BEGIN;",
        "-- every connection of litemaas-hooks pins its search_path (connections.pinned)",
        "SET LOCAL search_path = pg_catalog, pg_temp;",
        sql.query("common", "migrations_lock") + ";",
        sql.query("common", "migrations_bootstrap") + ";",
        sql.query("common", "migrations_guard") + ";",
    ]
    for mig in sql.migrations(side):
        label = f"{mig.version:04d}_{mig.name}"
        out.append(f"-- migration {label} (run once: skipped when schema_migrations records it)")
        out.append(mig.sql.strip())
        out.append(
            "INSERT INTO litemaas_hooks.schema_migrations (side, version, name, checksum) "
            f"VALUES ('{side}', {mig.version}, '{mig.name}', '{checksum(mig.sql)}');"
        )
    for rep in sql.repeatables(side):
        out.append(f"-- repeatable {rep.name} (run on every install)")
        out.append(rep.sql.strip())
    out.append("COMMIT;")
    return "\n\n".join(out) + "\n"


def render(*, print_sql: bool, print_grants: bool, sides: tuple[Which, ...], roles: Roles) -> str:
    """What `install --print-sql` / `--print-grants` print (nothing is applied)."""
    parts: list[str] = []
    if print_sql:
        parts += [install_sql(side) for side in sides]
    if print_grants:
        parts.append(grants_sql(roles))
    return "\n".join(parts)


def check_relay_password(password: str) -> None:
    """A ConfigError (one line, naming the fix) unless ``password`` is fit for the relay role."""
    unsafe = sorted({c for c in password if c not in _URL_SAFE})
    if len(password) < RELAY_PASSWORD_MIN or unsafe:
        what = (
            f"has {len(password)} characters (at least {RELAY_PASSWORD_MIN} needed)"
            if len(password) < RELAY_PASSWORD_MIN
            else f"has {len(unsafe)} kind(s) of character a URL must escape"
        )
        raise ConfigError(
            f"{RELAY_PASSWORD_ENV} {what}: use at least {RELAY_PASSWORD_MIN} letters, digits or "
            "- . _ ~ (the relay's URL holds it as is), e.g. `openssl rand -hex 24`"
        )


async def ensure_relay_role(
    conn: psycopg.AsyncConnection[Any], side: Which, roles: Roles, password: str | None
) -> str:
    """`install --grant-relay`: the relay role (created LOGIN when missing, its password set when
    given)
    with exactly the grants ``grants_by_database`` prints for ``side``, nothing more. The password
    is
    sent only as a SCRAM verifier computed here (never as text a server log could show). Returns
    what
    was done, as one line."""
    role = roles.relay if side == "litellm" else roles.backend_role
    if password:
        check_relay_password(password)
    cur = await conn.execute(sql.query("common", "role_exists"), {"role": role})
    row = await cur.fetchone()
    exists = bool(row and row[0])
    done: list[str] = []
    if not exists and not password:
        raise ConfigError(
            f"the relay role {role} does not exist and {RELAY_PASSWORD_ENV} is not set: set it "
            "(from a Secret) so that install can create the role, or create the role yourself"
        )
    if not exists:
        await conn.execute(pgsql.SQL("CREATE ROLE {} LOGIN").format(pgsql.Identifier(role)))
        done.append("created")
    if password:
        verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
        statement = pgsql.SQL("ALTER ROLE {} PASSWORD {}")
        literal = pgsql.Literal(verifier.decode())
        await conn.execute(statement.format(pgsql.Identifier(role), literal))
        done.append("password set")
    await conn.execute(grants_by_database(roles)[side].encode("utf-8"))
    done.append("granted exactly `install --print-grants`")
    return f"relay role {role}: " + ", ".join(done)
