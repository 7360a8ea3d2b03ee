"""A full run writes each chunk in one pipelined round trip.

A statement the backend refuses sends the chunk back to its savepoint and record by record: the one
bad row is an error, the others land."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg

from litemaas_hooks.connections import use_fast_json
from litemaas_hooks.reconcile import Reconciler
from tests.helpers import execute, insert_rows, litellm_row, make_settings, probe

REFUSE_ONE = """
CREATE FUNCTION public.refuse_bad() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id = 'chunk-bad' THEN RAISE EXCEPTION 'refused by a test trigger'; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_bad BEFORE INSERT OR UPDATE ON public.models
    FOR EACH ROW EXECUTE FUNCTION public.refuse_bad();
"""


def test_a_refused_row_costs_only_itself_in_a_full_run(
    hooks_env: dict[str, str], litellm_dsn: str, backend_dsn: str, master_key: str, tmp_path: Path
) -> None:
    rc, _out, err = probe(["install"], hooks_env)
    assert rc == 0, err
    names = ["chunk-a", "chunk-bad", "chunk-c"]
    params = {"model": "openai/gpt-4o", "api_key": "sk-x"}
    insert_rows(litellm_dsn, [litellm_row(n, params, key=master_key) for n in names])
    execute(backend_dsn, REFUSE_ONE)
    settings = make_settings(litellm_dsn, backend_dsn, master_key)

    async def run() -> dict[str, str]:
        async with (
            await psycopg.AsyncConnection.connect(litellm_dsn, autocommit=True) as lconn,
            await psycopg.AsyncConnection.connect(backend_dsn, autocommit=True) as bconn,
        ):
            use_fast_json(lconn)
            report = await Reconciler(settings).converge(lconn, bconn, names=None)
            assert bconn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            return {n: o.action for n, o in report.outcomes.items()}

    outcomes = asyncio.run(run())
    assert outcomes == {"chunk-a": "created", "chunk-bad": "error", "chunk-c": "created"}
    rows = execute(backend_dsn, "SELECT id FROM models ORDER BY id")
    assert [r[0] for r in rows] == ["chunk-a", "chunk-c"]
    sources = execute(backend_dsn, "SELECT model_id FROM litemaas_hooks.model_sources ORDER BY 1")
    assert [r[0] for r in sources] == ["chunk-a", "chunk-c"]
