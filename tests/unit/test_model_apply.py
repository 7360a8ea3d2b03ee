"""The pure parts of `apply` (desired body, plan diff, credential fingerprints, plan text) and
`show`'s verdict.
"""

from __future__ import annotations

from typing import Any

import pytest

from litemaas_hooks.model_apply import (
    MARKER,
    Current,
    Desired,
    Expected,
    current_from_model_info,
    deployment_id,
    desired,
    key_fingerprint,
    plan,
    plan_lines,
    summary,
)
from litemaas_hooks.model_file import parse_documents
from litemaas_hooks.model_show import ModelView, verdict

MASTER = "sk-master-" + "0" * 40
KEY = "sk-upstream-key-123456"


def spec(**fields: Any) -> Any:
    entry = {
        "model_name": "granite",
        "litellm_model": "openai/granite",
        "api_key": "env:K",
        **fields,
    }
    return parse_documents([("m.yml", [entry])])[0]


def want(key: str | None = KEY, **fields: Any) -> Desired:
    return desired(spec(**fields), key, MASTER)


def live(d: Desired, model_id: str | None = None, **info: Any) -> Current:
    """What LiteLLM's /model/info shows after creating ``d``: no api_key, db_model, the id."""
    params = {k: v for k, v in d.litellm_params.items() if k != "api_key"}
    mid = model_id or deployment_id(d.spec.model_name)
    entry = {
        "model_name": d.spec.model_name,
        "litellm_params": params,
        "model_info": {**d.model_info, "id": mid, "db_model": True, **info},
    }
    return current_from_model_info([entry])[0]


def ui_made(name: str = "granite", model_id: str = "ui-1", *, db_model: bool = True) -> Current:
    return Current(model_id, name, {"model": "openai/x"}, {"id": model_id, "db_model": db_model})


def test_desired_places_each_field_where_both_syncs_keep_it() -> None:
    d = want(
        context_length=131072,
        rpm=120,
        tpm=100000,
        description="IBM Granite",
        api_base="https://g/v1",
    )
    assert d.litellm_params == {
        "model": "openai/granite",
        "api_base": "https://g/v1",
        "rpm": 120,
        "tpm": 100000,
        "api_key": KEY,
    }
    assert d.model_info["max_tokens"] == 131072
    assert d.model_info["description"] == "IBM Granite"
    assert (
        d.model_info["provider"],
        d.model_info["category"],
        d.model_info["supports_streaming"],
    ) == ("openshift-ai", "general", True)
    assert d.model_info[MARKER] == {
        "managed_by": "litemaas-hooks apply",
        "api_key_ref": "env:K",
        "api_key_hmac": key_fingerprint(KEY, MASTER),
    }
    assert KEY not in str(d.model_info)


def test_key_fingerprint_is_keyed_and_short() -> None:
    fp = key_fingerprint(KEY, MASTER)
    assert len(fp) == 16
    assert int(fp, 16) >= 0
    assert fp != key_fingerprint(KEY + "x", MASTER)
    assert fp != key_fingerprint(KEY, MASTER + "x")
    assert KEY not in fp


def test_nothing_in_litellm_creates_with_a_stable_id() -> None:
    result = plan([want()], [])
    (step,) = result.steps
    assert step.action == "create"
    assert step.model_id == deployment_id("granite")
    assert step.body["model_info"]["id"] == deployment_id("granite")
    assert step.body["litellm_params"]["api_key"] == KEY
    assert deployment_id("granite") == deployment_id("granite") != deployment_id("granite2")
    assert result.changes == 1


def test_same_state_is_unchanged_and_writes_nothing() -> None:
    d = want(context_length=8192, rpm=1)
    result = plan([d], [live(d)])
    assert [s.action for s in result.steps] == ["unchanged"]
    assert result.changes == 0
    assert "dry run: would create 0, would update 0, would delete 0, unchanged 1" in summary(
        result, dry_run=True
    )


def test_a_changed_field_updates_in_place_with_only_that_parameter() -> None:
    old, new = want(rpm=120), want(rpm=240)
    (step,) = plan([new], [live(old)]).steps
    assert step.action == "update"
    assert step.model_id == deployment_id("granite")
    assert step.changes == {"rpm": (120, 240)}
    assert step.body["litellm_params"] == {"rpm": 240}
    assert step.body["model_info"]["id"] == deployment_id(
        "granite"
    )  # LiteLLM keeps model_info.id = model_id


def test_a_new_key_value_is_an_update_and_never_in_the_plan_text() -> None:
    old, new = want(key="sk-old-value-1"), want(key="sk-new-value-2")
    result = plan([new], [live(old)])
    (step,) = result.steps
    assert step.action == "update"
    assert step.body["litellm_params"]["api_key"] == "sk-new-value-2"
    text = "\n".join(plan_lines(result, {"granite": new.spec}))
    assert "api_key: 'env:K' -> 'env:K (new value)'" in text
    assert "sk-new-value-2" not in text
    assert "sk-old-value-1" not in text


def test_a_field_left_out_of_the_file_is_noted_not_unset() -> None:
    (step,) = plan([want()], [live(want(rpm=5))]).steps
    assert step.action == "unchanged"
    assert any("rpm is 5 in LiteLLM but not in the file: left as it is" in n for n in step.notes)


