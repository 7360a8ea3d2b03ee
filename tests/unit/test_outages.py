"""Which database errors are outages or contention
(never an attempt) and which are the data's fault."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from litemaas_hooks.outages import classify, explain


@pytest.mark.parametrize(
    ("sqlstate", "kind"),
    [
        ("25006", "outage"),  # read_only_sql_transaction: default_transaction_read_only, a standby
        ("53100", "outage"),  # disk_full
        ("53200", "outage"),  # out_of_memory
        ("53300", "outage"),  # too_many_connections
        ("57P01", "outage"),  # admin_shutdown
        ("57P02", "outage"),  # crash_shutdown
        ("57P03", "outage"),  # cannot_connect_now (starting up, failover in progress)
        ("08006", "outage"),  # connection_failure
        ("58030", "outage"),  # io_error
        ("55P03", "contention"),  # lock_not_available (our lock_timeout)
        ("40001", "contention"),  # serialization_failure
        ("40P01", "contention"),  # deadlock_detected
        ("57014", None),  # query_canceled (statement_timeout): the batch's failure, an attempt
        ("25P03", "outage"),  # idle_in_transaction_session_timeout: the server ended the session
        ("23514", None),  # check_violation: an admin's CHECK rejects this row
        ("23502", None),  # not_null_violation
        ("22003", None),  # numeric_value_out_of_range
        ("42703", None),  # undefined_column
    ],
)
def test_classify_by_sqlstate(sqlstate: str, kind: str | None) -> None:
    exc = errors.lookup(sqlstate)("injected")
    assert exc.sqlstate == sqlstate
    assert classify(exc) == kind


def test_connection_errors_without_sqlstate_are_outages() -> None:
    assert classify(psycopg.OperationalError("connection refused")) == "outage"
    assert classify(psycopg.InterfaceError("the connection is closed")) == "outage"


def test_other_exceptions_are_the_data() -> None:
    assert classify(ValueError("cannot convert signaling NaN to float")) is None
    assert classify(RecursionError()) is None


@pytest.mark.parametrize(
    ("sqlstate", "named"),
    [
        ("57014", "statement_timeout"),
        ("55P03", "lock_timeout"),
        ("25P03", "idle_in_transaction_session_timeout"),
        ("25006", "primary"),
        ("57P01", "restarting"),
        ("57P03", "failover"),
    ],
)
def test_timeouts_and_replicas_are_explained_with_the_setting(sqlstate: str, named: str) -> None:
    hint = explain(errors.lookup(sqlstate)("injected"))
    assert hint is not None
    assert named in hint
    assert sqlstate in hint


def test_a_session_ended_by_idle_in_transaction_timeout_without_sqlstate_is_explained() -> None:
    exc = psycopg.OperationalError(
        "FATAL:  terminating connection due to idle-in-transaction timeout"
    )
    assert classify(exc) == "outage"
    assert "idle_in_transaction_session_timeout" in (explain(exc) or "")


def test_other_errors_have_no_hint() -> None:
    assert explain(errors.lookup("23514")("check")) is None
    assert explain(ValueError("x")) is None
