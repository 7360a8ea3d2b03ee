"""The relay's bookkeeping, without a database: what it decides between its I/O calls.

``Relay(engine=...)`` takes any ``relay.Engine`` (here ``FakeEngine``, scripted per model name) and
the relay reaches the outbox only through the ``outbox`` module it imported, replaced here by
``FakeOutbox``: an in-memory table with the lifecycle of ``sql/litellm/queries.sql`` (a claim
counts an attempt, defer and release give it back, fail retries with backoff or marks ``dead``).
The connections handed to the relay refuse every use: any direct database call fails the test.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol, cast

import psycopg
import pytest

from litemaas_hooks import litellm_adapter, outbox
from litemaas_hooks import relay as relay_module
from litemaas_hooks.relay import DEFER_SECONDS, Engine, Relay
from litemaas_hooks.settings import Settings, load_settings

pytestmark = pytest.mark.anyio

MASTER_KEY = "sk-unit-master-key-0123456789abcdef"
AConn = psycopg.AsyncConnection[Any]


# -- the outbox, in memory -------------------------------------------------------------------------


class OutboxCalls(Protocol):
    """The outbox functions the relay calls: the real module and the fake both satisfy it (mypy
    checks both below), so the fake cannot drift from the real signatures unnoticed."""

    async def claim_batch(
        self,
        conn: AConn,
        *,
        worker: str,
        batch_size: int,
        max_delay_seconds: float = ...,
        done: Iterable[int] = ...,
        max_attempts: int = ...,
        blocked_column: bool = ...,
        json_loads: Callable[[str | bytes], Any] | None = ...,
        explicit_transaction: bool = ...,
    ) -> outbox.Batch: ...

    async def fail(
        self,
        conn: AConn,
        *,
        worker: str,
        errors: Mapping[int, str],
        max_attempts: int,
        retry_base_seconds: float,
        retry_max_seconds: float,
    ) -> list[outbox.FailResult]: ...

    async def defer(
        self, conn: AConn, *, worker: str, reasons: Mapping[int, str], delay_seconds: float
    ) -> int: ...

    async def release(self, conn: AConn, *, worker: str, reason: str) -> int: ...

    async def next_due_seconds(
        self, conn: AConn, *, max_delay_seconds: float = ...
    ) -> float | None: ...

    async def trigger_state(self, conn: AConn) -> outbox.TriggerState: ...

    async def try_reconcile_lock(self, conn: AConn) -> bool: ...

    async def reconcile_unlock(self, conn: AConn) -> None: ...

    async def reconcile_due(self, conn: AConn, *, min_age_seconds: float) -> bool: ...

    async def reconcile_started(self, conn: AConn, *, runner: str) -> None: ...

    async def reconcile_finished(self, conn: AConn, *, runner: str, summary: str) -> None: ...


@dataclass
class Row:
    """One row of litemaas_hooks.model_events."""

    id: int
    op: str
    model_id: str | None
    old_model_name: str | None
    new_model_name: str | None
    created_at: datetime
    status: str = "pending"
    attempts: int = 0
    due: float = 0.0  # on the fake database clock (FakeOutbox.now)
    claimed_by: str | None = None
    last_error: str | None = None

    def names(self) -> set[str]:
        return {n for n in (self.old_model_name, self.new_model_name) if n}


@dataclass
class FakeOutbox:
    """An in-memory outbox with the SQL's lifecycle; ``now`` is the database clock (seconds)."""

    rows: dict[int, Row] = field(default_factory=dict)
    now: float = 0.0
    # LiteLLM's table as the claim reads it: model name -> its deployments
    deployments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    recovered: list[outbox.Recovered] = field(default_factory=list)  # for the next claim only
    reconcile_lock_free: bool = True
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def add(
        self,
        op: str = "UPDATE",
        *,
        new: str | None = None,
        old: str | None = None,
        created_at: datetime | None = None,
    ) -> int:
        event_id = len(self.rows) + 1
        created = created_at or datetime.now(UTC)
        self.rows[event_id] = Row(event_id, op, f"dep-{event_id}", old, new, created, due=self.now)
        return event_id

    def called(self, name: str) -> list[dict[str, Any]]:
        return [kwargs for call, kwargs in self.calls if call == name]

    def _mine(self, worker: str, ids: Iterable[int]) -> list[Row]:
        rows = (self.rows.get(i) for i in sorted(set(ids)))
        return [r for r in rows if r and r.status == "claimed" and r.claimed_by == worker]

    async def claim_batch(
        self,
        conn: AConn,
        *,
        worker: str,
        batch_size: int,
        max_delay_seconds: float = outbox.DEFAULT_MAX_DELAY_SECONDS,
        done: Iterable[int] = (),
        max_attempts: int = 10,
        blocked_column: bool = True,
        json_loads: Callable[[str | bytes], Any] | None = None,
        explicit_transaction: bool = True,
        **more: object,  # a keyword the real claim_batch gains later is not this fake's business
    ) -> outbox.Batch:
        done = list(done)
        self.calls.append(("claim_batch", {"worker": worker, "done": done, **more}))
        for row in self._mine(worker, done):
            del self.rows[row.id]
        recovered, self.recovered = self.recovered, []
        busy = {
            n
            for r in self.rows.values()
            if r.status == "claimed" and r.claimed_by != worker
            for n in r.names()
        }
        due = [
            r
            for r in sorted(self.rows.values(), key=lambda r: r.id)
            if r.status == "pending" and r.due <= self.now and not r.names() & busy
        ][:batch_size]
        for row in due:
            row.status, row.claimed_by, row.attempts = "claimed", worker, row.attempts + 1
        events = [
            outbox.Event(
                r.id, r.op, r.model_id, r.old_model_name, r.new_model_name, r.attempts, r.created_at
            )
            for r in due
        ]
        names = {n for r in due for n in r.names()}
        rows = [d for n in sorted(names) for d in self.deployments.get(n, [])]
        return outbox.Batch(
            events=events,
            rows=rows,
            recovered=recovered,
            completed=len(done),
            next_due_seconds=self._next_due(),
        )

    def _next_due(self) -> float | None:
        pending = [r.due - self.now for r in self.rows.values() if r.status == "pending"]
        return min(pending) if pending else None

    async def fail(
        self,
        conn: AConn,
        *,
        worker: str,
        errors: Mapping[int, str],
        max_attempts: int,
        retry_base_seconds: float,
        retry_max_seconds: float,
    ) -> list[outbox.FailResult]:
        self.calls.append(
            (
                "fail",
                {
                    "errors": dict(errors),
                    "max_attempts": max_attempts,
                    "retry_base_seconds": retry_base_seconds,
                    "retry_max_seconds": retry_max_seconds,
                },
            )
        )
        results = []
        for row in self._mine(worker, errors):
            row.last_error, row.claimed_by = errors[row.id], None
            row.status = "dead" if row.attempts >= max_attempts else "pending"
            delay = min(retry_max_seconds, retry_base_seconds * 2 ** max(row.attempts - 1, 0))
            row.due = self.now + delay
            at = datetime.fromtimestamp(row.due, UTC)
            results.append(outbox.FailResult(row.id, row.status, row.attempts, at))
        return results

    async def defer(
        self, conn: AConn, *, worker: str, reasons: Mapping[int, str], delay_seconds: float
    ) -> int:
        self.calls.append(("defer", {"reasons": dict(reasons), "delay_seconds": delay_seconds}))
        rows = self._mine(worker, reasons)
        for row in rows:
            row.status, row.claimed_by, row.attempts = "pending", None, max(row.attempts - 1, 0)
            row.due, row.last_error = self.now + delay_seconds, reasons[row.id]
        return len(rows)

    async def release(self, conn: AConn, *, worker: str, reason: str) -> int:
        self.calls.append(("release", {"reason": reason}))
        rows = [r for r in self.rows.values() if r.status == "claimed" and r.claimed_by == worker]
        for row in rows:
            row.status, row.claimed_by, row.attempts = "pending", None, max(row.attempts - 1, 0)
            row.due, row.last_error = self.now, reason
        return len(rows)

    async def next_due_seconds(
        self, conn: AConn, *, max_delay_seconds: float = outbox.DEFAULT_MAX_DELAY_SECONDS
    ) -> float | None:
        self.calls.append(("next_due_seconds", {}))
        return self._next_due()

    async def trigger_state(self, conn: AConn) -> outbox.TriggerState:
        return outbox.TriggerState(True, True, True, True)

    async def try_reconcile_lock(self, conn: AConn) -> bool:
        self.calls.append(("try_reconcile_lock", {}))
        return self.reconcile_lock_free

    async def reconcile_unlock(self, conn: AConn) -> None:
        self.calls.append(("reconcile_unlock", {}))

    async def reconcile_due(self, conn: AConn, *, min_age_seconds: float) -> bool:
        return True

    async def reconcile_started(self, conn: AConn, *, runner: str) -> None:
        self.calls.append(("reconcile_started", {"runner": runner}))

    async def reconcile_finished(self, conn: AConn, *, runner: str, summary: str) -> None:
        self.calls.append(("reconcile_finished", {"runner": runner, "summary": summary}))


