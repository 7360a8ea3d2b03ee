"""The reconcile engine: converge a set of model names (or all) to LiteLLM's current truth.

One engine serves the backfill, the event relay and periodic healing. It is level-triggered: it
never trusts an event's payload, it re-reads every deployment of each affected ``model_name`` and
writes the resulting backend row (or retires it). Concurrent runs are serialised per name by
transaction-level advisory locks taken in the backend database before the truth is read, so a slower
run can never overwrite a newer state (the relay reads the truth with its claim instead, and claims
no name another relay holds: a change made after its read has an event of its own, applied after
this one). A full run commits chunk by chunk: its locks are held for one chunk.

INTERFACE (stable; the relay and the CLI depend on it):

    engine = Reconciler(settings, config_models=None)
    report = await engine.converge(litellm_conn, backend_conn, names=None | {"name", ...},
                                   retire_missing=False, dry_run=False)

- ``names=None``: every name in LiteLLM (+ every backend row when ``retire_missing``).
- ``names={...}``: exactly those names; a name with no deployment left is retired when its backend
  row came from LiteLLM (that is how deletes and renames reach the backend).
- Retire safety: the retires of one pass are applied together at its end: unavailable at once, the
  cascade after ``retire_grace_seconds`` (``cascade_due`` does it later, after re-reading LiteLLM),
  nothing cascaded when the pass retires a large share of the models (the mass-retire guard), and a
  name another LiteLLM instance still serves is not retired (``litemaas_hooks.model_instances``).
- ``report.outcomes``: ``{name: Outcome}`` with ``Outcome.action`` in
  ``created | updated | unchanged | retired | skipped | error`` and ``Outcome.message`` for
  skipped/error. ``report.failed_names()`` are the names whose events must be retried
  (action == "error").
- Raises the database error when a database is unavailable (``outages.classify(exc) == "outage"``:
  connection lost, read-only, disk full, shutdown...) for the caller to give the work back and
  reconnect; every per-model problem, whatever the value, is an ``error``/``skipped`` outcome of
  that model; a name whose row or lock another transaction holds is ``deferred`` (retry later, not
  an attempt). Lock waits are bounded by ``LOCK_TIMEOUT_MS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg

from litemaas_hooks import backend_sink, litellm_adapter, litellm_source, outages, outbox, sql
from litemaas_hooks.errors import describe
from litemaas_hooks.litellm_source import ConfigModels, KeyFunc, Truth, read_truth
from litemaas_hooks.mapping import ModelRecord
from litemaas_hooks.planning import (
    NOT_RETIRED_BECAUSE,
    CurrentRow,
    PlannedChange,
    RetireMissing,
    mass_retire,
    plan_name,
)
from litemaas_hooks.settings import Settings

log = logging.getLogger("litemaas_hooks.reconcile")

OutcomeAction = Literal[
    "created", "updated", "unchanged", "retired", "skipped", "error", "deferred"
]
_PLAN_TO_OUTCOME: dict[str, OutcomeAction] = {
    "create": "created",
    "update": "updated",
    "unchanged": "unchanged",
    "retire": "retired",
    "skip": "skipped",
    "error": "error",
}
Progress = Callable[[int, int], None]
# a relay batch whose plan, made without the backend rows, has only these: one round trip
_ONE_TRIP_ACTIONS = frozenset({"create", "skip", "error"})


@dataclass
class _Sent:
    """The cursor _names_in_pipeline sent, read after COMMIT."""

    upsert: psycopg.AsyncCursor[Any] | None = None


# A full reconcile reads and writes this many names at a time (bounded memory for any catalogue
# size; small enough that writing one chunk overlaps reading and planning the next for most of the
# run).
CHUNK_NAMES = 500
# How long our backend transaction waits for any lock (a row an admin holds FOR UPDATE, a full
# reconcile holding the global lock). Beyond it the name is "deferred": retried later, no attempt
# spent.
LOCK_TIMEOUT_MS = 2000
BUSY_MESSAGE = (
    "the backend row or name is locked by another transaction; retried later (no attempt spent)"
)
RETIRE_REASON = "no deployment of this model_name is left in LiteLLM"
SERVED_ELSEWHERE = "still served by another LiteLLM instance (litemaas_hooks.model_instances)"
CAME_BACK = "back in LiteLLM since this pass read it: not retired (its change converges it)"
# How many due cascades one pass of the relay claims (the rest in the next pass, right after).
DUE_BATCH = 500


@dataclass(slots=True)
class Outcome:
    action: OutcomeAction
    message: str | None = None
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)


@dataclass
class Report:
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    dry_run: bool = False
    seconds: float = 0.0
    rows_written: int = 0
    # where the time went: reading LiteLLM's truth (decrypt + enrich), planning, writing the backend
    phases: dict[str, float] = field(default_factory=dict)
    # names this pass retires: applied together at the end of the pass (the mass-retire guard)
    retires: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # retires the mass-retire guard held
    # seconds until the first cascade this pass left waiting for its grace period is due (None:
    # none): the relay waits for it without reading the backend's queue again
    cascade_due_seconds: float | None = None

    def add_phase(self, phase: str, seconds: float) -> None:
        self.phases[phase] = self.phases.get(phase, 0.0) + seconds

    def note_plan(self, plan: Sequence[PlannedChange]) -> None:
        """Each planned change as its name's outcome (the write may refine it)."""
        for change in plan:
            action = _PLAN_TO_OUTCOME[change.action]
            self.outcomes[change.name] = Outcome(action, change.message, change.changes)

    def counts(self) -> Counter[str]:
        return Counter(o.action for o in self.outcomes.values())

    def failed_names(self) -> set[str]:
        return {name for name, o in self.outcomes.items() if o.action == "error"}

    def deferred_names(self) -> set[str]:
        """Names left for later because a lock was held or the database was briefly unavailable."""
        return {name for name, o in self.outcomes.items() if o.action == "deferred"}

    def summary(self) -> str:
        c = self.counts()
        verb = "would be " if self.dry_run else ""
        return (
            f"{verb}created {c['created']}, {verb}updated {c['updated']}, "
            f"unchanged {c['unchanged']}, "
            f"{verb}retired {c['retired']}, skipped {c['skipped']}, errors {c['error']}"
            + (f", deferred {c['deferred']} (locked)" if c["deferred"] else "")
            + " "
            f"({len(self.outcomes)} models, {self.seconds:.2f}s)"
        )


