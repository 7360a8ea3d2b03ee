"""One typed settings object, read from the environment (names are part of the public contract).

Declared like pydantic-settings (``name: type = Field(default, alias=ENV_VAR, ge=.., gt=..,
le=..)``) but parsed here, without pydantic: importing this module costs milliseconds, not a quarter
of a second, and every missing or invalid setting is reported at once, each with the variable to fix
and an example.

| env var | default | meaning |
|---|---|---|
| LITEMAAS_DATABASE_URL | (required) | backend (LiteMaaS) database |
| LITELLM_DATABASE_URL | DATABASE_URL | LiteLLM database (the proxy itself reads DATABASE_URL) |
| LITELLM_SALT_KEY | LITELLM_MASTER_KEY | key LiteLLM encrypts litellm_params with |
| LITEMAAS_HOOKS_* | see ``Settings`` | tuning knobs |

docs/configuration.md's table lists every field (a test compares the two).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from litemaas_hooks import dburl
from litemaas_hooks.dburl import DatabaseUrl
from litemaas_hooks.errors import ConfigError, DatabaseUrlError
from litemaas_hooks.redaction import redact_dsn

Which = Literal["backend", "litellm"]

DSN_EXAMPLE = "postgresql://USER:PASSWORD@postgres:5432/{db}"

# Where the URLs and keys live in each LiteMaaS install flavour (for error messages and docs).
SECRET_HINTS = {
    "backend": "Kubernetes: the backend's database URL, i.e. secret `backend-secret` key "
    "`database-url` (Kustomize), `litemaas-backend` key `database-url` (Helm), `litemaas-db` key "
    "`DATABASE_URL` (RHDP)",
    "litellm": "Kubernetes: LiteLLM's database URL, i.e. secret `litellm-secret` key "
    "`database-url` (Kustomize), `litemaas-litellm` key `database-url` (Helm), `litemaas-db` key "
    "`DATABASE_URL` (RHDP)",
}

# Variables litemaas-hooks does not parse but whose value changes its results: LiteLLM reads them
# when the commands that need LiteLLM import it. A standalone relay or backfill must use the proxy's
# values. {name: default as docs show it}; docs/configuration.md's table lists them too.
OTHER_VARIABLES = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "False",
    "LITELLM_MODEL_COST_MAP_URL": "LiteLLM's GitHub URL",
}

_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off", ""}


class SecretStr:
    """A string that never shows itself in ``repr``/``str`` (same API as pydantic's)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretStr('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class FieldSpec:
    """How one setting is read: its env var, default, bounds and allowed values."""

    default: Any
    alias: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[str, ...] | None = None
    shown_default: str | None = None  # the docs' "default" column when not the value
    description: str | None = None


def Field(  # the declaration syntax of pydantic, on purpose
    default: Any = None,
    *,
    alias: str,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Iterable[str] | None = None,
    shown_default: str | None = None,
    description: str | None = None,
) -> Any:
    return FieldSpec(
        default,
        alias,
        ge,
        gt,
        le,
        lt,
        tuple(choices) if choices is not None else None,
        shown_default,
        description,
    )


@dataclass(frozen=True)
class FieldInfo:
    name: str
    alias: str
    type: Any  # bool, int, float, str or SecretStr (None allowed when ``optional``)
    optional: bool
    spec: FieldSpec

    @property
    def default_text(self) -> str:
        """The default as the docs show it: ``true``, ``500``, ``5``, ``INFO``, ``—``."""
        if self.spec.shown_default is not None:
            return self.spec.shown_default
        value = self.spec.default
        if value is None:
            return "—"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)


