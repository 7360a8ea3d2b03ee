"""A full run on two backend connections (``converge(spare_backend=...)``, what `backfill` does):
the chunks alternate between the connections, one chunk written and committed while the next one
takes its locks, reads LiteLLM and is planned; on an error neither connection is left inside a
transaction, and what was committed stays."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from litemaas_hooks import cli, connections, reconcile
from litemaas_hooks.connections import connect
from litemaas_hooks.errors import DatabaseUnavailableError
from litemaas_hooks.reconcile import Reconciler, Report
from litemaas_hooks.settings import load_settings
from tests.helpers import execute
from tests.integration.engine import SEED, run, seed

EXTRA: list[tuple[str, str, dict[str, Any]]] = [
    (f"chunk-{i}", f"openai/c{i}", {}) for i in range(3)
]  # with SEED: 6 names, 3 chunks
NAMES = sorted(name for name, _, _ in [*SEED, *EXTRA])


async def _two_backends(
    engine_call: Any,
) -> tuple[Any, psycopg.pq.TransactionStatus, psycopg.pq.TransactionStatus]:
    """``engine_call(engine, lite, back, spare)``; with both backend connections' transaction
    status after it (raised or not)."""
    settings = load_settings()
    lite = await connect(settings, "litellm")
    back, spare = await connect(settings, "backend"), await connect(settings, "backend")
    try:
        try:
            result: Any = await engine_call(Reconciler(settings), lite, back, spare)
        except Exception as exc:  # returned: the caller asserts on it
            result = exc
        return result, back.info.transaction_status, spare.info.transaction_status
    finally:
        for conn in (lite, back, spare):
            await conn.close()


def _full_run(engine: Reconciler, lite: Any, back: Any, spare: Any) -> Any:
    return engine.converge(lite, back, None, spare_backend=spare)


def _backend_ids(env: dict[str, str]) -> list[str]:
    return [
        r[0] for r in execute(env["LITEMAAS_DATABASE_URL"], "SELECT id FROM models ORDER BY id")
    ]


IDLE = psycopg.pq.TransactionStatus.IDLE


@pytest.fixture(autouse=True)
def three_chunks(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """6 names in LiteLLM, 2 names a chunk, the backend installed."""
    monkeypatch.setattr(reconcile, "CHUNK_NAMES", 2)
    seed(env, [*SEED, *EXTRA])
    assert run("install", "--backend-only") == 0


def test_chunks_alternate_and_the_next_one_is_prepared_while_one_is_written(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log: list[tuple[str, int, int]] = []  # (step, chunk, connection)
    real_prepare = Reconciler._prepare_chunk
    real_write = Reconciler._write_chunk

    async def prepare(self: Reconciler, lite: Any, back: Any, names: list[str], **kw: Any) -> Any:
        chunk = NAMES.index(names[0]) // 2
        log.append(("prepare", chunk, id(back)))
        return await real_prepare(self, lite, back, names, **kw)

    async def write(self: Reconciler, back: Any, plan: Any, *args: Any) -> Any:
        chunk = NAMES.index(plan[0].name) // 2
        log.append(("write", chunk, id(back)))
        try:
            return await real_write(self, back, plan, *args)
        finally:
            log.append(("written", chunk, id(back)))

    monkeypatch.setattr(Reconciler, "_prepare_chunk", prepare)
    monkeypatch.setattr(Reconciler, "_write_chunk", write)
    report, back_status, spare_status = asyncio.run(_two_backends(_full_run))

    assert isinstance(report, Report), report
    assert report.counts()["created"] == 6
    assert _backend_ids(env) == NAMES
    writes = [conn for step, _, conn in log if step == "write"]
    assert len(writes) == 3
    assert writes[0] == writes[2] != writes[1]  # A, B, A
    # the second chunk's locks were asked for before the first chunk's write ended
    assert log.index(("prepare", 1, writes[1])) < log.index(("written", 0, writes[0]))
    assert (back_status, spare_status) == (IDLE, IDLE)


def test_an_error_preparing_a_chunk_keeps_the_one_being_written(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading LiteLLM for the second chunk fails while the first is written on the other
    connection: the first is committed, the second rolled back, the error reaches the caller."""
    real_read = vars(reconcile)["read_truth"]  # reconcile's own binding: what it calls
    failed: list[str] = []

    async def read_truth(conn: Any, names: Any, **kw: Any) -> Any:
        if names and next(iter(names)) == NAMES[2] and not failed:
            failed.append(NAMES[2])
            raise RuntimeError("LiteLLM's table went away")
        return await real_read(conn, names, **kw)

    monkeypatch.setattr(reconcile, "read_truth", read_truth)
    error, back_status, spare_status = asyncio.run(_two_backends(_full_run))

    assert isinstance(error, RuntimeError)
    assert "went away" in str(error)
    assert _backend_ids(env) == NAMES[:2]
    assert (back_status, spare_status) == (IDLE, IDLE)
    assert run("backfill") == 0  # a re-run completes the rest
    assert _backend_ids(env) == NAMES


def test_a_failed_write_rolls_back_the_chunk_prepared_meanwhile(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:

    async def write(self: Reconciler, back: Any, plan: Any, *args: Any) -> Any:
        raise RuntimeError("the backend refused the chunk")

    monkeypatch.setattr(Reconciler, "_write_chunk", write)
    error, back_status, spare_status = asyncio.run(_two_backends(_full_run))

    assert isinstance(error, RuntimeError)
    assert "refused the chunk" in str(error)
    assert _backend_ids(env) == []
    assert (back_status, spare_status) == (IDLE, IDLE)


def test_backfill_uses_a_second_connection_and_goes_on_without_one(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_connect = connections.connect
    opened: list[tuple[str, str, Any]] = []
    refuse = {"spare": False}

    async def spy(settings: Any, which: Any, **kw: Any) -> Any:
        name = kw.get("application_name", "litemaas-hooks")
        if refuse["spare"] and name == cli.SPARE_BACKEND_NAME:
            raise DatabaseUnavailableError("too many connections for role")
        conn = await real_connect(settings, which, **kw)
        opened.append((which, name, conn))
        return conn

    monkeypatch.setattr(connections, "connect", spy)
    assert run("backfill", "--quiet") == 0
    assert sorted((w, n) for w, n, _ in opened) == sorted(
        [
            ("litellm", "litemaas-hooks"),
            ("backend", "litemaas-hooks"),
            ("backend", cli.SPARE_BACKEND_NAME),
        ]
    )
    assert all(conn.closed for _, _, conn in opened)
    assert _backend_ids(env) == NAMES

    # the server or the pooler refuses the third connection: said once, the run goes on on one
    execute(env["LITEMAAS_DATABASE_URL"], "DELETE FROM models")
    refuse["spare"] = True
    capsys.readouterr()
    assert run("backfill", "--quiet") == 0
    err = capsys.readouterr().err
    assert "a second backend connection was refused (too many connections for role)" in err
    assert _backend_ids(env) == NAMES


def test_a_dry_run_stays_on_one_connection(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """status's drift check takes no locks: nothing to overlap, and `backfill --dry-run` opens no
    second connection."""
    real_connect = connections.connect
    names: list[str] = []

    async def spy(settings: Any, which: Any, **kw: Any) -> Any:
        names.append(kw.get("application_name", ""))
        return await real_connect(settings, which, **kw)

    monkeypatch.setattr(connections, "connect", spy)
    assert run("backfill", "--dry-run") == cli.EXIT_DIFF
    assert len(names) == 2
    assert cli.SPARE_BACKEND_NAME not in names
    assert _backend_ids(env) == []
