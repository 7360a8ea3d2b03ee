"""Pure planning: desired records vs the backend's current rows -> what to do for each model name.

The backend's upsert function decides again in SQL, the same way (it never writes a row in sync), so
this plan is what ``backfill --dry-run`` shows and what keeps a warm run from sending unchanged
rows.

In sync = the row's compared columns equal the row that ANY live deployment of the name yields
(``ModelRecord.accepted``; the backend's own sync leaves a name on whichever deployment it processed
last), the availability rule holds, and no description is waiting to be filled in.

Availability (mirrored by the CASE in ``upsert_models_v1``; docs/backend-rows.md):
- a new row is 'available' ('unavailable' when every deployment is blocked);
- an existing row's availability is never changed by us, except for what we hid ourselves: a name
  whose deployments are all blocked is hidden ONCE (marker ``blocked``), and only when the row was
  written before the block (its metadata's ``model_info.blocked`` is not true); if someone (the
  backend's sync, an admin) shows it while it stays blocked, that choice stands until the block
  changes; a retired or blocked-hidden name that is served again is shown again; a row left
  unavailable by a deleted deployment is shown again when another deployment serves the name.
So with the backend running each side writes such a row at most once per backend sync.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import orjson

from litemaas_hooks.errors import MappingError, describe
from litemaas_hooks.mapping import (
    COMPARED_FIELDS,
    Deployment,
    ModelRecord,
    is_team_model,
    map_model,
)

log = logging.getLogger("litemaas_hooks.planning")

Action = Literal["create", "update", "unchanged", "retire", "skip", "error"]
# retire_missing="db-rows": retire backend rows gone from LiteLLM only when known to come from
# LiteLLM's database (a relay that cannot see config.yaml must not take a config-file model for a
# deleted one).
RetireMissing = bool | Literal["db-rows"]
NOT_IN_TABLE = (
    "not in LiteLLM's model table and not known to come from it (a config.yaml model?); "
    "left alone. Retire it with `litemaas-hooks backfill --retire-missing` if it is really gone"
)
HAND_MADE = "hand-made backend row (no LiteLLM metadata); left alone"
NOT_RETIRED = "missing from LiteLLM (use --retire-missing to retire)"
TEAM_MODEL = (
    "team model (model_info.team_id); set LITEMAAS_HOOKS_SYNC_TEAM_MODELS=true to sync team models"
)


@dataclass(frozen=True, slots=True)
class CurrentRow:
    """The synced columns of a backend ``models`` row (``models_snapshot_v1``)."""

    id: str
    name: str | None = None
    provider: str | None = None
    description: str | None = None
    category: str | None = None
    context_length: int | None = None
    input_cost_per_token: Decimal | None = None
    output_cost_per_token: Decimal | None = None
    supports_vision: bool | None = None
    supports_function_calling: bool | None = None
    supports_tool_choice: bool | None = None
    supports_parallel_function_calling: bool | None = None
    supports_streaming: bool | None = None
    features: tuple[str, ...] | None = None
    availability: str | None = "available"
    version: str | None = None
    metadata: Any = None  # any JSON an admin stored; a sync writes an object
    api_base: str | None = None
    tpm: int | None = None
    rpm: int | None = None
    max_tokens: int | None = None
    litellm_model_id: str | None = None
    backend_model_name: str | None = None
    hidden_reason: str | None = None

    @classmethod
    def from_db(cls, row: Mapping[str, Any]) -> CurrentRow:
        values = dict(row)
        if values.get("features") is not None:
            values["features"] = tuple(values["features"])
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})

    @property
    def from_litellm(self) -> bool:
        """Rows that a sync wrote (ours, the backend's or the old playbook's), never hand-made
        ones."""
        return self.litellm_model_id is not None or any(
            _jsonb_has(self.metadata, key) for key in ("litellm_model_info", "litellm_params")
        )

    @property
    def written_while_blocked(self) -> bool:
        """The row's metadata is a view of a blocked deployment (``model_info.blocked``, LiteLLM
        >= 1.108)."""
        metadata = self.metadata
        info = metadata.get("litellm_model_info") if isinstance(metadata, Mapping) else None
        return isinstance(info, Mapping) and info.get("blocked") is True

    @property
    def retired(self) -> bool:
        return self.hidden_reason == "retired"


def _jsonb_has(value: Any, key: str) -> bool:
    """PostgreSQL's ``jsonb ? key`` (what the upsert asks): an object's key, an array's string
    element, or the string itself (an admin may have stored any JSON in metadata)."""
    if isinstance(value, Mapping):
        return key in value
    if isinstance(value, list):
        return key in value
    return isinstance(value, str) and value == key


@dataclass(slots=True)
class PlannedChange:
    name: str
    action: Action
    record: ModelRecord | None = None
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    message: str | None = None


def desired_availability(record: ModelRecord, current: CurrentRow | None) -> str:
    """Mirror of the availability CASE in ``upsert_models_v1``."""
    if current is None:
        return "unavailable" if record.all_blocked else "available"
    if record.all_blocked:
        if current.hidden_reason is not None or current.written_while_blocked:
            # hidden once already (or retired), or whoever wrote the row saw the block (the
            # backend's sync shows blocked models): leave it as it is now
            return current.availability or "available"
        return "unavailable"
    if current.hidden_reason is not None:
        return "available"
    # Any other 'unavailable' is someone else's decision (an admin, or the backend's own sync, which
    # shows the row again itself at its next run): never undone by us, whatever the caller passes
    # (the relay role cannot un-hide a model), and it survives a delete + re-add of the name.
    return current.availability or "available"


def _same(old: Any, new: Any) -> bool:
    if old is None or new is None:
        return old is new
    if isinstance(old, Decimal) or isinstance(new, Decimal):
        return Decimal(str(old)) == Decimal(str(new))
    return bool(old == new)


def _differences(values: Mapping[str, Any], current: CurrentRow) -> dict[str, tuple[Any, Any]]:
    changes: dict[str, tuple[Any, Any]] = {}
    for name in COMPARED_FIELDS:
        old, new = getattr(current, name), values[name]
        if name == "features":
            new = tuple(new)
        if not _same(old, new):
            changes[name] = (old, new)
    return changes


def describes_a_deployment(record: ModelRecord, current: CurrentRow) -> bool:
    """True when the row's compared columns are those of ANY live deployment of the name."""
    return any(not _differences(alt, current) for alt in (record.accepted or (record.compared(),)))