# checked by mypy: the real module and the fake offer the relay the same calls
_REAL_OUTBOX: OutboxCalls = outbox
_FAKE_OUTBOX: OutboxCalls = FakeOutbox()


# -- the engine, scripted per model name -----------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    action: str  # created, updated, unchanged, retired, error, deferred
    message: str | None = None


@dataclass
class FakeReport:
    outcomes: dict[str, Outcome]
    held: list[str] = field(default_factory=list)
    cascade_due_seconds: float | None = None

    def failed_names(self) -> set[str]:
        return {n for n, o in self.outcomes.items() if o.action == "error"}

    def deferred_names(self) -> set[str]:
        return {n for n, o in self.outcomes.items() if o.action == "deferred"}

    def summary(self) -> str:
        return ", ".join(f"{n} {o.action}" for n, o in sorted(self.outcomes.items()))


@dataclass
class DueReport:
    cascaded: dict[str, dict[str, Any]] = field(default_factory=dict)
    held: list[str] = field(default_factory=list)
    came_back: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        return f"cascaded {len(self.cascaded)}"


@dataclass
class FakeEngine:
    """``converge`` answers each name from ``script`` (else ``unchanged``) or raises ``raises``."""

    script: dict[str, Outcome] = field(default_factory=dict)
    raises: BaseException | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    # what its retires say: the first pending cascade's grace period, the names the guard held
    cascade_due_seconds: float | None = None
    held: list[str] = field(default_factory=list)

    async def converge(
        self,
        litellm: AConn,
        backend: AConn,
        names: Collection[str] | None = None,
        *,
        retire_missing: bool | Literal["db-rows"] = False,
        dry_run: bool = False,
        prefetched: Sequence[Mapping[str, Any]] | None = None,
    ) -> FakeReport:
        self.calls.append(
            {
                "names": None if names is None else set(names),
                "retire_missing": retire_missing,
                "prefetched": prefetched,
            }
        )
        if self.raises is not None:
            raise self.raises
        wanted = self.script.keys() if names is None else names
        outcomes = {n: self.script.get(n, Outcome("unchanged")) for n in wanted}
        return FakeReport(outcomes, list(self.held), self.cascade_due_seconds)


