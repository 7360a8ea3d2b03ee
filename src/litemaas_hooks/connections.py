"""Opening the two database connections with errors that say which variable to fix."""

from __future__ import annotations

from typing import Any, Literal

import psycopg

from litemaas_hooks.errors import DatabaseUnavailableError
from litemaas_hooks.redaction import redact_dsn, scrub
from litemaas_hooks.settings import Settings

Which = Literal["backend", "litellm"]

_HELP = {
    "backend": "LITEMAAS_DATABASE_URL (the LiteMaaS backend database)",
    "litellm": "LITELLM_DATABASE_URL, else DATABASE_URL (LiteLLM's database)",
}


async def connect(settings: Settings, which: Which, *, application_name: str = "litemaas-hooks") -> Any:
    """An autocommit AsyncConnection to one of the databases (transactions are always explicit)."""
    dsn = settings.backend_dsn() if which == "backend" else settings.litellm_dsn()
    try:
        return await psycopg.AsyncConnection.connect(
            dsn, autocommit=True, application_name=application_name, connect_timeout=10
        )
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailableError(
            f"cannot connect to the {which} database at {redact_dsn(dsn)}: "
            f"{scrub(reason, settings.secrets())}. Check {_HELP[which]}, that the server is reachable "
            "from here and that the user and password are right."
        ) from None
