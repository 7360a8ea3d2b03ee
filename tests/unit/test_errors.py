"""errors.describe: the one line a user reads for any exception (no DB)."""

from __future__ import annotations

from psycopg import errors as pg

from litemaas_hooks.errors import MigrationError, describe, first_line


def test_our_errors_read_as_they_are() -> None:
    text = "run `litemaas-hooks install`"
    assert describe(MigrationError(text)) == text


def test_a_database_error_without_a_server_reply_names_its_type() -> None:
    exc = pg.lookup("23505")("duplicate key value\nDETAIL: Key (id)=(x) already exists.")
    assert describe(exc) == "UniqueViolation: duplicate key value"


def test_a_statement_timeout_says_what_to_set() -> None:
    text = describe(pg.lookup("57014")("canceling statement due to statement timeout"))
    assert text.startswith("QueryCanceled: canceling statement due to statement timeout: ")
    assert "LITEMAAS_HOOKS_" in text


def test_anything_else_is_its_type_and_first_line() -> None:
    assert describe(RuntimeError("disk on fire\nsecond line")) == "RuntimeError: disk on fire"
    assert describe(RuntimeError()) == "RuntimeError"
    assert first_line(ValueError("  \n")) == "ValueError"


class _Diag:
    def __init__(self, message: str) -> None:
        self.message_primary = message


class _PgError(Exception):
    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.diag = _Diag(message)


def test_a_function_the_install_or_grants_predate_is_told_from_other_errors() -> None:
    from litemaas_hooks.errors import function_unavailable

    missing = _PgError(
        "42883", "function litemaas_hooks.claim_batch_v1(unknown, integer) does not exist"
    )
    denied = _PgError("42501", "permission denied for function claim_batch_v1")
    assert function_unavailable(missing, "claim_batch_v1")
    assert function_unavailable(denied, "claim_batch_v1")
    # a privilege the function itself lacks inside, or another function: not a fallback
    assert not function_unavailable(
        _PgError("42501", "permission denied for table model_events"), "claim_batch_v1"
    )
    assert not function_unavailable(denied, "write_models_v1")
    assert not function_unavailable(ValueError("claim_batch_v1"), "claim_batch_v1")
