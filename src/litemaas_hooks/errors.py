"""Every exception type of the package, in one place.

A message says what was checked and how to fix it, and never holds a secret. ``describe`` turns any
exception into the one line a user reads (CLI, logs, the outbox's ``last_error``, reports).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


class LiteMaaSHooksError(Exception):
    """Base class for every error this package raises on purpose."""


class ConfigError(LiteMaaSHooksError):
    """A setting is missing or invalid (the message names the variable and shows an example)."""


class WrongDatabaseError(ConfigError):
    """A database URL points at the wrong kind of database (e.g. the two URLs swapped)."""


class DatabaseUrlError(ValueError):
    """The URL cannot be turned into a libpq conninfo (the message says why and how to fix it; it
    never holds the URL: the caller adds the variable name and the URL, password masked)."""


class DatabaseUnavailableError(LiteMaaSHooksError):
    """A database could not be reached (the message names the env var and the redacted DSN)."""


class NotInstalledError(LiteMaaSHooksError):
    """litemaas-hooks' schema (or the outbox) is missing from a database: ``install`` first."""


class MigrationError(LiteMaaSHooksError):
    """A schema migration could not be applied, or an applied one was edited afterwards."""


class UnsafeObjectError(LiteMaaSHooksError):
    """An object another role controls was changed so that using it could run that role's code
    with our privileges (a column of a foreign type, a function altered after install): refused."""


class DecryptError(LiteMaaSHooksError):
    """A litellm_params value could not be decrypted with the configured key."""


class MappingError(LiteMaaSHooksError):
    """A LiteLLM deployment cannot be mapped to a backend ``models`` row."""


class ProxyNotReadyError(LiteMaaSHooksError):
    """The proxy's router is not loaded, so config-file models are unknown (nothing is retired)."""


class WaitTimeoutError(LiteMaaSHooksError):
    """``install --wait-for-litellm``: the tables did not appear in time."""


class ModelFileError(LiteMaaSHooksError):
    """One or more mistakes in the model files of ``apply`` (one line each)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            text = self.problems[0]
        else:
            text = f"{len(self.problems)} mistakes in the model files:\n" + "\n".join(
                f"  - {p}" for p in self.problems
            )
        super().__init__(text)


class ApplyError(LiteMaaSHooksError):
    """LiteLLM refused a request of apply (the message names the request and LiteLLM's answer)."""


class UsageError(Exception):
    """A command line argparse rejected (exit 1, never 2: 2 means "differences found")."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


def first_line(exc: BaseException) -> str:
    """The first line of an error's text (PostgreSQL errors add DETAIL/HINT lines), or its type."""
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def describe(exc: BaseException) -> str:
    """The one line a user reads for any exception (not yet scrubbed of secrets).

    Ours as they are (they say what to do); a PostgreSQL error as its primary message, SQLSTATE and
    what to set (``outages.explain``); anything else as its type and first line.
    """
    if isinstance(exc, LiteMaaSHooksError):
        return str(exc)
    # psycopg is looked up, not imported: a settings error must not pay for loading it
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(exc, psycopg.Error):
        from litemaas_hooks.outages import explain

        state = exc.sqlstate or ""
        primary = exc.diag.message_primary if state else None
        if primary:
            text = f"{primary} (SQLSTATE {state})"
        else:
            text = f"{type(exc).__name__}: {first_line(exc)}"
        hint = explain(exc)
        return text + (f": {hint}" if hint else "")
    return f"{type(exc).__name__}: {first_line(exc)}" if str(exc).strip() else type(exc).__name__


def function_unavailable(exc: BaseException, function: str) -> bool:
    """``exc`` says ``function`` (its bare name) cannot be called here because the install
    (42883: no such function) or the role's grants (42501: permission denied for it) are older
    than the code that calls it: the caller falls back to the statements of the release before.
    A refusal by the function's own integrity check names it too: callers that make one tell it
    apart."""
    state = getattr(exc, "sqlstate", None)
    diag = getattr(exc, "diag", None)
    message = (diag.message_primary if diag is not None else None) or ""
    return state in ("42883", "42501") and function in message
