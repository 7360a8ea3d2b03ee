"""The cost-map memo shared through LiteLLM's database (``litemaas_hooks.cost_map_memo``).

A process outside the proxy learns LiteLLM's cost-map answers by importing LiteLLM (seconds, ~200 MB)
and keeps them on disk (``cost_map.Memo``). A pod's disk is gone with the pod, so the answers are also
merged into one row per (LiteLLM version, cost map) fingerprint in LiteLLM's database: the next backfill
Job, or a restarted relay, reads them and does not import LiteLLM for models some process has already
asked about. Best effort throughout: without the table (an install older than migration 0006), without
the grants, or behind a lock, the process keeps its answers to itself and nothing else changes.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb

from litemaas_hooks import cost_map, litellm_adapter, sql

log = logging.getLogger("litemaas_hooks.memo_share")

# Never make LiteLLM's database wait for a cache: a locked row or a slow server skips the exchange.
_LIMITS = "SELECT set_config('lock_timeout', '200ms', true), set_config('statement_timeout', '5s', true)"


class _State:
    pulled: ClassVar[set[str]] = set()  # fingerprints read from the database in this process
    unavailable: ClassVar[bool] = False  # no table / no grants here: stop trying in this process


def _usable(conn: psycopg.AsyncConnection[Any]) -> bool:
    # only on an idle autocommit connection: our own short transaction, never inside a caller's
    return not _State.unavailable and conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE


async def _available(conn: psycopg.AsyncConnection[Any]) -> bool:
    cur = await conn.execute(sql.query("litellm", "cost_map_memo_exists"))
    row = await cur.fetchone()
    if not (row and row[0]):
        _State.unavailable = True
        log.debug("no usable litemaas_hooks.cost_map_memo (run `litemaas-hooks install`): answers stay on disk")
        return False
    return True


async def pull(conn: psycopg.AsyncConnection[Any]) -> None:
    """Add the shared answers for this process's fingerprint to its memo (once per process)."""
    memo = litellm_adapter.memo_in_use()
    if memo is None or memo.fingerprint in _State.pulled or not _usable(conn):
        return
    _State.pulled.add(memo.fingerprint)
    try:
        if not await _available(conn):
            return
        async with conn.transaction():
            await conn.execute(_LIMITS)
            cur = await conn.execute(sql.query("litellm", "cost_map_memo_read"), {"fingerprint": memo.fingerprint})
            row = await cur.fetchone()
        if row is None:
            memo.fresh |= set(memo.entries)  # nothing shared yet: offer everything this disk knows
            return
        facts, answers, entries = (v if isinstance(v, dict) else {} for v in row)
        memo.fresh |= set(memo.entries) - set(entries)
        added = memo.merge(facts, answers, entries)
        if added:
            memo.dirty = True  # the disk copy learns them too
        log.debug("read %d cost-map answers from LiteLLM's database (%d new here)", len(entries), added)
    except psycopg.Error as exc:
        log.debug("could not read the shared cost-map memo (%s): answers stay on disk", type(exc).__name__)


async def push(conn: psycopg.AsyncConnection[Any]) -> None:
    """Merge the answers learnt in this process into the shared row (no-op when nothing is new)."""
    memo = litellm_adapter.memo_in_use()
    if memo is None or not memo.fresh or not _usable(conn):
        return
    answers, entries = memo.delta()
    if not entries:
        return
    try:
        if memo.fingerprint not in _State.pulled and not await _available(conn):
            return
        async with conn.transaction():
            await conn.execute(_LIMITS)
            await conn.execute(
                sql.query("litellm", "cost_map_memo_merge"),
                {
                    "fingerprint": memo.fingerprint,
                    "version": memo.version,
                    "facts": Jsonb(memo.facts),
                    "answers": Jsonb(answers),
                    "entries": Jsonb(entries),
                },
            )
        memo.fresh.clear()
        await _prune(conn, memo)
    except psycopg.Error as exc:
        log.debug("could not share %d cost-map answers (%s): kept on disk", len(entries), type(exc).__name__)


async def _prune(conn: psycopg.AsyncConnection[Any], memo: cost_map.Memo) -> None:
    try:
        async with conn.transaction():
            await conn.execute(_LIMITS)
            await conn.execute(sql.query("litellm", "cost_map_memo_prune"), {"fingerprint": memo.fingerprint})
    except psycopg.Error as exc:  # e.g. no DELETE grant: old rows stay, nothing breaks
        log.debug("could not prune old cost-map answers (%s)", type(exc).__name__)
