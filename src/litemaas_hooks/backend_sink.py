"""Thin I/O over the backend database: the ``litemaas_hooks`` SQL functions and nothing else."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from litemaas_hooks import sql
from litemaas_hooks.errors import function_unavailable
from litemaas_hooks.mapping import ModelRecord
from litemaas_hooks.planning import CurrentRow


async def try_lock_models(
    conn: psycopg.AsyncConnection[Any], ids: Collection[str] | None, *, rows_only: bool = False
) -> list[str]:
    """The names' locks (``try_lock_models_v1``), never waiting on a name: returns the names busy
    now (leave them for later)."""
    cur = await conn.execute(
        sql.query("backend", "try_lock_models"),
        {"ids": None if ids is None else sorted(ids), "rows_only": rows_only},
    )
    row = await cur.fetchone()
    return [str(n) for n in (row[0] if row and row[0] else [])]


async def send_try_lock(
    conn: psycopg.AsyncConnection[Any], ids: Collection[str], *, lock_timeout: str | None = None
) -> psycopg.AsyncCursor[Any]:
    """``try_lock_models`` sent, its answer not awaited (pipeline mode): see ``busy_names``.
    ``lock_timeout``: this transaction's lock timeout set first, in the same statement."""
    params: dict[str, Any] = {"ids": sorted(ids), "rows_only": False}
    if lock_timeout is None:
        return await conn.execute(sql.query("backend", "try_lock_models"), params)
    params["timeout"] = lock_timeout
    return await conn.execute(sql.query("backend", "try_lock_models_with_timeout"), params)


@dataclass(frozen=True)
class OneTrip:
    """What ``write_one_trip`` did: the names left for later, and the upsert's outcome per model
    id (inserted / updated / unchanged)."""

    busy: list[str]
    outcomes: list[tuple[str, str]]


async def write_one_trip(
    conn: psycopg.AsyncConnection[Any],
    ids: Collection[str],
    records: Sequence[ModelRecord],
    from_db: Mapping[str, bool],
    instance: str | None,
    *,
    lock_timeout: str,
    via_function: bool = True,
) -> OneTrip:
    """One statement, its own transaction: the lock timeout, the names' locks, then the upsert of
    ``records`` and the sources of ``from_db`` (and ``instance``) for the names not busy.

    ``via_function``: one checked call of ``write_models_v1`` (the named query ``write_models``).
    Raises ``psycopg.errors.UndefinedFunction`` / ``InsufficientPrivilege`` when the install or the
    role's grants predate it (``function_missing``: the caller falls back). Else the named query
    ``write_models_one_trip``, which calls the four functions itself."""
    source_ids = sorted(from_db)
    params = {
        "timeout": lock_timeout,
        "ids": sorted(ids),
        "models": Jsonb([r.to_json() for r in records]),
        "source_ids": source_ids,
        "from_db": [from_db[i] for i in source_ids],
        "instance": instance,
    }
    query = "write_models" if via_function else "write_models_one_trip"
    cur = await conn.execute(sql.query("backend", query), params)
    row = await cur.fetchone()
    assert row is not None  # one row, always
    busy, written, outcomes = row[0] or [], row[1] or [], row[2] or []
    return OneTrip(
        busy=[str(n) for n in busy],
        outcomes=[(str(i), str(o)) for i, o in zip(written, outcomes, strict=True)],
    )


def refused(exc: psycopg.Error) -> bool:
    """A function's check refused to call it: altered since install (92_function_checks.sql)."""
    message = exc.diag.message_primary or ""
    return exc.sqlstate == "42501" and message.startswith("litemaas-hooks refuses to call")


def function_missing(exc: psycopg.Error, function: str = "write_models_v1") -> bool:
    """A call of one of our one-statement functions (``write_one_trip(via_function=True)``:
    ``write_models_v1``; ``retire_one_trip``: ``retire_models_v1``) failed because it does not
    exist (42883: an install older than this code) or the role may not call it (42501: grants older
    than this code), not because its check refused it (also 42501)."""
    return function_unavailable(exc, function) and not refused(exc)


