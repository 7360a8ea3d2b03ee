"""Typed access to the outbox in the LiteLLM database (``sql/litellm/queries.sql``).

Every function runs one named query on the given connection and does not commit: use an autocommit
connection (the relay does) or commit yourself. Event lifecycle::

    trigger INSERT ─► pending ─claim─► claimed ─complete─► (deleted)
                         ▲               │ fail (attempts < max) / release / stalled
                         └───────────────┘
                                         │ fail or stalled with attempts >= max
                                         ▼
                                       dead ─replay_dead─► pending
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row, dict_row
from psycopg.types.json import set_json_loads

from litemaas_hooks import sql
from litemaas_hooks.mapping import is_blank_name

CHANNEL = "litemaas_hooks_model_events"
"""The LISTEN/NOTIFY channel the trigger (and replay/resync) notify on."""

AnyConn = psycopg.AsyncConnection[Any]
DEFAULT_MAX_DELAY_SECONDS = 3600.0
"""Longest retry delay assumed when the caller does not say (an event due further ahead is due
now)."""


def _q(name: str) -> str:
    return sql.query("litellm", name)


@dataclass(frozen=True)
class Event:
    """A claimed outbox event: "these model names changed" (never trusted beyond that)."""

    id: int
    op: str
    model_id: str | None
    old_model_name: str | None
    new_model_name: str | None
    attempts: int
    created_at: datetime

    @property
    def names(self) -> frozenset[str]:
        """Every model name the event touches (old and new name of a rename)."""
        # a blank name (mapping.is_blank_name: "\u00a0" too) is no name: nothing to converge
        names = (self.old_model_name, self.new_model_name)
        return frozenset(n for n in names if n and not is_blank_name(n))


@dataclass(frozen=True)
class FailResult:
    id: int
    status: str  # "pending" (will be retried) or "dead"
    attempts: int
    next_attempt_at: datetime


@dataclass(frozen=True)
class Recovered:
    id: int
    status: str


@dataclass(frozen=True)
class OutboxCounts:
    pending: int
    claimed: int
    dead: int
    oldest_pending_age_seconds: float | None  # age of the oldest not-dead event; None when empty


@dataclass(frozen=True)
class DeadEvent(Event):
    """An event that failed ``max_attempts`` times, with the error of its last attempt."""

    last_error: str | None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["created_at"] = self.created_at.isoformat()
        return out


@dataclass(frozen=True)
class TriggerState:
    table_present: bool  # public."LiteLLM_ProxyModelTable" exists
    outbox_present: bool  # litemaas_hooks.model_events exists (migration applied)
    trigger_present: bool  # the trigger exists on LiteLLM's table
    trigger_enabled: bool  # ... and is enabled and calls the current function

    @property
    def ok(self) -> bool:
        return (
            self.table_present
            and self.outbox_present
            and self.trigger_present
            and self.trigger_enabled
        )


@dataclass(frozen=True)
class ReconcileState:
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_runner: str | None
    last_summary: str | None
    age_seconds: float | None


# -- relay side ------------------------------------------------------------------------------------


async def listen(conn: AnyConn) -> None:
    """LISTEN on the outbox channel (the connection must be in autocommit mode)."""
    await conn.execute(_q("listen"))


async def ping(conn: AnyConn) -> None:
    """A trivial round trip: raises ``psycopg.OperationalError`` when the connection is gone."""
    await conn.execute(_q("ping"))


async def claim(
    conn: AnyConn,
    *,
    worker: str,
    batch_size: int,
    max_delay_seconds: float = DEFAULT_MAX_DELAY_SECONDS,
) -> list[Event]:
    """Claim up to ``batch_size`` due pending events for ``worker`` (oldest first), tied to this
    connection's database session. ``max_delay_seconds``: the longest retry delay we ever set; an
    event due further ahead than that is due now (the database clock was stepped back)."""
    params = {"worker": worker, "batch_size": batch_size, "max_delay_seconds": max_delay_seconds}
    async with conn.cursor(row_factory=class_row(Event)) as cur:
        await cur.execute(_q("claim_events"), params)
        events = await cur.fetchall()
    return sorted(events, key=lambda e: e.id)


@dataclass
class Batch:
    """What ``claim_batch`` brought back in its one round trip."""

    events: list[Event]
    # every row of LiteLLM's model table naming a claimed model name (read after the claim, in its
    # transaction: never older than the claimed events)
    rows: list[dict[str, Any]] = field(default_factory=list)
    recovered: list[Recovered] = field(default_factory=list)  # claims of dead sessions given back
    completed: int = 0  # of ``done``
    next_due_seconds: float | None = None  # as next_due_seconds(), after this claim


async def claim_batch(
    conn: AnyConn,
    *,
    worker: str,
    batch_size: int,
    max_delay_seconds: float = DEFAULT_MAX_DELAY_SECONDS,
    done: Iterable[int] = (),
    max_attempts: int = 10,
    blocked_column: bool = True,
    json_loads: Callable[[str | bytes], Any] | None = None,
    explicit_transaction: bool = True,
    via_function: bool = False,
) -> Batch:
    """One round trip (a pipelined transaction): delete the ``done`` events of the previous batch,
    give back claims of dead sessions, claim up to ``batch_size`` due events (never one naming a
    model another relay holds a claim on), read every LiteLLM deployment of the claimed names, and
    say when the next pending event is due. ``blocked_column``: LiteLLM's table has ``blocked`` (not
    1.81). ``explicit_transaction=False``: no BEGIN and COMMIT; the statements of a pipeline up to
    its Sync (one, at its end) are one implicit transaction in PostgreSQL, two statements fewer.
    Not under transaction pooling, where each transaction pins search_path at its BEGIN.

    ``via_function``: all of it in ONE statement, ``litemaas_hooks.claim_batch_v1`` (any pooling;
    it checks the table's column types itself, ``blocked_column`` and ``explicit_transaction`` do
    not apply). Raises ``psycopg.errors.UndefinedFunction`` / ``InsufficientPrivilege`` when the
    install or the role's grants predate it (the caller falls back to the named queries)."""
    if via_function:
        return await _claim_batch_v1(
            conn,
            worker=worker,
            batch_size=batch_size,
            max_delay_seconds=max_delay_seconds,
            done=done,
            max_attempts=max_attempts,
            json_loads=json_loads,
        )
    done_ids = sorted(set(done))
    claim = {"worker": worker, "batch_size": batch_size, "max_delay_seconds": max_delay_seconds}
    variant = "" if blocked_column else "_without_blocked"
    recover = {"free_interruptions": FREE_INTERRUPTIONS, "max_attempts": max_attempts}
    try:
        async with conn.pipeline():
            if explicit_transaction:
                await conn.execute(_q("begin"))
            complete = {"worker": worker, "ids": done_ids}
            ccur = await conn.execute(_q("complete_events"), complete) if done_ids else None
            # dead sessions' claims given back, and the claim lock (one statement)
            rcur = await conn.execute(_q("recover_dead_sessions"), recover)
            ecur = conn.cursor(row_factory=class_row(Event))
            await ecur.execute(_q("claim_events_exclusive"), claim)
            dcur = conn.cursor(row_factory=dict_row)
            if json_loads is not None:
                set_json_loads(json_loads, dcur)
            # the claimed names' deployments, each row also saying when the next event is due
            read = {"worker": worker, "max_delay_seconds": max_delay_seconds}
            await dcur.execute(_q("deployments_of_claims" + variant), read)
            if explicit_transaction:
                await conn.execute(_q("commit"))
    except BaseException:
        await rollback(conn)
        raise
    events = sorted(await ecur.fetchall(), key=lambda e: e.id)
    rows = await dcur.fetchall()  # at least one: the due time comes even with no deployment
    due = rows[0]["next_due"] if rows else None
    for row in rows:
        del row["next_due"]
    return Batch(
        events=events,
        rows=[r for r in rows if r["model_id"] is not None] if events else [],
        recovered=_recovered_row(await rcur.fetchone()),
        completed=ccur.rowcount if ccur is not None else 0,
        next_due_seconds=None if due is None else float(due),
    )


