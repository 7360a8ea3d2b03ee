"""The status lines of issue 21 (items 4 and 5), without a database: a read-only URL's problem line,
a running full reconcile read from ``status_reconcile``'s row, and how both are shown."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from litemaas_hooks import outbox
from litemaas_hooks.connections import DatabaseKind
from litemaas_hooks.settings import Settings, Which, load_settings
from litemaas_hooks.status import (
    Drift,
    RunningReconcile,
    StatusReport,
    format_status,
    read_only_kind,
    read_only_problem,
    reconcile_from_row,
    verdict,
)

URL = "postgresql://u:p@h/db"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _settings(litellm_var: str = "LITELLM_DATABASE_URL") -> Settings:
    return load_settings({"LITEMAAS_DATABASE_URL": URL, litellm_var: URL})


def _kind(*, in_recovery: bool = False, read_only: bool = False) -> DatabaseKind:
    return DatabaseKind("db1", True, True, True, True, in_recovery, read_only)


def test_a_writable_database_has_no_read_only_line() -> None:
    assert read_only_kind(_kind()) is None
    assert read_only_problem(_settings(), "litellm", _kind()) is None
    assert read_only_problem(_settings(), "backend", _kind()) is None


@pytest.mark.parametrize(
    ("which", "litellm_var", "var", "where"),
    [
        ("litellm", "LITELLM_DATABASE_URL", "LITELLM_DATABASE_URL", 'LiteLLM\'s database "db1"'),
        ("litellm", "DATABASE_URL", "DATABASE_URL", 'LiteLLM\'s database "db1"'),
        ("backend", "LITELLM_DATABASE_URL", "LITEMAAS_DATABASE_URL", 'the backend database "db1"'),
    ],
)
def test_a_standby_names_the_variable_the_database_and_the_writer_endpoint(
    which: Which, litellm_var: str, var: str, where: str
) -> None:
    kind = _kind(in_recovery=True, read_only=True)  # a standby's sessions are read-only too
    assert read_only_kind(kind) == "standby"
    text = read_only_problem(_settings(litellm_var), which, kind)
    assert text is not None
    assert text.startswith(f"{var} points at a read-only server: {where} is a hot standby")
    assert f"set {var} to the primary (read-write) server" in text
    assert "the cluster's writer endpoint, not the reader endpoint" in text
    assert "\n" not in text


def test_a_read_only_session_says_how_to_turn_it_off() -> None:
    kind = _kind(read_only=True)
    assert read_only_kind(kind) == "session"
    text = read_only_problem(_settings(), "backend", kind)
    assert text is not None
    assert text.startswith("LITEMAAS_DATABASE_URL opens read-only sessions: the backend database")
    assert "the relay cannot write the backend's models there" in text
    assert "RESET default_transaction_read_only" in text


def _row(**kwargs: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "has_state": True,
        "last_started_at": None,
        "last_finished_at": None,
        "last_runner": None,
        "last_summary": None,
        "age_seconds": None,
        "running_pid": None,
        "running_application": None,
        "started_seconds_ago": None,
    }
    row.update(kwargs)
    return row


def test_the_lock_holder_is_a_running_reconcile_with_who_and_since_when() -> None:
    row = _row(
        last_started_at=T0 + timedelta(hours=1),
        last_finished_at=T0,
        last_runner="w-1",
        age_seconds=3605.0,
        running_pid=42,
        running_application="relay-0:litellm",
        started_seconds_ago=5.0,
    )
    last, running = reconcile_from_row(row)
    assert last is not None
    assert last.age_seconds == 3605.0
    assert running == RunningReconcile(42, "relay-0:litellm", "w-1", 5.0)


def test_a_lock_holder_that_has_not_recorded_its_start_yet_has_no_runner_nor_age() -> None:
    row = _row(last_started_at=T0, last_finished_at=T0 + timedelta(seconds=1), last_runner="old")
    _, running = reconcile_from_row({**row, "running_pid": 7, "started_seconds_ago": 99.0})
    assert running == RunningReconcile(7, None, None, None)


def test_without_a_lock_holder_nothing_runs_unless_a_lease_is_live() -> None:
    unfinished = _row(last_started_at=T0, last_runner="w-2", started_seconds_ago=30.0)
    assert reconcile_from_row(unfinished)[1] is None  # a lock is what counts, by default
    assert reconcile_from_row(unfinished, lease_seconds=10.0)[1] is None  # lease expired
    _, running = reconcile_from_row(unfinished, lease_seconds=60.0)
    assert running == RunningReconcile(None, None, "w-2", 30.0, lease=True)
    finished = _row(last_started_at=T0, last_finished_at=T0, started_seconds_ago=1.0)
    assert reconcile_from_row(finished, lease_seconds=60.0)[1] is None
    stepped_back = _row(last_started_at=T0, started_seconds_ago=-5.0)  # the clock stepped back
    assert reconcile_from_row(stepped_back, lease_seconds=60.0)[1] is None


def test_no_state_row_is_no_last_reconcile() -> None:
    assert reconcile_from_row(_row(has_state=False)) == (None, None)
    last, _ = reconcile_from_row(_row(last_finished_at=T0, age_seconds=-3.0))
    assert last is not None
    assert last.age_seconds == 0.0


def _report(**kwargs: Any) -> StatusReport:
    report = StatusReport(litellm_db="postgresql://u:***@h/l", backend_db="postgresql://u:***@h/b")
    report.trigger = outbox.TriggerState(True, True, True, True)
    report.counts = outbox.OutboxCounts(0, 0, 0, None)
    report.drift = Drift(checked=True)
    for k, v in kwargs.items():
        setattr(report, k, v)
    return report


def test_a_running_reconcile_is_healthy_and_says_so() -> None:
    report = _report(running_reconcile=RunningReconcile(42, "relay-0:litellm", "w-1", 5.0))
    text = format_status(report)
    assert verdict(report).endswith("backend in sync with LiteLLM, a full reconcile is running")
    assert (
        "  full reconcile   : RUNNING now for 5.0s, by w-1 (session relay-0:litellm, pid 42, "
        "holding the fleet-wide lock): "
    ) in text
    assert json.loads(report.to_json())["full_reconcile_running"] == {
        "pid": 42,
        "application_name": "relay-0:litellm",
        "runner": "w-1",
        "seconds": 5.0,
        "lease": False,
    }
    lease = _report(running_reconcile=RunningReconcile(None, None, "w-2", None, lease=True))
    assert "RUNNING now, by w-2 (its lease row: transaction pooling" in format_status(lease)


def test_nothing_running_and_everything_writable_adds_nothing() -> None:
    report = _report()
    text = format_status(report)
    assert "RUNNING" not in text
    assert "READ-ONLY" not in text
    data = json.loads(report.to_json())
    assert data["full_reconcile_running"] is None
    assert data["read_only"] == {"litellm": None, "backend": None}


def test_a_read_only_database_is_marked_in_the_details() -> None:
    report = _report(read_only={"litellm": "standby", "backend": "session"})
    lines = format_status(report).splitlines()
    assert "  LiteLLM database : postgresql://u:***@h/l (READ-ONLY: a hot standby)" in lines
    assert "  backend database : postgresql://u:***@h/b (READ-ONLY session)" in lines