@dataclass(frozen=True)
class Retired:
    """What ``retire_one_trip`` did: the names left for later, and per other name either
    ``{"skipped": why}`` (absent, already_retired, hand_made, already_unavailable) or
    ``retire_model_v2``'s answer with ``availability_before``."""

    busy: list[str]
    results: dict[str, dict[str, Any]]


async def retire_one_trip(
    conn: psycopg.AsyncConnection[Any],
    ids: Collection[str],
    *,
    cascade: bool,
    reason: str,
    grace_seconds: float,
    instance: str | None,
    hold: bool,
    lock_timeout: str,
) -> Retired:
    """One statement, its own transaction: the lock timeout, the names' locks, then for each name
    not busy the plan for a name LiteLLM no longer has and its retire (``retire_models_v1``, one
    checked call). Raises ``UndefinedFunction`` / ``InsufficientPrivilege`` when the install or the
    role's grants predate it (``function_missing(exc, "retire_models_v1")``: the caller falls
    back)."""
    cur = await conn.execute(
        sql.query("backend", "retire_models"),
        {
            "ids": sorted(ids),
            "cascade": cascade,
            "reason": reason,
            "grace": grace_seconds,
            "instance": instance,
            "hold": hold,
            "timeout": lock_timeout,
        },
    )
    row = await cur.fetchone()
    assert row is not None  # one row, always
    results = row[1] or {}
    return Retired(
        busy=[str(n) for n in row[0] or []],
        results={str(k): dict(v) for k, v in results.items()},
    )


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


async def snapshot(
    conn: psycopg.AsyncConnection[Any], ids: Collection[str] | None
) -> dict[str, CurrentRow]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            sql.query("backend", "models_snapshot"), {"ids": None if ids is None else list(ids)}
        )
        return {row["id"]: CurrentRow.from_db(row) for row in await cur.fetchall()}


async def all_ids(conn: psycopg.AsyncConnection[Any]) -> set[str]:
    cur = await conn.execute(sql.query("backend", "model_ids"))
    return {str(row[0]) for row in await cur.fetchall()}


async def note_sources(conn: psycopg.AsyncConnection[Any], from_db: Mapping[str, bool]) -> None:
    """Record whether each synced name comes from LiteLLM's database (True) or only config.yaml."""
    if not from_db:
        return
    ids = sorted(from_db)
    await conn.execute(
        sql.query("backend", "note_model_sources"),
        {"ids": ids, "from_db": [from_db[i] for i in ids]},
    )


async def db_model_ids(conn: psycopg.AsyncConnection[Any], ids: Collection[str]) -> set[str]:
    """Of ``ids``, the backend rows known to come from LiteLLM's database (see migration 0004)."""
    if not ids:
        return set()
    cur = await conn.execute(sql.query("backend", "db_model_ids"), {"ids": sorted(ids)})
    return {str(row[0]) for row in await cur.fetchall()}


async def upsert(
    conn: psycopg.AsyncConnection[Any], records: Sequence[ModelRecord]
) -> dict[str, str]:
    """Write a batch set-based; ``{id: inserted | updated | unchanged}``."""
    if not records:
        return {}
    cur = await conn.execute(
        sql.query("backend", "upsert_models"), {"models": Jsonb([r.to_json() for r in records])}
    )
    return {str(model_id): str(outcome) for model_id, outcome in await cur.fetchall()}


async def retire(
    conn: psycopg.AsyncConnection[Any], model_id: str, *, cascade: bool, reason: str
) -> dict[str, Any]:
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


# -- retire safety (grace period, mass-retire guard, restore, instances; migration 0005) ----------


async def retire_v2(
    conn: psycopg.AsyncConnection[Any],
    model_id: str,
    *,
    cascade: bool,
    reason: str,
    grace_seconds: float,
    instance: str | None,
    hold: bool = False,
) -> dict[str, Any]:
    """Unavailable at once; the cascade after ``grace_seconds`` (0 and no hold: now)."""
    cur = await send_retire_v2(
        conn,
        model_id,
        cascade=cascade,
        reason=reason,
        grace_seconds=grace_seconds,
        instance=instance,
        hold=hold,
    )
    return await retire_result(cur)


