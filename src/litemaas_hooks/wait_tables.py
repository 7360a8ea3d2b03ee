"""``install --wait-for-litellm SECONDS``: wait until both databases answer and hold the tables we
hook into, so an install Job started together with LiteMaaS does not fail on a fresh cluster.

LiteLLM creates ``public."LiteLLM_ProxyModelTable"`` when it first starts (its Prisma migrations;
not with ``DISABLE_SCHEMA_UPDATE=true`` until something ran them); the LiteMaaS backend creates
``public.models`` at start. Progress is printed every ``report_every_seconds``, naming what is
missing.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

import psycopg

from litemaas_hooks import sql
from litemaas_hooks.errors import WaitTimeoutError, first_line
from litemaas_hooks.redaction import redact_dsn, scrub
from litemaas_hooks.settings import Settings, Which

TABLES: dict[Which, tuple[str, str]] = {
    "litellm": (
        'public."LiteLLM_ProxyModelTable"',
        "LiteLLM creates it on its first start with STORE_MODEL_IN_DB=True (check that LiteLLM "
        "runs and that LITELLM_DATABASE_URL / DATABASE_URL points at its database)",
    ),
    "backend": (
        "public.models",
        "the LiteMaaS backend creates it when it starts (check that the backend runs and that "
        "LITEMAAS_DATABASE_URL points at its database)",
    ),
}


async def _missing(settings: Settings, which: Which) -> str | None:
    """None when the table is there, else why not (one line, secrets scrubbed)."""
    dsn = settings.backend_dsn() if which == "backend" else settings.litellm_dsn()
    table, _ = TABLES[which]
    try:
        conn = await psycopg.AsyncConnection.connect(
            dsn, autocommit=True, connect_timeout=5, application_name="litemaas-hooks:wait"
        )
        async with conn:
            cur = await conn.execute(sql.query("common", "table_exists"), {"table": table})
            row = await cur.fetchone()
    except psycopg.Error as exc:
        reason = scrub(first_line(exc), settings.secrets())
        return f"{which} database {redact_dsn(dsn)} not reachable: {reason}"
    if row and row[0]:
        return None
    return f"{which} database has no table {table} yet"


async def wait_for_tables(
    settings: Settings,
    timeout_seconds: float,
    sides: Iterable[Which] = ("litellm", "backend"),
    *,
    poll_seconds: float = 2.0,
    report_every_seconds: float = 10.0,
    out: TextIO | None = None,
) -> float:
    """Return how long it waited; raise ``WaitTimeoutError`` naming what is still missing."""
    out = out or sys.stderr
    todo: list[Any] = list(sides)
    started = time.monotonic()
    next_report = started
    while True:
        problems = {w: p for w in todo if (p := await _missing(settings, w)) is not None}
        if not problems:
            return time.monotonic() - started
        now = time.monotonic()
        waited = now - started
        if waited >= timeout_seconds:
            hints = "; ".join(f"{p}: {TABLES[w][1]}" for w, p in problems.items())
            raise WaitTimeoutError(
                f"gave up after {waited:.0f}s waiting for the tables litemaas-hooks hooks into: "
                + hints
            )
        if now >= next_report:
            print(
                f"litemaas-hooks: waiting ({waited:.0f}s of {timeout_seconds:.0f}s): "
                + "; ".join(problems.values()),
                file=out,
                flush=True,
            )
            next_report = now + report_every_seconds
        await asyncio.sleep(min(poll_seconds, max(0.05, timeout_seconds - waited)))
