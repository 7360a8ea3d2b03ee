"""Unit tests of the pure planner: diffing and the availability rules, no database."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from litemaas_hooks.mapping import Deployment, map_model
from litemaas_hooks.planning import CurrentRow, desired_availability, diff, plan_absent, plan_present


def record(**info: Any) -> Any:
    return map_model("m", [Deployment("d1", "m", {"model": "openai/x", "api_base": "http://a"}, info)])


def current_of(rec: Any, **overrides: Any) -> CurrentRow:
    values = {k: v for k, v in rec.to_json().items() if k in CurrentRow.__dataclass_fields__}
    values["features"] = tuple(values["features"])
    for cost in ("input_cost_per_token", "output_cost_per_token"):
        values[cost] = None if values[cost] is None else Decimal(values[cost])
    values["availability"] = "available"
    values.update(overrides)
    return CurrentRow(**values)


def test_identical_row_is_unchanged() -> None:
    rec = record(input_cost_per_token=1e-6)
    assert plan_present(rec, current_of(rec)).action == "unchanged"


def test_new_row_is_created() -> None:
    assert plan_present(record(), None).action == "create"


def test_changed_field_is_listed() -> None:
    rec = record()
    change = plan_present(rec, current_of(rec, provider="litellm", features=None))
    assert change.action == "update"
    assert change.changes["provider"] == ("litellm", "openai")
    assert change.changes["features"] == (None, ("chat",))


def test_decimal_compare_is_by_value() -> None:
    rec = record(input_cost_per_token=1e-6)
    cur = current_of(rec, input_cost_per_token=Decimal("0.0000010000"))
    assert "input_cost_per_token" not in diff(rec, cur)


def test_description_only_fills_a_null() -> None:
    rec = record(description="new")
    assert "description" not in diff(rec, current_of(rec, description="admin text"))
    assert diff(rec, current_of(rec, description=None))["description"] == (None, "new")


def test_admin_hidden_model_stays_hidden_but_sync_hidden_comes_back() -> None:
    rec = record()
    admin_hidden = current_of(rec, availability="unavailable")
    assert desired_availability(rec, admin_hidden) == "unavailable"
    retired = current_of(rec, availability="unavailable", hidden_reason="retired")
    assert desired_availability(rec, retired) == "available"


def test_recreated_with_new_deployment_id_comes_back() -> None:
    rec = record()
    gone = current_of(rec, availability="unavailable", litellm_model_id="old-deployment")
    assert desired_availability(rec, gone) == "available"
    ansible = current_of(rec, availability="unavailable", litellm_model_id="m")
    assert desired_availability(rec, ansible) == "unavailable"


def test_absent_names() -> None:
    rec = record()
    synced = current_of(rec)
    assert plan_absent("m", synced, may_retire=True).action == "retire"
    assert plan_absent("m", synced, may_retire=False).action == "unchanged"
    hand_made = CurrentRow(id="m", metadata={})
    assert plan_absent("m", hand_made, may_retire=True).action == "unchanged"
    assert plan_absent("m", current_of(rec, hidden_reason="retired"), may_retire=True).action == "unchanged"
    assert plan_absent("m", None, may_retire=True).action == "unchanged"