async def send_retire_v2(
    conn: psycopg.AsyncConnection[Any],
    model_id: str,
    *,
    cascade: bool,
    reason: str,
    grace_seconds: float,
    instance: str | None,
    hold: bool = False,
) -> psycopg.AsyncCursor[Any]:
    """``retire_v2`` sent, its answer not awaited (pipeline mode): see ``retire_result``."""
    return await conn.execute(
        sql.query("backend", "retire_model_v2"),
        {
            "id": model_id,
            "cascade": cascade,
            "reason": reason,
            "grace": grace_seconds,
            "instance": instance,
            "hold": hold,
        },
    )


async def claim_due_retires(conn: psycopg.AsyncConnection[Any], limit: int) -> list[str]:
    """Due, not held pending cascades, locked for the caller's transaction (SKIP LOCKED)."""
    cur = await conn.execute(sql.query("backend", "claim_due_retires"), {"limit": limit})
    return [str(row[0]) for row in await cur.fetchall()]


async def claim_held_retires(
    conn: psycopg.AsyncConnection[Any], ids: Collection[str] | None
) -> list[str]:
    cur = await conn.execute(
        sql.query("backend", "claim_held_retires"), {"ids": None if ids is None else sorted(ids)}
    )
    return [str(row[0]) for row in await cur.fetchall()]


async def cascade_pending(
    conn: psycopg.AsyncConnection[Any], model_id: str, *, reason: str, held: bool = False
) -> dict[str, Any]:
    """Cascade a due pending name (``held``: one the guard holds, the operator's confirm)."""
    query = sql.query("backend", "cascade_held" if held else "cascade_pending")
    cur = await conn.execute(query, {"id": model_id, "reason": reason})
    row = await cur.fetchone()
    return dict(row[0]) if row and row[0] else {}


async def hold_retires(conn: psycopg.AsyncConnection[Any], ids: Collection[str], why: str) -> int:
    if not ids:
        return 0
    cur = await conn.execute(sql.query("backend", "hold_retires"), {"ids": sorted(ids), "why": why})
    row = await cur.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


async def retire_guard_total(conn: psycopg.AsyncConnection[Any]) -> int:
    return await retire_guard_total_of(await send_retire_guard_total(conn))


async def send_retire_guard_total(conn: psycopg.AsyncConnection[Any]) -> psycopg.AsyncCursor[Any]:
    """``retire_guard_total`` sent, its answer not awaited (pipeline mode)."""
    return await conn.execute(sql.query("backend", "retire_guard_total"))


async def retire_guard_total_of(cur: psycopg.AsyncCursor[Any]) -> int:
    row = await cur.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


async def retire_queue(conn: psycopg.AsyncConnection[Any]) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql.query("backend", "retire_queue"))
        return list(await cur.fetchall())


async def next_retire_due(conn: psycopg.AsyncConnection[Any]) -> float | None:
    """Seconds until the next cascade (not held) is due; None when none waits."""
    cur = await conn.execute(sql.query("backend", "next_retire_due"))
    row = await cur.fetchone()
    return None if not row or row[0] is None else float(row[0])


async def note_instances(
    conn: psycopg.AsyncConnection[Any], ids: Collection[str], instance: str | None
) -> None:
    """Record that LiteLLM instance ``instance`` synced these names (model_instances)."""
    if not ids or instance is None:
        return
    await conn.execute(
        sql.query("backend", "note_model_instances"), {"ids": sorted(ids), "instance": instance}
    )


async def restore_model(
    conn: psycopg.AsyncConnection[Any], model_id: str, *, apply: bool
) -> dict[str, Any]:
    query = sql.query("backend", "restore_model")
    cur = await conn.execute(query, {"id": model_id, "apply": apply})
    row = await cur.fetchone()
    return dict(row[0]) if row and row[0] else {}


async def served_elsewhere(
    conn: psycopg.AsyncConnection[Any], ids: Collection[str], instance: str | None
) -> set[str]:
    """Of names this instance no longer has: those another LiteLLM instance serves (this instance's
    claim on all of them is dropped)."""
    if not ids:
        return set()
    query = sql.query("backend", "served_elsewhere")
    cur = await conn.execute(query, {"ids": sorted(ids), "instance": instance})
    return {str(row[0]) for row in await cur.fetchall()}
