"""The LiteMaaS backend schema fixture (``litemaas_schema.sql``, loaded with importlib.resources).

It reproduces the backend tables litemaas-hooks touches (``models``, ``subscriptions``, ``api_keys``,
``api_key_models``, ``audit_logs``) and what their foreign keys need (``users`` with the system user,
``teams``), with the backend's own ``update_updated_at_column()`` function and ``update_*_updated_at``
triggers. It is idempotent, as the backend's start-up migrations are: applying it again simulates a
backend restart.
"""

from __future__ import annotations

import functools
import time
from importlib import resources

import psycopg

from litemaas_hooks.errors import MigrationError
from litemaas_hooks.redaction import redact_dsn

__all__ = ["SYSTEM_USER_ID", "apply_litemaas_schema", "litemaas_schema_sql"]

SYSTEM_USER_ID = "00000000-0000-0000-0000-000000000001"


@functools.cache
def litemaas_schema_sql() -> str:
    """The fixture's SQL text."""
    return resources.files(__package__).joinpath("litemaas_schema.sql").read_text(encoding="utf-8")


def apply_litemaas_schema(dsn: str) -> float:
    """Apply the backend schema to database ``dsn`` in one transaction; returns the seconds it took."""
    started = time.perf_counter()
    try:
        with psycopg.connect(dsn) as conn:
            # no parameters: the whole script goes as one simple query (DO blocks, $$ bodies and all)
            conn.execute(litemaas_schema_sql().encode("utf-8"))
    except psycopg.Error as exc:
        raise MigrationError(
            f"applying the LiteMaaS backend schema fixture (litemaas_hooks/embedded/litemaas_schema.sql) "
            f"to {redact_dsn(dsn)} failed: [{exc.sqlstate}] {str(exc).strip()}"
        ) from exc
    return time.perf_counter() - started
