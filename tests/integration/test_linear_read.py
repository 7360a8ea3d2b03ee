"""Reading LiteLLM's table in a full run is linear in the model count: one scan for every
deployment's key and name (LiteLLM's table has no index on model_name, and we add none to its
schema), then each chunk's rows by primary key (an index scan), never a scan per chunk."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from litemaas_hooks import litellm_source, reconcile, sql
from tests.helpers import execute
from tests.integration.engine import SEED, connected, run, seed

SYNTHETIC = """
INSERT INTO public."LiteLLM_ProxyModelTable" (model_id, model_name, litellm_params, model_info,
                                               created_by, updated_by)
SELECT 'synthetic-' || i, 'synthetic-' || (i / 2), '{}'::jsonb, '{}'::jsonb, 'test', 'test'
FROM generate_series(1, 20000) AS i
"""


def _plan_nodes(plan: dict[str, Any]) -> list[str]:
    nodes = [str(plan.get("Node Type"))]
    for child in plan.get("Plans", []):
        nodes += _plan_nodes(child)
    return nodes


def test_a_full_run_scans_once_then_reads_each_chunk_by_key(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reconcile, "CHUNK_NAMES", 2)
    seed(env, [*SEED, *((f"linear-{i}", f"openai/l{i}", {}) for i in range(5))])  # 8: 4 chunks
    assert run("install", "--backend-only") == 0
    calls: dict[str, int] = {"scans": 0, "by_key": 0, "by_name": 0}
    real_ids, real_rows, real_truth = (
        litellm_source.deployment_ids,
        litellm_source.rows_by_ids,
        litellm_source.read_truth,
    )

    async def deployment_ids(*args: Any, **kwargs: Any) -> Any:
        calls["scans"] += 1
        return await real_ids(*args, **kwargs)

    async def rows_by_ids(*args: Any, **kwargs: Any) -> Any:
        calls["by_key"] += 1
        return await real_rows(*args, **kwargs)

    async def read_truth(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("rows") is None:  # read_truth reads the names' rows itself: a table scan
            calls["by_name"] += 1
        return await real_truth(*args, **kwargs)

    monkeypatch.setattr(litellm_source, "deployment_ids", deployment_ids)
    monkeypatch.setattr(litellm_source, "rows_by_ids", rows_by_ids)
    monkeypatch.setattr(reconcile, "read_truth", read_truth)
    report = asyncio.run(connected(lambda engine, lite, back: engine.converge(lite, back, None)))
    assert report.counts()["created"] == 8
    assert calls == {"scans": 1, "by_key": 4, "by_name": 0}

    # and a read by key is an index scan on a large table, not a scan of it
    litellm = env["LITELLM_DATABASE_URL"]
    execute(litellm, SYNTHETIC)
    execute(litellm, 'ANALYZE public."LiteLLM_ProxyModelTable"')
    [(blocked,)] = execute(
        litellm,
        "SELECT count(*) > 0 FROM information_schema.columns "
        "WHERE table_name = 'LiteLLM_ProxyModelTable' AND column_name = 'blocked'",
    )
    variant = "" if blocked else "_without_blocked"  # LiteLLM 1.81's table has no `blocked`
    query = sql.query("litellm", "deployments_by_id" + variant).replace("%(ids)s", "%s")
    query = query.replace("%(names)s", "%s")
    [(plan,)] = execute(
        litellm,
        "EXPLAIN (FORMAT JSON) " + query,
        (["synthetic-7", "synthetic-8"], ["synthetic-3", "synthetic-4"]),
    )
    plan = json.loads(plan) if isinstance(plan, str) else plan
    nodes = _plan_nodes(plan[0]["Plan"])
    assert "Seq Scan" not in nodes, nodes
    assert any("Index" in n for n in nodes), nodes
