"""The LiteMaaS backend schema, created by the backend's own migrations (no hand-made fixture).

``apply_litemaas_schema`` runs upstream v0.4.0's ``applyMigrations`` (``backend/src/lib/
database-migrations.ts``) through :mod:`litemaas_hooks_sandbox.litemaas_backend`: every table,
index, comment, constraint, trigger and the system user, exactly as a real backend creates them at
start-up. It is idempotent, as the backend's start-up migrations are: applying it again simulates a
backend restart. Without Node.js, :func:`apply_litemaas_schema_without_node` runs the same
statements (read from the upstream file, in ``applyMigrations``' order) through psycopg: the demo's
fallback.
"""

from __future__ import annotations

import os
import re
import tarfile
import time
from pathlib import Path

import psycopg

from litemaas_hooks.errors import MigrationError
from litemaas_hooks.redaction import redact_dsn
from litemaas_hooks_sandbox import litemaas_backend

__all__ = [
    "SYSTEM_USER_ID",
    "apply_litemaas_schema",
    "apply_litemaas_schema_without_node",
    "upstream_migration_sql",
]

# created by the backend's migrations ("system user for audit trail")
SYSTEM_USER_ID = "00000000-0000-0000-0000-000000000001"


def apply_litemaas_schema(dsn: str) -> float:
    """Run the backend's own migrations on database ``dsn``; returns the seconds they took (the
    first call of a process also prepares the upstream tree: unpack + cached ``npm ci``)."""
    try:
        return litemaas_backend.apply_migrations(dsn)
    except litemaas_backend.BackendRunnerError as exc:
        raise MigrationError(
            f"applying the LiteMaaS backend's migrations to {redact_dsn(dsn)} failed: {exc}"
        ) from exc


# -- without Node.js: the same SQL, read from the upstream file, run by psycopg --------------------

MIGRATIONS_TS = "backend/src/lib/database-migrations.ts"
_QUERY_CALL = re.compile(r"await dbUtils\.query\((\w+)\);")
_SQL_CONST = re.compile(r"export const (\w+) = `([^`]*)`;")
_ENV_DEFAULT = re.compile(r"const (\w+) = \(\) => process\.env\.(\w+) \|\| '([^']*)';")
_INTERPOLATION = re.compile(r"\$\{(\w+)\(\)\}")


def upstream_migration_sql(tarball: Path | None = None) -> list[tuple[str, str]]:
    """(name, SQL) of every statement upstream's ``applyMigrations`` runs, in its order, read from
    ``database-migrations.ts`` in the tarball (its ``${getDefault...()}`` column defaults resolved
    as it does: the environment variable, else its fallback). For machines without Node.js (the
    demo's fallback); anything this cannot read exactly raises :class:`MigrationError` rather than
    guessing."""
    tarball = tarball or litemaas_backend.upstream_dir() / litemaas_backend.TARBALL
    member = f"{litemaas_backend.TREE_NAME}/{MIGRATIONS_TS}"
    try:
        with tarfile.open(tarball) as tar:
            handle = tar.extractfile(member)
            if handle is None:
                raise KeyError(member)
            text = handle.read().decode("utf-8")
    except (OSError, KeyError, tarfile.TarError) as exc:
        raise MigrationError(
            f"cannot read {member} from {tarball}: {exc} (set {litemaas_backend.UPSTREAM_DIR_ENV} "
            f"to the folder holding {litemaas_backend.TARBALL})"
        ) from exc
    head, sep, body = text.partition("export const applyMigrations")
    names = _QUERY_CALL.findall(body)
    if not sep or not names:
        raise MigrationError(
            f"{member}: no applyMigrations with `await dbUtils.query(...)` calls found"
        )
    consts = dict(_SQL_CONST.findall(text))
    defaults = {
        fn: os.environ.get(var, fallback) for fn, var, fallback in _ENV_DEFAULT.findall(head)
    }
    statements: list[tuple[str, str]] = []
    for name in names:
        if name not in consts:
            raise MigrationError(
                f"{member}: applyMigrations runs {name}, which is not a plain SQL template"
            )
        unknown = [fn for fn in _INTERPOLATION.findall(consts[name]) if fn not in defaults]
        sql = _INTERPOLATION.sub(lambda m: defaults.get(m.group(1), m.group(0)), consts[name])
        if unknown or "${" in sql:
            raise MigrationError(
                f"{member}: {name} interpolates something other than a column default"
            )
        statements.append((name, sql))
    return statements


def apply_litemaas_schema_without_node(dsn: str, tarball: Path | None = None) -> float:
    """Run :func:`upstream_migration_sql` on database ``dsn``, each statement as the backend sends
    it (one simple query); returns the seconds it took. Idempotent like the backend's start-up
    migrations."""
    statements = upstream_migration_sql(tarball)
    started = time.perf_counter()
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for _name, sql in statements:
                # bytes, no parameters: a simple query, $$ bodies and all
                conn.execute(sql.encode("utf-8"))
    except psycopg.Error as exc:
        raise MigrationError(
            f"applying the LiteMaaS backend's migration SQL to {redact_dsn(dsn)} failed: {exc}"
        ) from exc
    return time.perf_counter() - started
