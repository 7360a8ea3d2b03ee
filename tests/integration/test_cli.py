"""Operator commands of the CLI against real databases: replay, install of both sides, config errors."""

from __future__ import annotations

import pytest

from litemaas_hooks import cli
from tests.helpers import execute


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, hooks_env: dict[str, str]) -> dict[str, str]:
    for k, v in hooks_env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return hooks_env


def test_replay_makes_dead_events_pending(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["install"]) == 0
    db = env["LITELLM_DATABASE_URL"]
    execute(
        db,
        """INSERT INTO litemaas_hooks.model_events (op, model_id, new_model_name, status, attempts, last_error)
           VALUES ('INSERT', 'a', 'm1', 'dead', 10, 'boom'), ('INSERT', 'b', 'm2', 'dead', 10, 'boom')""",
    )
    first = execute(db, "SELECT min(id) FROM litemaas_hooks.model_events")[0][0]
    capsys.readouterr()
    assert cli.main(["replay", str(first)]) == 0
    assert "replayed 1 dead event(s)" in capsys.readouterr().out
    assert execute(db, "SELECT new_model_name, status FROM litemaas_hooks.model_events ORDER BY id") == [
        ("m1", "pending"),
        ("m2", "dead"),
    ]
    assert cli.main(["replay"]) == 0
    assert execute(db, "SELECT count(*) FROM litemaas_hooks.model_events WHERE status = 'dead'") == [(0,)]


def test_missing_backend_url_is_a_clear_error(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LITEMAAS_DATABASE_URL")
    assert cli.main(["backfill"]) == 1
    err = capsys.readouterr().err
    assert "LITEMAAS_DATABASE_URL is not set" in err
    assert "postgresql://" in err  # shows an example value


def test_unreachable_database_error_hides_the_password(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LITEMAAS_DATABASE_URL", "postgresql://admin:s3cret-pw@127.0.0.1:1/litemaas_db")
    assert cli.main(["install", "--backend-only"]) == 1
    err = capsys.readouterr().err
    assert "cannot connect to the backend database" in err
    assert "LITEMAAS_DATABASE_URL" in err
    assert "s3cret-pw" not in err
