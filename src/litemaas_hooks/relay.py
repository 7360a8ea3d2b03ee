"""The relay: outbox events in the LiteLLM database → the reconcile engine → the backend database.

One relay runs per LiteLLM worker process (started by the callback plugin) or standalone
(``litemaas-hooks relay``); any number of them cooperate through the outbox.

Loop (crash-only: the outbox is the only state; a relay killed at any point loses nothing)::

    connect both databases (autocommit) → LISTEN → give back our old claims, recover stalled claims
    → drain → wait for a NOTIFY or the poll timeout → drain → ...

- **drain**: one LiteLLM statement (``outbox.claim_batch``: a call of ``claim_batch_v1``; the
  release before's pipelined queries where the install or grants predate it) claims a batch of due
  events (``FOR UPDATE SKIP LOCKED``; never an event naming a model another relay holds a claim
  on), reads every deployment of their model names in the same transaction (the current truth, so
  duplicated or reordered events are harmless) and deletes the previous batch's applied events;
  then ``engine.converge(names=..., prefetched=rows)`` (one backend statement for adds and
  updates, one for a delete, two pipelined round trips for a batch of both or one the mass-retire
  guard may hold); events whose names converged are deleted with the next claim, only after the
  backend transaction committed; failures are recorded at once (scrubbed error text, capped
  exponential backoff, ``dead`` after ``max_attempts``). Repeat until nothing is due.
- **LISTEN before draining**: an event committed while we drain still wakes us (psycopg keeps
  notifications that arrive during a query for the next wait); the poll timeout
  (``poll_interval_seconds``) is the safety net and also retries failed events when they are due.
- **faults**: claims carry the claimer's database session; claims of a session that is gone (a relay
  killed mid-batch) are taken over at every drain, without spending an attempt. Errors are sorted by
  ``outages.classify``: an outage (read-only, disk full, shutdown, connection lost) gives the batch
  back and reconnects with backoff; contention (a lock held elsewhere) and names the engine reports
  ``deferred`` are retried after ``DEFER_SECONDS`` without an attempt; only a model's own error
  spends an attempt, and only for the events that name that model.
- **housekeeping** on every poll timeout (at least every ``poll_interval_seconds``): ping the
  backend connection, recover claims older than ``stall_timeout_seconds`` (a relay hung with its
  session alive).
- **due retire cascades**: a retired name's cascade waits ``retire_grace_seconds`` in the backend
  (``litemaas_hooks.pending_retires``); the relay wakes when the next one is due (it re-reads
  the due time after it retired something and at every poll timeout), claims due ones (any relay,
  each once), re-checks LiteLLM and cascades only names still gone (``Reconciler.cascade_due``).
- **periodic full reconcile** every ``reconcile_interval_seconds`` (0 = off), fleet-wide at most one
  runner at a time (session advisory lock in the LiteLLM database; the others skip) and at most
  about once per interval (``litemaas_hooks.reconcile_state``). It also re-installs the outbox
  trigger when LiteLLM dropped it (if this role may).
- **reconnect** with exponential backoff (+-10 % jitter, capped at ``reconnect_max_seconds``) when
  either database goes away; claims are given back and the outbox is drained on reconnect.

Pooled (``connections.pool_mode``): through a transaction-pooling PgBouncer LISTEN and session locks
mean nothing, so the relay polls every ``pooled_poll_interval_seconds`` and the full reconcile takes
a lease row (``reconcile_try_lease``) instead of the advisory lock; it says so once in the log.

Connections: exactly one to each database per relay, idle or busy (the LiteLLM connection LISTENs,
claims and reads the truth; the backend connection writes). With N LiteLLM replicas x W workers
each, the plugin holds N*W connections to the LiteLLM database and N*W to the backend database
(2 x N*W on one server; 2 x N*W on the single database of the shared topology), plus 2 per
standalone relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import psycopg

from litemaas_hooks import (
    backend_sink,
    litellm_adapter,
    litellm_source,
    memo_share,
    metrics,
    migrations,
    outages,
    outbox,
)
from litemaas_hooks.backoff import Backoff
from litemaas_hooks.connections import (
    connect_error_message,
    open_connection,
    pool_mode,
    pooled_options_dropped,
    use_fast_json,
)
from litemaas_hooks.errors import (
    DatabaseUnavailableError,
    NotInstalledError,
    describe,
    function_unavailable,
)
from litemaas_hooks.litellm_source import ConfigModels, KeyFunc
from litemaas_hooks.redaction import redact_dsn, scrub
from litemaas_hooks.settings import Settings, Which

log = logging.getLogger("litemaas_hooks.relay")


_CONNECT_KWARGS: dict[str, Any] = {
    "autocommit": True,
    "connect_timeout": 10,
    # notice a silently dropped connection (e.g. a NAT or a failover) within about a minute
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


_MIN_RETRY_WAIT_SECONDS = 0.05
# A name whose backend row or lock another transaction holds is retried after this long (+-10 %),
# without spending an attempt; other names of the batch go ahead.
DEFER_SECONDS = 1.0


# -- the engine, as the relay sees it (litemaas_hooks.reconcile.Reconciler) ------------------------


class _Outcome(Protocol):
    @property
    def action(self) -> str: ...
    @property
    def message(self) -> str | None: ...


class _Report(Protocol):
    @property
    def outcomes(self) -> Mapping[str, _Outcome]: ...
    def failed_names(self) -> set[str]: ...
    def deferred_names(self) -> set[str]: ...
    def summary(self) -> str: ...
    @property
    def held(self) -> Sequence[str]: ...  # retires the mass-retire guard held
    @property
    def cascade_due_seconds(self) -> float | None: ...  # the first pending cascade, None: none


class Engine(Protocol):
    async def converge(
        self,
        litellm: psycopg.AsyncConnection[Any],
        backend: psycopg.AsyncConnection[Any],
        names: Collection[str] | None = None,
        *,
        retire_missing: bool | Literal["db-rows"] = False,
        dry_run: bool = False,
        prefetched: Sequence[Mapping[str, Any]] | None = None,
    ) -> _Report: ...


def default_engine(
    settings: Settings, config_models: ConfigModels | None, key: KeyFunc | None
) -> Engine:
    from litemaas_hooks.reconcile import Reconciler

    engine: Engine = Reconciler(settings, config_models=config_models, key=key)
    return engine


# -- observability (in memory only; nothing here ever needs flushing) ------------------------------


@dataclass
class RelayStats:
    connected: bool = False
    sessions: int = 0
    reconnects: int = 0
    batches: int = 0
    events_applied: int = 0
    events_failed: int = 0
    events_dead: int = 0
    events_deferred: int = 0
    stalled_recovered: int = 0
    dead_sessions_recovered: int = 0
    outages: int = 0
    full_reconciles: int = 0
    last_error: str | None = None
    last_batch_seconds: float | None = None
    started_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Relay:
    """One relay: see the module docstring. ``await relay.run(stop)`` until ``stop`` is set."""

    def __init__(
        self,
        settings: Settings,
        *,
        config_models: ConfigModels | None = None,
        key: KeyFunc | None = None,
        name: str = "litemaas-hooks-relay",
        engine: Engine | None = None,
        reconcile_retire_missing: bool | Literal["db-rows"] | None = None,
    ) -> None:
        """
        :param config_models: config-file deployments (inside the proxy: from the router). Without
            it config-file models are left alone.
        :param key: returns the decryption key (default: the engine's own precedence).
        :param name: shown in log lines, in ``application_name`` and in ``claimed_by``.
        :param engine: the reconcile engine (default ``reconcile.Reconciler``); tests pass a fake.
        :param reconcile_retire_missing: whether the periodic full reconcile retires backend rows
            whose name is gone from LiteLLM. Default: every such row when ``config_models`` is
            given; without the router (standalone) ``"db-rows"``: only rows known to come from
            LiteLLM's database (a config-file model, invisible from here, is never taken for a
            deleted one).
        """
        self.settings = settings
        self.name = name
        self.worker_id = f"{name}@{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._key = key
        self._engine = engine or default_engine(settings, config_models, key)
        self._retire_missing: bool | Literal["db-rows"] = (
            (True if config_models is not None else "db-rows")
            if reconcile_retire_missing is None
            else reconcile_retire_missing
        )
        self._backoff = Backoff(
            initial_delay_seconds=min(0.5, settings.reconnect_max_seconds),
            max_delay_seconds=settings.reconnect_max_seconds,
        )
        self.stats = RelayStats()
        self.observe = metrics.Observer()  # Prometheus series + what /readyz reads
        # set after each successful connect + first drain (tests, status)
        self.ready = asyncio.Event()
        self._next_housekeeping = 0.0
        self._next_reconcile_check = 0.0
        self._trigger_warned = False
        # transaction pooling on the LiteLLM side: poll instead of LISTEN, lease instead of lock
        # (set in run(), once the URLs are known to be there)
        self._polling = False
        self._next_retire_due: float | None = None  # monotonic time the next pending cascade is due
        self._retired_since_check = True  # re-read the pending cascades at the next check
        self._due_errors = False  # the last due pass could not read LiteLLM for some names
        self._queue_warned = False
        # completion folded into the next claim: events applied (backend committed), deleted with it
        self._done: list[int] = []
        self._blocked_column = True  # LiteLLM's table has `blocked` (1.81's has not); per session
        # the claim as one statement (claim_batch_v1); off for good, said once, when the install or
        # the role's grants predate it: the pipelined named queries then
        self._claim_function = True
        self._next_due: float | None = None  # what the last claim said (None: ask)
        self._next_due_fresh = False
        self._deferral_warned_until = 0.0

    # -- helpers ---------------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        extra: list[str | None] = []
        if self._key is not None:
            with contextlib.suppress(Exception):
                extra.append(self._key())
        return scrub(text, [*self.settings.secrets(), *extra])

    def _memo_key(self) -> str | None:
        """The key the engine decrypts with (the same precedence), which signs the shared memo."""
        if self._key is not None:
            return self._key()
        return self.settings.decryption_key() or litellm_adapter.proxy_master_key()

    @property
    def _max_delay_seconds(self) -> float:
        """The longest retry delay this relay sets (anything due later means the clock went
        back)."""
        return max(self.settings.retry_max_seconds, DEFER_SECONDS * 1.1) + 5.0

    def _describe(self, exc: BaseException) -> str:
        return self._scrub(describe(exc))

    async def _connect(self, dsn: str, which: Which) -> psycopg.AsyncConnection[Any]:
        try:
            conn = await open_connection(
                self.settings,
                which,
                dsn,
                application_name=f"{self.name}:{which}"[:63],
                **_CONNECT_KWARGS,
            )
        except psycopg.OperationalError as exc:  # one line naming the database and its variable
            raise DatabaseUnavailableError(
                connect_error_message(self.settings, which, exc)
            ) from None
        return use_fast_json(conn)

    def _log_pooling(self) -> None:
        """Once per relay: what PgBouncer's transaction pooling costs, and the fix."""
        if self._polling:
            log.warning(
                "%s: %s is transaction-pooled (%s): LISTEN does not work through it, so changes "
                "are polled every %gs and the full reconcile takes a lease row instead of a lock; "
                "for instant wake-ups give the relay a direct or session-pooled URL (%s)",
                self.name,
                self.settings.dsn_variable("litellm"),
                "LITEMAAS_HOOKS_POOL_MODE=transaction"
                if self.settings.pool_mode == "transaction"
                else "pgbouncer=true in the URL",
                self.settings.pooled_poll_interval_seconds,
                "LITELLM_DATABASE_URL; or LITEMAAS_HOOKS_POOL_MODE=session for a session pooler",
            )
        for which in ("litellm", "backend"):
            parsed = self.settings.database_url_of(which)
            if parsed.unknown:  # dburl dropped them: libpq would refuse the whole URL
                log.warning(
                    "%s: %s has parameters neither libpq nor Prisma (as litemaas-hooks knows it) "
                    "has; left out: %s",
                    self.name,
                    self.settings.dsn_variable(which),
                    ", ".join(parsed.unknown),
                )
            options = pooled_options_dropped(self.settings, which)
            if options:
                log.warning(
                    "%s: the options of %s (%s) are not sent through a transaction pooler "
                    "(PgBouncer refuses them): set them for the role instead (ALTER ROLE ... SET)",
                    self.name,
                    self.settings.dsn_variable(which),
                    self._scrub(options),
                )

    # -- main loop -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Relay until ``stop`` is set (or the task is cancelled). Never returns on database
        errors."""
        stop = stop or asyncio.Event()
        if not self.settings.enabled:
            log.info("%s: disabled (LITEMAAS_HOOKS_ENABLED=false); not relaying", self.name)
            return
        litellm_dsn = self.settings.litellm_dsn()
        backend_dsn = self.settings.backend_dsn()
        log.info(
            "%s: starting: relaying LiteLLM %s -> backend %s (poll %.1fs, %s)",
            self.name,
            redact_dsn(litellm_dsn),
            redact_dsn(backend_dsn),
            self.settings.poll_interval_seconds,
            f"full reconcile every {self.settings.reconcile_interval_seconds:g}s"
            if self.settings.reconcile_interval_seconds > 0
            else "periodic full reconcile off",
        )
        self._polling = pool_mode(self.settings, "litellm") == "transaction"
        self._log_pooling()
        # the memo now; LiteLLM itself on the first memo miss (no half-imported module)
        litellm_adapter.warm_up()
        while not stop.is_set():
            try:
                await self._session(litellm_dsn, backend_dsn, stop)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.connected = False
                self.ready.clear()
                self.observe.disconnected()
                self.stats.reconnects += 1
                self.stats.last_error = self._describe(exc)
                delay = self._backoff.next_delay()
                level = logging.WARNING if self._backoff.failures <= 3 else logging.ERROR
                log.log(
                    level,
                    "%s: %s; retrying in %.1fs (attempt %d)",
                    self.name,
                    self.stats.last_error,
                    delay,
                    self._backoff.failures,
                )
                await _wait_event(stop, delay)
        log.info("%s: stopped", self.name)

    async def _session(self, litellm_dsn: str, backend_dsn: str, stop: asyncio.Event) -> None:
        lconn = await self._connect(litellm_dsn, "litellm")
        async with lconn:
            self.observe.connected_to("litellm")
            bconn = await self._connect(backend_dsn, "backend")
            async with bconn:
                self.observe.connected_to("backend")
                await self._start(lconn)
                self.stats.sessions += 1
                self.stats.connected = True
                log.info("%s: connected to both databases (worker %s)", self.name, self.worker_id)
                await self._drain(lconn, bconn)
                await self._share_answers(lconn)
                self._backoff.reset()
                self.ready.set()
                log.info("%s: caught up: the outbox is drained, listening for changes", self.name)
                await self._maybe_full_reconcile(lconn, bconn)
                await self._due_cascades(lconn, bconn, woke=False)
                while not stop.is_set():
                    woke = await self._wait(lconn, stop, await self._timeout(lconn))
                    if stop.is_set():
                        break
                    if not woke or time.monotonic() >= self._next_housekeeping:
                        await self._housekeeping(lconn, bconn)
                    await self._drain(lconn, bconn)
                    await self._maybe_full_reconcile(lconn, bconn)
                    await self._due_cascades(lconn, bconn, woke=woke)
                with contextlib.suppress(psycopg.Error):  # stopping: what this relay learnt
                    await self._share_answers(lconn)
        self.stats.connected = False
        self.observe.disconnected(reconnect=False)

    async def _start(self, lconn: psycopg.AsyncConnection[Any]) -> None:
        state = await outbox.trigger_state(lconn)
        if not state.outbox_present:
            raise NotInstalledError(
                "the outbox litemaas_hooks.model_events does not exist in the LiteLLM database: "
                "run `litemaas-hooks install` "
                "(with LITELLM_DATABASE_URL and LITEMAAS_DATABASE_URL set)"
            )
        await self._ensure_trigger(lconn, state)
        self._done = []  # claims of an earlier session: given back below
        # the column types of LiteLLM's table are checked here, once per connection (every reconnect
        # checks again) and at every housekeeping: claim_batch's read of the table (each batch)
        # relies on this check instead of repeating it (litellm_source.column_problem:
        # UnsafeObjectError)
        self._blocked_column = await litellm_source.has_blocked_column(lconn)
        if not self._polling:  # transaction pooling: LISTEN means nothing there, we poll (_timeout)
            await outbox.listen(lconn)  # before the first drain: nothing committed after it is lost
        given_back = await outbox.release(
            lconn, worker=self.worker_id, reason="relay reconnected before completing this event"
        )
        if given_back:
            log.info("%s: gave back %d claimed events after reconnecting", self.name, given_back)
        await self._recover(lconn)
        await self.observe.refresh(lconn)
        self._next_housekeeping = time.monotonic() + self.settings.poll_interval_seconds

    async def _timeout(self, lconn: psycopg.AsyncConnection[Any]) -> float:
        now = time.monotonic()
        timeout = max(0.0, self._next_housekeeping - now)
        if self._next_due_fresh:  # the drain's last claim said it, in the same round trip
            due, self._next_due_fresh = self._next_due, False
        else:
            due = await outbox.next_due_seconds(lconn, max_delay_seconds=self._max_delay_seconds)
        if due is not None:
            # floor: a due event we could not claim (row locked by someone's open transaction) must
            # not turn this loop into a busy spin
            timeout = min(timeout, max(_MIN_RETRY_WAIT_SECONDS, due))
        if self.settings.reconcile_interval_seconds > 0:
            timeout = min(timeout, max(0.0, self._next_reconcile_check - now))
        if self._polling:
            timeout = min(timeout, self.settings.pooled_poll_interval_seconds)
        if self._next_retire_due is not None:
            timeout = min(timeout, max(0.0, self._next_retire_due - now))
        return timeout

    async def _wait(
        self, lconn: psycopg.AsyncConnection[Any], stop: asyncio.Event, wait_seconds: float
    ) -> bool:
        """Wait for a notification (True), the timeout (False) or ``stop``."""
        listener = asyncio.ensure_future(_next_notification(lconn, wait_seconds))
        stopper = asyncio.ensure_future(stop.wait())
        try:
            done, _ = await asyncio.wait({listener, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not listener.done():
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
        return listener in done and not listener.cancelled() and bool(listener.result())

    async def _due_cascades(
        self,
        lconn: psycopg.AsyncConnection[Any],
        bconn: psycopg.AsyncConnection[Any],
        *,
        woke: bool,
    ) -> None:
        """Retire cascades whose grace period is over (any relay of the fleet takes each once, FOR
        UPDATE SKIP LOCKED). Runs when the due time this relay knows of has come; the due time is
        re-read after this relay retired something and at every poll timeout (due times another
        relay set), so the cascade follows the grace period within about one poll interval at worst,
        without polling any faster."""
        cascade_due = getattr(self._engine, "cascade_due", None)
        if cascade_due is None:
            return
        due_now = self._next_retire_due is not None and time.monotonic() >= self._next_retire_due
        if not (due_now or self._retired_since_check or not woke):
            return
        self._retired_since_check = False
        if due_now:
            self._due_errors = False
            try:
                due = await cascade_due(lconn, bconn)
            except Exception as exc:
                if outages.classify(exc) is not None:
                    raise
                log.exception("%s: due retire cascades failed: %s", self.name, self._describe(exc))
                due = None
            self._due_errors = due is None or bool(due.errors)
            if due is not None and (due.cascaded or due.held or due.came_back or due.errors):
                log.log(
                    logging.WARNING if due.held or due.errors else logging.INFO,
                    "%s: retire cascades after the grace period: %s%s",
                    self.name,
                    due.summary(),
                    f"; held by the mass-retire guard: {sorted(due.held)}: run "
                    "`litemaas-hooks retire "
                    "--confirm` if they are really gone"
                    if due.held
                    else "",
                )
        try:
            queue = await backend_sink.retire_queue(bconn)
        except (psycopg.errors.UndefinedFunction, psycopg.errors.InsufficientPrivilege) as exc:
            if not self._queue_warned:
                log.error(
                    "%s: cannot read the pending retire cascades (%s): run "
                    "`litemaas-hooks install` and "
                    "give the relay role the grants of `litemaas-hooks install --print-grants`",
                    self.name,
                    self._describe(exc),
                )
                self._queue_warned = True
            self._next_retire_due = None
            return
        waiting = [float(r["seconds_left"]) for r in queue if r["held_at"] is None]
        self.observe.retire_queue(waiting=len(waiting), held=len(queue) - len(waiting))
        if not waiting:
            self._next_retire_due = None
            return
        seconds = min(waiting)
        # a due cascade this pass could not take: locked elsewhere (again in about a second), or
        # LiteLLM unreadable for it (again at the next poll): later, never a spin
        retry = DEFER_SECONDS
        if due_now and self._due_errors:
            retry = self.settings.poll_interval_seconds
        self._next_retire_due = time.monotonic() + (seconds if seconds > 0 else retry)

    async def _housekeeping(
        self, lconn: psycopg.AsyncConnection[Any], bconn: psycopg.AsyncConnection[Any]
    ) -> None:
        # find out now, not with the next event, that the backend went away
        await outbox.ping(bconn)
        self._blocked_column = await litellm_source.has_blocked_column(lconn)  # LiteLLM upgraded?
        await self._recover(lconn)
        await self.observe.refresh(lconn)
        await self._share_answers(lconn)
        self._next_housekeeping = time.monotonic() + self.settings.poll_interval_seconds

    async def _recover_dead_sessions(self, lconn: psycopg.AsyncConnection[Any]) -> None:
        """Claims of relays whose database session is gone: pending again at once, no attempt
        spent."""
        attempts = self.settings.max_attempts
        self._note_recovered(await outbox.recover_dead_sessions(lconn, max_attempts=attempts))

    def _note_recovered(self, recovered: list[outbox.Recovered]) -> None:
        if recovered:
            self.stats.dead_sessions_recovered += len(recovered)
            log.warning(
                "%s: took over %d claims of a relay whose database session ended "
                "(killed or cut off): %s",
                self.name,
                len(recovered),
                [r.id for r in recovered],
            )

    async def _recover(self, lconn: psycopg.AsyncConnection[Any]) -> None:
        await self._recover_dead_sessions(lconn)
        recovered = await outbox.recover_stalled(
            lconn,
            stall_timeout_seconds=self.settings.stall_timeout_seconds,
            max_attempts=self.settings.max_attempts,
        )
        if recovered:
            self.stats.stalled_recovered += len(recovered)
            dead = [r.id for r in recovered if r.status == "dead"]
            log.warning(
                "%s: recovered %d stalled claims (older than %.0fs)%s",
                self.name,
                len(recovered),
                self.settings.stall_timeout_seconds,
                f"; {len(dead)} reached max attempts and are dead: {dead}" if dead else "",
            )

    # -- draining --------------------------------------------------------------------------------

    async def _claim(self, lconn: psycopg.AsyncConnection[Any]) -> outbox.Batch:
        """``outbox.claim_batch``: one statement, or the pipelined named queries where the install
        or the relay role's grants are older than this relay (said once)."""
        claim = functools.partial(
            outbox.claim_batch,
            lconn,
            worker=self.worker_id,
            batch_size=self.settings.batch_size,
            max_delay_seconds=self._max_delay_seconds,
            done=self._done,
            max_attempts=self.settings.max_attempts,
            json_loads=litellm_source.safe_json_loads,
        )
        if self._claim_function:
            try:
                return await claim(via_function=True)
            except psycopg.Error as exc:
                if not function_unavailable(exc, "claim_batch_v1"):
                    raise
                self._claim_function = False
                log.warning(
                    "%s: claims take %s statements instead of one (%s): run `litemaas-hooks "
                    "install` of this version, and give the relay role the grants of `install "
                    "--print-grants` (or run install with --grant-relay)",
                    self.name,
                    "4 to 6" if self._polling else "3 or 4",
                    self._scrub(self._describe(exc))[:300],
                )
        return await claim(
            blocked_column=self._blocked_column,
            explicit_transaction=self._polling,  # transaction pooling pins search_path at BEGIN
        )

    async def drain_once(
        self, lconn: psycopg.AsyncConnection[Any], bconn: psycopg.AsyncConnection[Any]
    ) -> int:
        """Claim and apply one batch; returns how many events were claimed (0 = nothing due).

        One LiteLLM round trip claims the batch, reads its names' deployments and deletes the events
        the previous batch applied (their completion); the engine then needs one backend one (two
        when a name may be retired)."""
        batch = await self._claim(lconn)
        self._done = []
        self._next_due, self._next_due_fresh = batch.next_due_seconds, True
        self._note_recovered(batch.recovered)
        events = batch.events
        if not events:
            return 0
        self._next_due_fresh = False  # this batch's outcome (a failure, a deferral) changes it
        started = time.perf_counter()
        names: set[str] = set().union(*(e.names for e in events))
        try:
            report = await self._engine.converge(
                lconn, bconn, names=names, retire_missing=False, prefetched=batch.rows
            )
        except Exception as exc:
            kind = outages.classify(exc)
            if kind is None:
                return await self._converge_failed(lconn, events, exc)
            reason = self._scrub(f"{kind}: {self._describe(exc)}")[:2000]
            if kind == "contention":  # a lock held elsewhere: later, on this connection, no attempt
                self.stats.events_deferred += await outbox.defer(
                    lconn,
                    worker=self.worker_id,
                    reasons={e.id: reason for e in events},
                    delay_seconds=DEFER_SECONDS,
                )
                log.info(
                    "%s: %s; %d events retried in about %.1fs",
                    self.name,
                    reason,
                    len(events),
                    DEFER_SECONDS,
                )
                self._warn_if_deferred_long(events, reason)
                return len(events)
            # a database cannot take the work (read-only, disk full, shut down, gone): not the
            # events' fault; give them back (if the LiteLLM side still answers) and reconnect with
            # backoff
            self.stats.outages += 1
            with contextlib.suppress(psycopg.Error):
                await outbox.release(
                    lconn, worker=self.worker_id, reason=f"database unavailable: {reason}"
                )
            raise
        return await self._settle(lconn, events, names, report, started)

    def _warn_if_deferred_long(self, events: Sequence[outbox.Event], reason: str) -> None:
        """Deferrals spend no attempt, so they could go on forever: once events have waited longer
        than the stall timeout, say so (at most once a minute; `status` shows the old backlog
        too)."""
        if not events:
            return
        oldest = min(e.created_at for e in events)
        waited = time.time() - oldest.timestamp()
        if waited < self.settings.stall_timeout_seconds:
            return
        if time.monotonic() < self._deferral_warned_until:
            return
        self._deferral_warned_until = time.monotonic() + 60.0
        log.warning(
            "%s: %d events have waited %.0fs, deferred again (no attempt spent): %s",
            self.name,
            len(events),
            waited,
            reason,
            extra={"event_ids": [e.id for e in events], "outcome": "deferred"},
        )

    async def _converge_failed(
        self, lconn: psycopg.AsyncConnection[Any], events: list[outbox.Event], exc: Exception
    ) -> int:
        """converge() raised something that is neither an outage nor a model's error (a bug): every
        event of the batch is retried (an attempt each), with the error."""
        # a statement_timeout: the batch's failure, with the setting named
        hint = outages.explain(exc)
        message = f"converge failed: {self._describe(exc)}"[:2000]
        # a bug gets its traceback; a named timeout needs none
        trace = exc if hint is None else None
        log.error("%s: %s (events %s)", self.name, message, [e.id for e in events], exc_info=trace)
        await self._fail(lconn, {e.id: message for e in events})
        return len(events)

    async def _settle(
        self,
        lconn: psycopg.AsyncConnection[Any],
        events: list[outbox.Event],
        names: set[str],
        report: _Report,
        started: float,
    ) -> int:
        """After converge() committed: per event, by its own names only — done (deleted), failed (an
        attempt: a name of its own is in error) or deferred (a name of its own was locked: no
        attempt)."""
        failed = report.failed_names()
        deferred = report.deferred_names()
        done: list[int] = []
        errors: dict[int, str] = {}
        later: dict[int, str] = {}
        for event in events:
            if not event.names and event.op != "DELETE":
                # nothing to converge: the deployment has no usable name; keep the event with why
                errors[event.id] = (
                    f"deployment {event.model_id} has no model_name; give it a name in LiteLLM "
                    "(PATCH /model/{model_id}/update)"
                )
                continue
            bad = sorted(event.names & failed)
            busy = sorted(event.names & deferred)
            if bad:
                errors[event.id] = self._scrub(
                    "; ".join(f"{n}: {report.outcomes[n].message or 'error'}" for n in bad)
                )[:2000]
            elif busy:
                later[event.id] = self._scrub(
                    "; ".join(f"{n}: {report.outcomes[n].message or 'locked'}" for n in busy)
                )[:2000]
            else:
                done.append(event.id)
        # the backend transaction(s) of converge() committed: the events go with the next claim
        self._done.extend(done)
        await self._fail(lconn, errors)
        if later:
            self.stats.events_deferred += await outbox.defer(
                lconn, worker=self.worker_id, reasons=later, delay_seconds=DEFER_SECONDS
            )
            waiting = [e for e in events if e.id in later]
            self._warn_if_deferred_long(waiting, next(iter(later.values())))
        elapsed = time.perf_counter() - started
        self.stats.batches += 1
        self.stats.events_applied += len(done)
        self.stats.last_batch_seconds = elapsed
        self.observe.batch(applied=len(done), seconds=elapsed, outcomes=report.outcomes)
        changed = {
            n: o.action
            for n, o in report.outcomes.items()
            if o.action in {"created", "updated", "retired"}
        }
        if "retired" in changed.values():
            self._note_retired(report)
        log.log(
            logging.INFO if changed or errors else logging.DEBUG,
            "%s: %d events, %d names in %.1f ms: %s%s",
            self.name,
            len(events),
            len(names),
            elapsed * 1000,
            ", ".join(f"{n} {a}" for n, a in sorted(changed.items())) or "no change",
            (f"; {len(errors)} events failed" if errors else "")
            + (f"; {len(later)} deferred (locked)" if later else ""),
            extra={
                "event_ids": [e.id for e in events],
                "models": dict(sorted(changed.items())),
                "outcome": "failed" if errors else ("applied" if changed else "unchanged"),
            },
        )
        return len(events)

    def _note_retired(self, report: _Report) -> None:
        """A cascade may wait for its grace period now. When the retires said when (none held by
        the mass-retire guard), wait for that without reading the backend's queue again (a round
        trip per delete): a retire without a pending cascade (cascade off, or done at once) adds
        nothing to wait for. After a hold, re-read the queue at the next check. The queue's gauges
        are then refreshed when the cascade is due, or at the next poll timeout."""
        if report.held:
            self._retired_since_check = True
            return
        due = report.cascade_due_seconds
        if due is None:
            return
        at = time.monotonic() + max(0.0, due)
        if self._next_retire_due is None or at < self._next_retire_due:
            self._next_retire_due = at

    async def _drain(
        self, lconn: psycopg.AsyncConnection[Any], bconn: psycopg.AsyncConnection[Any]
    ) -> None:
        # each claim first gives back the claims of dead sessions: a dead relay's work goes on now
        while await self.drain_once(lconn, bconn):
            pass

    async def _share_answers(self, lconn: psycopg.AsyncConnection[Any]) -> None:
        """LiteLLM's answers for models never seen, learnt while converging, shared with the fleet:
        at the session's start, at every housekeeping (at least every poll interval) and at stop,
        never after each drain: a burst of new models costs one share, none of it on a change's
        path or between two changes (a no-op without anything new). The disk memo is written then
        too: rewriting the whole file after each new model cost a change's path O(memo size)."""
        litellm_adapter.save_memo()
        await memo_share.push(lconn, self._memo_key())

    async def _fail(self, lconn: psycopg.AsyncConnection[Any], errors: Mapping[int, str]) -> None:
        if not errors:
            return
        results = await outbox.fail(
            lconn,
            worker=self.worker_id,
            errors=errors,
            max_attempts=self.settings.max_attempts,
            retry_base_seconds=self.settings.retry_base_seconds,
            retry_max_seconds=self.settings.retry_max_seconds,
        )
        self.stats.events_failed += len(results)
        self.observe.failed(results)
        for r in results:
            if r.status == "dead":
                self.stats.events_dead += 1
                log.error(
                    "%s: event %d failed %d times and is dead (see `litemaas-hooks status`): %s",
                    self.name,
                    r.id,
                    r.attempts,
                    errors[r.id],
                    extra={"event_id": r.id, "outcome": "dead", "attempts": r.attempts},
                )
            else:
                log.warning(
                    "%s: event %d failed (attempt %d/%d), retrying at %s: %s",
                    self.name,
                    r.id,
                    r.attempts,
                    self.settings.max_attempts,
                    r.next_attempt_at.isoformat(timespec="seconds"),
                    errors[r.id],
                    extra={"event_id": r.id, "outcome": "retrying", "attempts": r.attempts},
                )

    # -- the periodic full reconcile -------------------------------------------------------------

    async def _maybe_full_reconcile(
        self, lconn: psycopg.AsyncConnection[Any], bconn: psycopg.AsyncConnection[Any]
    ) -> None:
        interval = self.settings.reconcile_interval_seconds
        if interval <= 0 or time.monotonic() < self._next_reconcile_check:
            return
        self._next_reconcile_check = time.monotonic() + interval * random.uniform(0.9, 1.1)
        await self._ensure_trigger(lconn, await outbox.trigger_state(lconn))
        if self._polling:  # transaction pooling: no session to hold an advisory lock; a lease row
            got = await outbox.try_reconcile_lease(
                lconn, runner=self.worker_id, min_age_seconds=interval * 0.5, lease_seconds=interval
            )
        else:
            got = await outbox.try_reconcile_lock(lconn)
        if not got:
            log.debug("%s: another relay is running the full reconcile; skipped", self.name)
            return
        try:
            due = self._polling or await outbox.reconcile_due(lconn, min_age_seconds=interval * 0.5)
            if not due:
                log.debug("%s: full reconcile ran recently elsewhere; skipped", self.name)
                return
            await outbox.reconcile_started(lconn, runner=self.worker_id)
            try:
                report = await self._engine.converge(
                    lconn, bconn, names=None, retire_missing=self._retire_missing
                )
            except (psycopg.OperationalError, psycopg.InterfaceError):
                raise
            except Exception as exc:
                log.exception("%s: full reconcile failed: %s", self.name, self._describe(exc))
                self.observe.full_reconcile(ok=False)
                return
            self._retired_since_check = True
            summary = self._scrub(report.summary())
            await outbox.reconcile_finished(lconn, runner=self.worker_id, summary=summary)
            self.stats.full_reconciles += 1
            failed = report.failed_names()
            self.observe.full_reconcile(ok=not failed, outcomes=report.outcomes)
            log.log(
                logging.WARNING if failed else logging.INFO,
                "%s: full reconcile: %s%s",
                self.name,
                summary,
                f"; failed: {sorted(failed)}" if failed else "",
            )
        finally:
            if not lconn.closed and not self._polling:
                await outbox.reconcile_unlock(lconn)

    async def _ensure_trigger(
        self, lconn: psycopg.AsyncConnection[Any], state: outbox.TriggerState
    ) -> None:
        """Re-install the trigger when LiteLLM dropped it (needs the TRIGGER privilege; else
        log)."""
        if state.ok or not state.outbox_present:
            return
        if not state.table_present:
            log.error(
                '%s: LiteLLM\'s table public."LiteLLM_ProxyModelTable" is missing: '
                "start LiteLLM with STORE_MODEL_IN_DB=True and check LITELLM_DATABASE_URL",
                self.name,
            )
            return
        try:
            await migrations.reinstall_trigger(lconn)
        except (psycopg.OperationalError, psycopg.InterfaceError):
            raise
        except psycopg.Error as exc:
            if not self._trigger_warned:
                log.error(
                    "%s: the outbox trigger on LiteLLM's table is missing or disabled and could "
                    "not be re-created (%s): run `litemaas-hooks install` as a role with the "
                    'TRIGGER privilege on public."LiteLLM_ProxyModelTable". Until then changes '
                    "reach the backend only through the periodic full reconcile.",
                    self.name,
                    self._describe(exc),
                )
                self._trigger_warned = True
            return
        if not (await outbox.trigger_state(lconn)).ok:
            # LiteLLM's table was locked (an open LiteLLM transaction): the script gave up after its
            # short lock_timeout rather than make LiteLLM wait; the next check retries
            log.info(
                "%s: the outbox trigger is missing; LiteLLM's table is busy, retrying later",
                self.name,
            )
            return
        self._trigger_warned = False
        log.warning("%s: the outbox trigger was missing or disabled; re-installed it", self.name)


