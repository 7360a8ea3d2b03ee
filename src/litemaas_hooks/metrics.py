"""Prometheus series of the relay, in prometheus_client's default registry.

Inside the LiteLLM proxy they appear in LiteLLM's own ``/metrics`` (LiteLLM serves the default
registry, or aggregates ``PROMETHEUS_MULTIPROC_DIR`` when that is set: every gauge here declares how
worker processes combine). The standalone relay serves them on ``LITEMAAS_HOOKS_HTTP_PORT``
(``probes.py``).

Series (labels in brackets):

- ``litemaas_hooks_outbox_events`` [status = pending, claimed, dead]: outbox rows, read at every
  housekeeping (at least every poll interval);
- ``litemaas_hooks_outbox_oldest_pending_age_seconds``: age of the oldest not-dead event (0 when
  none);
- ``litemaas_hooks_trigger_installed``: 1 when the outbox trigger is on LiteLLM's table and enabled;
- ``litemaas_hooks_events_applied_total``: events applied to the backend (and deleted);
- ``litemaas_hooks_events_failed_total`` [outcome = retry, dead]: failed events;
- ``litemaas_hooks_models_converged_total`` [outcome = created, updated, unchanged, retired,
  skipped, error]: per model name, from event batches and full reconciles;
- ``litemaas_hooks_apply_duration_seconds`` (histogram): one event batch, claim to bookkeeping done;
- ``litemaas_hooks_reconnects_total``: relay sessions lost (either database);
- ``litemaas_hooks_database_connected`` [database = litellm, backend]: 1 while the connection is
  held;
- ``litemaas_hooks_full_reconciles_total`` [result = ok, failed]: periodic full reconciles run here;
- ``litemaas_hooks_last_full_reconcile_timestamp_seconds`` [result = ok, failed]: when this process
  last finished one, by result;
- ``litemaas_hooks_retire_cascades_pending`` [state = waiting, held]: retired names whose cascade
  waits for its grace period (waiting) or was held by the mass-retire guard (held: > 0 means an
  operator must run ``litemaas-hooks retire --confirm``, or the names come back).

Nothing here touches a database by itself: ``Observer.refresh`` is called by the relay with its own
connection. Metric updates never raise into the relay.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import psycopg
from prometheus_client import Counter, Gauge, Histogram

from litemaas_hooks import outbox
from litemaas_hooks.errors import describe

log = logging.getLogger("litemaas_hooks.metrics")

_PREFIX = "litemaas_hooks"
MODEL_OUTCOMES = ("created", "updated", "unchanged", "retired", "skipped", "error")

# Multiprocess modes (used only when PROMETHEUS_MULTIPROC_DIR is set): database-wide values are the
# same in every worker ("livemax": one value, live processes only); "connected" is 1 only when every
# live worker is connected ("livemin"); timestamps take the newest ("max").
OUTBOX_EVENTS = Gauge(
    f"{_PREFIX}_outbox_events", "Outbox rows by status", ["status"], multiprocess_mode="livemax"
)
OLDEST_PENDING_AGE = Gauge(
    f"{_PREFIX}_outbox_oldest_pending_age_seconds",
    "Age of the oldest not-dead outbox event (0 when none)",
    multiprocess_mode="livemax",
)
TRIGGER_INSTALLED = Gauge(
    f"{_PREFIX}_trigger_installed",
    "1 when the outbox trigger is installed and enabled on LiteLLM's model table",
    multiprocess_mode="livemin",
)
EVENTS_APPLIED = Counter(f"{_PREFIX}_events_applied", "Outbox events applied to the backend")
EVENTS_FAILED = Counter(
    f"{_PREFIX}_events_failed", "Outbox events that failed, by outcome", ["outcome"]
)
MODELS_CONVERGED = Counter(
    f"{_PREFIX}_models_converged", "Model names converged, by outcome", ["outcome"]
)
APPLY_SECONDS = Histogram(
    f"{_PREFIX}_apply_duration_seconds",
    "Time to apply one batch of outbox events",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
RECONNECTS = Counter(f"{_PREFIX}_reconnects", "Relay sessions lost (either database)")
DATABASE_CONNECTED = Gauge(
    f"{_PREFIX}_database_connected",
    "1 while the relay holds its connection to the database",
    ["database"],
    multiprocess_mode="livemin",
)
FULL_RECONCILES = Counter(
    f"{_PREFIX}_full_reconciles", "Periodic full reconciles run, by result", ["result"]
)
LAST_FULL_RECONCILE = Gauge(
    f"{_PREFIX}_last_full_reconcile_timestamp_seconds",
    "Unix time the last periodic full reconcile finished, by result",
    ["result"],
    multiprocess_mode="max",
)

RETIRES_PENDING = Gauge(
    f"{_PREFIX}_retire_cascades_pending",
    "Retired names whose cascade waits: for the grace period (waiting) or for an operator (held)",
    ["state"],
    multiprocess_mode="livemax",
)

for _state in ("waiting", "held"):
    RETIRES_PENDING.labels(state=_state)
for _status in ("pending", "claimed", "dead"):
    OUTBOX_EVENTS.labels(status=_status)
for _outcome in ("retry", "dead"):
    EVENTS_FAILED.labels(outcome=_outcome)
for _outcome in MODEL_OUTCOMES:
    MODELS_CONVERGED.labels(outcome=_outcome)
for _db in ("litellm", "backend"):
    DATABASE_CONNECTED.labels(database=_db)
for _result in ("ok", "failed"):
    FULL_RECONCILES.labels(result=_result)


class _Outcome(Protocol):
    @property
    def action(self) -> str: ...


class _FailResult(Protocol):
    @property
    def status(self) -> str: ...


class Observer:
    """What one relay reports: updates the series above and keeps the state ``/readyz`` reads."""

    def __init__(self) -> None:
        self.connected: dict[str, bool] = {"litellm": False, "backend": False}
        self.trigger_ok: bool | None = None  # None = not checked yet
        self.refreshed_at: float | None = None
        self.counts: outbox.OutboxCounts | None = None
        self.retires_held = 0

    # -- connection state ------------------------------------------------------------------------

    def connected_to(self, database: str) -> None:
        self.connected[database] = True
        DATABASE_CONNECTED.labels(database=database).set(1)

    def disconnected(self, *, reconnect: bool = True) -> None:
        """The session ended: both connections are closed now."""
        for database in self.connected:
            self.connected[database] = False
            DATABASE_CONNECTED.labels(database=database).set(0)
        if reconnect:
            RECONNECTS.inc()

    # -- events ----------------------------------------------------------------------------------

    def batch(self, *, applied: int, seconds: float, outcomes: Mapping[str, _Outcome]) -> None:
        EVENTS_APPLIED.inc(applied)
        APPLY_SECONDS.observe(seconds)
        self._outcomes(outcomes)

    def failed(self, results: Iterable[_FailResult]) -> None:
        for r in results:
            EVENTS_FAILED.labels(outcome="dead" if r.status == "dead" else "retry").inc()

    def full_reconcile(self, *, ok: bool, outcomes: Mapping[str, _Outcome] | None = None) -> None:
        result = "ok" if ok else "failed"
        FULL_RECONCILES.labels(result=result).inc()
        LAST_FULL_RECONCILE.labels(result=result).set(time.time())
        if outcomes:
            self._outcomes(outcomes)

    @staticmethod
    def _outcomes(outcomes: Mapping[str, _Outcome]) -> None:
        tally: dict[str, int] = {}
        for o in outcomes.values():
            tally[o.action] = tally.get(o.action, 0) + 1
        for action, n in tally.items():
            if action in MODEL_OUTCOMES:
                MODELS_CONVERGED.labels(outcome=action).inc(n)

    def retire_queue(self, *, waiting: int, held: int) -> None:
        """The backend's pending cascades (read by the relay at each of its checks)."""
        self.retires_held = held
        RETIRES_PENDING.labels(state="waiting").set(waiting)
        RETIRES_PENDING.labels(state="held").set(held)

    # -- database-wide state (the relay's own LiteLLM connection) --------------------------------

    async def refresh(self, lconn: psycopg.AsyncConnection[Any]) -> None:
        """Read outbox counts and the trigger state. A lost connection propagates (the relay
        reconnects); any other database error (e.g. a missing privilege) is logged once at DEBUG."""
        try:
            state = await outbox.trigger_state(lconn)
            self.trigger_ok = state.ok
            TRIGGER_INSTALLED.set(1 if state.ok else 0)
            if not state.outbox_present:
                return
            counts = await outbox.counts(lconn)
        except (psycopg.OperationalError, psycopg.InterfaceError):
            raise
        except psycopg.Error as exc:
            log.debug("metrics: could not read the outbox state: %s", describe(exc))
            return
        self.counts = counts
        self.refreshed_at = time.time()
        OUTBOX_EVENTS.labels(status="pending").set(counts.pending)
        OUTBOX_EVENTS.labels(status="claimed").set(counts.claimed)
        OUTBOX_EVENTS.labels(status="dead").set(counts.dead)
        OLDEST_PENDING_AGE.set(counts.oldest_pending_age_seconds or 0.0)