@dataclass
class CascadingEngine(FakeEngine):
    """An engine with retire cascades after a grace period (``Reconciler.cascade_due``)."""

    due: DueReport | BaseException = field(default_factory=DueReport)
    cascade_calls: int = 0

    async def cascade_due(self, litellm: AConn, backend: AConn) -> DueReport:
        self.cascade_calls += 1
        if isinstance(self.due, BaseException):
            raise self.due
        return self.due


@dataclass
class FakeBackendSink:
    """``backend_sink.retire_queue``: the pending cascades, ``seconds_left`` until each is due."""

    queue: list[dict[str, Any]] = field(default_factory=list)
    reads: int = 0

    async def retire_queue(self, conn: AConn) -> list[dict[str, Any]]:
        self.reads += 1
        return list(self.queue)


class NoDatabase:
    """A connection that refuses every use: the relay must reach the database through the fakes."""

    closed = False

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the relay used its connection directly (.{name})")


NO_DB = cast(AConn, NoDatabase())


# -- fixtures --------------------------------------------------------------------------------------


def make_settings(**knobs: Any) -> Settings:
    env = {
        "LITELLM_DATABASE_URL": "postgresql://relay:pw-litellm-secret@127.0.0.1:1/litellm",
        "LITEMAAS_DATABASE_URL": "postgresql://relay:pw-backend-secret@127.0.0.1:1/backend",
        "LITELLM_MASTER_KEY": MASTER_KEY,
    }
    defaults: dict[str, Any] = {
        "max_attempts": 3,
        "retry_base_seconds": 1.0,
        "retry_max_seconds": 3.0,
        "poll_interval_seconds": 30.0,
        "reconcile_interval_seconds": 0.0,
    }
    return load_settings(env, **{**defaults, **knobs})


