"""No secret reaches the backend DB, the outbox, logs, status, errors or the dry-run plan (issue 9
item 1), end to end: rows written by LiteLLM's own row builder and encryption, read and mapped by
the real backfill/relay, every table of the backend
and the outbox's error texts searched afterwards."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import psycopg
import pytest

from litemaas_hooks import cli
from litemaas_hooks_sandbox import seed
from litemaas_hooks_sandbox.cluster import LocalPostgres
from tests.helpers import (
    INSERT_ROW,
    TABLE,
    assert_no_secrets,
    eventually,
    install,
    litellm_row,
    make_settings,
    outbox_empty,
    running,
)

pytestmark = pytest.mark.anyio

SALT = "salt-" + secrets.token_hex(16)
MASTER = "sk-" + secrets.token_hex(32)
ENV_API_KEY = "sk-env-" + secrets.token_hex(12)
S = {
    k: k + secrets.token_hex(10)
    for k in (
        "apikey",
        "token",
        "sig",
        "code",
        "pwd",
        "hdr",
        "pw",
        "tokens",
        "cs",
        "prov",
        "hook",
        "lic",
    )
}


DEPLOYMENTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "env-salt": (
        {"model": "openai/a", "api_base": "os.environ/LITELLM_SALT_KEY", "api_key": S["apikey"]},
        {},
    ),
    "env-key": ({"model": "openai/b", "api_base": "os.environ/OPENAI_API_KEY"}, {}),
    "url-forms": (
        {
            "model": "azure/c",
            "api_base": f"https://{S['token']}@x.example/v1?sig={S['sig']}&code={S['code']}&pwd={S['pwd']}",
            "headers": {"Authorization": f"Bearer {S['hdr']}"},
        },
        {},
    ),
    # the provider key by value (issue 20): pasted into innocent fields of its own row
    "key-pasted": (
        {
            "model": "openai/e",
            "api_key": S["prov"],
            "api_base": f"https://llm.example/{S['prov']}/v1",
            "organization": f"org-{S['prov']}",
        },
        {"description": f"key: {S['prov']}", "notes": {"x": [S["prov"]]}},
    ),
    # os.environ/ of names off the routing allow-list: never resolved
    "env-webhook": ({"model": "openai/f", "api_base": "os.environ/SLACK_WEBHOOK_URL"}, {}),
    "env-licence": ({"model": "openai/g", "api_base": "os.environ/LITELLM_LICENSE"}, {}),
    "hash-password": (
        {"model": "openai/d", "api_base": f"https://user:ab#{S['pw']}@y.example/v1"},
        {
            "api_tokens": [S["tokens"]],
            "nested": {"deeper": {"client_secret": S["cs"]}},
            "description": f"master key is {MASTER}",
        },
    ),
}


async def _cli(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *argv: str) -> int:
    with monkeypatch.context() as m:
        for k, v in env.items():
            m.setenv(k, v)
        m.delenv("DATABASE_URL", raising=False)
        return await asyncio.to_thread(cli.main, list(argv))


async def test_no_secret_in_backend_outbox_logs_status_or_plan(
    litellm_dsn: str,
    backend_dsn: str,
    pg_cluster: LocalPostgres,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    logs: list[str],
) -> None:
    await install(litellm_dsn, backend_dsn)
    env = {
        "LITEMAAS_DATABASE_URL": backend_dsn,
        "LITELLM_DATABASE_URL": litellm_dsn,
        "LITELLM_MASTER_KEY": MASTER,
        "LITELLM_SALT_KEY": SALT,
        "OPENAI_API_KEY": ENV_API_KEY,
        "SLACK_WEBHOOK_URL": f"https://hooks.slack.example/services/{S['hook']}",
        "LITELLM_LICENSE": S["lic"],
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    async with await psycopg.AsyncConnection.connect(litellm_dsn, autocommit=True) as lc:
        for name, (params, info) in DEPLOYMENTS.items():
            row = seed.as_insert_params(litellm_row(name, params, info, key=SALT))
            row.pop("blocked")
            await lc.execute(INSERT_ROW, row)
        capsys.readouterr()
        assert await _cli(monkeypatch, env, "backfill", "--dry-run") == 2
        plan = capsys.readouterr()
        assert "env-salt" in plan.out
        assert await _cli(monkeypatch, env, "backfill") == 0
        await _cli(monkeypatch, env, "status")
        await _cli(monkeypatch, env, "status", "--json")
        out = capsys.readouterr()

        # the relay path too: an update of every row, relayed
        settings = make_settings(litellm_dsn, backend_dsn, SALT)
        async with running(settings):
            await lc.execute(f"""UPDATE {TABLE} SET model_info = model_info || '{{"n": 1}}'""")
            await eventually(lambda: outbox_empty(lc), what="updates relayed")

    async with await psycopg.AsyncConnection.connect(backend_dsn, autocommit=True) as bc:
        cur = await bc.execute("SELECT id, api_base, metadata FROM models ORDER BY id")
        rows = {r[0]: (r[1], r[2]) for r in await cur.fetchall()}
    assert set(rows) == set(DEPLOYMENTS)
    assert rows["env-salt"][0] == "os.environ/LITELLM_SALT_KEY"  # the reference, never the value
    assert rows["url-forms"][0] is not None
    assert rows["url-forms"][0].startswith("https://***@x.example/v1?")
    assert rows["hash-password"][0] == "https://user:***@y.example/v1"
    assert "master key is ***" in json.dumps(rows["hash-password"][1])
    assert rows["key-pasted"][0] == "https://llm.example/***/v1"
    assert rows["env-webhook"][0] == "os.environ/SLACK_WEBHOOK_URL"
    assert rows["env-licence"][0] == "os.environ/LITELLM_LICENSE"
    await assert_no_secrets(
        pg_cluster,
        litellm_dsn,
        backend_dsn,
        [SALT, MASTER, ENV_API_KEY, *S.values()],
        {
            "logs": "\n".join(logs),
            "dry-run plan": plan.out + plan.err,
            "backfill/status output": out.out + out.err,
        },
    )
