"""Pure mapping: the LiteLLM deployments of one ``model_name`` -> one backend ``models`` record.

The rules are those of DESIGN.md "Mapping" (they match what the LiteMaaS backend's own sync writes, so
the two never fight). No I/O here: inputs are already decrypted and enriched by ``litellm_source``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal

import orjson

from litemaas_hooks.errors import MappingError
from litemaas_hooks.redaction import known_secrets, redact_url, scrub_record, strip_credentials

# Column limits of the backend ``models`` table (reference/litemaas-backend.md).
MAX_ID = 255
MAX_NAME = 255
MAX_PROVIDER = 100
MAX_CATEGORY = 100
MAX_API_BASE = 500
MAX_BACKEND_MODEL_NAME = 255
MAX_INT = 2**31 - 1
MAX_COST = Decimal("99999.9999999999")  # DECIMAL(15,10)
COST_QUANTUM = Decimal("1e-10")
MAX_METADATA_BYTES = 256 * 1024

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")

DEFAULT_CATEGORY = "Language Model"
DEFAULT_VERSION = "1.0"
FEATURE_FLAGS: tuple[tuple[str, str], ...] = (
    ("supports_function_calling", "function_calling"),
    ("supports_parallel_function_calling", "parallel_function_calling"),
    ("supports_tool_choice", "tool_choice"),
    ("supports_vision", "vision"),
    ("supports_tokenize", "tokenize"),
)

Source = Literal["db", "config"]


@dataclass(frozen=True, slots=True)
class Deployment:
    """One LiteLLM deployment, decrypted (``litellm_params``) and enriched (``model_info``)."""

    model_id: str
    model_name: str
    litellm_params: Mapping[str, Any]
    model_info: Mapping[str, Any]
    updated_at: datetime | None = None
    blocked: bool = False
    source: Source = "db"


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """The desired synced columns of one backend ``models`` row (plus what the upsert needs to decide)."""

    id: str
    name: str
    provider: str
    description: str | None
    category: str
    context_length: int | None
    input_cost_per_token: Decimal | None
    output_cost_per_token: Decimal | None
    supports_vision: bool
    supports_function_calling: bool
    supports_tool_choice: bool
    supports_parallel_function_calling: bool
    supports_streaming: bool
    features: tuple[str, ...]
    version: str
    metadata: Mapping[str, Any]
    api_base: str | None
    tpm: int | None
    rpm: int | None
    max_tokens: int | None
    litellm_model_id: str
    backend_model_name: str | None
    deployment_ids: tuple[str, ...] = field(default=())
    all_blocked: bool = False

    def to_json(self) -> dict[str, Any]:
        """The record as the upsert function's jsonb input (Decimals as exact JSON numbers)."""
        return {
            "id": self.id,
            "name": self.name,
            "provider": self.provider,
            "description": self.description,
            "category": self.category,
            "context_length": self.context_length,
            "input_cost_per_token": _json_decimal(self.input_cost_per_token),
            "output_cost_per_token": _json_decimal(self.output_cost_per_token),
            "supports_vision": self.supports_vision,
            "supports_function_calling": self.supports_function_calling,
            "supports_tool_choice": self.supports_tool_choice,
            "supports_parallel_function_calling": self.supports_parallel_function_calling,
            "supports_streaming": self.supports_streaming,
            "features": list(self.features),
            "version": self.version,
            "metadata": self.metadata,
            "api_base": self.api_base,
            "tpm": self.tpm,
            "rpm": self.rpm,
            "max_tokens": self.max_tokens,
            "litellm_model_id": self.litellm_model_id,
            "backend_model_name": self.backend_model_name,
            "deployment_ids": list(self.deployment_ids),
            "all_blocked": self.all_blocked,
        }


def _json_decimal(value: Decimal | None) -> str | None:
    # Sent as a JSON string: PostgreSQL reads it into numeric exactly (a float would lose digits).
    return None if value is None else format(value, "f")


# -- validation helpers (each raises MappingError naming the field and how to fix it) ------------