@pytest.fixture
def box(monkeypatch: pytest.MonkeyPatch) -> FakeOutbox:
    fake = FakeOutbox()
    monkeypatch.setattr(relay_module, "outbox", fake)
    return fake


@pytest.fixture
def sink(monkeypatch: pytest.MonkeyPatch) -> FakeBackendSink:
    fake = FakeBackendSink()
    monkeypatch.setattr(relay_module, "backend_sink", fake)
    return fake


def make_relay(engine: FakeEngine, **knobs: Any) -> Relay:
    used: Engine = engine  # the Protocol the relay declares: mypy checks the fake against it
    relay = Relay(make_settings(**knobs), engine=used, name="unit")
    # what connecting does (Relay._start): the first housekeeping is one poll interval away
    relay._next_housekeeping = time.monotonic() + relay.settings.poll_interval_seconds
    return relay


async def drain(relay: Relay) -> int:
    return await relay.drain_once(NO_DB, NO_DB)


# -- claim, complete -------------------------------------------------------------------------------


async def test_applied_events_are_deleted_with_the_next_claim_not_before(box: FakeOutbox) -> None:
    """Completion rides on the next claim's round trip, only after the engine returned (its backend
    transaction committed); the engine gets the claimed names and the deployments read with them."""
    a, b = box.add("INSERT", new="a"), box.add("UPDATE", new="b")
    box.deployments = {"a": [{"model_name": "a"}], "b": [{"model_name": "b"}]}
    engine = FakeEngine({"a": Outcome("created"), "b": Outcome("updated")})
    relay = make_relay(engine)

    assert await drain(relay) == 2
    assert engine.calls == [
        {
            "names": {"a", "b"},
            "retire_missing": False,
            "prefetched": [{"model_name": "a"}, {"model_name": "b"}],
        }
    ]
    assert {r.status for r in box.rows.values()} == {"claimed"}  # not deleted yet
    assert relay.stats.events_applied == 2

    assert await drain(relay) == 0
    assert box.called("claim_batch")[1]["done"] == [a, b]
    assert box.rows == {}
    assert box.called("fail") == []
    assert box.called("defer") == []


async def test_claims_of_dead_sessions_that_the_claim_gave_back_are_counted(
    box: FakeOutbox,
) -> None:
    box.recovered = [outbox.Recovered(7, "pending"), outbox.Recovered(8, "pending")]
    relay = make_relay(FakeEngine())
    assert await drain(relay) == 0
    assert relay.stats.dead_sessions_recovered == 2


# -- attempts, backoff, dead -----------------------------------------------------------------------


async def test_a_models_error_spends_an_attempt_only_on_the_events_naming_it(
    box: FakeOutbox,
) -> None:
    good = box.add(new="good")
    bad = box.add(new="bad")
    renamed = box.add(old="bad", new="other")  # names the bad model too
    other = box.add(new="other2")
    engine = FakeEngine({"bad": Outcome("error", "rejected by a CHECK")})
    relay = make_relay(engine)

    await drain(relay)

    assert box.rows[bad].status == box.rows[renamed].status == "pending"
    assert box.rows[bad].attempts == box.rows[renamed].attempts == 1
    assert box.rows[bad].last_error == "bad: rejected by a CHECK"
    assert box.rows[good].status == box.rows[other].status == "claimed"  # done: go with the claim
    assert relay.stats.events_failed == 2
    assert relay.stats.events_applied == 2