# claim_batch_v1's deployment columns, as the named queries name them
_DEPLOYMENT_COLUMNS = (
    ("model_id", "model_id"),
    ("model_name", "model_name"),
    ("litellm_params", "litellm_params"),
    ("model_info", "model_info"),
    ("created_at", "deployment_created_at"),
    ("updated_at", "deployment_updated_at"),
    ("blocked", "blocked"),
)
_EVENT_FIELDS = tuple(f.name for f in dataclasses.fields(Event))


async def _claim_batch_v1(
    conn: AnyConn,
    *,
    worker: str,
    batch_size: int,
    max_delay_seconds: float,
    done: Iterable[int],
    max_attempts: int,
    json_loads: Callable[[str | bytes], Any] | None,
) -> Batch:
    """``claim_batch`` as one statement (``claim_batch_v1``: its own implicit transaction)."""
    params = {
        "worker": worker,
        "batch_size": batch_size,
        "max_delay_seconds": max_delay_seconds,
        "done": sorted(set(done)),
        "free_interruptions": FREE_INTERRUPTIONS,
        "max_attempts": max_attempts,
    }
    cur = conn.cursor(row_factory=dict_row)
    if json_loads is not None:
        set_json_loads(json_loads, cur)
    # prepared at its first call, not at psycopg's 5th (outside a pipeline, a prepare is a round
    # trip of its own: one per connection then, never in the middle of the work)
    await cur.execute(_q("claim_batch"), params, prepare=True)
    events: list[Event] = []
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    for row in await cur.fetchall():
        if row["kind"] == "event":
            events.append(Event(**{name: row[name] for name in _EVENT_FIELDS}))
        elif row["kind"] == "deployment":
            rows.append({name: row[column] for name, column in _DEPLOYMENT_COLUMNS})
        else:
            summary = row
    due = summary.get("next_due")
    return Batch(
        events=events,
        rows=rows if events else [],
        recovered=_recovered(summary.get("recovered_ids"), summary.get("recovered_statuses")),
        completed=int(summary.get("completed") or 0),
        next_due_seconds=None if due is None else float(due),
    )


