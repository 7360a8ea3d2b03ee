"""Issue 20 item 5: a model name is blank by one rule in SQL and in Python. "\\u00a0" was a name to
SQL
(btrim trims only spaces) and blank to Python (str.strip): never created, retired on every edit, and
`status` said HEALTHY. Now it is a nameless deployment everywhere: one clear error in `status`, its
events kept with that error, nothing created or retired."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from litemaas_hooks import litellm_source, outbox
from litemaas_hooks.mapping import BLANK_CHARS, is_blank_name
from litemaas_hooks.status import collect_status, format_status
from tests.helpers import TABLE, add, eventually, install, make_settings, running

pytestmark = pytest.mark.anyio

BLANKS = ["\u00a0", "\u3000", " \u200b ", "\t"]


async def test_sql_and_python_judge_every_name_alike(
    litellm_dsn: str, backend_dsn: str, master_key: str
) -> None:
    await install(litellm_dsn, backend_dsn)
    names = [*BLANKS, *(c for c in BLANK_CHARS if c != "\x00"), "a", "\u00a0a\u00a0", "x\u200b"]
    async with await psycopg.AsyncConnection.connect(litellm_dsn, autocommit=True) as lc:
        ids = {await add(lc, f"tmp-{i}", master_key): name for i, name in enumerate(names)}
        for model_id, name in ids.items():
            await lc.execute(
                f"UPDATE {TABLE} SET model_name = %s WHERE model_id = %s", (name, model_id)
            )
        sql_names = set(await litellm_source.deployment_ids(lc))
        nameless = set(await litellm_source.nameless_deployments(lc))
    assert sql_names == {n for n in names if not is_blank_name(n)}
    assert nameless == {i for i, n in ids.items() if is_blank_name(n)}


async def test_a_blank_name_is_one_clear_error_never_a_model(
    litellm_dsn: str, backend_dsn: str, master_key: str
) -> None:
    await install(litellm_dsn, backend_dsn)
    settings = make_settings(litellm_dsn, backend_dsn, master_key)
    async with (
        await psycopg.AsyncConnection.connect(litellm_dsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(backend_dsn, autocommit=True) as bc,
    ):
        ids = [await add(lc, name, master_key) for name in BLANKS]
        await add(lc, "visible", master_key)
        async with running(settings):

            async def settled() -> bool:
                counts = await outbox.counts(lc)
                return counts.pending == 0 and counts.claimed == 0

            await eventually(settled, deadline_seconds=30, what="events settled")
            await lc.execute(f"UPDATE {TABLE} SET model_info = model_info || '{{\"n\": 1}}'")
            await eventually(settled, deadline_seconds=30, what="edits settled")
        cur = await bc.execute("SELECT id, availability FROM models")
        rows: dict[str, Any] = dict(await cur.fetchall())
        assert rows == {"visible": "available"}
        cur = await bc.execute("SELECT count(*) FROM audit_logs")
        assert (await cur.fetchone()) == (0,)  # nothing retired
        dead = await outbox.dead_events(lc)
        assert {e.model_id for e in dead} == set(ids)
        assert all("has no model_name" in (e.last_error or "") for e in dead)

    report = await collect_status(settings)
    text = format_status(report)
    assert "UNHEALTHY" in text
    for model_id in ids:
        assert "missing or blank" in report.drift.errors[f"<deployment {model_id}>"]
