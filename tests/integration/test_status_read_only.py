"""``litemaas-hooks status`` against a database URL that cannot take writes (issue 21, item 5): a
hot standby / read replica (``pg_is_in_recovery()``) or a read-only session
(``default_transaction_read_only``, as an RDS/Aurora reader endpoint gives). The relay can neither
claim events nor write there, so status says so on a line of its own (which database, which
variable, the fix), the verdict is UNHEALTHY (exit 2) and ``--json`` carries it in ``read_only``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from litemaas_hooks import cli
from litemaas_hooks.settings import Which
from litemaas_hooks_sandbox.cluster import HotStandby, LocalPostgres
from tests.helpers import run_sql

WRITER = "on AWS RDS/Aurora the cluster's writer endpoint, not the reader endpoint"
UNHEALTHY = "litemaas-hooks status: UNHEALTHY"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, hooks_env: dict[str, str]) -> dict[str, str]:
    for k, v in hooks_env.items():
        monkeypatch.setenv(k, v)
    for var in ("DATABASE_URL", "LITEMAAS_HOOKS_LOG_LEVEL", "LITEMAAS_HOOKS_LOG_FORMAT"):
        monkeypatch.delenv(var, raising=False)
    assert cli.main(["install"]) == 0
    return hooks_env


def _dbname(dsn: str) -> str:
    return str(conninfo_to_dict(dsn)["dbname"])


def _status(capsys: pytest.CaptureFixture[str]) -> tuple[int, str, int, dict[str, Any]]:
    """(exit code, text, exit code of --json, the JSON)."""
    capsys.readouterr()
    code = cli.main(["status"])
    text = capsys.readouterr().out
    json_code = cli.main(["status", "--json"])
    return code, text, json_code, json.loads(capsys.readouterr().out)


def _problem_lines(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("  - ") and needle in line]


@pytest.mark.parametrize("which", ["litellm", "backend"])
def test_a_read_only_session_is_unhealthy_with_the_fix(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], which: Which
) -> None:
    """``ALTER DATABASE ... SET default_transaction_read_only = on`` on one of the two databases
    (what a reader endpoint looks like from a session): one problem line naming the variable, the
    database and the fix; the other database is not blamed."""
    code, text, _, _ = _status(capsys)
    assert code == 0, text  # healthy before: the line below comes from the setting alone
    var = "LITELLM_DATABASE_URL" if which == "litellm" else "LITEMAAS_DATABASE_URL"
    other = "LITEMAAS_DATABASE_URL" if which == "litellm" else "LITELLM_DATABASE_URL"
    dsn = env[var]
    db = sql.Identifier(_dbname(dsn))
    run_sql(dsn, sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(db))
    try:
        code, text, json_code, report = _status(capsys)
    finally:
        run_sql(
            dsn,
            "SET default_transaction_read_only = off",
            sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(db),
        )
    assert code == json_code == 2, text
    assert text.startswith(UNHEALTHY), text
    [line] = _problem_lines(text, "read-only")
    assert line.startswith(f"  - {var} opens read-only sessions: "), line
    assert f'"{_dbname(dsn)}" has transaction_read_only on' in line
    assert "set " + var + " to the read-write endpoint" in line
    assert WRITER in line
    assert "docs/remote-databases.md" in line
    assert other not in line
    assert "(READ-ONLY session)" in text
    assert report["healthy"] is False
    other_side = "backend" if which == "litellm" else "litellm"
    assert report["read_only"] == {which: "session", other_side: None}
    assert [p for p in report["problems"] if "read-only" in p] == [line.removeprefix("  - ")]


def test_a_hot_standby_is_unhealthy_with_the_fix(
    env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    pg_cluster: LocalPostgres,
) -> None:
    """A real read replica: first LiteLLM's URL (through the DATABASE_URL fallback) at the
    standby's copy of LiteLLM's database, then the backend's URL at the standby's copy of the
    backend database. Everything status reads is there (installed, in sync): only the replica is
    wrong, and status says so with the variable to fix."""
    with HotStandby(pg_cluster) as replica:
        replica.catch_up()
        litellm_dsn, backend_dsn = env["LITELLM_DATABASE_URL"], env["LITEMAAS_DATABASE_URL"]
        on_replica = {
            which: replica.dsn(_dbname(dsn))
            for which, dsn in (("litellm", litellm_dsn), ("backend", backend_dsn))
        }
        assert run_sql(on_replica["litellm"], "SELECT pg_is_in_recovery()") == [(True,)]

        monkeypatch.delenv("LITELLM_DATABASE_URL")
        monkeypatch.setenv("DATABASE_URL", on_replica["litellm"])
        code, text, json_code, report = _status(capsys)
        assert code == json_code == 2, text
        assert text.startswith(UNHEALTHY), text
        [line] = _problem_lines(text, "read-only")
        head = "  - DATABASE_URL points at a read-only server: LiteLLM's database"
        assert line.startswith(head), line
        assert "is a hot standby / read replica (pg_is_in_recovery() is true)" in line
        assert "set DATABASE_URL to the primary (read-write) server" in line
        assert WRITER in line
        assert "LITEMAAS_DATABASE_URL" not in line
        assert "(READ-ONLY: a hot standby)" in text.split("LiteLLM database : ")[1].splitlines()[0]
        assert report["read_only"] == {"litellm": "standby", "backend": None}

        monkeypatch.setenv("DATABASE_URL", litellm_dsn)
        monkeypatch.setenv("LITEMAAS_DATABASE_URL", on_replica["backend"])
        code, text, json_code, report = _status(capsys)
        assert code == json_code == 2, text
        [line] = _problem_lines(text, "read-only")
        assert line.startswith(
            "  - LITEMAAS_DATABASE_URL points at a read-only server: the backend database"
        ), line
        assert "the relay cannot write the backend's models there" in line
        assert WRITER in line
        assert report["read_only"] == {"litellm": None, "backend": "standby"}
