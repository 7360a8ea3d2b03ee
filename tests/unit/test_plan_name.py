"""planning.plan_name: the per-name rules the reconciler applies around mapping (no DB)."""

from __future__ import annotations

from typing import Any

import pytest

from litemaas_hooks.mapping import Deployment
from litemaas_hooks.planning import NOT_IN_TABLE, TEAM_MODEL, CurrentRow, RetireMissing, plan_name

PARAMS = {"model": "openai/x", "api_base": "http://a"}
SYNCED = CurrentRow("m", litellm_model_id="d1")  # a row a sync wrote


def dep(model_id: str = "d1", **info: Any) -> Deployment:
    return Deployment(model_id, "m", PARAMS, info)


def plan(deps: list[Deployment] | None, current: CurrentRow | None = None, **kw: Any) -> Any:
    kw.setdefault("sync_team_models", False)
    kw.setdefault("may_retire", True)
    kw.setdefault("in_table", True)
    return plan_name("m", deps, current, **kw)


def test_a_name_served_only_by_team_models_is_skipped_unless_asked() -> None:
    team = [dep(team_id="t1")]
    skipped = plan(team)
    assert (skipped.action, skipped.message) == ("skip", TEAM_MODEL)
    assert plan(team, sync_team_models=True).action == "create"


def test_team_deployments_do_not_describe_a_name_that_has_others() -> None:
    change = plan([dep("d-team", team_id="t1"), dep("d-own")])
    assert change.action == "create"
    assert change.record.litellm_model_id == "d-own"


@pytest.mark.parametrize(
    ("may_retire", "in_table", "action", "message"),
    [
        ("db-rows", False, "unchanged", NOT_IN_TABLE),  # maybe a config.yaml model: left alone
        ("db-rows", True, "retire", None),
        (True, False, "retire", None),
        (False, True, "unchanged", "missing from LiteLLM (use --retire-missing to retire)"),
    ],
)
def test_a_synced_name_without_deployments(
    may_retire: RetireMissing, in_table: bool, action: str, message: str | None
) -> None:
    change = plan(None, SYNCED, may_retire=may_retire, in_table=in_table)
    assert (change.action, change.message) == (action, message)


def test_a_mapping_failure_is_this_names_error() -> None:
    bad = Deployment("d1", "m", {"model": "openai/x", "api_base": "http://a\x00b"}, {})
    change = plan([bad])
    assert change.action == "error"
    assert "NUL character" in change.message