class Reconciler:
    """Converge backend rows to LiteLLM's deployments; see the module docstring for the contract."""

    def __init__(
        self,
        settings: Settings,
        *,
        config_models: ConfigModels | None = None,
        key: KeyFunc | None = None,
    ) -> None:
        self.settings = settings
        self.config_models = config_models
        # Inside the proxy the key follows the proxy (salt key, else its master key, maybe from
        # config.yaml).
        self._key = key or (lambda: settings.decryption_key() or litellm_adapter.proxy_master_key())
        self._instance: str | None = None
        self._instance_known = False
        # False once write_models_v1 turned out missing or not granted: the four-call query instead
        self._write_function = True
        # False once retire_models_v1 turned out missing or not granted: a delete's two round trips
        self._retire_function = True

    async def converge(
        self,
        litellm: psycopg.AsyncConnection[Any],
        backend: psycopg.AsyncConnection[Any],
        names: Collection[str] | None = None,
        *,
        retire_missing: RetireMissing = False,
        dry_run: bool = False,
        progress: Progress | None = None,
        prefetched: Sequence[Mapping[str, Any]] | None = None,
        spare_backend: psycopg.AsyncConnection[Any] | None = None,
    ) -> Report:
        """``prefetched``: LiteLLM's table rows of ``names``, read by the caller after its claim
        (the relay); with it a set of names costs one backend round trip (two when a name may be
        retired) and no LiteLLM one. ``spare_backend``: a second connection to the backend
        database for a full run (``names`` None, not a dry run): its chunks then alternate between
        the two, one chunk's write and commit overlapping the next one's locks, read and plan."""
        started = time.perf_counter()
        report = Report(dry_run=dry_run)
        scope = None if names is None else {n for n in names if n}
        if scope is not None and not scope:
            return report
        await self.instance(litellm)  # which LiteLLM this is (model_instances), once
        if scope is not None and not dry_run:
            try:
                await self._converge_names(litellm, backend, sorted(scope), report, prefetched)
            except Exception as exc:
                if outages.classify(exc) is not None:
                    raise
                # a value the batch's one statement refused: the careful path below isolates it
                log.debug(
                    "pipelined write of %d names failed; per record", len(scope), exc_info=True
                )
                report = Report(dry_run=dry_run)
            else:
                report.seconds = time.perf_counter() - started
                return report
        if scope is None:
            await self._converge_all(
                litellm,
                backend,
                report,
                retire_missing=retire_missing,
                dry_run=dry_run,
                progress=progress,
                spare=spare_backend,
            )
            report.seconds = time.perf_counter() - started
            return report
        async with backend.transaction(force_rollback=dry_run):
            await backend.execute(
                sql.query("backend", "set_lock_timeout"), {"timeout": f"{LOCK_TIMEOUT_MS}ms"}
            )
            busy = await backend_sink.try_lock_models(backend, scope)
            for name in busy:
                report.outcomes[name] = Outcome("deferred", BUSY_MESSAGE)
            scope -= set(busy)
            every = sorted(scope)
            await self._converge_chunks(
                litellm,
                backend,
                [every] if every else [],
                report,
                may_retire=True,
                dry_run=dry_run,
                progress=None
                if progress is None
                else functools.partial(_tell, progress, len(every)),
            )
            if report.retires:
                await self._retire_all(litellm, backend, report)
        report.seconds = time.perf_counter() - started
        return report

    async def _converge_all(
        self,
        litellm: psycopg.AsyncConnection[Any],
        backend: psycopg.AsyncConnection[Any],
        report: Report,
        *,
        retire_missing: RetireMissing,
        dry_run: bool,
        progress: Progress | None,
        spare: psycopg.AsyncConnection[Any] | None = None,
    ) -> None:
        """Every name, CHUNK_NAMES at a time, ONE TRANSACTION PER CHUNK: the names' locks and the
        rows written are held for one chunk, never for the whole run (a subscription, the backend's
        sync, a relay's change wait at most one chunk); a dry run (status's drift check) takes no
        lock at all. LiteLLM's table is scanned once (keys by name); each chunk reads its rows by
        primary key. With a ``spare`` connection the chunks alternate between the two (see
        ``_overlapped_chunks``)."""
        mark = time.perf_counter()
        # the column types of LiteLLM's table checked once for the pass (deployment_ids checks them
        # too, before its read): the chunks' reads by key (rows_by_ids) rely on this check
        blocked_column = await litellm_source.has_blocked_column(litellm)
        ids_by_name = await litellm_source.deployment_ids(litellm, checked=True)
        every = await self._all_names(
            litellm, backend, report, retire_missing=retire_missing, table=ids_by_name
        )
        report.add_phase("read_litellm", time.perf_counter() - mark)
        chunks = [every[start : start + CHUNK_NAMES] for start in range(0, len(every), CHUNK_NAMES)]
        prepare = functools.partial(
            self._prepare_chunk,
            litellm,
            report=report,
            ids_by_name=ids_by_name,
            blocked_column=blocked_column,
            may_retire=retire_missing,
            dry_run=dry_run,
        )
        done = 0

        def chunk_done(size: int) -> None:
            nonlocal done
            done += size
            if progress is not None:
                progress(done, len(every))

        if spare is not None and not dry_run and len(chunks) > 1:
            await self._overlapped_chunks((backend, spare), chunks, prepare, report, chunk_done)
        else:
            for names in chunks:
                try:
                    planned = await prepare(backend, names)
                    if planned is not None and not dry_run:
                        await self._write_chunk(backend, *planned, report, len(names))
                    await backend.execute(sql.query("backend", "rollback" if dry_run else "commit"))
                except BaseException:
                    await outbox.rollback(backend)
                    raise
                chunk_done(len(names))
        if report.retires and not dry_run:
            await self._retire_pass(litellm, backend, report)

    async def _overlapped_chunks(
        self,
        conns: tuple[psycopg.AsyncConnection[Any], psycopg.AsyncConnection[Any]],
        chunks: list[list[str]],
        prepare: Callable[
            [psycopg.AsyncConnection[Any], list[str]],
            Awaitable[tuple[list[PlannedChange], litellm_source.Truth] | None],
        ],
        report: Report,
        chunk_done: Callable[[int], None],
    ) -> None:
        """Chunk after chunk, each in its own transaction on the two connections in turn: while one
        chunk is written and committed (the backend server's work), the next one takes its locks,
        reads LiteLLM under them and is planned (this process's work), so the two run on two
        cores. At most two chunks' locks are held at once, each for one chunk's time; a chunk's
        truth is still read after its own locks. On an error the chunk being written ends (its
        commit or its rollback) before the open one is rolled back."""
        writing: asyncio.Task[None] | None = None
        open_conn: psycopg.AsyncConnection[Any] | None = None

        async def finish(
            conn: psycopg.AsyncConnection[Any],
            planned: tuple[list[PlannedChange], litellm_source.Truth] | None,
            size: int,
        ) -> None:
            try:
                if planned is not None:
                    await self._write_chunk(conn, *planned, report, size)
                await conn.execute(sql.query("backend", "commit"))
            except BaseException:
                await outbox.rollback(conn)
                raise

        try:
            for index, names in enumerate(chunks):
                conn = open_conn = conns[index % 2]
                planned = await prepare(conn, names)
                if writing is not None:
                    await writing  # the other connection's chunk, written and committed
                    writing = None
                    chunk_done(len(chunks[index - 1]))
                writing = asyncio.create_task(finish(conn, planned, len(names)))
                open_conn = None  # the task commits or rolls back
            if writing is not None:
                await writing
                writing = None
                chunk_done(len(chunks[-1]))
        except BaseException:
            if writing is not None:
                with contextlib.suppress(BaseException):  # its own error is the one raised, if any
                    await writing
            if open_conn is not None:
                await outbox.rollback(open_conn)
            raise

    async def _prepare_chunk(
        self,
        litellm: psycopg.AsyncConnection[Any],
        backend: psycopg.AsyncConnection[Any],
        names: list[str],
        *,
        report: Report,
        ids_by_name: Mapping[str, list[str]],
        blocked_column: bool,
        may_retire: RetireMissing,
        dry_run: bool,
    ) -> tuple[list[PlannedChange], litellm_source.Truth] | None:
        """A chunk's transaction begun on ``backend`` (left open: the caller writes and commits, or
        rolls back): in one round trip BEGIN, the lock timeout, the chunk's locks (not for a dry
        run) and its backend rows; then, for the names not busy, LiteLLM's truth read under those
        locks and the plan (None: every name busy). Its retires are only collected (by the write,
        ``report.retires``): applied after the last chunk."""
        busy_cur = None
        async with backend.pipeline():
            await backend.execute(sql.query("backend", "begin"))
            if not dry_run:
                busy_cur = await backend_sink.send_try_lock(
                    backend, names, lock_timeout=f"{LOCK_TIMEOUT_MS}ms"
                )
            snap_cur = await backend_sink.send_snapshot(backend, names)
        busy = set()
        if busy_cur is not None:
            busy = set(await backend_sink.busy_names(busy_cur))
        current = await backend_sink.snapshot_rows(snap_cur)
        for name in busy:
            report.outcomes[name] = Outcome("deferred", BUSY_MESSAGE)
        names = [n for n in names if n not in busy]
        if not names:
            return None
        db_rows: set[str] = set()
        if may_retire == "db-rows":
            db_rows = await backend_sink.db_model_ids(backend, [n for n in names if n in current])
        mark = time.perf_counter()
        ids = [i for n in names for i in ids_by_name.get(n, ())]
        rows = []
        if ids:
            rows = await litellm_source.rows_by_ids(
                litellm, ids, names, blocked_column=blocked_column
            )
        key = self._key()
        config = self.config_models
        truth = await read_truth(litellm, names, key=key, config_models=config, rows=rows)
        report.add_phase("read_litellm", time.perf_counter() - mark)
        mark = time.perf_counter()
        plan = await asyncio.to_thread(
            self._plan,
            names,
            truth.deployments,
            truth.errors,
            current,
            may_retire=may_retire,
            db_rows=db_rows,
        )
        retiring = [c.name for c in plan if c.action == "retire"]
        if retiring:
            # a deployment added since the first pass has a key we do not know: ask by name (a table
            # scan, only for names about to be retired) before retiring anything
            again = await read_truth(litellm, retiring, key=key)
            if again.deployments or again.errors:
                truth.deployments.update(again.deployments)
                truth.errors.update(again.errors)
                plan = self._plan(
                    names,
                    truth.deployments,
                    truth.errors,
                    current,
                    may_retire=may_retire,
                    db_rows=db_rows,
                )
        report.add_phase("plan", time.perf_counter() - mark)
        plan = await self._not_served_elsewhere(backend, plan)
        report.note_plan(plan)
        return plan, truth

    async def _retire_pass(
        self,
        litellm: psycopg.AsyncConnection[Any],
        backend: psycopg.AsyncConnection[Any],
        report: Report,
    ) -> None:
        """A full run's retires, decided over the whole pass (the chunks only collected them) and
        applied together in one transaction (``_retire_all``: the mass-retire guard sees them all).
        The chunks committed meanwhile: each name is locked again (a busy one is deferred) and
        LiteLLM is asked again by name; a name that came back since its chunk is not retired."""
        async with backend.transaction():
            timeout = {"timeout": f"{LOCK_TIMEOUT_MS}ms"}
            await backend.execute(sql.query("backend", "set_lock_timeout"), timeout)
            busy = set(await backend_sink.try_lock_models(backend, report.retires))
            for name in busy:
                report.outcomes[name] = Outcome("deferred", BUSY_MESSAGE)
            wanted = [n for n in report.retires if n not in busy]
            back: set[str] = set()
            if wanted:
                again = await read_truth(
                    litellm, wanted, key=self._key(), config_models=self.config_models
                )
                back = set(again.deployments) | set(again.errors)
            for name in sorted(back):
                report.outcomes[name] = Outcome("deferred", CAME_BACK)
            report.retires = [n for n in wanted if n not in back]
            if report.retires:
                await self._retire_all(litellm, backend, report)

    async def _converge_names(
        self,
        litellm: psycopg.AsyncConnection[Any],
        backend: psycopg.AsyncConnection[Any],
        names: list[str],
        report: Report,
        prefetched: Sequence[Mapping[str, Any]] | None,
    ) -> None:
        """A few names (the relay's batch). When every name still has deployments (an add or an
        update: the upsert decides create / update / unchanged itself, as planning does), ONE
        backend round trip of ONE statement (``write_one_trip``: the lock timeout, the names'
        locks, the upsert of the names not busy, their sources). When no name has any (a delete:
        each name's backend row decides, in SQL as in planning.plan_absent) and the retire needs
        nothing more to be decided (``_retire_in_one_trip``), ONE too (``retire_one_trip``).
        Otherwise two: [BEGIN, lock timeout, the names' locks, their rows] pipelined, then [upsert
        or retires, sources, COMMIT]. Raises on any error (the caller falls back to the per-record
        path)."""
        truth, plan = await self._plan_without_rows(litellm, names, report, prefetched)
        if plan is not None and truth is not None:
            await self._write_one_trip(backend, names, plan, truth, report)
            return
        one_trip_retire = truth is not None and self._retire_in_one_trip(names, truth)
        if one_trip_retire and await self._retire_one_trip(backend, names, report):
            return
        retires: dict[str, psycopg.AsyncCursor[Any]] = {}
        try:
            async with backend.pipeline():
                await backend.execute(sql.query("backend", "begin"))
                sent = await self._names_in_pipeline(
                    litellm, backend, names, report, prefetched, retires, truth
                )
                await backend.execute(sql.query("backend", "commit"))
        except BaseException:
            await outbox.rollback(backend)
            raise
        # committed: what the retires and the upsert found
        for name, cur in retires.items():
            self._note_retire(report, name, await backend_sink.retire_result(cur))
        if sent.upsert is not None:
            for model_id, outcome in await backend_sink.upsert_outcomes(sent.upsert):
                if outcome == "unchanged":
                    report.outcomes[model_id] = Outcome("unchanged")
                    continue
                report.rows_written += 1

    async def _plan_without_rows(
        self,
        litellm: psycopg.AsyncConnection[Any],
        names: list[str],
        report: Report,
        prefetched: Sequence[Mapping[str, Any]] | None,
    ) -> tuple[Truth | None, list[PlannedChange] | None]:
        """The truth of the batch (read from the claim's rows), and its plan when every name is
        still in LiteLLM and the plan needs no backend row (one round trip); else ``(truth,
        None)``, ``(None, None)`` without the claim's rows."""
        if prefetched is None:
            return None, None
        present = {r.get("model_name") for r in prefetched}  # the names LiteLLM still has
        mark = time.perf_counter()
        wanted = set(names)
        truth = await read_truth(
            litellm,
            names,
            key=self._key(),
            config_models=self.config_models,
            rows=[r for r in prefetched if r.get("model_name") in wanted],
            share=False,
        )
        report.add_phase("read_litellm", time.perf_counter() - mark)
        if not all(n in present for n in names):  # a name may be retired
            return truth, None
        plan = self._plan(names, truth.deployments, truth.errors, {}, may_retire=True)
        if all(c.action in _ONE_TRIP_ACTIONS for c in plan):
            return truth, plan
        return truth, None

    async def _write_one_trip(
        self,
        backend: psycopg.AsyncConnection[Any],
        names: list[str],
        plan: list[PlannedChange],
        truth: Truth,
        report: Report,
    ) -> None:
        """Every name still has deployments: one statement locks the names, then upserts and notes
        the sources of the names not busy (the upsert leaves a hand-made row alone and decides
        create / update / unchanged as planning does: it says which each write was). It calls
        ``write_models_v1``; where that function is missing or not granted (an older install or
        grants), the four-call query, with one warning naming the fix. A refused check (the
        function was altered) is every name's error: nothing is written another way."""
        report.note_plan(plan)
        writes = [c.record for c in plan if c.action == "create" and c.record]
        write = functools.partial(
            backend_sink.write_one_trip,
            backend,
            names,
            writes,
            self._sources(truth, report),
            self._instance,
            lock_timeout=f"{LOCK_TIMEOUT_MS}ms",
        )
        done = None
        if self._write_function:
            try:
                done = await write(via_function=True)
            except psycopg.Error as exc:
                instead = "adds and updates are written with 4 function checks instead of 1"
                if not _falls_back(exc, "write_models_v1", instead, names, report):
                    return
                self._write_function = False
        if done is None:
            done = await write(via_function=False)
        for name in done.busy:
            report.outcomes[name] = Outcome("deferred", BUSY_MESSAGE)
        for model_id, outcome in done.outcomes:
            if outcome == "unchanged":
                report.outcomes[model_id] = Outcome("unchanged")
                continue
            report.rows_written += 1
            action: OutcomeAction = "created" if outcome == "inserted" else "updated"
            report.outcomes[model_id] = Outcome(action)

    def _retire_in_one_trip(self, names: Sequence[str], truth: Truth) -> bool:
        """Whether a batch is a delete that ``retire_one_trip`` decides alone: no name has a
        deployment left (config.yaml's included) nor an error; this LiteLLM's identity is known
        (retire_model_v2 then asks whether another instance serves the name: no read before); and
        the mass-retire guard cannot hold the batch (fewer names than it counts, or off), so the
        retires need no count of the backend's models first."""
        settings = self.settings
        # the most the guard could see: every name retired, and they are all the models there are
        guard_may_hold = settings.retire_cascade and mass_retire(
            len(names),
            len(names),
            percent=settings.retire_guard_percent,
            min_models=settings.retire_guard_min_models,
        )
        return (
            self._retire_function
            and self._instance is not None
            and not guard_may_hold
            and not truth.errors
            and not any(truth.deployments.get(n) for n in names)
        )

    async def _retire_one_trip(
        self, backend: psycopg.AsyncConnection[Any], names: list[str], report: Report
    ) -> bool:
        """A delete in one statement (``retire_models_v1``): the names' locks, then each name not
        busy planned as planning.plan_absent plans it and retired by retire_model_v2. False where
        the function is missing or not granted (an older install or grants: said once, the
        caller's two round trips then). A refused check (altered since install) is every name's
        error: nothing is retired another way."""
        settings = self.settings
        try:
            done = await backend_sink.retire_one_trip(
                backend,
                names,
                cascade=settings.retire_cascade,
                reason=RETIRE_REASON,
                grace_seconds=settings.retire_grace_seconds,
                instance=self._instance,
                hold=False,  # _retire_in_one_trip: the guard cannot hold this batch
                lock_timeout=f"{LOCK_TIMEOUT_MS}ms",
            )
        except psycopg.Error as exc:
            instead = "deletes take two backend round trips instead of one"
            if not _falls_back(exc, "retire_models_v1", instead, names, report):
                return True
            self._retire_function = False
            return False
        for name in done.busy:
            report.outcomes[name] = Outcome("deferred", BUSY_MESSAGE)
        for name, result in sorted(done.results.items()):
            skipped = result.get("skipped")
            if skipped is not None:
                why = NOT_RETIRED_BECAUSE.get(str(skipped), str(skipped))
                report.outcomes[name] = Outcome("unchanged", why)
                continue
            before = result.pop("availability_before", None)  # not part of the retire's answer
            changes = {"availability": (before, "unavailable")}
            report.outcomes[name] = Outcome("retired", changes=changes)
            report.retires.append(name)
            self._note_retire(report, name, result)
        return True

    async def _names_in_pipeline(
        self,
        litellm: psycopg.AsyncConnection[Any],
        backend: psycopg.AsyncConnection[Any],
        names: list[str],
        report: Report,
        prefetched: Sequence[Mapping[str, Any]] | None,
        retires: dict[str, psycopg.AsyncCursor[Any]],
        truth: Truth | None,
    ) -> _Sent:
        """_converge_names inside its transaction (``truth``: already read from the claim's rows,
        or None): returns the upsert's cursor and fills ``retires`` (name: cursor), none of them
        read yet: the caller reads them after COMMIT."""
        present = {r.get("model_name") for r in prefetched or ()}  # the names LiteLLM still has
        busy_cur = await backend_sink.send_try_lock(
            backend, names, lock_timeout=f"{LOCK_TIMEOUT_MS}ms"
        )
        snap_cur = await backend_sink.send_snapshot(backend, names)
        total_cur = None
        if prefetched is not None and any(n not in present for n in names):
            # a retire, likely: the guard's count now
            total_cur = await backend_sink.send_retire_guard_total(backend)
        busy = await backend_sink.busy_names(busy_cur)  # the first round trip
        current = await backend_sink.snapshot_rows(snap_cur)
        for name in busy:
            report.outcomes[name] = Outcome("deferred", BUSY_MESSAGE)
        todo = [n for n in names if n not in busy]
        if not todo:
            return _Sent()
        if truth is not None and busy:  # read for every name above: only the names not busy
            keep = set(todo)
            truth = Truth(
                {n: d for n, d in truth.deployments.items() if n in keep},
                {n: e for n, e in truth.errors.items() if n in keep},
            )
        if truth is None:
            wanted = set(todo)
            rows = None
            if prefetched is not None:
                rows = [r for r in prefetched if r.get("model_name") in wanted]
            mark = time.perf_counter()
            # a model never seen: LiteLLM's answer is shared after the write (the relay's drain),
            # not before
            truth = await read_truth(
                litellm,
                todo,
                key=self._key(),
                config_models=self.config_models,
                rows=rows,
                share=prefetched is None,
            )
            report.add_phase("read_litellm", time.perf_counter() - mark)
        plan = self._plan(todo, truth.deployments, truth.errors, current, may_retire=True)
        # retires as the per-record path makes them (_retire_all): none of a name another LiteLLM
        # serves, the grace period, the mass-retire guard over the batch (the relay's pass), this
        # instance named; the reads this takes cost round trips only when the batch retires
        if self._instance is None:  # else retire_model_v2 asks, under the name's lock
            plan = await self._not_served_elsewhere(backend, plan)
        report.note_plan(plan)
        gone = [c.name for c in plan if c.action == "retire"]
        report.retires.extend(gone)
        hold = await self._guard_holds(backend, len(gone), total_cur) if gone else False
        settings = self.settings
        for name in gone:  # no savepoint: an error fails the batch, and the caller isolates it
            retires[name] = await backend_sink.send_retire_v2(
                backend,
                name,
                cascade=settings.retire_cascade,
                reason=RETIRE_REASON,
                grace_seconds=settings.retire_grace_seconds,
                instance=self._instance,
                hold=hold,
            )
        writes = [c.record for c in plan if c.action in {"create", "update"} and c.record]
        upsert_cur = await backend_sink.send_upsert(backend, writes) if writes else None
        sources = self._sources(truth, report)
        await backend_sink.note_sources(backend, sources)
        await backend_sink.note_instances(backend, sources, self._instance)
        return _Sent(upsert=upsert_cur)

    async def _all_names(
        self,
        litellm: psycopg.AsyncConnection[Any],
        backend: psycopg.AsyncConnection[Any],
        report: Report,
        *,
        retire_missing: RetireMissing,
        table: Mapping[str, list[str]],
    ) -> list[str]:
        """Every name in LiteLLM (table and config models), plus every backend row when retiring.
        ``table``: the table's names, already read (``litellm_source.deployment_ids``)."""
        mark = time.perf_counter()
        names = set(table)
        if self.config_models is not None:
            configured = self.config_models()
            names |= {
                str(m["model_name"]) for m in configured if isinstance(m.get("model_name"), str)
            }
        for model_id in await litellm_source.nameless_deployments(litellm, checked=True):
            report.outcomes[f"<deployment {model_id}>"] = Outcome(
                "error",
                "model_name is missing or blank (only whitespace or invisible characters): "
                "rename it",
            )
        if retire_missing:
            names |= await backend_sink.all_ids(backend)
        report.add_phase("read_litellm", time.perf_counter() - mark)
        return sorted(names)

    async def _converge_chunks(
        self,
        litellm: psycopg.AsyncConnection[Any],
        backend: psycopg.AsyncConnection[Any],
        chunks: list[list[str]],
        report: Report,
        *,
        may_retire: RetireMissing,
        dry_run: bool,
        progress: Callable[[int], None] | None,
    ) -> None:
        """Read, plan and write chunk after chunk, overlapped: while the backend database writes one
        chunk (its server's work), this process reads and plans the next (the pure mapping in a
        worker thread), so the two use two cores. The backend connection serves one step at a time:
        the next chunk's snapshot is taken before this chunk's writes start, and its writes end
        before the next chunk's locks are taken."""
        if not chunks:
            return
        current, db_rows = await self._snapshot(backend, chunks[0], may_retire)
        writing: asyncio.Task[int] | None = None
        done = 0
        try:
            for index, names in enumerate(chunks):
                mark = time.perf_counter()
                truth = await read_truth(
                    litellm, names, key=self._key(), config_models=self.config_models
                )
                report.add_phase("read_litellm", time.perf_counter() - mark)
                mark = time.perf_counter()
                plan = await asyncio.to_thread(
                    self._plan,
                    names,
                    truth.deployments,
                    truth.errors,
                    current,
                    may_retire=may_retire,
                    db_rows=db_rows,
                )
                report.add_phase("plan", time.perf_counter() - mark)
                if writing is not None:
                    done += await writing
                    writing = None
                    if progress:
                        progress(done)
                plan = await self._not_served_elsewhere(backend, plan)
                report.note_plan(plan)
                if index + 1 < len(chunks):
                    current, db_rows = await self._snapshot(backend, chunks[index + 1], may_retire)
                if dry_run:
                    done += len(names)
                    if progress:
                        progress(done)
                    continue
                writing = asyncio.create_task(
                    self._write_chunk(backend, plan, truth, report, len(names))
                )
            if writing is not None:
                done += await writing
                writing = None
                if progress:
                    progress(done)
        finally:
            if writing is not None and not writing.done():
                # an error elsewhere: the writes in flight end before the transaction is rolled back
                with contextlib.suppress(BaseException):
                    await writing

    async def _snapshot(
        self, backend: psycopg.AsyncConnection[Any], names: list[str], may_retire: RetireMissing
    ) -> tuple[dict[str, CurrentRow], set[str]]:
        """The backend rows of ``names`` and, for a "db-rows" retire, which of them came from
        LiteLLM's table (asked for every present row: whether it is absent from LiteLLM is known
        only later)."""
        current = await backend_sink.snapshot(backend, names)
        db_rows: set[str] = set()
        if may_retire == "db-rows":
            db_rows = await backend_sink.db_model_ids(backend, [n for n in names if n in current])
        return current, db_rows

    async def _not_served_elsewhere(
        self, backend: psycopg.AsyncConnection[Any], plan: list[PlannedChange]
    ) -> list[PlannedChange]:
        """Two LiteLLMs, one backend: a name this instance no longer has but another one serves is
        not retired (and no longer this instance's)."""
        gone = [c.name for c in plan if c.action == "retire"]
        if not gone:
            return plan
        elsewhere = await backend_sink.served_elsewhere(backend, gone, self._instance)
        if not elsewhere:
            return plan
        return [
            PlannedChange(c.name, "unchanged", message=SERVED_ELSEWHERE)
            if c.name in elsewhere
            else c
            for c in plan
        ]

    async def _write_chunk(
        self,
        backend: psycopg.AsyncConnection[Any],
        plan: list[PlannedChange],
        truth: litellm_source.Truth,
        report: Report,
        size: int,
    ) -> int:
        """Apply one chunk's plan and note where each synced name comes from; returns ``size``.
        Inside the caller's transaction. One round trip when every statement succeeds (savepoint,
        upserts, notes, release: pipelined); else back to the savepoint and the careful path (one
        savepoint per record isolates a bad or locked one)."""
        mark = time.perf_counter()
        sources = self._sources(truth, report)
        if not await self._write_chunk_pipelined(backend, plan, sources, report):
            await self._apply(backend, plan, report)
            sources = self._sources(truth, report)
            await backend_sink.note_sources(backend, sources)
            await backend_sink.note_instances(backend, sources, self._instance)
        report.add_phase("apply", time.perf_counter() - mark)
        return size

    @staticmethod
    def _sources(truth: litellm_source.Truth, report: Report) -> dict[str, bool]:
        """Of the synced names, whether each comes from LiteLLM's database (note_model_sources)."""
        return {
            name: any(d.source == "db" for d in deps)
            for name, deps in truth.deployments.items()
            if report.outcomes.get(name) is not None
            and report.outcomes[name].action in {"created", "updated", "unchanged"}
        }

    async def _write_chunk_pipelined(
        self,
        backend: psycopg.AsyncConnection[Any],
        plan: list[PlannedChange],
        sources: dict[str, bool],
        report: Report,
    ) -> bool:
        """_write_chunk's round trip; False when a statement failed (rolled back to the savepoint,
        nothing of it stays): the caller writes record by record instead."""
        writes = [c.record for c in plan if c.action in {"create", "update"} and c.record]
        size = self.settings.batch_size
        cursors = []
        try:
            async with backend.pipeline():
                await backend.execute(sql.query("backend", "savepoint_chunk"))
                for start in range(0, len(writes), size):
                    batch = writes[start : start + size]
                    cursors.append(await backend_sink.send_upsert(backend, batch))
                await backend_sink.note_sources(backend, sources)
                await backend_sink.note_instances(backend, sources, self._instance)
                await backend.execute(sql.query("backend", "release_chunk"))
        except Exception as exc:
            if outages.classify(exc) == "outage":
                raise
            log.debug("pipelined write of a chunk failed; record by record", exc_info=True)
            await backend.execute(sql.query("backend", "rollback_to_chunk"))
            return False
        for cur in cursors:
            for model_id, outcome in await backend_sink.upsert_outcomes(cur):
                if outcome == "unchanged":
                    report.outcomes[model_id] = Outcome("unchanged")
                else:
                    report.rows_written += 1
        report.retires.extend(c.name for c in plan if c.action == "retire")
        return True

    # -- planning --------------------------------------------------------------------------------

    def _plan(
        self,
        names: Collection[str],
        deployments: Mapping[str, list[Any]],
        errors: Mapping[str, str],
        current: Mapping[str, CurrentRow],
        *,
        may_retire: RetireMissing,
        db_rows: Collection[str] = (),
    ) -> list[PlannedChange]:
        plan: list[PlannedChange] = []
        for name in sorted(set(names) | set(deployments) | set(errors)):
            if name in errors:
                plan.append(PlannedChange(name, "error", message=errors[name]))
                continue
            change = plan_name(
                name,
                deployments.get(name),
                current.get(name),
                sync_team_models=self.settings.sync_team_models,
                may_retire=may_retire,
                in_table=name in db_rows,
            )
            plan.append(change)
        return plan

    # -- applying --------------------------------------------------------------------------------

    async def _apply(
        self, backend: psycopg.AsyncConnection[Any], plan: list[PlannedChange], report: Report
    ) -> None:
        writes = [c for c in plan if c.action in {"create", "update"} and c.record is not None]
        retires = [c for c in plan if c.action == "retire"]
        size = self.settings.batch_size
        for start in range(0, len(writes), size):
            batch = writes[start : start + size]
            await self._upsert_batch(backend, batch, report)
        report.retires.extend(c.name for c in retires)

    async def _retire_all(
        self,
        litellm: psycopg.AsyncConnection[Any],
        backend: psycopg.AsyncConnection[Any],
        report: Report,
    ) -> None:
        """Retire every name of this pass together: unavailable at once; the cascade after the grace
        period (``LITEMAAS_HOOKS_RETIRE_GRACE_SECONDS``; 0 = now). A pass retiring a large share of
        the LiteLLM-sourced models (the mass-retire guard) cascades nothing: its names are held."""
        settings = self.settings
        names = report.retires
        hold = await self._guard_holds(backend, len(names))
        instance = await self.instance(litellm)
        for name in names:
            try:
                async with backend.transaction():
                    result = await backend_sink.retire_v2(
                        backend,
                        name,
                        cascade=settings.retire_cascade,
                        reason=RETIRE_REASON,
                        grace_seconds=settings.retire_grace_seconds,
                        instance=instance,
                        hold=hold,
                    )
            except Exception as exc:
                kind = outages.classify(exc)
                if kind == "outage":
                    raise
                if kind == "contention":
                    why = f"retire waited too long: {describe(exc)}"
                    report.outcomes[name] = Outcome("deferred", why)
                    continue
                report.outcomes[name] = Outcome("error", f"retire failed: {describe(exc)}")
                continue
            self._note_retire(report, name, result)

    async def _guard_holds(
        self,
        backend: psycopg.AsyncConnection[Any],
        count: int,
        total_cur: psycopg.AsyncCursor[Any] | None = None,
    ) -> bool:
        """The mass-retire guard for a pass retiring ``count`` names: True holds their cascades.
        ``total_cur``: the guard's total, already asked in this transaction (a round trip saved)."""
        settings = self.settings
        if total_cur is not None:
            total = await backend_sink.retire_guard_total_of(total_cur)
        else:
            total = await backend_sink.retire_guard_total(backend)
        hold = settings.retire_cascade and mass_retire(
            count,
            total,
            percent=settings.retire_guard_percent,
            min_models=settings.retire_guard_min_models,
        )
        if hold:
            log.warning(
                "mass-retire guard: this pass would retire %d models at once; they are unavailable "
                "but their cascade is held until `litemaas-hooks retire --confirm` (or they come "
                "back)",
                count,
            )
        return hold

    @staticmethod
    def _note_retire(report: Report, name: str, result: Mapping[str, Any]) -> None:
        """What retire_model_v2 answered for ``name``, in the report."""
        outcome = report.outcomes.get(name) or Outcome("retired")
        report.outcomes[name] = outcome
        if result.get("retired"):
            report.rows_written += 1
            outcome.message = _retire_message(result)
            if result.get("held"):
                report.held.append(name)
            elif result.get("pending"):
                due = float(result.get("grace_seconds") or 0.0)
                if report.cascade_due_seconds is None or due < report.cascade_due_seconds:
                    report.cascade_due_seconds = due
        elif result.get("served_elsewhere"):
            report.outcomes[name] = Outcome("unchanged", SERVED_ELSEWHERE)
        else:
            report.outcomes[name] = Outcome("unchanged", "already retired")

    async def instance(self, litellm: psycopg.AsyncConnection[Any]) -> str | None:
        """This LiteLLM's identity (its database's), remembered; None when it cannot be read."""
        if not self._instance_known:
            try:
                cur = await litellm.execute(sql.query("litellm", "instance_identity"))
                row = await cur.fetchone()
            except psycopg.Error as exc:
                if outages.classify(exc) == "outage":
                    raise
                log.warning(
                    "cannot tell which LiteLLM database this is (%s): retiring as before",
                    describe(exc),
                )
                row = None
            self._instance = str(row[0]) if row and row[0] else None
            self._instance_known = True
        return self._instance

    async def cascade_due(
        self,
        litellm: psycopg.AsyncConnection[Any],
        backend: psycopg.AsyncConnection[Any],
        *,
        confirm: Collection[str] | bool = False,
        dry_run: bool = False,
    ) -> DueReport:
        """The cascades whose grace period is over (or, with ``confirm``, the held ones: all, or the
        given names): claimed (any relay of the fleet, each once), LiteLLM re-checked, and only
        names still gone cascaded. Names served again are converged (which drops their pending
        row). The mass-retire guard applies to due cascades (never to an operator's confirm)."""
        due = DueReport()
        async with backend.transaction(force_rollback=dry_run):
            await backend.execute(
                sql.query("backend", "set_lock_timeout"), {"timeout": f"{LOCK_TIMEOUT_MS}ms"}
            )
            if confirm is False:
                names = await backend_sink.claim_due_retires(backend, DUE_BATCH)
            else:
                wanted = None if isinstance(confirm, bool) else list(confirm)
                names = await backend_sink.claim_held_retires(backend, wanted)
            if not names:
                return due
            truth = await read_truth(
                litellm, names, key=self._key(), config_models=self.config_models
            )
            due.errors = {n: truth.errors[n] for n in names if n in truth.errors}
            due.came_back = sorted(
                n for n in names if truth.deployments.get(n) and n not in due.errors
            )
            gone = [n for n in names if n not in due.errors and n not in due.came_back]
            if confirm is False and gone:
                queue = await backend_sink.retire_queue(backend)
                if self.settings.retire_cascade and mass_retire(
                    max(len(gone), len(queue)),
                    await backend_sink.retire_guard_total(backend),
                    percent=self.settings.retire_guard_percent,
                    min_models=self.settings.retire_guard_min_models,
                ):
                    why = "mass retire (after the grace period)"
                    await backend_sink.hold_retires(backend, gone, why)
                    due.held = gone
                    gone = []
            for name in gone:
                due.cascaded[name] = await backend_sink.cascade_pending(
                    backend, name, reason=RETIRE_REASON, held=confirm is not False
                )
        if due.came_back and not dry_run:
            report = await self.converge(litellm, backend, names=due.came_back)
            due.converged = report
        return due

    async def _upsert_batch(
        self, backend: psycopg.AsyncConnection[Any], batch: list[PlannedChange], report: Report
    ) -> None:
        records: list[ModelRecord] = [c.record for c in batch if c.record is not None]
        try:
            async with backend.transaction():
                outcomes = await backend_sink.upsert(backend, records)
        except Exception as exc:
            kind = outages.classify(exc)
            if kind == "outage":
                raise  # the database, not a row: nobody's attempt
            if len(batch) > 1:
                # One bad (or locked) record must not cost the others: isolate it, one savepoint per
                # record.
                for change in batch:
                    await self._upsert_batch(backend, [change], report)
                return
            name = batch[0].name
            if kind == "contention":
                why = f"the write waited too long: {describe(exc)}"
                report.outcomes[name] = Outcome("deferred", why)
            else:
                why = f"backend rejected the row: {describe(exc)}"
                report.outcomes[name] = Outcome("error", why)
            return
        for model_id, outcome in outcomes.items():
            if outcome == "unchanged":
                report.outcomes[model_id] = Outcome("unchanged")
            else:
                report.rows_written += 1


