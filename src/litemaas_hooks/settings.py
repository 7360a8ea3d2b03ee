"""One typed settings object, read from the environment (names are part of the public contract).

| env var | default | meaning |
|---|---|---|
| LITEMAAS_DATABASE_URL | (required) | backend (LiteMaaS) database |
| LITELLM_DATABASE_URL | DATABASE_URL | LiteLLM database (the proxy itself reads DATABASE_URL) |
| LITELLM_SALT_KEY | LITELLM_MASTER_KEY | key LiteLLM encrypts litellm_params with |
| LITEMAAS_HOOKS_* | see ``Settings`` | tuning knobs |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from litemaas_hooks.errors import ConfigError
from litemaas_hooks.redaction import redact_dsn

_DSN_EXAMPLE = "postgresql://litemaas_admin:PASSWORD@postgres:5432/{db}"


def _check_dsn(value: str | None, var: str, db: str) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if "://" in value and not value.startswith(("postgresql://", "postgres://")):
        raise ValueError(
            f"{var} must be a PostgreSQL URL (got {redact_dsn(value)!r}); example: {var}={_DSN_EXAMPLE.format(db=db)}"
        )
    return value


class Settings(BaseSettings):
    """Settings of the relay, the CLI and the LiteLLM plugin."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, case_sensitive=False)

    litemaas_database_url: SecretStr | None = Field(default=None, alias="LITEMAAS_DATABASE_URL")
    litellm_database_url: SecretStr | None = Field(default=None, alias="LITELLM_DATABASE_URL")
    database_url: SecretStr | None = Field(default=None, alias="DATABASE_URL")
    litellm_salt_key: SecretStr | None = Field(default=None, alias="LITELLM_SALT_KEY")
    litellm_master_key: SecretStr | None = Field(default=None, alias="LITELLM_MASTER_KEY")

    sync_team_models: bool = Field(default=False, alias="LITEMAAS_HOOKS_SYNC_TEAM_MODELS")
    retire_cascade: bool = Field(default=True, alias="LITEMAAS_HOOKS_RETIRE_CASCADE")
    batch_size: int = Field(default=500, ge=1, le=10_000, alias="LITEMAAS_HOOKS_BATCH_SIZE")
    poll_interval_seconds: float = Field(default=5.0, gt=0, alias="LITEMAAS_HOOKS_POLL_INTERVAL_SECONDS")
    reconcile_interval_seconds: float = Field(default=600.0, ge=0, alias="LITEMAAS_HOOKS_RECONCILE_INTERVAL_SECONDS")
    max_attempts: int = Field(default=10, ge=1, alias="LITEMAAS_HOOKS_MAX_ATTEMPTS")
    retry_base_seconds: float = Field(default=1.0, gt=0, alias="LITEMAAS_HOOKS_RETRY_BASE_SECONDS")
    retry_max_seconds: float = Field(default=300.0, gt=0, alias="LITEMAAS_HOOKS_RETRY_MAX_SECONDS")
    stall_timeout_seconds: float = Field(default=120.0, gt=0, alias="LITEMAAS_HOOKS_STALL_TIMEOUT_SECONDS")
    reconnect_max_seconds: float = Field(default=30.0, gt=0, alias="LITEMAAS_HOOKS_RECONNECT_MAX_SECONDS")
    enabled: bool = Field(default=True, alias="LITEMAAS_HOOKS_ENABLED")
    log_level: str = Field(default="INFO", alias="LITEMAAS_HOOKS_LOG_LEVEL")
    # standalone relay only (probes.py): /healthz, /readyz, /metrics; 0 = off (the relay image sets 9464)
    http_port: int = Field(default=0, ge=0, le=65535, alias="LITEMAAS_HOOKS_HTTP_PORT")
    http_host: str = Field(default="0.0.0.0", alias="LITEMAAS_HOOKS_HTTP_HOST")  # noqa: S104 (a pod's probes)

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        level = v.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR (example: LITEMAAS_HOOKS_LOG_LEVEL=INFO)")
        return level

    # -- resolved values -------------------------------------------------------------------------

    def backend_dsn(self) -> str:
        """The backend DSN, or a ConfigError saying how to set it."""
        dsn = _check_dsn(
            self.litemaas_database_url.get_secret_value() if self.litemaas_database_url else None,
            "LITEMAAS_DATABASE_URL",
            "litemaas_db",
        )
        if dsn is None:
            raise ConfigError(
                "LITEMAAS_DATABASE_URL is not set: litemaas-hooks needs the LiteMaaS backend database. "
                f"Set it, e.g. LITEMAAS_DATABASE_URL={_DSN_EXAMPLE.format(db='litemaas_db')} "
                "(in Kubernetes: the DATABASE_URL key of the LiteMaaS backend secret)."
            )
        return dsn

    def litellm_dsn(self) -> str:
        """The LiteLLM DSN (LITELLM_DATABASE_URL, else DATABASE_URL), or a ConfigError."""
        for var, secret in (
            ("LITELLM_DATABASE_URL", self.litellm_database_url),
            ("DATABASE_URL", self.database_url),
        ):
            dsn = _check_dsn(secret.get_secret_value() if secret else None, var, "litellm_db")
            if dsn is not None:
                return dsn
        raise ConfigError(
            "Neither LITELLM_DATABASE_URL nor DATABASE_URL is set: litemaas-hooks needs LiteLLM's database. "
            f"Set e.g. LITELLM_DATABASE_URL={_DSN_EXAMPLE.format(db='litellm_db')} "
            "(inside the LiteLLM proxy, DATABASE_URL is already set)."
        )

    def decryption_key(self) -> str | None:
        """LITELLM_SALT_KEY, else LITELLM_MASTER_KEY: exactly LiteLLM's own precedence."""
        for secret in (self.litellm_salt_key, self.litellm_master_key):
            if secret is not None and secret.get_secret_value():
                return secret.get_secret_value()
        return None

    def secrets(self) -> list[str]:
        """Every secret value this object holds (for scrubbing log lines and errors)."""
        out: list[str] = []
        for secret in (
            self.litemaas_database_url,
            self.litellm_database_url,
            self.database_url,
            self.litellm_salt_key,
            self.litellm_master_key,
        ):
            if secret is not None:
                out.append(secret.get_secret_value())
        return out


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read settings from ``environ`` (default: the process environment), failing with a clear ConfigError."""
    env = dict(os.environ if environ is None else environ)
    known = {f.alias for f in Settings.model_fields.values() if f.alias}
    data: dict[str, Any] = {k: v for k, v in env.items() if k.upper() in known}
    data = {k.upper(): v for k, v in data.items()}
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            problems.append(f"{loc}: {err['msg']}")
        raise ConfigError("invalid settings: " + "; ".join(problems)) from None