async def rollback(conn: AnyConn) -> None:
    """End an explicit transaction a pipelined round trip left open (after an error); never
    raises."""
    if conn.closed or conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        return
    with contextlib.suppress(psycopg.Error):  # the connection is gone: its transaction went with it
        await conn.execute(_q("rollback"))


async def complete(conn: AnyConn, *, worker: str, ids: Iterable[int]) -> int:
    """Delete applied events still claimed by ``worker``; returns how many were deleted."""
    id_list = sorted(set(ids))
    if not id_list:
        return 0
    cur = await conn.execute(_q("complete_events"), {"worker": worker, "ids": id_list})
    return cur.rowcount


async def fail(
    conn: AnyConn,
    *,
    worker: str,
    errors: Mapping[int, str],
    max_attempts: int,
    retry_base_seconds: float,
    retry_max_seconds: float,
) -> list[FailResult]:
    """Record failures (``{event_id: error text}``, already scrubbed): retry later or mark dead."""
    if not errors:
        return []
    ids = sorted(errors)
    params = {
        "worker": worker,
        "ids": ids,
        "errors": [errors[i] for i in ids],
        "max_attempts": max_attempts,
        "base_seconds": retry_base_seconds,
        "max_seconds": retry_max_seconds,
    }
    async with conn.cursor(row_factory=class_row(FailResult)) as cur:
        await cur.execute(_q("fail_events"), params)
        return await cur.fetchall()


async def release(conn: AnyConn, *, worker: str, reason: str) -> int:
    """Give back every claim of ``worker`` without counting an attempt; returns how many."""
    cur = await conn.execute(_q("release_claims"), {"worker": worker, "reason": reason})
    return cur.rowcount


async def defer(
    conn: AnyConn, *, worker: str, reasons: Mapping[int, str], delay_seconds: float
) -> int:
    """Give claims back for a retry after ``delay_seconds`` (+-10 %), without counting an
    attempt."""
    if not reasons:
        return 0
    ids = sorted(reasons)
    params = {
        "worker": worker,
        "ids": ids,
        "reasons": [reasons[i] for i in ids],
        "delay_seconds": delay_seconds,
    }
    cur = await conn.execute(_q("defer_events"), params)
    return cur.rowcount


FREE_INTERRUPTIONS = 5
"""An event's first interruptions by a dead relay are not attempts; later ones are (it kills
relays)."""


async def recover_dead_sessions(conn: AnyConn, *, max_attempts: int = 10) -> list[Recovered]:
    """Give back, at once, claims whose claiming session is gone; not counted as an attempt for the
    first ``FREE_INTERRUPTIONS`` interruptions of an event (then ``dead`` after
    ``max_attempts``)."""
    params = {"free_interruptions": FREE_INTERRUPTIONS, "max_attempts": max_attempts}
    cur = await conn.execute(_q("recover_dead_sessions"), params)
    return _recovered_row(await cur.fetchone())


def _recovered_row(row: Sequence[Any] | None) -> list[Recovered]:
    """``recover_dead_sessions``'s one row (locked, ids, statuses) as events."""
    return _recovered(row[1], row[2]) if row is not None else []


def _recovered(ids: Sequence[Any] | None, statuses: Sequence[Any] | None) -> list[Recovered]:
    """The recovered events' ids and statuses (two arrays in the same order; NULL: none)."""
    if ids is None or statuses is None:
        return []
    return [Recovered(int(i), str(s)) for i, s in zip(ids, statuses, strict=True)]