def diff(record: ModelRecord, current: CurrentRow) -> dict[str, tuple[Any, Any]]:
    """``{field: (current, desired)}`` for every synced column the upsert would change."""
    if describes_a_deployment(record, current):
        changes = {}
    else:
        changes = _differences(record.compared(), current)
    if current.description is None and record.description is not None:
        changes["description"] = (None, record.description)
    availability = desired_availability(record, current)
    if availability != current.availability:
        changes["availability"] = (current.availability, availability)
    shown_again = current.hidden_reason is not None and not record.all_blocked
    if shown_again and "availability" not in changes:
        changes["hidden_reason"] = (current.hidden_reason, None)
    return changes


def plan_present(record: ModelRecord, current: CurrentRow | None) -> PlannedChange:
    """Plan for a name that has deployments in LiteLLM."""
    if current is None:
        return PlannedChange(record.id, "create", record)
    if not current.from_litellm:  # the backend function leaves such rows alone too
        return PlannedChange(record.id, "unchanged", message=HAND_MADE)
    changes = diff(record, current)
    return PlannedChange(record.id, "update" if changes else "unchanged", record, changes)


# Why a name with no deployment left in LiteLLM is not retired, by the code the relay's one-call
# delete (retire_models_v1, the same rules in the same order as plan_absent) answers with.
NOT_RETIRED_BECAUSE: dict[str, str] = {
    "absent": "not in LiteLLM nor in the backend",
    "already_retired": "already retired",
    "hand_made": HAND_MADE,
    "already_unavailable": "already unavailable",
}


def plan_absent(name: str, current: CurrentRow | None, *, may_retire: bool) -> PlannedChange:
    """Plan for a name with no deployment left in LiteLLM (sql/backend/repeatable/
    63_retire_models.sql makes the same decision in SQL: keep them in step)."""
    if current is None:
        return PlannedChange(name, "unchanged", message=NOT_RETIRED_BECAUSE["absent"])
    if current.retired:
        return PlannedChange(name, "unchanged", message=NOT_RETIRED_BECAUSE["already_retired"])
    if not current.from_litellm:
        return PlannedChange(name, "unchanged", message=NOT_RETIRED_BECAUSE["hand_made"])
    if current.availability == "unavailable":
        # already unavailable (the backend's sync or an admin did it): like the backend's own
        # markModelUnavailable, nothing more to do — no second cascade, no second audit row
        return PlannedChange(name, "unchanged", message=NOT_RETIRED_BECAUSE["already_unavailable"])
    if not may_retire:
        return PlannedChange(name, "unchanged", message=NOT_RETIRED)
    retired = {"availability": (current.availability, "unavailable")}
    return PlannedChange(name, "retire", changes=retired)


def mass_retire(count: int, total: int, *, percent: float, min_models: int) -> bool:
    """The mass-retire guard: retiring ``count`` of ``total`` LiteLLM-sourced models at once is held
    when it is at least ``min_models`` models (0 = guard off) and at least ``percent`` % of them."""
    if min_models <= 0 or count < min_models:
        return False
    return count * 100 >= percent * max(total, count)


def plan_name(
    name: str,
    deployments: Sequence[Deployment] | None,
    current: CurrentRow | None,
    *,
    sync_team_models: bool,
    may_retire: RetireMissing,
    in_table: bool,
) -> PlannedChange:
    """Plan for one name: the team-model rule, the not-in-table rule (``may_retire="db-rows"``: a
    name LiteLLM's table never had is left alone), then map and compare. ``in_table``: the name has
    rows in LiteLLM's table. A mapping failure is this name's error, never the batch's."""
    deps: Sequence[Deployment] = deployments or ()
    if deps and not sync_team_models:
        if all(is_team_model(d) for d in deps):
            return PlannedChange(name, "skip", message=TEAM_MODEL)
        deps = [d for d in deps if not is_team_model(d)]
    if not deps:
        unknown = may_retire == "db-rows" and not in_table
        if unknown and current is not None and current.from_litellm and not current.retired:
            return PlannedChange(name, "unchanged", message=NOT_IN_TABLE)
        return plan_absent(name, current, may_retire=bool(may_retire))
    try:
        change = plan_present(map_model(name, deps), current)
        if change.record is not None and change.action in {"create", "update"}:
            check_serialisable(change.record)
    except MappingError as exc:
        return PlannedChange(name, "error", message=str(exc))
    except Exception as exc:  # whatever the value: this model's error, never the batch's
        log.debug("mapping %r failed", name, exc_info=True)
        return PlannedChange(name, "error", message=f"cannot be mapped: {describe(exc)}")
    return change


def check_serialisable(record: ModelRecord) -> None:
    """The record as the upsert sends it must encode (a value too deep or too odd fails here, for
    this model alone, not in the batch's statement)."""
    try:
        orjson.dumps(record.to_json(), default=str, option=orjson.OPT_NON_STR_KEYS)
    # beyond orjson (>64-bit integers, depth > 254): what the connection falls back to
    except TypeError:
        json.dumps(record.to_json(), default=str)