class Settings:
    """Settings of the relay, the CLI and the LiteLLM plugin (attributes named after the env
    vars)."""

    litemaas_database_url: SecretStr | None = Field(
        default=None, alias="LITEMAAS_DATABASE_URL", shown_default="— (required)"
    )
    litellm_database_url: SecretStr | None = Field(
        default=None, alias="LITELLM_DATABASE_URL", shown_default="`DATABASE_URL`"
    )
    database_url: SecretStr | None = Field(default=None, alias="DATABASE_URL")
    litellm_salt_key: SecretStr | None = Field(
        default=None, alias="LITELLM_SALT_KEY", shown_default="`LITELLM_MASTER_KEY`"
    )
    litellm_master_key: SecretStr | None = Field(default=None, alias="LITELLM_MASTER_KEY")
    # `apply`: LiteLLM's management API (the RHDP playbook's litellm_url); never read by the relay
    litellm_url: str | None = Field(default=None, alias="LITELLM_URL")

    sync_team_models: bool = Field(default=False, alias="LITEMAAS_HOOKS_SYNC_TEAM_MODELS")
    retire_cascade: bool = Field(default=True, alias="LITEMAAS_HOOKS_RETIRE_CASCADE")
    # retire safety: the cascade waits this long after the last deployment went (0 = at once)
    retire_grace_seconds: float = Field(
        default=300.0, ge=0, alias="LITEMAAS_HOOKS_RETIRE_GRACE_SECONDS"
    )
    # mass-retire guard: a pass retiring at least this share of the LiteLLM-sourced models ...
    retire_guard_percent: float = Field(
        default=50.0, gt=0, le=100, alias="LITEMAAS_HOOKS_RETIRE_GUARD_PERCENT"
    )
    # ... and at least this many (0 = guard off) cascades nothing until `retire --confirm`
    retire_guard_min_models: int = Field(
        default=3, ge=0, alias="LITEMAAS_HOOKS_RETIRE_GUARD_MIN_MODELS"
    )
    batch_size: int = Field(default=500, ge=1, le=10_000, alias="LITEMAAS_HOOKS_BATCH_SIZE")
    poll_interval_seconds: float = Field(
        default=5.0, gt=0, alias="LITEMAAS_HOOKS_POLL_INTERVAL_SECONDS"
    )
    reconcile_interval_seconds: float = Field(
        default=600.0, ge=0, alias="LITEMAAS_HOOKS_RECONCILE_INTERVAL_SECONDS"
    )
    max_attempts: int = Field(default=10, ge=1, alias="LITEMAAS_HOOKS_MAX_ATTEMPTS")
    retry_base_seconds: float = Field(default=1.0, gt=0, alias="LITEMAAS_HOOKS_RETRY_BASE_SECONDS")
    retry_max_seconds: float = Field(default=300.0, gt=0, alias="LITEMAAS_HOOKS_RETRY_MAX_SECONDS")
    stall_timeout_seconds: float = Field(
        default=120.0, gt=0, alias="LITEMAAS_HOOKS_STALL_TIMEOUT_SECONDS"
    )
    reconnect_max_seconds: float = Field(
        default=30.0, gt=0, alias="LITEMAAS_HOOKS_RECONNECT_MAX_SECONDS"
    )
    # PgBouncer: auto = transaction pooling for a URL with pgbouncer=true, else direct
    pool_mode: str = Field(
        default="auto",
        alias="LITEMAAS_HOOKS_POOL_MODE",
        choices=("auto", "direct", "session", "transaction"),
    )
    pooled_poll_interval_seconds: float = Field(
        default=0.5, gt=0, alias="LITEMAAS_HOOKS_POOLED_POLL_INTERVAL_SECONDS"
    )
    enabled: bool = Field(default=True, alias="LITEMAAS_HOOKS_ENABLED")
    log_level: str = Field(
        default="INFO",
        alias="LITEMAAS_HOOKS_LOG_LEVEL",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
    )
    log_format: str = Field(
        default="text", alias="LITEMAAS_HOOKS_LOG_FORMAT", choices=("text", "json")
    )
    json_logs: bool = Field(default=False, alias="JSON_LOGS")
    # standalone relay only (probes.py): /healthz, /readyz, /metrics; 0 = off (the relay image sets
    # 9464)
    http_port: int = Field(default=0, ge=0, le=65535, alias="LITEMAAS_HOOKS_HTTP_PORT")
    http_host: str = Field(default="0.0.0.0", alias="LITEMAAS_HOOKS_HTTP_HOST")  # noqa: S104 (a pod's probes)

    def __init__(self, **values: Any) -> None:
        """Values by field name, already parsed (``load_settings`` parses the environment)."""
        fields = self.fields()
        for name, info in fields.items():
            setattr(self, name, info.spec.default)
        for name, value in values.items():
            if name not in fields:
                raise TypeError(f"unknown setting {name!r}")
            setattr(self, name, value)

    @classmethod
    def fields(cls) -> dict[str, FieldInfo]:
        """Every setting, in declaration order (docs/configuration.md's table follows it)."""
        return _fields(cls)

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.fields())
        return f"Settings({shown})"

    # -- resolved values -------------------------------------------------------------------------

    @property
    def json_log_lines(self) -> bool:
        """JSON log lines: ``LITEMAAS_HOOKS_LOG_FORMAT=json`` or LiteLLM's own
        ``JSON_LOGS=true``."""
        return self.log_format == "json" or self.json_logs

    def backend_dsn(self) -> str:
        """The backend DSN as libpq reads it (``dburl.parse``), or a ConfigError saying how to set
        it."""
        return self.database_url_of("backend").conninfo

    def litellm_dsn_source(self) -> str:
        """The variable the LiteLLM DSN comes from: ``LITELLM_DATABASE_URL``, else
        ``DATABASE_URL``."""
        if self.litellm_database_url is not None or self.database_url is None:
            return "LITELLM_DATABASE_URL"
        return "DATABASE_URL"

    def litellm_dsn(self) -> str:
        """The LiteLLM DSN (LITELLM_DATABASE_URL, else DATABASE_URL) as libpq reads it, or a
        ConfigError."""
        return self.database_url_of("litellm").conninfo

    def database_url_of(self, which: Which) -> DatabaseUrl:
        """One database URL made fit for libpq (``dburl.parse``: LiteLLM's/Prisma's parameters
        dropped or translated) and what its Prisma-only parameters meant; a ConfigError naming the
        variable."""
        var = self.dsn_variable(which)
        if which == "backend":
            secret = self.litemaas_database_url
        else:
            secret = (
                self.litellm_database_url if var == "LITELLM_DATABASE_URL" else self.database_url
            )
        problem = _dsn_problem(var, secret, which)
        if problem:
            raise ConfigError(problem)
        assert secret is not None
        return parse_database_url(var, secret.get_secret_value())

    def dsn_variable(self, which: Which) -> str:
        return "LITEMAAS_DATABASE_URL" if which == "backend" else self.litellm_dsn_source()

    def decryption_key(self) -> str | None:
        """LITELLM_SALT_KEY, else LITELLM_MASTER_KEY: exactly LiteLLM's own precedence."""
        for secret in (self.litellm_salt_key, self.litellm_master_key):
            if secret is not None and secret.get_secret_value():
                return secret.get_secret_value()
        return None

    def secrets(self) -> list[str]:
        """Every secret value this object holds (for scrubbing log lines and errors).

        For the database URLs that is their password, not the whole URL: a URL without a password
        (``litemaas_db``, ``postgresql:///db``) would otherwise mask every mention of its database
        name.
        """
        out: list[str] = []
        for secret in (self.litemaas_database_url, self.litellm_database_url, self.database_url):
            if secret is not None:
                out.extend(dsn_passwords(secret.get_secret_value()))
                # the converted form re-encodes the query (a password=... there included)
                with contextlib.suppress(DatabaseUrlError):
                    converted = dsn_passwords(dburl.parse(secret.get_secret_value()).conninfo)
                    out.extend(p for p in converted if p not in out)
        for secret in (self.litellm_salt_key, self.litellm_master_key):
            if secret is not None and secret.get_secret_value():
                out.append(secret.get_secret_value())
        return out