def _check_text(value: str, what: str, limit: int) -> str:
    if "\x00" in value:
        raise MappingError(f"{what} contains a NUL character, which PostgreSQL cannot store; fix it in LiteLLM")
    if len(value) > limit:
        raise MappingError(
            f"{what} is {len(value)} characters long; the backend column holds at most {limit}. "
            f"Shorten it in LiteLLM (Admin UI > Models > edit)."
        )
    return value


def _opt_text(value: Any, what: str, limit: int) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise MappingError(f"{what} must be a string, got {type(value).__name__}")
    text = str(value).strip()
    return _check_text(text, what, limit) if text else None


def check_model_name(name: Any) -> str:
    """The model name as the backend's ``models.id``, or a MappingError saying what is wrong with it."""
    if not isinstance(name, str) or not name.strip():
        raise MappingError("model_name is missing or empty; every LiteLLM model needs a model_name")
    if _CONTROL_CHARS.search(name):
        raise MappingError(
            f"model_name {name!r} contains control characters; rename the model in LiteLLM "
            "(PATCH /model/{model_id}/update)"
        )
    if len(name) > MAX_ID:
        raise MappingError(
            f"model_name is {len(name)} characters long; the backend's models.id holds at most {MAX_ID}. "
            f"Rename the model in LiteLLM to a shorter name (it is never truncated, to keep ids unique)."
        )
    return name


def _opt_int(value: Any, what: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise MappingError(f"{what} must be a whole number, got a boolean ({value})")
    number: Any = value
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise MappingError(f"{what} must be a whole number, got {value[:40]!r}") from None
    if isinstance(number, float | Decimal):
        if not math.isfinite(number) or number != int(number):
            raise MappingError(f"{what} must be a whole number, got {value!r}")
        number = int(number)
    if not isinstance(number, int):
        raise MappingError(f"{what} must be a whole number, got {type(value).__name__}")
    if number < 0 or number > MAX_INT:
        raise MappingError(f"{what} must be between 0 and {MAX_INT}, got {number}")
    return number


def _opt_cost(value: Any, what: str) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise MappingError(f"{what} must be a number (cost per token), got {type(value).__name__}")
    try:
        number = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise MappingError(f"{what} must be a number (cost per token), got {str(value)[:40]!r}") from None
    if not number.is_finite() or number < 0:
        raise MappingError(f"{what} must be a non-negative number, got {value!r}")
    number = number.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)
    if number > MAX_COST:
        raise MappingError(f"{what} is {value!r}; the backend column holds at most {MAX_COST}")
    return number


def _flag(info: Mapping[str, Any], key: str, *, default: bool) -> bool:
    value = info.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    raise MappingError(f"model_info.{key} must be true or false, got {value!r}")


def _url(value: Any) -> Any:
    """A URL with any embedded credential masked (``https://user:***@host``); other values as they are."""
    return redact_url(value) if isinstance(value, str) else value


def _first(*values: Any) -> Any:
    """The first value that is not None (0 and "" are values)."""
    for v in values:
        if v is not None:
            return v
    return None


# -- the mapping -----------------------------------------------------------------------------------


def canonical(deployments: Sequence[Deployment]) -> Deployment:
    """The deployment that describes the name: unblocked first, then most recently updated, then model_id."""
    return max(
        deployments,
        key=lambda d: (not d.blocked, d.updated_at or datetime.min, d.model_id),
    )


def provider_of(params: Mapping[str, Any], info: Mapping[str, Any]) -> str:
    explicit = _first(info.get("provider"), params.get("custom_llm_provider"))
    if isinstance(explicit, str) and explicit.strip():
        return explicit.strip()
    model = params.get("model")
    if isinstance(model, str) and "/" in model:
        prefix = model.split("/", 1)[0].strip()
        if prefix:
            return prefix
    return "unknown"


def backend_model_name_of(params: Mapping[str, Any]) -> str | None:
    model = params.get("model")
    if not isinstance(model, str) or not model:
        return None
    return model.split("/", 1)[1] if "/" in model else model


def features_of(info: Mapping[str, Any]) -> tuple[str, ...]:
    if _flag(info, "supports_embeddings", default=False) or _flag(info, "supports_embedding", default=False):
        base = "embeddings"
    elif _flag(info, "supports_convert", default=False):
        base = "convert"
    else:
        base = "chat"
    return (base, *(name for key, name in FEATURE_FLAGS if _flag(info, key, default=False)))


