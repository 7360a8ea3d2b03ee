"""The sandbox proxy's start is LiteMaaS's: its
environment, and the Prisma stand-in's view of the URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from litemaas_hooks_sandbox import proxy
from litemaas_hooks_sandbox.proxy_worker import _masked_url, record_environment, standin_conninfo

LITELLM_URL = "postgresql://litellm:pw-litellm@db.example:5432/litellm"
BACKEND_URL = "postgresql://litemaas:pw-backend@db.example:5432/litemaas_db"


def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    # a caller whose shell holds URLs of its own: none of them may reach the proxy
    monkeypatch.setenv("LITELLM_DATABASE_URL", "postgresql://caller@elsewhere/litellm")
    monkeypatch.setenv("DATABASE_URL", "postgresql://caller@elsewhere/other")
    monkeypatch.setenv("LITEMAAS_DATABASE_URL", "postgresql://caller@elsewhere/backend")
    monkeypatch.setenv("CONFIG_FILE_PATH", "/caller/config.yaml")
    monkeypatch.setenv("HOME", "/home/caller")
    return proxy._proxy_env(
        database_url=LITELLM_URL,
        master_key="sk-master",
        ui_password="ui-pw",
        config_path=tmp_path / "config.yaml",
        backend_url=BACKEND_URL,
        harness={"LITELLM_WORKER_STARTUP_HOOKS": proxy.STARTUP_HOOK},
        extra={"LITEMAAS_HOOKS_LOG_LEVEL": "DEBUG"},
    )


def test_the_proxy_gets_litemaas_s_environment_and_none_of_the_callers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = _env(monkeypatch, tmp_path)
    assert env["DATABASE_URL"] == LITELLM_URL  # what the CLI gets and rewrites
    assert "LITELLM_DATABASE_URL" not in env  # no LiteMaaS install sets it
    assert env["LITEMAAS_DATABASE_URL"] == BACKEND_URL
    assert env["CONFIG_FILE_PATH"] == str(tmp_path / "config.yaml")  # deploy/'s mount
    assert env["LITELLM_MASTER_KEY"] == "sk-master"
    assert {k: env[k] for k in proxy.PRODUCTION_ENV} == {
        "LITELLM_MODE": "PRODUCTION",
        "STORE_MODEL_IN_DB": "True",
        "DISABLE_SCHEMA_UPDATE": "true",
    }
    assert env["HOME"] == "/home/caller"  # process basics only
    assert env["LITEMAAS_HOOKS_LOG_LEVEL"] == "DEBUG"
    assert env["LITELLM_WORKER_STARTUP_HOOKS"] == proxy.STARTUP_HOOK
    assert "caller@" not in str(env)


def test_without_a_backend_the_plugin_finds_no_backend_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LITEMAAS_DATABASE_URL", "postgresql://caller@elsewhere/backend")
    env = proxy._proxy_env(
        database_url=LITELLM_URL,
        master_key="sk-master",
        ui_password="ui-pw",
        config_path=tmp_path / "config.yaml",
        backend_url=None,
        harness={},
        extra=None,
    )
    assert "LITEMAAS_DATABASE_URL" not in env


def test_path_leaves_out_directories_with_a_prisma_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with_prisma, without = tmp_path / "venv-bin", tmp_path / "bin"
    with_prisma.mkdir()
    without.mkdir()
    (with_prisma / "prisma").write_text("#!/bin/sh\n")
    monkeypatch.setenv("PATH", f"{with_prisma}:{without}:/usr/bin")
    assert proxy._path_without_prisma() == f"{without}:/usr/bin"


def _cli_rewritten(url: str) -> str:
    """``url`` as the installed LiteLLM's CLI rewrites ``DATABASE_URL`` (its own function)."""
    from litellm.proxy.proxy_cli import append_query_params

    return append_query_params(
        url, {"connection_limit": 10, "pool_timeout": 60, "pgbouncer": "true"}
    )


@pytest.mark.parametrize(
    "url",
    [
        LITELLM_URL,
        "postgresql://u:p@/litellm?host=%2Fdev%2Fshm%2Fpg&port=5433",  # the sandbox's socket form
        "postgresql://u:p@db:5432/litellm?sslmode=require&options=-c%20statement_timeout%3D5000",
    ],
)
def test_the_standin_connects_where_prisma_would(url: str) -> None:
    rewritten = _cli_rewritten(url)
    assert "connection_limit=10" in rewritten
    params = conninfo_to_dict(standin_conninfo(rewritten))  # libpq accepts it
    assert params == conninfo_to_dict(url)  # same target, Prisma's own parameters gone


def test_the_worker_record_names_variables_and_masks_the_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", _cli_rewritten(LITELLM_URL))
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-secret-master")
    monkeypatch.delenv("LITELLM_DATABASE_URL", raising=False)
    target = tmp_path / "worker-env.json"
    record_environment(target)
    text = target.read_text()
    assert "pw-litellm" not in text
    assert "sk-secret-master" not in text
    assert '"LITELLM_MASTER_KEY"' in text
    assert "LITELLM_DATABASE_URL" not in text
    assert "litellm:***@db.example:5432/litellm?connection_limit=10" in text
    assert _masked_url("postgresql://u@h/db") == "postgresql://u@h/db"
