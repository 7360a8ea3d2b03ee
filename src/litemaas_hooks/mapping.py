"""Pure mapping: the LiteLLM deployments of one ``model_name`` -> one backend ``models`` record.

The rules are those of DESIGN.md "Mapping" (they match what the LiteMaaS backend's own sync writes,
so the two never fight). No I/O here: inputs are already decrypted and enriched by
``litellm_source``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal

import orjson

from litemaas_hooks.errors import MappingError
from litemaas_hooks.redaction import (
    known_secrets,
    redact_url,
    scrub_record,
    strip_metadata,
    strip_model_info,
)

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

# The columns we compare to decide whether a row needs writing: every column the backend's sync
# writes except ``metadata`` (its ``modelsEqual`` does not compare it either, so a metadata-only
# difference can make neither side rewrite) and ``availability`` / ``description`` (own rules).
COMPARED_FIELDS: tuple[str, ...] = (
    "name",
    "provider",
    "category",
    "context_length",
    "input_cost_per_token",
    "output_cost_per_token",
    "supports_vision",
    "supports_function_calling",
    "supports_tool_choice",
    "supports_parallel_function_calling",
    "supports_streaming",
    "features",
    "version",
    "api_base",
    "tpm",
    "rpm",
    "max_tokens",
    "litellm_model_id",
    "backend_model_name",
)


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
    created_at: datetime | None = None
    # ``model_info`` as ``(shared, own)`` when it is ``{**shared, **own}`` and ``shared`` is one
    # object for many deployments (LiteLLM's cost-map answer): its credential removal is then done
    # once
    info_parts: tuple[Mapping[str, Any], Mapping[str, Any]] | None = field(
        default=None, compare=False, repr=False
    )
    # the plaintext of the deployment's own credentials (``redaction.credential_values``): only to
    # mask them by value wherever else they appear in the row; never mapped, compared or shown
    secrets: frozenset[str] = field(default=frozenset(), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """The desired synced columns of one backend ``models`` row (plus what the upsert needs to
    decide)."""

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
    # The compared columns of the row each live deployment yields: a row equal to ANY of them is in
    # sync (the backend's own sync leaves the name on whichever deployment it processed last).
    accepted: tuple[Mapping[str, Any], ...] = field(default=())

    def compared(self) -> dict[str, Any]:
        """The columns whose difference makes us write the row (``COMPARED_FIELDS``)."""
        return {name: getattr(self, name) for name in COMPARED_FIELDS}

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
            "accepted": [_json_compared(a) for a in self.accepted],
        }


def _json_compared(values: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(values)
    for k in ("input_cost_per_token", "output_cost_per_token"):
        out[k] = _json_decimal(out[k])
    out["features"] = list(out["features"])
    return out


def _json_decimal(value: Decimal | None) -> str | None:
    # Sent as a JSON string: PostgreSQL reads it into numeric exactly (a float would lose digits).
    return None if value is None else format(value, "f")


# -- validation helpers (each raises MappingError naming the field and how to fix it) ------------


def _check_text(value: str, what: str, limit: int) -> str:
    if "\x00" in value:
        raise MappingError(
            f"{what} contains a NUL character, which PostgreSQL cannot store; fix it in LiteLLM"
        )
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


# What makes a model name blank, one rule for Python and SQL (litellm_source passes it to the
# queries' btrim): every character str.isspace() counts (" ", "\t", "\u00a0", "\u3000", ...) and the
# invisible zero-width ones. SQL's btrim alone trims only " ": "\u00a0" was a name there and blank
# here.
# Every whitespace character is below U+3001 (tests/unit/test_hot_path_sql.py checks all of
# Unicode): scanning 12,289 code points, not 1.1 million, keeps ~0.25 s off every process's start.
_ZERO_WIDTH = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"}
_SPACE_BELOW = 0x3001
BLANK_CHARS = "".join(
    sorted({chr(c) for c in range(_SPACE_BELOW) if chr(c).isspace()} | _ZERO_WIDTH)
)


def is_blank_name(name: str) -> bool:
    """True when ``name`` is empty or only whitespace / invisible characters (``BLANK_CHARS``)."""
    return not name.strip(BLANK_CHARS)


def check_model_name(name: Any) -> str:
    """The model name as the backend's ``models.id``, or a MappingError saying what is wrong with
    it."""
    if not isinstance(name, str) or is_blank_name(name):
        raise MappingError(
            "model_name is missing or blank (empty, or only whitespace or invisible characters "
            f"such as {name!r}); every LiteLLM model needs a visible model_name: rename it "
            "in LiteLLM"
            if isinstance(name, str)
            else "model_name is missing or empty; every LiteLLM model needs a model_name"
        )
    if _CONTROL_CHARS.search(name):
        raise MappingError(
            f"model_name {name!r} contains control characters; rename the model in LiteLLM "
            "(PATCH /model/{model_id}/update)"
        )
    if len(name) > MAX_ID:
        raise MappingError(
            f"model_name is {len(name)} characters long; the backend's models.id holds at most "
            f"{MAX_ID}. Rename the model in LiteLLM to a shorter name (it is never truncated, to "
            "keep ids unique)."
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
    if isinstance(number, Decimal) and (not number.is_finite() or number.adjusted() > 18):
        # checked first: a signaling NaN or 1e999999999 must not reach float() / int()
        raise MappingError(
            f"{what} must be a whole number between 0 and {MAX_INT}, got {str(value)[:40]!r}"
        )
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
        raise MappingError(
            f"{what} must be a number (cost per token), got {str(value)[:40]!r}"
        ) from None
    if not number.is_finite() or number < 0:
        raise MappingError(f"{what} must be a non-negative number, got {str(value)[:40]!r}")
    if number > MAX_COST:  # before quantize, which raises InvalidOperation beyond 28 digits
        raise MappingError(
            f"{what} is {str(value)[:40]!r}; the backend column holds at most {MAX_COST}"
        )
    return number.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)


def _url(value: Any) -> Any:
    """A URL with any embedded credential masked (``https://user:***@host``); other values as they
    are."""
    return redact_url(value) if isinstance(value, str) else value


# -- the mapping -----------------------------------------------------------------------------------


def canonical(deployments: Sequence[Deployment]) -> Deployment:
    """The deployment the backend's sync leaves the name on: the last one in ``/model/info`` order,
    i.e. the proxy's router order, i.e. the order it loaded them — the last created (then the most
    recently updated, then model_id)."""
    return max(
        deployments,
        key=lambda d: (d.created_at or datetime.min, d.updated_at or datetime.min, d.model_id),
    )


def could_be_last(dep: Deployment, chosen: Deployment) -> bool:
    """Whether the proxy may list ``dep`` after ``chosen`` (so the backend may end on it): unknown
    dates, or ``dep`` was changed after ``chosen`` was created (an updated row moves in the table,
    and a proxy that loads the table anew lists rows in table order)."""
    if dep is chosen:
        return True
    if chosen.created_at is None or dep.updated_at is None:
        return True
    return dep.updated_at > chosen.created_at


def js_truthy(value: Any) -> bool:
    """JavaScript truthiness (the backend computes ``a || b`` in TypeScript)."""
    if value is None or value is False:
        return False
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return value == value and value != 0  # NaN and 0 are falsy
    if isinstance(value, str):
        return value != ""
    return True


def js_or(*values: Any) -> Any:
    """``a || b || ...`` as JavaScript evaluates it (the last value when none is truthy)."""
    for v in values[:-1]:
        if js_truthy(v):
            return v
    return values[-1] if values else None


def provider_of(params: Mapping[str, Any]) -> str:
    """``custom_llm_provider || (model has '/' ? prefix : 'unknown')``, as the backend computes
    it."""
    explicit = params.get("custom_llm_provider")
    if js_truthy(explicit):
        return str(explicit)
    model = params.get("model")
    if isinstance(model, str) and "/" in model:
        return model.split("/", 1)[0]
    return "unknown"


def backend_model_name_of(params: Mapping[str, Any]) -> str | None:
    model = params.get("model")
    if not isinstance(model, str) or not model:
        return None
    return model.split("/", 1)[1] if "/" in model else model


def _js_flag(info: Mapping[str, Any], key: str) -> bool:
    """``model_info.X || false`` (a "true"/"false" string is read as PostgreSQL reads it)."""
    value = info.get(key)
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    return js_truthy(value)


def features_of(info: Mapping[str, Any]) -> tuple[str, ...]:
    """The backend's write order: base type, then function_calling, parallel, tool_choice, vision,
    tokenize."""
    if _js_flag(info, "supports_embeddings") or _js_flag(info, "supports_embedding"):
        base = "embeddings"
    elif _js_flag(info, "supports_convert"):
        base = "convert"
    else:
        base = "chat"
    return (base, *(name for key, name in FEATURE_FLAGS if _js_flag(info, key)))


def metadata_of(dep: Deployment) -> dict[str, Any]:
    """``{litellm_model_info, litellm_params}`` of a deployment, with every credential removed."""
    metadata = {
        "litellm_model_info": strip_model_info(dep.model_info, dep.info_parts),
        "litellm_params": strip_metadata(dict(dep.litellm_params)),
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


def _cost(info: Mapping[str, Any], params: Mapping[str, Any], key: str) -> Decimal | None:
    # ``model_info.X || litellm_params.X``: a 0 in model_info falls through (0 || undefined -> NULL)
    return _opt_cost(js_or(info.get(key), params.get(key)), key)


def map_deployment(model_id: str, dep: Deployment) -> ModelRecord:
    """The row the backend's sync writes for this one deployment (``/model/info`` view of it)."""
    params, info = dep.litellm_params, dep.model_info
    if not isinstance(params, Mapping):
        raise MappingError(f"litellm_params of deployment {dep.model_id} is not a JSON object")
    if not isinstance(info, Mapping):
        raise MappingError(f"model_info of deployment {dep.model_id} is not a JSON object")
    context = _opt_int(info.get("max_tokens"), "model_info.max_tokens")
    return ModelRecord(
        id=model_id,
        name=model_id,
        provider=_check_text(provider_of(params), "provider", MAX_PROVIDER),
        description=_opt_text(info.get("description"), "model_info.description", 1_000_000),
        category=DEFAULT_CATEGORY,
        context_length=context,
        input_cost_per_token=_cost(info, params, "input_cost_per_token"),
        output_cost_per_token=_cost(info, params, "output_cost_per_token"),
        supports_vision=_js_flag(info, "supports_vision"),
        supports_function_calling=_js_flag(info, "supports_function_calling"),
        supports_tool_choice=_js_flag(info, "supports_tool_choice"),
        supports_parallel_function_calling=_js_flag(info, "supports_parallel_function_calling"),
        supports_streaming=True,
        features=features_of(info),
        version=DEFAULT_VERSION,
        metadata=metadata_of(dep),
        api_base=_opt_text(_url(params.get("api_base")), "litellm_params.api_base", MAX_API_BASE),
        tpm=_opt_int(params.get("tpm"), "litellm_params.tpm"),
        rpm=_opt_int(params.get("rpm"), "litellm_params.rpm"),
        max_tokens=context,
        litellm_model_id=_check_text(str(info.get("id") or dep.model_id), "model_info.id", MAX_ID),
        backend_model_name=_opt_text(
            backend_model_name_of(params), "litellm_params.model", MAX_BACKEND_MODEL_NAME
        ),
    )