async def test_an_event_failing_max_attempts_times_is_dead_with_backoff_between(
    box: FakeOutbox, caplog: pytest.LogCaptureFixture
) -> None:
    event = box.add(new="bad")
    relay = make_relay(FakeEngine({"bad": Outcome("error", "no")}), max_attempts=3)
    waits = []
    for attempt in (1, 2, 3):
        assert await drain(relay) == 1, f"attempt {attempt} claimed nothing"
        row = box.rows[event]
        assert row.attempts == attempt
        waits.append(row.due - box.now)
        assert await drain(relay) == 0  # not due before its backoff is over
        box.now = row.due
    assert box.rows[event].status == "dead"
    assert await drain(relay) == 0  # a dead event is never claimed again
    # the settings' retry knobs reach the outbox: 1 s, 2 s, then capped at 3 s
    assert [c["retry_base_seconds"] for c in box.called("fail")] == [1.0, 1.0, 1.0]
    assert waits == [1.0, 2.0, 3.0]
    assert relay.stats.events_dead == 1
    assert any("is dead" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)


async def test_a_bug_in_converge_costs_every_event_of_the_batch_an_attempt(
    box: FakeOutbox,
) -> None:
    ids = [box.add(new="a"), box.add(new="b")]
    relay = make_relay(FakeEngine(raises=ValueError("boom")))
    assert await drain(relay) == 2
    for i in ids:
        assert box.rows[i].attempts == 1
        assert box.rows[i].status == "pending"
        assert box.rows[i].last_error == "converge failed: ValueError: boom"


async def test_an_event_without_a_usable_name_is_kept_with_how_to_fix_it(box: FakeOutbox) -> None:
    nameless = box.add("UPDATE", new="\u00a0")  # blank to SQL and Python alike
    gone = box.add("DELETE")  # a delete of a nameless deployment: nothing to keep
    relay = make_relay(FakeEngine())
    await drain(relay)
    error = box.rows[nameless].last_error or ""
    assert "has no model_name; give it a name in LiteLLM" in error
    assert box.rows[gone].status == "claimed"  # done: deleted with the next claim


async def test_recorded_errors_never_hold_a_secret(box: FakeOutbox) -> None:
    event = box.add(new="m")
    message = f"provider said: bad key {MASTER_KEY} for pw-backend-secret"
    relay = make_relay(FakeEngine({"m": Outcome("error", message)}))
    await drain(relay)
    error = box.rows[event].last_error or ""
    assert "provider said" in error
    assert MASTER_KEY not in error
    assert "pw-backend-secret" not in error


# -- no attempt: locks and outages -----------------------------------------------------------------


async def test_a_locked_name_is_deferred_without_an_attempt(box: FakeOutbox) -> None:
    busy, free = box.add(new="busy"), box.add(new="free")
    engine = FakeEngine({"busy": Outcome("deferred", "row locked"), "free": Outcome("created")})
    relay = make_relay(engine)
    await drain(relay)
    row = box.rows[busy]
    assert (row.status, row.attempts, row.last_error) == ("pending", 0, "busy: row locked")
    assert row.due == box.now + DEFER_SECONDS
    assert box.rows[free].status == "claimed"
    assert relay.stats.events_deferred == 1
    assert relay.stats.events_failed == 0


async def test_contention_in_converge_defers_the_whole_batch_without_an_attempt(
    box: FakeOutbox,
) -> None:
    ids = [box.add(new="a"), box.add(new="b")]
    relay = make_relay(FakeEngine(raises=psycopg.errors.LockNotAvailable("lock timeout")))
    assert await drain(relay) == 2
    for i in ids:
        row = box.rows[i]
        assert (row.status, row.attempts) == ("pending", 0)
        assert (row.last_error or "").startswith("contention: ")
    assert box.called("defer")[0]["delay_seconds"] == DEFER_SECONDS
    assert relay.stats.events_deferred == 2


async def test_an_outage_in_converge_gives_the_batch_back_and_raises(box: FakeOutbox) -> None:
    """A read-only backend (a replica after a failover) is not the events' fault: released at once,
    no attempt, and the error goes up so the relay reconnects with backoff."""
    ids = [box.add(new="a"), box.add(new="b")]
    outage = psycopg.errors.ReadOnlySqlTransaction(
        "cannot execute UPDATE in a read-only transaction"
    )
    relay = make_relay(FakeEngine(raises=outage))
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        await drain(relay)
    assert [(box.rows[i].status, box.rows[i].attempts) for i in ids] == [("pending", 0)] * 2
    assert box.called("release")[0]["reason"].startswith("database unavailable: outage")
    assert relay.stats.outages == 1
    assert relay.stats.events_failed == 0


