"""Operator commands and operator mistakes, against real databases.

Every mistake of the table below ends in one line (two when both URLs are wrong) on stderr saying
what is wrong and which setting or command fixes it, exit code 1, and no traceback.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from litemaas_hooks import cli
from litemaas_hooks_sandbox.cluster import LocalPostgres
from tests.helpers import DROP_TRIGGERS, execute


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, hooks_env: dict[str, str]) -> dict[str, str]:
    for k, v in hooks_env.items():
        monkeypatch.setenv(k, v)
    for var in (
        "DATABASE_URL",
        "LITEMAAS_HOOKS_LOG_LEVEL",
        "JSON_LOGS",
        "LITEMAAS_HOOKS_LOG_FORMAT",
    ):
        monkeypatch.delenv(var, raising=False)
    return hooks_env


@pytest.fixture
def empty_dsn(pg_cluster: LocalPostgres) -> Iterator[str]:
    """A database nobody created a schema in (a backend that never started, a typo in the name)."""
    name = f"t_empty_{secrets.token_hex(4)}"
    pg_cluster.create_database(name)
    yield pg_cluster.dsn(name)
    pg_cluster.drop_database(name)


@dataclass
class Mistake:
    argv: list[str]
    expect: list[str]  # every one of these is in stderr
    env: dict[str, str | None] = field(default_factory=dict)  # value: a literal, or a key of `urls`
    install: bool = False  # run `install` first
    absent: list[str] = field(default_factory=list)  # none of these is in stderr
    lines: int = 1
    code: int = 1


NOT_INSTALLED = "litemaas-hooks is not installed in the backend database"
MISTAKES: dict[str, Mistake] = {
    "backfill before install": Mistake(
        ["backfill"], [NOT_INSTALLED, "run `litemaas-hooks install` first"]
    ),
    "backfill --dry-run before install": Mistake(["backfill", "--dry-run"], [NOT_INSTALLED]),
    "replay before install": Mistake(
        ["replay"], ["litemaas-hooks is not installed in LiteLLM's database"]
    ),
    "LiteLLM URL at a database without LiteLLM's table": Mistake(
        ["backfill"],
        [
            'LITELLM_DATABASE_URL points at database "t_empty_',
            'no table public."LiteLLM_ProxyModelTable"',
        ],
        env={"LITELLM_DATABASE_URL": "empty"},
        install=True,
    ),
    "URLs swapped (backfill)": Mistake(
        ["backfill"],
        [
            "the two URLs are swapped: LITELLM_DATABASE_URL "
            "points at the LiteMaaS backend database",
            "and LITEMAAS_DATABASE_URL at LiteLLM's database",
            "exchange their values",
        ],
        env={"LITELLM_DATABASE_URL": "backend", "LITEMAAS_DATABASE_URL": "litellm"},
        install=True,
    ),
    "URLs swapped (install)": Mistake(
        ["install"],
        ["the two URLs are swapped"],
        env={"LITELLM_DATABASE_URL": "backend", "LITEMAAS_DATABASE_URL": "litellm"},
        absent=["GRANT"],
    ),
    "backend URL at LiteLLM's database": Mistake(
        ["install", "--backend-only"],
        [
            'LITEMAAS_DATABASE_URL points at database "t_litellm_',
            "which is LiteLLM's database",
            "swapped?",
        ],
        env={"LITEMAAS_DATABASE_URL": "litellm"},
    ),
    "both URLs at empty databases": Mistake(
        ["backfill"],
        [
            "LITELLM_DATABASE_URL points at database",
            "LITEMAAS_DATABASE_URL points at database",
            "not started yet",
        ],
        env={"LITELLM_DATABASE_URL": "empty", "LITEMAAS_DATABASE_URL": "empty"},
        lines=2,
    ),
    "DATABASE_URL fallback at the backend database": Mistake(
        ["install", "--litellm-only"],
        ["DATABASE_URL points at database", "are DATABASE_URL and LITEMAAS_DATABASE_URL swapped?"],
        env={"LITELLM_DATABASE_URL": None, "DATABASE_URL": "backend"},
    ),
    "install on a backend database the backend never created": Mistake(
        ["install", "--backend-only"],
        ["the URL is not a LiteMaaS backend database or the backend has not started yet"],
        env={"LITEMAAS_DATABASE_URL": "empty"},
        absent=["GRANT"],
    ),
    "a mysql:// URL": Mistake(
        ["backfill"],
        [
            "LITEMAAS_DATABASE_URL='mysql://root:***@db:3306/litemaas' is not a PostgreSQL URL",
            "postgresql://",
        ],
        env={"LITEMAAS_DATABASE_URL": "mysql://root:hunter2-pw@db:3306/litemaas"},
        absent=["hunter2-pw"],
    ),
    "a bare database name as URL": Mistake(
        ["install"],
        [
            "LITEMAAS_DATABASE_URL='litemaas_db' is not a PostgreSQL URL",
            "postgresql://USER:PASSWORD@",
        ],
        env={"LITEMAAS_DATABASE_URL": "litemaas_db"},
        absent=["'***'"],  # the value is shown, not masked
    ),
    "replay of an unknown id": Mistake(
        ["replay", "99999"], ["event 99999 does not exist"], install=True
    ),
    "unknown option": Mistake(
        ["backfill", "--bogus"], ["unrecognized arguments: --bogus", "--help"]
    ),
    "no command": Mistake([], ["the following arguments are required: COMMAND"]),
    "not a number": Mistake(["replay", "abc"], ["invalid int value: 'abc'"]),
    "every missing or invalid setting at once": Mistake(
        ["status"],
        [
            "3 settings need fixing",
            "LITEMAAS_HOOKS_BATCH_SIZE='lots' must be a whole number",
            "LITEMAAS_DATABASE_URL is not set",
            "neither LITELLM_DATABASE_URL nor DATABASE_URL is set",
        ],
        env={
            "LITEMAAS_DATABASE_URL": None,
            "LITELLM_DATABASE_URL": None,
            "LITEMAAS_HOOKS_BATCH_SIZE": "lots",
        },
        lines=4,
    ),
    "unreachable server": Mistake(
        ["install", "--backend-only"],
        [
            "cannot connect to the backend (LiteMaaS) database "
            "(LITEMAAS_DATABASE_URL=postgresql://admin:***@127.0.0.1:1/litemaas_db)",
            "Check LITEMAAS_DATABASE_URL",
        ],
        env={"LITEMAAS_DATABASE_URL": "postgresql://admin:s3cret-pw@127.0.0.1:1/litemaas_db"},
        absent=["s3cret-pw"],
    ),
    "write-shim into a missing folder": Mistake(
        ["write-shim", "/nonexistent/dir"], ["is not a directory"]
    ),
}


@pytest.mark.parametrize("case", MISTAKES.values(), ids=MISTAKES.keys())
def test_every_mistake_gets_one_clear_line(
    case: Mistake,
    env: dict[str, str],
    empty_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    urls = {
        "backend": env["LITEMAAS_DATABASE_URL"],
        "litellm": env["LITELLM_DATABASE_URL"],
        "empty": empty_dsn,
    }
    if case.install:
        assert cli.main(["install"]) == 0
    for var, value in case.env.items():
        if value is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, urls.get(value, value))
    capsys.readouterr()
    assert cli.main(case.argv) == case.code
    err = capsys.readouterr().err
    for text in case.expect:
        assert text in err
    for text in case.absent:
        assert text not in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == case.lines, err


def test_debug_level_shows_the_traceback(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    os.environ["LITEMAAS_HOOKS_LOG_LEVEL"] = "DEBUG"
    try:
        assert cli.main(["backfill"]) == 1
    finally:
        del os.environ["LITEMAAS_HOOKS_LOG_LEVEL"]
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith("litemaas-hooks backfill: error: litemaas-hooks is not installed")
    )


def test_an_unexpected_error_is_one_line_too(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from litemaas_hooks import migrations

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(migrations, "apply_migrations", broken)
    assert cli.main(["install"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == (
        "litemaas-hooks install: error: unexpected RuntimeError: disk on fire; "
        "set LITEMAAS_HOOKS_LOG_LEVEL=DEBUG for the traceback"
    )


def test_help_and_version_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["--version"], ["install", "--help"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 0


# -- commands that work ----------------------------------------------------------------------------


def test_install_says_what_it_created_repaired_or_left(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["install"]) == 0
    first = capsys.readouterr().out.splitlines()
    assert first[0].startswith('backend (LiteMaaS) database "')
    assert "applied 0001_" in first[0]
    assert first[1].startswith('LiteLLM database "')
    assert "applied 0001_outbox" in first[1]
    assert 'trigger installed on public."LiteLLM_ProxyModelTable"' in first[1]

    assert cli.main(["install"]) == 0
    again = capsys.readouterr().out
    assert "applied 0" not in again
    assert (
        again.count(" migrations already applied") + again.count(" migration already applied") == 2
    )

    execute(env["LITELLM_DATABASE_URL"], DROP_TRIGGERS)
    assert cli.main(["install", "--litellm-only"]) == 0
    repaired = capsys.readouterr().out
    assert "restored trigger litemaas_hooks_model_events" in repaired
    assert "(it was missing or disabled)" in repaired


def test_replay_makes_dead_events_pending(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["install"]) == 0
    db = env["LITELLM_DATABASE_URL"]
    capsys.readouterr()
    assert cli.main(["replay"]) == 0
    assert capsys.readouterr().out == "no dead events: nothing to replay\n"
    execute(
        db,
        """INSERT INTO litemaas_hooks.model_events
               (op, model_id, new_model_name, status, attempts, last_error)
           VALUES ('INSERT', 'a', 'm1', 'dead', 10, 'boom'),
                  ('INSERT', 'b', 'm2', 'dead', 10, 'boom'),
                  ('INSERT', 'c', 'm3', 'pending', 0, NULL)""",
    )
    first, _, pending = (
        r[0] for r in execute(db, "SELECT id FROM litemaas_hooks.model_events ORDER BY id")
    )
    # one of them is not dead: nothing replayed
    assert cli.main(["replay", str(first), str(pending)]) == 1
    assert f"event {pending} is pending" in capsys.readouterr().err
    assert cli.main(["replay", str(first)]) == 0
    assert "replayed 1 dead event: the relays pick it up now" in capsys.readouterr().out
    assert execute(
        db, "SELECT new_model_name, status FROM litemaas_hooks.model_events ORDER BY id"
    ) == [
        ("m1", "pending"),
        ("m2", "dead"),
        ("m3", "pending"),
    ]
    assert cli.main(["replay"]) == 0
    assert execute(
        db, "SELECT count(*) FROM litemaas_hooks.model_events WHERE status = 'dead'"
    ) == [(0,)]


StatusCheck = Callable[[str], None]


def test_status_reads_as_a_verdict(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "--no-drift"]) == 2  # before install
    out = capsys.readouterr().out
    assert out.startswith("litemaas-hooks status: UNHEALTHY, 2 problems (each with its fix):\n")
    # the backend's functions and LiteLLM's outbox
    assert out.count("run `litemaas-hooks install`") == 2
    assert "LINE 1" not in out
    assert "DETAIL" not in out

    assert cli.main(["install"]) == 0
    capsys.readouterr()
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        "litemaas-hooks status: HEALTHY: trigger installed, "
        "outbox empty, no dead events, backend in sync with LiteLLM"
    )
    assert "drift            : none: every backend row matches LiteLLM" in out

    assert cli.main(["status", "--no-drift"]) == 0
    assert "drift not checked" in capsys.readouterr().out