async def recover_stalled(
    conn: AnyConn, *, stall_timeout_seconds: float, max_attempts: int
) -> list[Recovered]:
    """Make claims older than ``stall_timeout_seconds`` pending again (or dead)."""
    params = {"stall_seconds": stall_timeout_seconds, "max_attempts": max_attempts}
    async with conn.cursor(row_factory=class_row(Recovered)) as cur:
        await cur.execute(_q("recover_stalled"), params)
        return await cur.fetchall()


async def next_due_seconds(
    conn: AnyConn, *, max_delay_seconds: float = DEFAULT_MAX_DELAY_SECONDS
) -> float | None:
    """Seconds until the earliest pending event is due (<= 0: due now, never more than
    ``max_delay_seconds``); None if none is pending."""
    cur = await conn.execute(_q("next_due_seconds"), {"max_delay_seconds": max_delay_seconds})
    row = await cur.fetchone()
    return None if row is None or row[0] is None else float(row[0])


# -- operator side ---------------------------------------------------------------------------------


async def replay_dead(conn: AnyConn, ids: Sequence[int] | None = None) -> int:
    """Make dead events (all, or ``ids``) pending again with a fresh attempt budget; wakes the
    relays."""
    cur = await conn.execute(_q("replay_dead"), {"ids": None if ids is None else list(ids)})
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def enqueue_resync(conn: AnyConn, model_name: str) -> int:
    """Queue a RESYNC event for one model name; returns the event id. Wakes the relays."""
    cur = await conn.execute(_q("enqueue_resync"), {"model_name": model_name})
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def counts(conn: AnyConn) -> OutboxCounts:
    async with conn.cursor(row_factory=class_row(OutboxCounts)) as cur:
        await cur.execute(_q("status_counts"))
        row = await cur.fetchone()
    assert row is not None
    age = row.oldest_pending_age_seconds
    # a database clock stepped back makes an event look younger than 0 s: never show a negative age
    return (
        row if age is None or age >= 0 else dataclasses.replace(row, oldest_pending_age_seconds=0.0)
    )


async def dead_events(conn: AnyConn, *, limit: int = 100) -> list[DeadEvent]:
    async with conn.cursor(row_factory=class_row(DeadEvent)) as cur:
        await cur.execute(_q("dead_events"), {"limit": limit})
        return await cur.fetchall()


async def trigger_state(conn: AnyConn) -> TriggerState:
    """Works before install too (every part is looked up, nothing is assumed)."""
    async with conn.cursor(row_factory=class_row(TriggerState)) as cur:
        await cur.execute(_q("trigger_state"))
        row = await cur.fetchone()
    assert row is not None
    return row


# -- periodic full reconcile bookkeeping -----------------------------------------------------------


async def try_reconcile_lock(conn: AnyConn) -> bool:
    """Session advisory lock: True for the one relay (fleet-wide) that may run the full reconcile
    now."""
    cur = await conn.execute(_q("reconcile_try_lock"))
    row = await cur.fetchone()
    return bool(row and row[0])


async def reconcile_unlock(conn: AnyConn) -> None:
    await conn.execute(_q("reconcile_unlock"))


async def try_reconcile_lease(
    conn: AnyConn, *, runner: str, min_age_seconds: float, lease_seconds: float
) -> bool:
    """Transaction pooling (no session for an advisory lock): take the full reconcile when it is
    due and no other runner started one within ``lease_seconds`` that has not finished."""
    cur = await conn.execute(
        _q("reconcile_try_lease"),
        {"runner": runner, "min_age_seconds": min_age_seconds, "lease_seconds": lease_seconds},
    )
    return await cur.fetchone() is not None


async def reconcile_due(conn: AnyConn, *, min_age_seconds: float) -> bool:
    """True when no relay finished a full reconcile within the last ``min_age_seconds``."""
    cur = await conn.execute(_q("reconcile_due"), {"min_age_seconds": min_age_seconds})
    row = await cur.fetchone()
    return bool(row is None or row[0])


async def reconcile_started(conn: AnyConn, *, runner: str) -> None:
    await conn.execute(_q("reconcile_started"), {"runner": runner})


async def reconcile_finished(conn: AnyConn, *, runner: str, summary: str) -> None:
    await conn.execute(_q("reconcile_finished"), {"runner": runner, "summary": summary})


async def last_reconcile(conn: AnyConn) -> ReconcileState | None:
    async with conn.cursor(row_factory=class_row(ReconcileState)) as cur:
        await cur.execute(_q("reconcile_last"))
        row = await cur.fetchone()
    if row is not None and row.age_seconds is not None and row.age_seconds < 0:
        row = dataclasses.replace(row, age_seconds=0.0)  # clock stepped back: never a negative age
    return row