async def test_events_deferred_past_the_stall_timeout_are_warned_about_once_a_minute(
    box: FakeOutbox, caplog: pytest.LogCaptureFixture
) -> None:
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    box.add(new="busy", created_at=long_ago)
    relay = make_relay(FakeEngine({"busy": Outcome("deferred", "row locked")}))
    for _ in range(2):
        await drain(relay)
        box.now += DEFER_SECONDS
    warned = [r for r in caplog.records if "deferred again (no attempt spent)" in r.getMessage()]
    assert len(warned) == 1


# -- how long to wait ------------------------------------------------------------------------------


async def test_the_wait_takes_the_due_time_from_the_last_claim_then_asks_again(
    box: FakeOutbox,
) -> None:
    event = box.add(new="later")
    box.rows[event].due = 2.5  # retried in 2.5 s
    relay = make_relay(FakeEngine())
    assert await drain(relay) == 0
    assert await relay._timeout(NO_DB) == pytest.approx(2.5)
    assert box.called("next_due_seconds") == []  # the claim's round trip said it
    assert await relay._timeout(NO_DB) == pytest.approx(2.5)
    assert len(box.called("next_due_seconds")) == 1  # not fresh any more: asked


async def test_a_due_event_that_cannot_be_claimed_never_makes_a_busy_loop(box: FakeOutbox) -> None:
    """An event due now that the claim skipped (its row locked elsewhere) floors the wait at
    50 ms instead of 0."""
    box.add(new="stuck")
    box.rows[1].status = "claimed"  # as if another relay held it ...
    box.rows[1].claimed_by = "another relay"
    box.add(new="stuck")  # ... so this one, due now, is skipped by the claim
    relay = make_relay(FakeEngine())
    assert await drain(relay) == 0
    assert await relay._timeout(NO_DB) == pytest.approx(relay_module._MIN_RETRY_WAIT_SECONDS)


# -- retire cascades after the grace period --------------------------------------------------------


async def test_no_cascade_bookkeeping_without_an_engine_that_cascades(
    box: FakeOutbox, sink: FakeBackendSink
) -> None:
    relay = make_relay(FakeEngine())
    await relay._due_cascades(NO_DB, NO_DB, woke=False)
    assert sink.reads == 0


async def test_a_retire_makes_the_relay_wait_for_its_cascade_reading_only_after_a_hold(
    box: FakeOutbox, sink: FakeBackendSink
) -> None:
    box.add("DELETE", old="gone")
    engine = CascadingEngine({"gone": Outcome("retired")})
    relay = make_relay(engine)
    await relay._due_cascades(NO_DB, NO_DB, woke=False)  # the first pass after connecting
    assert sink.reads == 1
    await relay._due_cascades(NO_DB, NO_DB, woke=True)  # a notification, nothing retired: no read
    assert sink.reads == 1

    engine.cascade_due_seconds = 7.0  # the retire says when its cascade is due
    await drain(relay)  # retires "gone": its cascade now waits for the grace period
    await relay._due_cascades(NO_DB, NO_DB, woke=True)
    assert sink.reads == 1  # no read of the queue: the retire said it (a round trip per delete)
    assert await relay._timeout(NO_DB) == pytest.approx(7.0, abs=0.5)  # wakes when it is due
    assert engine.cascade_calls == 0  # not due yet

    # a retire the mass-retire guard held: the queue is read again (its gauges, the held names)
    box.add("DELETE", old="gone")
    engine.cascade_due_seconds, engine.held = None, ["gone"]
    sink.queue = [{"model_id": "gone", "seconds_left": 7.0, "held_at": "now"}]
    await drain(relay)
    await relay._due_cascades(NO_DB, NO_DB, woke=True)
    assert sink.reads == 2


async def test_a_due_cascade_is_run_once_due_and_retried_later_never_in_a_spin(
    box: FakeOutbox, sink: FakeBackendSink
) -> None:
    engine = CascadingEngine()
    relay = make_relay(engine, poll_interval_seconds=20.0)
    # due now, but this pass could not take it (locked elsewhere): again in about a second
    sink.queue = [{"model_id": "gone", "seconds_left": 0.0, "held_at": None}]
    await relay._due_cascades(NO_DB, NO_DB, woke=False)
    assert engine.cascade_calls == 0
    assert await relay._timeout(NO_DB) == pytest.approx(DEFER_SECONDS, abs=0.2)

    relay._next_retire_due = time.monotonic()  # that second has passed
    engine.due = DueReport(errors={"gone": "LiteLLM unreadable"})
    await relay._due_cascades(NO_DB, NO_DB, woke=True)
    assert engine.cascade_calls == 1
    # LiteLLM could not be read for it: again at the next poll, not every second
    assert await relay._timeout(NO_DB) == pytest.approx(20.0, abs=0.5)


