"""Unit tests of the pure planner: diffing and the availability rules, no database."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from litemaas_hooks.mapping import Deployment, map_model
from litemaas_hooks.planning import (
    CurrentRow,
    desired_availability,
    diff,
    plan_absent,
    plan_present,
)


def record(**info: Any) -> Any:
    return map_model(
        "m", [Deployment("d1", "m", {"model": "openai/x", "api_base": "http://a"}, info)]
    )


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


def test_admin_hidden_model_is_left_to_the_backend_but_sync_hidden_comes_back() -> None:
    rec = record()
    admin_hidden = current_of(rec, availability="unavailable")
    assert desired_availability(rec, admin_hidden) == "unavailable"
    retired = current_of(rec, availability="unavailable", hidden_reason="retired")
    assert desired_availability(rec, retired) == "available"


def test_a_hide_survives_a_recreated_deployment() -> None:
    # an admin hid the row, its deployment was deleted and re-added (new id): the hide stays
    rec = record()
    gone = current_of(rec, availability="unavailable", litellm_model_id="old-deployment")
    assert desired_availability(rec, gone) == "unavailable"
    ansible = current_of(rec, availability="unavailable", litellm_model_id="m")
    assert desired_availability(rec, ansible) == "unavailable"


def test_absent_names() -> None:
    rec = record()
    synced = current_of(rec)
    assert plan_absent("m", synced, may_retire=True).action == "retire"
    assert plan_absent("m", synced, may_retire=False).action == "unchanged"
    hand_made = CurrentRow(id="m", metadata={})
    assert plan_absent("m", hand_made, may_retire=True).action == "unchanged"
    assert (
        plan_absent("m", current_of(rec, hidden_reason="retired"), may_retire=True).action
        == "unchanged"
    )
    assert plan_absent("m", None, may_retire=True).action == "unchanged"
    assert (
        plan_absent("m", current_of(rec, availability="unavailable"), may_retire=True).action
        == "unchanged"
    )


def test_metadata_only_difference_is_in_sync_like_the_backends_models_equal() -> None:
    rec = record()
    assert (
        plan_present(rec, current_of(rec, metadata={"litellm_model_info": {"other": 1}})).action
        == "unchanged"
    )


def two_deployments() -> Any:
    a = Deployment(
        "a", "m", {"model": "openai/x", "api_base": "http://a"}, {"id": "a", "max_tokens": 1}
    )
    b = Deployment(
        "b",
        "m",
        {"model": "openai/y", "api_base": "http://b"},
        {"id": "b", "supports_vision": True},
    )
    return map_model("m", [a, b])


def test_a_row_describing_any_live_deployment_is_in_sync() -> None:
    rec = two_deployments()
    assert rec.litellm_model_id == "b"
    as_a = map_model(
        "m",
        [
            Deployment(
                "a",
                "m",
                {"model": "openai/x", "api_base": "http://a"},
                {"id": "a", "max_tokens": 1},
            )
        ],
    )
    assert plan_present(rec, current_of(as_a)).action == "unchanged"
    assert plan_present(rec, current_of(rec)).action == "unchanged"
    # a mix of the two describes neither
    mixed = current_of(as_a, api_base="http://b")
    assert plan_present(rec, mixed).action == "update"


def test_blocked_names_are_hidden_once_and_a_later_show_stands() -> None:
    blocked = map_model("m", [Deployment("d1", "m", {"model": "openai/x"}, {}, blocked=True)])
    assert desired_availability(blocked, None) == "unavailable"
    assert desired_availability(blocked, current_of(blocked)) == "unavailable"  # hide once
    shown_again = current_of(blocked, availability="available", hidden_reason="blocked")
    # the backend showed it: stands
    assert desired_availability(blocked, shown_again) == "available"
    assert plan_present(blocked, shown_again).action == "unchanged"
    unblocked = record()
    assert (
        desired_availability(
            unblocked, current_of(unblocked, availability="unavailable", hidden_reason="blocked")
        )
        == "available"
    )


def test_a_blocked_row_written_while_blocked_is_not_hidden() -> None:
    blocked = map_model(
        "m", [Deployment("d1", "m", {"model": "openai/x"}, {"blocked": True}, blocked=True)]
    )
    backend_wrote = current_of(
        blocked, availability="available", metadata={"litellm_model_info": {"blocked": True}}
    )
    assert desired_availability(blocked, backend_wrote) == "available"
    before_block = current_of(
        blocked, availability="available", metadata={"litellm_model_info": {"blocked": False}}
    )
    assert desired_availability(blocked, before_block) == "unavailable"