def test_a_same_named_model_made_elsewhere_is_an_error_unless_adopted() -> None:
    (step,) = plan([want()], [ui_made()]).steps
    assert step.action == "error"
    assert "made outside apply" in (step.message or "")
    assert "--adopt" in (step.message or "")
    (adopted,) = plan([want()], [ui_made()], adopt=True).steps
    assert adopted.action == "update"
    assert adopted.model_id == "ui-1"
    assert adopted.body["model_info"]["id"] == "ui-1"
    (config,) = plan([want()], [ui_made(db_model=False)], adopt=True).steps
    assert config.action == "error"
    assert "config.yaml" in (config.message or "")


def test_prune_deletes_only_what_apply_made() -> None:
    gone = want(key=None)
    gone_live = Current(
        "x-1", "old", {"model": "openai/old"}, {**gone.model_info, "id": "x-1", "db_model": True}
    )
    current = [gone_live, ui_made("ui-model"), ui_made("config-model", "c-1", db_model=False)]
    assert [s.action for s in plan([], current).steps] == []
    steps = plan([], current, prune=True).steps
    assert [(s.action, s.model_name, s.model_id) for s in steps] == [("delete", "old", "x-1")]


def test_a_second_deployment_made_by_apply_is_removed() -> None:
    d = want()
    steps = plan([d], [live(d), live(d, model_id="extra")]).steps
    assert [(s.action, s.model_id) for s in steps] == [
        ("unchanged", deployment_id("granite")),
        ("delete", "extra"),
    ]


def test_availability_unavailable_blocks_or_says_why_not() -> None:
    d = want(availability="unavailable")
    (create,) = plan([d], []).steps
    assert create.block is True
    (blocked,) = plan([d], [live(d, blocked=False)]).steps
    assert blocked.action == "update"
    assert blocked.block is True
    assert blocked.changes == {"availability": ("available", "unavailable")}
    (old,) = plan([d], [live(d)], can_block=False).steps
    assert old.action == "unchanged"
    assert old.block is None
    assert any("no /model/block" in n for n in old.notes)
    (unblock,) = plan([want()], [live(want(), blocked=True)]).steps
    assert unblock.block is False


def test_plan_text_says_per_field_what_litemaas_sets_itself() -> None:
    d = want(context_length=131072, display_name="Granite 8B", category="code")
    text = "\n".join(plan_lines(plan([d], []), {"granite": d.spec}))
    assert "context_length 131072 -> model_info.max_tokens" in text
    assert (
        "display_name 'Granite 8B' -> model_info.display_name; the backend's `name` is model_name"
        in text
    )
    assert "provider 'openshift-ai' -> model_info.provider" in text
    assert ": 'openai'" in text
    assert (
        "category 'code' -> model_info.category; the backend's `category` is 'Language Model'"
        in text
    )
    assert "api_key env:K" in text
    assert KEY not in text


@pytest.mark.parametrize(
    ("row", "expected", "problems"),
    [
        (None, Expected("m"), ["no row yet"]),
        (
            {"availability": "available", "context_length": 5},
            Expected("m", availability="available", context_length=5),
            [],
        ),
        ({"availability": "available", "rpm": 1}, Expected("m", rpm=2), ["rpm 1 (want 2)"]),
        (None, Expected("m", gone=True), []),
        ({"availability": "available"}, Expected("m", gone=True), ["availability 'available'"]),
    ],
)
def test_expected_backend_rows(row: Any, expected: Expected, problems: list[str]) -> None:
    assert expected.problems(row) == problems


DEP = [{"model_id": "d1", "blocked": False, "litellm_params": {}, "model_info": {}}]


@pytest.mark.parametrize(
    ("view", "start", "ok"),
    [
        (
            ModelView("m", deployments=DEP, backend_row={"availability": "available"}),
            "in sync",
            True,
        ),
        (
            ModelView("m", deployments=DEP),
            "missing in the backend: subscriptions would fail with subscriptions_model_id_fkey",
            False,
        ),
        (
            ModelView("m", deployments=DEP, events=[{"id": 1, "status": "pending"}]),
            "pending:",
            False,
        ),
        (
            ModelView(
                "m", deployments=DEP, events=[{"id": 7, "status": "dead", "last_error": "boom"}]
            ),
            "dead: 1 outbox event(s) failed (boom); fix the cause, then `litemaas-hooks replay 7`",
            False,
        ),
        (ModelView("m", backend_row={"availability": "unavailable"}), "retired:", True),
        (
            ModelView("m", backend_row={"availability": "available"}, sync="retired"),
            "gone from LiteLLM",
            False,
        ),
        (
            ModelView(
                "m",
                deployments=DEP,
                backend_row={"availability": "available"},
                sync="updated",
                sync_changes=["rpm"],
            ),
            "out of date: the backend row differs from LiteLLM (rpm)",
            False,
        ),
        (ModelView("m"), "unknown:", False),
    ],
)
def test_show_verdict(view: ModelView, start: str, ok: bool) -> None:
    text, in_sync = verdict(view)
    assert text.startswith(start), text
    assert in_sync is ok


def test_a_key_left_out_of_the_file_and_foreign_twins_are_noted() -> None:
    (step,) = plan([want(key=None)], [live(want())]).steps
    assert step.action == "update"  # the marker no longer names a key reference
    assert "api_key" not in step.body.get("litellm_params", {})
    assert any("api_key is no longer in the file: LiteLLM keeps the key" in n for n in step.notes)
    (twin,) = plan([want()], [live(want()), ui_made()]).steps
    assert twin.action == "unchanged"
    assert any(
        "1 more deployment(s) of this name made outside apply (ui-1): left alone" in n
        for n in twin.notes
    )