async def _next_notification(conn: psycopg.AsyncConnection[Any], wait_seconds: float) -> bool:
    if _parsed_unseen(conn):
        return True
    # aclosing: leaving the generator early must release the connection lock it holds
    async with contextlib.aclosing(conn.notifies(timeout=wait_seconds, stop_after=1)) as gen:
        async for _ in gen:
            return True
    return False


def _parsed_unseen(conn: psycopg.AsyncConnection[Any]) -> bool:
    """A notification libpq already parsed but psycopg never saw: True (they are dropped: any
    notification only means "claim now").

    psycopg's ``notifies()`` yields its backlog, then waits for the SOCKET. In pipeline mode
    (``claim_batch``) psycopg (3.3) hands libpq's parsed notifications over before it parses the
    results. A change committed while our claim runs is notified by the server right after the
    claim's ReadyForQuery; when both land in the same read, libpq parses the notification with
    the last result, after psycopg looked: it stays in libpq's queue, and ``notifies()`` would
    sleep on a socket with nothing more to come. The change then waited for the next poll
    (seconds; ``bench/latency.py`` saw one of 600 wait 5 s)."""
    found = False
    while conn.pgconn.notifies() is not None:
        found = True
    return found


async def _wait_event(event: asyncio.Event, wait_seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), wait_seconds)
