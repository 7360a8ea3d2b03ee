"""``litemaas-hooks uninstall`` and ``install --wait-for-litellm`` against real databases."""

from __future__ import annotations

import asyncio
import io

import pytest

from litemaas_hooks import cli
from litemaas_hooks.errors import WaitTimeoutError
from litemaas_hooks.settings import load_settings
from litemaas_hooks.wait_tables import wait_for_tables
from tests.helpers import execute

OURS = "SELECT count(*) FROM pg_namespace WHERE nspname = 'litemaas_hooks'"
TRIGGER = "SELECT count(*) FROM pg_trigger WHERE tgname = 'litemaas_hooks_model_events'"
BACKEND_ROW = """
INSERT INTO models (id, name, provider, availability, created_at, updated_at)
VALUES ('kept-model', 'kept-model', 'openai', 'available', now(), now())
"""


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, hooks_env: dict[str, str]) -> dict[str, str]:
    for k, v in hooks_env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return hooks_env


def test_uninstall_removes_ours_from_both_databases_and_keeps_their_rows(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    ldb, bdb = env["LITELLM_DATABASE_URL"], env["LITEMAAS_DATABASE_URL"]
    assert cli.main(["install"]) == 0
    execute(bdb, BACKEND_ROW)
    execute(
        ldb,
        "INSERT INTO litemaas_hooks.model_events (op, "
        "model_id, new_model_name) VALUES ('INSERT', 'a', 'm1')",
    )
    assert execute(ldb, TRIGGER) == [(1,)]
    capsys.readouterr()

    assert cli.main(["uninstall"]) == 1  # no --yes: refuses and changes nothing
    assert "refusing without --yes" in capsys.readouterr().err
    assert execute(ldb, OURS) == [(1,)]

    assert cli.main(["uninstall", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "1 outbox events were not applied yet" in out
    assert "kept: every row the sync wrote" in out
    for db in (ldb, bdb):
        assert execute(db, OURS) == [(0,)]
    assert execute(ldb, TRIGGER) == [(0,)]
    assert execute(bdb, "SELECT id FROM models") == [("kept-model",)]
    # LiteLLM's own writes go on without the trigger
    execute(
        ldb,
        """INSERT INTO "LiteLLM_ProxyModelTable" (model_id, model_name, litellm_params, model_info,
                    created_by, updated_by) VALUES ('x', 'x', '{}', '{}', 'a', 'a')""",
    )

    assert cli.main(["uninstall", "--yes"]) == 0  # nothing left: a no-op
    assert cli.main(["install"]) == 0  # and install works again from scratch
    assert execute(ldb, TRIGGER) == [(1,)]


def test_uninstall_on_the_shared_database(
    shared_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    master_key: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LITEMAAS_DATABASE_URL", shared_dsn)
    monkeypatch.setenv("DATABASE_URL", shared_dsn)
    monkeypatch.delenv("LITELLM_DATABASE_URL", raising=False)
    monkeypatch.setenv("LITELLM_MASTER_KEY", master_key)
    assert cli.main(["install"]) == 0
    assert cli.main(["uninstall", "--yes"]) == 0
    assert execute(shared_dsn, OURS) == [(0,)]
    assert execute(shared_dsn, TRIGGER) == [(0,)]
    assert execute(shared_dsn, "SELECT to_regclass('public.models') IS NOT NULL") == [(True,)]


def test_uninstall_refuses_when_someone_elses_object_depends_on_ours(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    bdb = env["LITEMAAS_DATABASE_URL"]
    assert cli.main(["install"]) == 0
    execute(
        bdb, "CREATE VIEW public.hidden_report AS SELECT model_id FROM litemaas_hooks.hidden_models"
    )
    capsys.readouterr()
    assert cli.main(["uninstall", "--yes", "--backend-only"]) == 1
    err = capsys.readouterr().err
    assert "view public.hidden_report" in err  # described under the pinned search_path
    assert "nothing was changed there" in err
    assert execute(bdb, OURS) == [(1,)]
    assert execute(bdb, "SELECT count(*) FROM public.hidden_report") == [(0,)]


def test_dry_run_prints_the_sql_and_connects_to_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LITEMAAS_DATABASE_URL", "postgresql://u:p@127.0.0.1:1/none")
    monkeypatch.setenv("LITELLM_DATABASE_URL", "postgresql://u:p@127.0.0.1:1/none")
    assert cli.main(["uninstall", "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert (
        'DROP TRIGGER IF EXISTS litemaas_hooks_model_events ON public."LiteLLM_ProxyModelTable"'
        in captured.out
    )
    assert captured.out.count("    DROP SCHEMA litemaas_hooks CASCADE;") == 2
    assert captured.out.count("BEGIN;") == 2
    assert "backend" in captured.err  # says what stays


def test_install_waits_for_litellms_table_and_says_what_it_waits_for(
    backend_dsn: str,
    pg_cluster: object,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # a database without LiteLLM's table yet (LiteLLM not started): give up with a clear message
    monkeypatch.setenv("LITEMAAS_DATABASE_URL", backend_dsn)
    monkeypatch.setenv("LITELLM_DATABASE_URL", backend_dsn)
    assert cli.main(["install", "--litellm-only", "--wait-for-litellm", "0.5"]) == 1
    err = capsys.readouterr().err
    assert 'no table public."LiteLLM_ProxyModelTable" yet' in err
    assert "STORE_MODEL_IN_DB=True" in err


def test_wait_returns_once_the_table_appears(backend_dsn: str) -> None:
    settings = load_settings(
        {"LITEMAAS_DATABASE_URL": backend_dsn, "LITELLM_DATABASE_URL": backend_dsn}
    )
    out = io.StringIO()

    async def scenario() -> float:
        waiter = asyncio.create_task(
            wait_for_tables(
                settings, 30, ["litellm"], poll_seconds=0.05, report_every_seconds=0.1, out=out
            )
        )
        while "waiting" not in out.getvalue():  # the first report: it is waiting now
            assert not waiter.done()
            await asyncio.sleep(0.01)  # poll interval of this condition loop
        await asyncio.to_thread(
            execute, backend_dsn, 'CREATE TABLE public."LiteLLM_ProxyModelTable" (model_id text)'
        )
        return await asyncio.wait_for(waiter, 10)

    waited = asyncio.run(scenario())
    assert waited < 10
    assert 'no table public."LiteLLM_ProxyModelTable" yet' in out.getvalue()


def test_wait_gives_up_naming_an_unreachable_database_without_its_password() -> None:
    settings = load_settings(
        {
            "LITEMAAS_DATABASE_URL": "postgresql://u:Sekr3t@127.0.0.1:1/x",
            "LITELLM_DATABASE_URL": "postgresql://u:Sekr3t@127.0.0.1:1/y",
        }
    )
    with pytest.raises(WaitTimeoutError) as info:
        asyncio.run(wait_for_tables(settings, 0.2, poll_seconds=0.05, out=io.StringIO()))
    message = str(info.value)
    assert "litellm database" in message
    assert "backend database" in message
    assert "not reachable" in message
    assert "Sekr3t" not in message