_KV_PASSWORD = re.compile(r"\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def dsn_passwords(dsn: str) -> list[str]:
    """The password(s) inside a PostgreSQL URL or keyword DSN, as written and as decoded."""
    out: list[str] = []
    if "://" in dsn:
        try:
            parts = urlsplit(dsn)
            raw = parts.netloc.rpartition("@")[0].partition(":")[2] if "@" in parts.netloc else ""
        except ValueError:
            raw = ""
        if raw:
            out += [raw, unquote(raw)]
    for m in _KV_PASSWORD.finditer(dsn):
        value = m.group(1)
        out += [value, value.strip("'")]
    return sorted({p for p in out if p}, key=len, reverse=True)


def env_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """Secrets straight from the environment, for an error raised before the settings could be
    read (CLI and plugin): the passwords of the database URLs, the salt key and the master key."""
    env = os.environ if environ is None else environ
    out: list[str] = []
    for var in ("LITEMAAS_DATABASE_URL", "LITELLM_DATABASE_URL", "DATABASE_URL"):
        out += dsn_passwords(env.get(var, ""))
    out += [env.get(var, "") for var in ("LITELLM_SALT_KEY", "LITELLM_MASTER_KEY")]
    return [s for s in out if s]


_CACHE: dict[tuple[str, str], DatabaseUrl] = {}


def parse_database_url(var: str, value: str) -> DatabaseUrl:
    """``dburl.parse`` of the value of ``var``, or a ConfigError with the variable, the URL
    (password masked), what is wrong and the fix. A ``schema=`` other than ``public`` is refused:
    LiteLLM's tables and the backend's live in ``public`` for litemaas-hooks (its trigger and
    queries name them so)."""
    key = (var, value)
    if key in _CACHE:
        return _CACHE[key]
    try:
        parsed = dburl.parse(value)
    except DatabaseUrlError as exc:
        raise ConfigError(f"{var}={redact_dsn(value)!r} is not usable: {exc}") from None
    if parsed.schema not in (None, "public"):
        raise ConfigError(
            f"{var}={redact_dsn(value)!r} has schema={parsed.schema}: litemaas-hooks reads and "
            'watches the tables in schema "public" only (LiteLLM\'s "LiteLLM_ProxyModelTable", '
            "the backend's models); run LiteLLM and the LiteMaaS backend on schema public (remove "
            f"schema={parsed.schema} from the URL and DATABASE_SCHEMA from LiteLLM's environment)"
        )
    if len(_CACHE) > 64:
        _CACHE.clear()
    _CACHE[key] = parsed
    return parsed


def _dsn_problem(var: str, secret: SecretStr | None, which: Which) -> str | None:
    db = "litemaas_db" if which == "backend" else "litellm_db"
    example = f"{var}={DSN_EXAMPLE.format(db=db)}"
    what = "the LiteMaaS backend database" if which == "backend" else "LiteLLM's database"
    if secret is None or not secret.get_secret_value().strip():
        if which == "litellm":
            return (
                "neither LITELLM_DATABASE_URL nor DATABASE_URL is set: litemaas-hooks needs "
                f"{what}; set e.g. {example} (inside the LiteLLM proxy DATABASE_URL is already "
                f"set; {SECRET_HINTS[which]})"
            )
        hint = SECRET_HINTS[which]
        return f"{var} is not set: litemaas-hooks needs {what}; set e.g. {example} ({hint})"
    value = secret.get_secret_value().strip()
    if value.startswith(("postgresql://", "postgres://")):
        return None
    if "://" not in value and "=" in value:  # a keyword DSN: host=... dbname=...
        return None
    return f"{var}={redact_dsn(value)!r} is not a PostgreSQL URL ({what}): use e.g. {example}"


_FIELDS: dict[type, dict[str, FieldInfo]] = {}


def _fields(cls: type) -> dict[str, FieldInfo]:
    if cls in _FIELDS:
        return _FIELDS[cls]
    hints = typing.get_type_hints(cls)
    out: dict[str, FieldInfo] = {}
    for name, hint in hints.items():
        spec = cls.__dict__.get(name)
        if not isinstance(spec, FieldSpec):
            continue
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = bool(typing.get_args(hint)) and len(args) < len(typing.get_args(hint))
        out[name] = FieldInfo(name, spec.alias, args[0] if optional else hint, optional, spec)
    _FIELDS[cls] = out
    return out


def _parse(info: FieldInfo, raw: Any) -> Any:
    """The typed value of one setting, or ValueError with a sentence saying what is wrong."""
    spec = info.spec
    if info.type is SecretStr:
        if isinstance(raw, SecretStr):
            return raw
        text = str(raw).strip()
        return SecretStr(text) if text else None
    if info.type is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError("must be true or false")
    if info.type in (int, float):
        if isinstance(raw, bool):
            raise ValueError("must be a number")
        try:
            value = info.type(raw.strip() if isinstance(raw, str) else raw)
        except (TypeError, ValueError):
            raise ValueError(
                "must be a whole number" if info.type is int else "must be a number"
            ) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        if spec.ge is not None and not value >= spec.ge:
            raise ValueError(f"must be at least {spec.ge:g}")
        if spec.gt is not None and not value > spec.gt:
            raise ValueError(f"must be greater than {spec.gt:g}")
        if spec.le is not None and not value <= spec.le:
            raise ValueError(f"must be at most {spec.le:g}")
        if spec.lt is not None and not value < spec.lt:
            raise ValueError(f"must be less than {spec.lt:g}")
        return value
    text = str(raw).strip()
    if spec.choices is not None:
        for choice in spec.choices:
            if choice.lower() == text.lower():
                return choice
        raise ValueError("must be one of " + ", ".join(spec.choices))
    return text


def load_settings(
    environ: Mapping[str, str] | None = None, *, require: Iterable[Which] = (), **overrides: Any
) -> Settings:
    """Read settings from ``environ`` (default: the process environment); ``overrides`` by field
    name.

    Raises one ConfigError listing every invalid setting, and every URL of ``require`` that is
    missing or not a PostgreSQL URL, each with the variable to set and an example.
    """
    env = os.environ if environ is None else environ
    upper = {k.upper(): v for k, v in env.items()}
    fields = Settings.fields()
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name, info in fields.items():
        if name in overrides and overrides[name] is not None:
            raw, shown = overrides[name], repr(overrides[name])
        elif info.alias in upper:
            raw = upper[info.alias]
            shown = "***" if info.type is SecretStr else repr(raw)
        else:
            continue
        try:
            values[name] = _parse(info, raw)
        except ValueError as exc:
            example = info.default_text if info.spec.shown_default is None else ""
            problems.append(
                f"{info.alias}={shown} {exc}"
                + (f" (default: {info.alias}={example})" if example else "")
            )
    unknown = set(overrides) - set(fields)
    if unknown:
        raise TypeError(f"unknown settings: {sorted(unknown)}")
    settings = Settings(**values)
    for which in dict.fromkeys(require):
        try:
            settings.backend_dsn() if which == "backend" else settings.litellm_dsn()
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError(format_problems(problems))
    return settings


def format_problems(problems: list[str]) -> str:
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} settings need fixing:\n" + "\n".join(f"  - {p}" for p in problems)