def metadata_of(dep: Deployment) -> dict[str, Any]:
    """``{litellm_model_info, litellm_params}`` of a deployment, with every credential removed."""
    metadata = {
        "litellm_model_info": strip_credentials(dict(dep.model_info)),
        "litellm_params": strip_credentials(dict(dep.litellm_params)),
    }
    try:
        size = len(orjson.dumps(metadata, default=str, option=orjson.OPT_NON_STR_KEYS))
    except TypeError:  # e.g. integers beyond 64 bits
        size = len(json.dumps(metadata, default=str))
    if size > MAX_METADATA_BYTES:
        raise MappingError(
            f"model_info/litellm_params of deployment {dep.model_id} are {size} bytes of JSON; "
            f"litemaas-hooks copies at most {MAX_METADATA_BYTES} bytes into models.metadata. "
            "Remove the bulky fields from the model in LiteLLM."
        )
    return metadata


def is_team_model(dep: Deployment) -> bool:
    return bool(dep.model_info.get("team_id"))


def map_model(name: str, deployments: Sequence[Deployment]) -> ModelRecord:
    """Map every deployment of ``name`` to one backend record; MappingError if that is impossible."""
    if not deployments:
        raise ValueError(f"map_model({name!r}) needs at least one deployment")
    model_id = check_model_name(name)
    for dep in deployments:
        if not isinstance(dep.litellm_params, Mapping):
            raise MappingError(f"litellm_params of deployment {dep.model_id} is not a JSON object")
        if not isinstance(dep.model_info, Mapping):
            raise MappingError(f"model_info of deployment {dep.model_id} is not a JSON object")
    dep = canonical(deployments)
    params, info = dep.litellm_params, dep.model_info

    display = _opt_text(info.get("display_name"), "model_info.display_name", MAX_NAME)
    category = _opt_text(info.get("category"), "model_info.category", MAX_CATEGORY)
    record = ModelRecord(
        id=model_id,
        name=display or model_id,
        provider=_check_text(provider_of(params, info), "provider", MAX_PROVIDER),
        description=_opt_text(info.get("description"), "model_info.description", 1_000_000),
        category=category or DEFAULT_CATEGORY,
        context_length=_opt_int(info.get("context_length"), "model_info.context_length"),
        input_cost_per_token=_opt_cost(
            _first(info.get("input_cost_per_token"), params.get("input_cost_per_token")),
            "input_cost_per_token",
        ),
        output_cost_per_token=_opt_cost(
            _first(info.get("output_cost_per_token"), params.get("output_cost_per_token")),
            "output_cost_per_token",
        ),
        supports_vision=_flag(info, "supports_vision", default=False),
        supports_function_calling=_flag(info, "supports_function_calling", default=False),
        supports_tool_choice=_flag(info, "supports_tool_choice", default=False),
        supports_parallel_function_calling=_flag(info, "supports_parallel_function_calling", default=False),
        supports_streaming=_flag(info, "supports_streaming", default=True),
        features=features_of(info),
        version=DEFAULT_VERSION,
        metadata=metadata_of(dep),
        api_base=_opt_text(_url(params.get("api_base")), "litellm_params.api_base", MAX_API_BASE),
        tpm=_opt_int(_first(params.get("tpm"), info.get("tpm")), "tpm"),
        rpm=_opt_int(_first(params.get("rpm"), info.get("rpm")), "rpm"),
        max_tokens=_opt_int(info.get("max_tokens"), "model_info.max_tokens"),
        litellm_model_id=_check_text(dep.model_id, "model_id", MAX_ID),
        backend_model_name=_opt_text(backend_model_name_of(params), "litellm_params.model", MAX_BACKEND_MODEL_NAME),
        deployment_ids=tuple(sorted(d.model_id for d in deployments)),
        all_blocked=all(d.blocked for d in deployments),
    )
    # by value too: a credential (of any deployment of the name, or a secret-named environment variable)
    # pasted into a field that does not look secret never reaches the backend
    return scrub_record(record, known_secrets(d.litellm_params for d in deployments))
