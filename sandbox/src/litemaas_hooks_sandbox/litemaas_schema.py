"""The LiteMaaS backend schema, created by the backend's own migrations (no hand-made fixture).

``apply_litemaas_schema`` runs upstream v0.4.0's ``applyMigrations`` (``backend/src/lib/
database-migrations.ts``) through :mod:`litemaas_hooks_sandbox.litemaas_backend`: every table, index,
comment, constraint, trigger and the system user, exactly as a real backend creates them at start-up.
It is idempotent, as the backend's start-up migrations are: applying it again simulates a backend
restart.
"""

from __future__ import annotations

from litemaas_hooks.errors import MigrationError
from litemaas_hooks.redaction import redact_dsn
from litemaas_hooks_sandbox import litemaas_backend

__all__ = ["SYSTEM_USER_ID", "apply_litemaas_schema"]

# created by the backend's migrations ("system user for audit trail")
SYSTEM_USER_ID = "00000000-0000-0000-0000-000000000001"


def apply_litemaas_schema(dsn: str) -> float:
    """Run the backend's own migrations on database ``dsn``; returns the seconds they took (the first
    call of a process also prepares the upstream tree: unpack + cached ``npm ci``)."""
    try:
        return litemaas_backend.apply_migrations(dsn)
    except litemaas_backend.BackendRunnerError as exc:
        raise MigrationError(f"applying the LiteMaaS backend's migrations to {redact_dsn(dsn)} failed: {exc}") from exc