@dataclass
class DueReport:
    """What a pass over the pending cascades did (``Reconciler.cascade_due``)."""

    # name -> the cascade's counts
    cascaded: dict[str, dict[str, Any]] = field(default_factory=dict)
    held: list[str] = field(default_factory=list)  # held by the mass-retire guard
    came_back: list[str] = field(default_factory=list)  # served again: converged, nothing cascaded
    errors: dict[str, str] = field(default_factory=dict)  # LiteLLM could not be read for these
    converged: Report | None = None

    def summary(self) -> str:
        done = [n for n, r in self.cascaded.items() if r.get("cascaded")]
        return (
            f"cascaded {len(done)}, held {len(self.held)}, came back {len(self.came_back)}, "
            f"unreadable {len(self.errors)}"
        )


def _falls_back(
    exc: psycopg.Error, function: str, instead: str, names: Sequence[str], report: Report
) -> bool:
    """A call of one of our one-statement functions (``function``: write_models_v1,
    retire_models_v1) raised ``exc``. True: the function is missing or not granted (an older
    install or grants): said once here (``instead``: what the relay does meanwhile), the caller
    takes the statements of the release before. False: its check refused it (altered since
    install): every name's error, and nothing is done another way. Anything else is raised."""
    if backend_sink.refused(exc):
        for name in names:
            report.outcomes[name] = Outcome("error", describe(exc))
        return False
    if not backend_sink.function_missing(exc, function):
        raise exc
    log.warning(
        "%s, litemaas_hooks.%s is missing or not granted (%s): re-run `litemaas-hooks install`, "
        "and re-apply `install --print-grants` (or `install --grant-relay`) for the relay role; "
        "used from the relay's next start",
        instead,
        function,
        describe(exc),
    )
    return True


def _retire_message(result: Mapping[str, Any]) -> str:
    if result.get("held"):
        return "unavailable; cascade held by the mass-retire guard (`retire --confirm`)"
    if result.get("pending"):
        grace = float(result.get("grace_seconds", 0))
        return f"unavailable; cascade after the grace period ({grace:g}s)"
    counts = {k: v for k, v in result.items() if k not in {"found", "retired"}}
    return ", ".join(f"{k}={v}" for k, v in counts.items())


def _tell(progress: Progress, total: int, done: int) -> None:
    progress(done, total)
