"""Apply the versioned SQL migrations of one database side, once, under an advisory lock.

Each applied migration is recorded with a SHA-256 checksum in ``litemaas_hooks.schema_migrations``;
a migration edited after it was applied is reported instead of silently skipped. Repeatable scripts
(``sql/<side>/repeatable/*.sql``) are idempotent and run on every install after the migrations.
All of it happens in one transaction: a failed install leaves the database as it was.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from litemaas_hooks import install_checks, sql
from litemaas_hooks.errors import MigrationError, describe
from litemaas_hooks.settings import Which


@dataclass
class InstallResult:
    side: str
    applied: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    ensured: list[str] = field(default_factory=list)
    # objects of ours that an earlier install had created and that were missing (dropped) before
    # this one, now re-created: e.g. "table litemaas_hooks.model_events", "trigger on
    # public.\"LiteLLM_ProxyModelTable\""
    repaired: list[str] = field(default_factory=list)
    # migrations whose records were gone but whose objects were all there: recorded again, not
    # re-run
    recognised: list[str] = field(default_factory=list)
    # steps that had to wait (for a lock another transaction held), e.g. "2.1 s in 00_tables"
    waited: list[str] = field(default_factory=list)


# a step slower than this waited for a lock (each is milliseconds of work): install says so
WAIT_REPORT_SECONDS = 0.5


def checksum(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


async def apply_migrations(
    conn: psycopg.AsyncConnection[Any], side: Which, *, retire_cascade: bool = True
) -> InstallResult:
    """Bring one database to the newest schema of ``side``; safe to run concurrently and repeatedly.

    Also verifies: on the backend side, that ``public.models`` is a schema the sync can write
    (before and, with a rolled-back probe write, after); on both sides, every object of ours,
    re-creating what was dropped (listed in ``InstallResult.repaired``)."""
    result = InstallResult(side=side)
    async with conn.transaction():
        await conn.execute(sql.query("common", "migrations_lock"))
        await conn.execute(sql.query("common", "migrations_bootstrap"))
        try:
            await conn.execute(sql.query("common", "migrations_guard").encode("utf-8"))
        except psycopg.errors.InsufficientPrivilege as exc:
            hint = exc.diag.message_hint
            raise MigrationError(f"{side} database: {describe(exc)}. {hint}") from exc
        if side == "backend":
            await install_checks.check_backend_schema(conn)
        cur = await conn.execute(sql.query("common", "migrations_applied"), {"side": side})
        applied: dict[int, tuple[str, str]] = {}
        for version, name, digest in await cur.fetchall():
            applied[int(version)] = (str(name), str(digest))
        # what the migrations applied before this run created, and of it what is missing now
        done = "\n".join(m.sql for m in sql.migrations(side) if m.version in applied)
        before = install_checks.objects_in(done)
        gone = await install_checks.missing(conn, before) if applied else set()
        trigger_gone = bool(applied) and side == "litellm" and not await _trigger_ok(conn)
        for mig in sql.migrations(side):
            label = f"{mig.version:04d}_{mig.name}"
            digest = checksum(mig.sql)
            if mig.version in applied:
                _, recorded = applied[mig.version]
                if recorded != digest:
                    raise MigrationError(
                        f"{side} migration {label} was changed after it was applied "
                        f"(recorded checksum {recorded[:12]}…, file {digest[:12]}…). Released "
                        "migrations must never be edited: restore the file and add a new "
                        "migration instead."
                    )
                result.already.append(label)
                continue
            created = install_checks.objects_in(mig.sql)
            if created and not await install_checks.missing(conn, created):
                # its records are gone (a role deleted schema_migrations rows) but everything it
                # creates is here, owned by us (migrations_guard): ours, recorded again instead of
                # re-run
                await conn.execute(
                    sql.query("common", "migrations_record"),
                    {"side": side, "version": mig.version, "name": mig.name, "checksum": digest},
                )
                result.recognised.append(label)
                continue
            try:
                await conn.execute(mig.sql.encode("utf-8"))
            except psycopg.Error as exc:
                # insufficient_privilege (42501) is the only case a GRANT fixes
                hint = (
                    "Check that the database user may CREATE in the database "
                    "(GRANT CREATE ON DATABASE <db> TO <user>) and run `litemaas-hooks install` "
                    "again."
                    if exc.sqlstate == "42501"
                    else "Nothing was changed (one transaction); fix the cause and run "
                    "`litemaas-hooks install` again."
                )
                raise MigrationError(
                    f"{side} migration {label} failed: {describe(exc)}. {hint}"
                ) from exc
            await conn.execute(
                sql.query("common", "migrations_record"),
                {"side": side, "version": mig.version, "name": mig.name, "checksum": digest},
            )
            result.applied.append(label)
        for rep in sql.repeatables(side):
            started = time.monotonic()
            try:
                await conn.execute(rep.sql.encode("utf-8"))
            except psycopg.Error as exc:
                raise MigrationError(
                    f"{side} install step {rep.name} failed: {describe(exc)}."
                ) from exc
            result.ensured.append(rep.name)
            elapsed = time.monotonic() - started
            if elapsed >= WAIT_REPORT_SECONDS:
                result.waited.append(f"{elapsed:.1f} s in {rep.name}")
        still = await install_checks.missing(conn, gone)
        result.repaired = [str(o) for o in sorted(gone - still)]
        if trigger_gone and await _trigger_ok(conn):
            trigger = 'trigger litemaas_hooks_model_events on public."LiteLLM_ProxyModelTable"'
            result.repaired.append(trigger)
        if side == "backend":
            await install_checks.probe_backend_writes(conn, cascade=retire_cascade)
    return result


async def _trigger_ok(conn: psycopg.AsyncConnection[Any]) -> bool:
    cur = await conn.execute(sql.query("litellm", "trigger_state"))
    row = await cur.fetchone()
    return bool(row and all(row))


async def reinstall_trigger(conn: psycopg.AsyncConnection[Any]) -> None:
    """Re-create the outbox trigger on LiteLLM's table, which LiteLLM's own schema update can drop:
    install's repeatable steps for the trigger function and the trigger, in one transaction.

    The relay calls it when its check finds the trigger missing; a ``psycopg.Error`` (no TRIGGER
    privilege, LiteLLM's table busy) is the caller's to report.
    """
    steps = ("record_model_event", "trigger")
    scripts = [r for r in sql.repeatables("litellm") if r.name.endswith(steps)]
    async with conn.transaction():
        for script in scripts:
            if not script.name.endswith("record_model_event"):
                await conn.execute(script.sql.encode("utf-8"))
                continue
            try:
                async with conn.transaction():
                    await conn.execute(script.sql.encode("utf-8"))
            except psycopg.errors.InsufficientPrivilege:
                pass  # owned by the installer (plugin mode: LiteLLM's role); its body copes
