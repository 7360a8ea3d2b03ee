"""``litemaas-hooks demo`` (what ``make demo`` runs),
told on a real proxy and the real LiteMaaS backend.

* with the backend tree: alice's ``POST /api/v1/subscriptions`` answers 500 (its log names
  ``subscriptions_model_id_fkey``) before ``install``
  and 201 after; the retire cascade deactivates it;
* without Node.js (the tree cannot be prepared): the demo says so and falls back to the backend
  schema from the same upstream SQL and the direct INSERT, and still tells the whole story;
* that fallback schema is the one the backend's own migrations make (compared in the catalogs).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import re
import secrets

import psycopg
import pytest

from litemaas_hooks_sandbox import demo, litemaas_backend
from litemaas_hooks_sandbox.cluster import LocalPostgres
from litemaas_hooks_sandbox.litemaas_schema import apply_litemaas_schema_without_node
from tests.e2e import admin_ui

pytestmark = [pytest.mark.proxy, pytest.mark.slow, pytest.mark.e2e]


def _run(capsys: pytest.CaptureFixture[str], **kwargs: bool) -> str:
    assert asyncio.run(demo.run_demo(**kwargs)) == 0
    return capsys.readouterr().out


def _story(out: str) -> None:
    assert "backend row: None" in out
    assert re.search(r"install \+ backfill.*backfill: created", out, re.S), out
    assert re.search(r"phi-3-mini-128k +-> backend row retired in \d+ ms", out), out
    assert "alice's subscription is now 'inactive' (the retire cascade)" in out, out
    assert "Traceback" not in out  # clean output: logs went to files
    assert " WARNING " not in out
    assert " ERROR " not in out.replace("ERROR 23503", "")


def test_demo_subscribes_through_the_real_backend(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run(capsys)
    before, _, after = out.partition("litemaas-hooks install + backfill")
    assert re.search(r"POST /api/v1/subscriptions -> 500 in \d+ ms", before), out
    assert 'violates foreign key constraint "subscriptions_model_id_fkey"' in before, out
    assert re.search(
        r"POST /api/v1/subscriptions -> 201 in \d+ ms \(subscription active\)", after
    ), out
    assert "NOT AVAILABLE" not in out
    _story(out)


def test_demo_without_node_falls_back_to_the_insert(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if not admin_ui.is_new_ui(importlib.metadata.version("litellm")):
        pytest.skip(
            "the fallback does not depend on LiteLLM's version: it runs once, with the main venv"
        )

    def no_node() -> litemaas_backend.BackendTree:
        raise litemaas_backend.BackendRunnerError(
            "node not found on PATH (run `bash scripts/install-node.sh`)"
        )

    monkeypatch.setattr(litemaas_backend, "tree", no_node)
    out = _run(capsys)
    assert "LiteMaaS backend: NOT AVAILABLE (node not found on PATH" in out, out
    assert "falling back" in out
    before, _, after = out.partition("litemaas-hooks install + backfill")
    assert (
        'ERROR 23503: insert or update on table "subscriptions" violates foreign key constraint'
        in before
    ), out
    assert re.search(r"again: ok \(\d+ ms, direct INSERT\)", after), out
    _story(out)


_CATALOG = {
    "columns": "SELECT table_name, column_name, data_type, column_default, is_nullable "
    "FROM information_schema.columns WHERE table_schema = 'public'",
    "constraints": "SELECT conrelid::regclass::text, conname, "
    "pg_get_constraintdef(oid) FROM pg_constraint "
    "WHERE connamespace = 'public'::regnamespace",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    "triggers": "SELECT tgrelid::regclass::text, tgname, "
    "pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal",
    "functions": "SELECT proname, md5(prosrc) FROM pg_proc "
    "WHERE pronamespace = 'public'::regnamespace",
    "users": "SELECT id, username, roles FROM public.users",
    "teams": "SELECT id, name FROM public.teams",
}


def _catalog(dsn: str) -> dict[str, list[tuple[object, ...]]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {
            name: sorted(conn.execute(query).fetchall(), key=repr)
            for name, query in _CATALOG.items()
        }


def test_fallback_schema_is_the_backends_own(pg_cluster: LocalPostgres) -> None:
    names = [f"schema_node_{secrets.token_hex(3)}", f"schema_sql_{secrets.token_hex(3)}"]
    for name in names:
        pg_cluster.create_database(name)
    try:
        litemaas_backend.apply_migrations(pg_cluster.dsn(names[0]))
        for _ in range(2):  # idempotent, like the backend's start-up migrations
            apply_litemaas_schema_without_node(pg_cluster.dsn(names[1]))
        with_node, without = _catalog(pg_cluster.dsn(names[0])), _catalog(pg_cluster.dsn(names[1]))
        assert len(with_node["columns"]) > 100
        assert with_node["users"]  # the system user
        for part, rows in with_node.items():
            assert without[part] == rows, part
    finally:
        for name in names:
            pg_cluster.drop_database(name)
