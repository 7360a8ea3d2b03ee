"""Thin I/O over the backend database: the ``litemaas_hooks`` SQL functions and nothing else."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from litemaas_hooks import sql
from litemaas_hooks.mapping import ModelRecord
from litemaas_hooks.planning import CurrentRow


async def lock_models(conn: psycopg.AsyncConnection[Any], ids: Collection[str] | None) -> None:
    """Serialise writers of these names until the transaction ends (None = all names, exclusive)."""
    await conn.execute(sql.query("backend", "lock_models"), {"ids": None if ids is None else sorted(ids)})


async def try_lock_models(
    conn: psycopg.AsyncConnection[Any], ids: Collection[str] | None, *, rows_only: bool = False
) -> list[str]:
    """Like ``lock_models`` but never waits on a name: returns the names busy now (leave them for later)."""
    cur = await conn.execute(
        sql.query("backend", "try_lock_models"),
        {"ids": None if ids is None else sorted(ids), "rows_only": rows_only},
    )
    row = await cur.fetchone()
    return [str(n) for n in (row[0] if row and row[0] else [])]


async def send_try_lock(
    conn: psycopg.AsyncConnection[Any], ids: Collection[str]
) -> psycopg.AsyncCursor[Any]:
    """``try_lock_models`` sent, its answer not awaited (pipeline mode): see ``busy_names``."""
    params = {"ids": sorted(ids), "rows_only": False}
    return await conn.execute(sql.query("backend", "try_lock_models"), params)


async def busy_names(cur: psycopg.AsyncCursor[Any]) -> list[str]:
    row = await cur.fetchone()
    return [str(n) for n in (row[0] if row and row[0] else [])]


async def send_snapshot(
    conn: psycopg.AsyncConnection[Any], ids: Collection[str]
) -> psycopg.AsyncCursor[Any]:
    """``snapshot`` sent, its answer not awaited (pipeline mode): read it with ``snapshot_rows``."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(sql.query("backend", "models_snapshot"), {"ids": list(ids)})
    return cur


async def snapshot_rows(cur: psycopg.AsyncCursor[Any]) -> dict[str, CurrentRow]:
    return {row["id"]: CurrentRow.from_db(row) for row in await cur.fetchall()}


async def send_upsert(
    conn: psycopg.AsyncConnection[Any], records: Sequence[ModelRecord]
) -> psycopg.AsyncCursor[Any]:
    """``upsert`` sent, its answer not awaited (pipeline mode): see ``upsert_outcomes``."""
    params = {"models": Jsonb([r.to_json() for r in records])}
    return await conn.execute(sql.query("backend", "upsert_models"), params)


async def upsert_outcomes(cur: psycopg.AsyncCursor[Any]) -> list[tuple[str, str]]:
    return [(str(model_id), str(outcome)) for model_id, outcome in await cur.fetchall()]


async def snapshot(conn: psycopg.AsyncConnection[Any], ids: Collection[str] | None) -> dict[str, CurrentRow]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql.query("backend", "models_snapshot"), {"ids": None if ids is None else list(ids)})
        return {row["id"]: CurrentRow.from_db(row) for row in await cur.fetchall()}


async def all_ids(conn: psycopg.AsyncConnection[Any]) -> set[str]:
    cur = await conn.execute(sql.query("backend", "model_ids"))
    return {str(row[0]) for row in await cur.fetchall()}


async def note_sources(conn: psycopg.AsyncConnection[Any], from_db: Mapping[str, bool]) -> None:
    """Record whether each synced name comes from LiteLLM's database (True) or only config.yaml."""
    if not from_db:
        return
    ids = sorted(from_db)
    await conn.execute(sql.query("backend", "note_model_sources"), {"ids": ids, "from_db": [from_db[i] for i in ids]})


async def db_model_ids(conn: psycopg.AsyncConnection[Any], ids: Collection[str]) -> set[str]:
    """Of ``ids``, the backend rows known to come from LiteLLM's database (see migration 0004)."""
    if not ids:
        return set()
    cur = await conn.execute(sql.query("backend", "db_model_ids"), {"ids": sorted(ids)})
    return {str(row[0]) for row in await cur.fetchall()}


async def upsert(conn: psycopg.AsyncConnection[Any], records: Sequence[ModelRecord]) -> dict[str, str]:
    """Write a batch set-based; ``{id: inserted | updated | unchanged}``."""
    if not records:
        return {}
    cur = await conn.execute(sql.query("backend", "upsert_models"), {"models": Jsonb([r.to_json() for r in records])})
    return {str(model_id): str(outcome) for model_id, outcome in await cur.fetchall()}


async def retire(conn: psycopg.AsyncConnection[Any], model_id: str, *, cascade: bool, reason: str) -> dict[str, Any]:
    return await retire_result(await send_retire(conn, model_id, cascade=cascade, reason=reason))


async def send_retire(
    conn: psycopg.AsyncConnection[Any], model_id: str, *, cascade: bool, reason: str
) -> psycopg.AsyncCursor[Any]:
    """``retire`` sent, its answer not awaited (pipeline mode): see ``retire_result``."""
    params = {"id": model_id, "cascade": cascade, "reason": reason}
    return await conn.execute(sql.query("backend", "retire_model"), params)


async def retire_result(cur: psycopg.AsyncCursor[Any]) -> dict[str, Any]:
    row = await cur.fetchone()
    return dict(row[0]) if row and row[0] else {}
