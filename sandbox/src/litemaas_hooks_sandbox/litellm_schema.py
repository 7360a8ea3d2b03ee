"""LiteLLM's real database schema, from the SQL migrations shipped in the ``litellm-proxy-extras``
wheel.

LiteLLM applies ``litellm_proxy_extras/migrations/<timestamp>_<name>/migration.sql`` with
``prisma migrate deploy``. Prisma's engines cannot be downloaded here, so this module applies the
same files the way Prisma does on PostgreSQL: folder-name order, each file sent as one
simple-protocol query (one implicit transaction per file; a file holding a single ``CREATE INDEX
CONCURRENTLY`` runs outside any transaction block), each applied migration recorded in
``_prisma_migrations`` with the sha256 checksum Prisma uses. Re-running skips migrations already
recorded, so it is idempotent.

Not reproduced: LiteLLM's optional post-migration steps (request-log indexes, ``REPLICA IDENTITY
FULL``); they only concern spend-log tables.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from importlib import metadata, resources
from importlib.resources.abc import Traversable

import psycopg

from litemaas_hooks.errors import MigrationError
from litemaas_hooks.redaction import redact_dsn

__all__ = [
    "LiteLLMMigration",
    "LiteLLMSchemaResult",
    "apply_litellm_schema",
    "litellm_extras_version",
    "litellm_migrations",
]

_DISTRIBUTION = "litellm-proxy-extras"
_PACKAGE = "litellm_proxy_extras"
_INSTALL_HINT = "install it with `uv pip install litellm-proxy-extras` (part of the `test` extra)"

# The bookkeeping table ``prisma migrate deploy`` creates (same columns and types).
_PRISMA_MIGRATIONS_DDL = """
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                  VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"            VARCHAR(64) NOT NULL,
    "finished_at"         TIMESTAMPTZ,
    "migration_name"      VARCHAR(255) NOT NULL,
    "logs"                TEXT,
    "rolled_back_at"      TIMESTAMPTZ,
    "started_at"          TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count" INTEGER NOT NULL DEFAULT 0
)
"""


@dataclass(frozen=True)
class LiteLLMMigration:
    name: str  # the folder name, e.g. "20250326162113_baseline" (one contains spaces)
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class LiteLLMSchemaResult:
    extras_version: str
    applied: tuple[str, ...]  # migrations applied by this call, in order
    already_applied: tuple[str, ...]  # found in _prisma_migrations and skipped
    seconds: float


def litellm_extras_version() -> str:
    """The installed ``litellm-proxy-extras`` version (MigrationError if it is not installed)."""
    try:
        return metadata.version(_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise MigrationError(f"{_DISTRIBUTION} is not installed; {_INSTALL_HINT}") from None


def _migrations_dir() -> Traversable:
    try:
        folder = resources.files(_PACKAGE).joinpath("migrations")
    except ModuleNotFoundError:
        raise MigrationError(f"Python package {_PACKAGE!r} not found; {_INSTALL_HINT}") from None
    if not folder.is_dir():
        raise MigrationError(
            f"{_PACKAGE} has no migrations/ folder (checked {folder}); {_INSTALL_HINT}"
        )
    return folder


def litellm_migrations() -> tuple[LiteLLMMigration, ...]:
    """Every ``migrations/<folder>/migration.sql`` of the installed wheel, in folder-name order."""
    folder = _migrations_dir()
    found = []
    for entry in folder.iterdir():
        script = entry.joinpath("migration.sql")
        if entry.is_dir() and script.is_file():
            found.append(LiteLLMMigration(entry.name, script.read_text(encoding="utf-8")))
    if not found:
        raise MigrationError(f"no */migration.sql under {folder}; {_INSTALL_HINT}")
    found.sort(key=lambda m: m.name)
    return tuple(found)


def apply_litellm_schema(dsn: str) -> LiteLLMSchemaResult:
    """Apply every LiteLLM migration not yet recorded in ``_prisma_migrations`` of database ``dsn``.

    Raises MigrationError naming the migration that failed (the migrations before it stay applied
    and recorded, as with Prisma).
    """
    started = time.perf_counter()
    version = litellm_extras_version()
    migrations = litellm_migrations()
    applied: list[str] = []
    skipped: list[str] = []
    try:
        conn = psycopg.connect(dsn, autocommit=True)
    except psycopg.OperationalError as exc:
        raise MigrationError(
            f"cannot connect to {redact_dsn(dsn)} to apply the LiteLLM schema: {exc}"
        ) from None
    with conn:
        conn.execute(_PRISMA_MIGRATIONS_DDL)
        done = {
            str(row[0])
            for row in conn.execute(
                'SELECT migration_name FROM "_prisma_migrations"'
                " WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL"
            )
        }
        for index, migration in enumerate(migrations, start=1):
            if migration.name in done:
                skipped.append(migration.name)
                continue
            t0 = time.perf_counter()
            try:
                # no parameters: psycopg sends the whole file as one simple query, like Prisma
                conn.execute(migration.sql.encode("utf-8"))
            except psycopg.Error as exc:
                raise MigrationError(
                    f"LiteLLM migration {index}/{len(migrations)} {migration.name!r} "
                    f"(litellm-proxy-extras {version}) failed on {redact_dsn(dsn)}: "
                    f"[{exc.sqlstate}] {str(exc).strip()}; "
                    f"{len(applied)} migration(s) were applied before it."
                ) from exc
            conn.execute(
                'INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, '
                "finished_at,"
                " applied_steps_count) VALUES (%s, %s, %s,"
                " now() - make_interval(secs => %s), clock_timestamp(), 1)",
                (str(uuid.uuid4()), migration.checksum, migration.name, time.perf_counter() - t0),
            )
            applied.append(migration.name)
    return LiteLLMSchemaResult(
        version, tuple(applied), tuple(skipped), time.perf_counter() - started
    )