def map_model(name: str, deployments: Sequence[Deployment]) -> ModelRecord:
    """Map every deployment of ``name`` to one backend record; MappingError if that is impossible.

    The record describes the canonical deployment; ``accepted`` lists what every live deployment
    yields, so a row describing any of them is in sync.
    """
    if not deployments:
        raise ValueError(f"map_model({name!r}) needs at least one deployment")
    model_id = check_model_name(name)
    # by value too: a credential (of any deployment of the name, or a secret-named environment
    # variable) pasted into a field that does not look secret never reaches the backend
    secrets = known_secrets(
        (d.litellm_params for d in deployments), extra=[s for d in deployments for s in d.secrets]
    )
    records = {
        dep.model_id: scrub_record(map_deployment(model_id, dep), secrets) for dep in deployments
    }
    chosen = records[canonical(deployments).model_id]
    # every deployment the backend may end on (blocked ones too: /model/info lists them). Its sync
    # processes each deployment of the name in /model/info order and keeps the last; a row on any
    # other deployment is one it rewrites at its next pass anyway, so we may as well move it now.
    chosen_dep = canonical(deployments)
    accepted: list[Mapping[str, Any]] = []
    for dep in sorted(
        (d for d in deployments if could_be_last(d, chosen_dep)), key=lambda d: d.model_id
    ):
        compared = records[dep.model_id].compared()
        if compared not in accepted:
            accepted.append(compared)
    return replace(
        chosen,
        deployment_ids=tuple(sorted(d.model_id for d in deployments)),
        all_blocked=all(d.blocked for d in deployments),
        accepted=tuple(accepted),
    )