async def test_a_cascade_pass_raises_outages_and_logs_bugs(
    box: FakeOutbox, sink: FakeBackendSink, caplog: pytest.LogCaptureFixture
) -> None:
    engine = CascadingEngine(due=psycopg.errors.AdminShutdown("terminating connection"))
    relay = make_relay(engine)
    relay._next_retire_due = time.monotonic()
    with pytest.raises(psycopg.errors.AdminShutdown):
        await relay._due_cascades(NO_DB, NO_DB, woke=True)

    engine.due = RuntimeError("a bug")
    relay._next_retire_due = time.monotonic()
    await relay._due_cascades(NO_DB, NO_DB, woke=True)  # logged, the relay goes on
    assert any("due retire cascades failed" in r.getMessage() for r in caplog.records)


# -- the periodic full reconcile -------------------------------------------------------------------


async def test_the_full_reconcile_runs_only_under_the_fleet_lock_and_always_unlocks(
    box: FakeOutbox,
) -> None:
    engine = FakeEngine({"a": Outcome("created")})
    relay = make_relay(engine, reconcile_interval_seconds=60.0)

    box.reconcile_lock_free = False  # another relay runs it
    await relay._maybe_full_reconcile(NO_DB, NO_DB)
    assert engine.calls == []
    assert box.called("reconcile_unlock") == []

    relay._next_reconcile_check = 0.0
    box.reconcile_lock_free = True
    await relay._maybe_full_reconcile(NO_DB, NO_DB)
    # standalone (no router): only rows known to come from LiteLLM's database are retired
    assert engine.calls == [{"names": None, "retire_missing": "db-rows", "prefetched": None}]
    assert box.called("reconcile_finished")[0]["summary"] == "a created"
    assert len(box.called("reconcile_unlock")) == 1
    assert relay.stats.full_reconciles == 1

    await relay._maybe_full_reconcile(NO_DB, NO_DB)  # not again within the interval
    assert len(engine.calls) == 1

    relay._next_reconcile_check = 0.0
    engine.raises = RuntimeError("a bug")
    await relay._maybe_full_reconcile(NO_DB, NO_DB)
    assert len(box.called("reconcile_unlock")) == 2  # unlocked after a failure too
    assert relay.stats.full_reconciles == 1


async def test_the_full_reconcile_is_off_at_interval_zero(box: FakeOutbox) -> None:
    engine = FakeEngine()
    relay = make_relay(engine, reconcile_interval_seconds=0.0)
    await relay._maybe_full_reconcile(NO_DB, NO_DB)
    assert engine.calls == []
    assert box.called("try_reconcile_lock") == []


# -- reconnecting ----------------------------------------------------------------------------------


async def test_reconnects_back_off_exponentially_up_to_the_cap_and_name_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stop = asyncio.Event()
    waits: list[float] = []

    async def refuse(*args: Any, **kwargs: Any) -> AConn:
        raise psycopg.OperationalError("connection refused")

    async def no_wait(event: asyncio.Event, seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 5:
            stop.set()

    monkeypatch.setattr(relay_module, "open_connection", refuse)
    monkeypatch.setattr(relay_module, "_wait_event", no_wait)
    monkeypatch.setattr(litellm_adapter, "warm_up", lambda: None)
    relay = Relay(make_settings(reconnect_max_seconds=3.0), engine=FakeEngine(), name="unit")
    await asyncio.wait_for(relay.run(stop), 10)

    # 0.5 s doubling (+-10 % jitter), never more than reconnect_max_seconds
    for got, base in zip(waits, [0.5, 1.0, 2.0, 3.0, 3.0], strict=True):
        assert base * 0.9 <= got <= min(base * 1.1, 3.0)
    assert relay.stats.reconnects == 5
    assert not relay.stats.connected
    error = relay.stats.last_error or ""
    assert "LITELLM_DATABASE_URL" in error
    assert "pw-litellm-secret" not in error
