"""``litemaas-hooks status``: is the automatic sync healthy?

Checks, in order: both databases reachable and writable (not a hot standby, not a read-only
session: the relay could neither claim nor write there); LiteLLM's table, the outbox and the
trigger in place; outbox backlog and the age of the oldest pending event; dead events with their
errors; the last periodic full reconcile and one running now (seen, never waited for); drift
between LiteLLM and the backend (a dry run of the reconcile engine over every name: names missing
from the backend, backend rows whose name is gone from LiteLLM, rows that differ, names that cannot
be synced). Never raises for a database problem: it becomes a problem line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import dict_row

from litemaas_hooks import memo_share, outbox, sql
from litemaas_hooks.connections import (
    DatabaseKind,
    connect,
    database_kind,
    kind_problem,
    pool_mode,
)
from litemaas_hooks.errors import describe, first_line
from litemaas_hooks.redaction import redact_dsn, scrub
from litemaas_hooks.settings import Settings, Which

if TYPE_CHECKING:  # status --no-drift never loads the LiteLLM side
    from litemaas_hooks.litellm_source import ConfigModels, KeyFunc


@dataclass
class Drift:
    checked: bool = False
    missing_in_backend: list[str] = field(default_factory=list)  # in LiteLLM, no backend row yet
    # backend row from LiteLLM, name gone
    gone_from_litellm: list[str] = field(default_factory=list)
    out_of_date: list[str] = field(default_factory=list)  # backend row differs from LiteLLM
    # outside the proxy: synced rows not in LiteLLM's table and not known to come from it
    # (config.yaml models, or rows from before litemaas-hooks noted sources): listed, not a problem
    not_in_table: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # name -> why it cannot be synced
    error: str | None = None  # the drift check itself failed
    config_models_known: bool = False  # False outside the proxy: config-file models look "gone"

    @property
    def in_sync(self) -> bool:
        return self.checked and not (
            self.missing_in_backend or self.gone_from_litellm or self.out_of_date or self.errors
        )


@dataclass(frozen=True)
class RunningReconcile:
    """A full reconcile running now: the session holding the fleet-wide lock, or (transaction
    pooling: no session lock) a lease row younger than the reconcile interval."""

    pid: int | None  # the lock holder's backend pid (None: a lease)
    application_name: str | None  # the relay's session name (e.g. ``NAME:litellm``)
    runner: str | None  # the worker that recorded the start (reconcile_state.last_runner)
    seconds: float | None  # since its start, when the state row says it started after the last end
    lease: bool = False  # known from the lease row, not from a lock


@dataclass
class StatusReport:
    litellm_db: str
    backend_db: str
    trigger: outbox.TriggerState | None = None
    counts: outbox.OutboxCounts | None = None
    dead_events: list[outbox.DeadEvent] = field(default_factory=list)
    last_reconcile: outbox.ReconcileState | None = None
    running_reconcile: RunningReconcile | None = None  # a full reconcile holds the fleet lock now
    drift: Drift = field(default_factory=Drift)
    max_backlog_age_seconds: float = 120.0
    problems: list[str] = field(default_factory=list)
    pooling: str | None = None  # LiteLLM side transaction-pooled: what it costs, and the fix
    # retired names whose cascade waits (grace period) or is held (the mass-retire guard)
    retire_queue: list[dict[str, Any]] = field(default_factory=list)
    # per database: None (writable, or not checked), "standby" (a hot standby / read replica) or
    # "session" (the session is read-only: default_transaction_read_only, a reader endpoint)
    read_only: dict[str, str | None] = field(
        default_factory=lambda: {"litellm": None, "backend": None}
    )

    @property
    def healthy(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        last = self.last_reconcile
        return {
            "healthy": self.healthy,
            "problems": list(self.problems),
            "litellm_db": self.litellm_db,
            "backend_db": self.backend_db,
            "pooling": self.pooling,
            "read_only": dict(self.read_only),
            "trigger": None if self.trigger is None else asdict(self.trigger),
            "outbox": None if self.counts is None else asdict(self.counts),
            "max_backlog_age_seconds": self.max_backlog_age_seconds,
            "dead_events": [d.to_dict() for d in self.dead_events],
            "last_full_reconcile": None
            if last is None
            else {
                "started_at": last.last_started_at.isoformat() if last.last_started_at else None,
                "finished_at": last.last_finished_at.isoformat() if last.last_finished_at else None,
                "age_seconds": last.age_seconds,
                "runner": last.last_runner,
                "summary": last.last_summary,
            },
            "full_reconcile_running": None
            if self.running_reconcile is None
            else asdict(self.running_reconcile),
            "drift": {**asdict(self.drift), "in_sync": self.drift.in_sync},
            "retire_cascades_pending": [
                {
                    "model": r["model_id"],
                    "held": r["held_at"] is not None,
                    "seconds_left": r["seconds_left"],
                }
                for r in self.retire_queue
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


async def collect_status(
    settings: Settings,
    *,
    key: KeyFunc | None = None,
    config_models: ConfigModels | None = None,
    dead_limit: int = 50,
    check_drift: bool = True,
) -> StatusReport:
    """Gather the status. ``settings.*_dsn()`` raise ConfigError when a URL is missing; nothing else
    does.

    :param key: decryption key (default: the engine's; the plugin passes the proxy's precedence).
    :param config_models: config-file deployments (inside the proxy); without them, backend rows of
        config-file models are listed as "not in LiteLLM's table" but do not make the report
        unhealthy.
    """
    litellm_dsn, backend_dsn = settings.litellm_dsn(), settings.backend_dsn()
    secrets = settings.secrets()
    report = StatusReport(
        litellm_db=redact_dsn(litellm_dsn),
        backend_db=redact_dsn(backend_dsn),
        max_backlog_age_seconds=settings.stall_timeout_seconds,
        pooling=pooling_note(settings),
    )

    def problem(text: str) -> None:
        report.problems.append(scrub(text, secrets))

    lconn: psycopg.AsyncConnection[Any] | None = None
    bconn: psycopg.AsyncConnection[Any] | None = None
    try:
        try:
            lconn = await connect(settings, "litellm", application_name="litemaas-hooks-status")
        except Exception as exc:
            problem(str(exc))
        try:
            bconn = await connect(settings, "backend", application_name="litemaas-hooks-status")
        except Exception as exc:
            problem(str(exc))
        litellm_ok = lconn is not None and await _kind_part(
            report, settings, "litellm", lconn, problem
        )
        backend_ok = bconn is not None and await _kind_part(
            report, settings, "backend", bconn, problem
        )
        if lconn is not None and litellm_ok:
            # under transaction pooling the fleet's relays take a lease row, not the lock
            interval = settings.reconcile_interval_seconds
            lease = interval if report.pooling and interval > 0 else None
            await _outbox_part(report, lconn, dead_limit, problem, lease_seconds=lease)
        if bconn is not None and backend_ok:
            await _retire_part(report, bconn, problem)
        drift_possible = report.trigger is not None and report.trigger.outbox_present
        if (
            lconn is not None
            and bconn is not None
            and litellm_ok
            and backend_ok
            and drift_possible
            and check_drift
        ):
            await _drift_part(report, settings, lconn, bconn, key, config_models, problem)
            memo_text = memo_share.ignored_problem()  # read (and verified) by the drift check
            if memo_text:
                problem(memo_text)
    finally:
        for conn in (lconn, bconn):
            if conn is not None:
                await conn.close()
    return report


async def _kind_part(
    report: StatusReport,
    settings: Settings,
    which: Which,
    conn: psycopg.AsyncConnection[Any],
    problem: Callable[[str], None],
) -> bool:
    """False (with a problem line) when the URL points at the wrong database or install is missing
    there. A read-only server is a problem line of its own, in the same round trip; the checks
    that only read go on there."""
    try:
        kind = await database_kind(conn)
    except psycopg.Error as exc:
        problem(f"reading {which} database: {first_line(exc)}")
        return False
    report.read_only[which] = read_only_kind(kind)
    read_only = read_only_problem(settings, which, kind)
    if read_only:
        problem(read_only)
    # the LiteLLM side's "not installed" is reported with the trigger state (_outbox_part)
    text = kind_problem(settings, which, kind, installed=which == "backend")
    if text:
        problem(text)
    return text is None


async def _outbox_part(
    report: StatusReport,
    lconn: psycopg.AsyncConnection[Any],
    dead_limit: int,
    problem: Callable[[str], None],
    *,
    lease_seconds: float | None = None,
) -> None:
    try:
        state = report.trigger = await outbox.trigger_state(lconn)
        if not state.table_present:
            problem(
                'LiteLLM\'s table public."LiteLLM_ProxyModelTable" does not exist: check '
                "LITELLM_DATABASE_URL and start LiteLLM once with STORE_MODEL_IN_DB=True"
            )
        if not state.outbox_present:
            problem(
                "the outbox (schema litemaas_hooks) is not installed in LiteLLM's database: "
                "run `litemaas-hooks install`"
            )
            return
        if state.table_present and not state.trigger_present:
            problem(
                "the trigger on LiteLLM's model table is missing (LiteLLM may have re-created its "
                "table): run `litemaas-hooks install`"
            )
        elif state.table_present and not state.trigger_enabled:
            problem(
                "the trigger on LiteLLM's model table is disabled or outdated: run "
                "`litemaas-hooks install`"
            )
        counts = report.counts = await outbox.counts(lconn)
        age = counts.oldest_pending_age_seconds
        if age is not None and age > report.max_backlog_age_seconds:
            problem(
                f"the oldest pending outbox event is {age:.0f}s old ({counts.pending} pending, "
                f"{counts.claimed} claimed): is a relay running (the LiteLLM plugin or "
                "`litemaas-hooks relay`) and can it reach both databases?"
            )
        if counts.dead:
            problem(
                f"{counts.dead} dead outbox events (failed too often): fix the cause shown below, "
                "then replay them: `litemaas-hooks replay`"
            )
            report.dead_events = await outbox.dead_events(lconn, limit=dead_limit)
        report.last_reconcile, report.running_reconcile = await reconcile_status(
            lconn, lease_seconds=lease_seconds
        )
    except psycopg.Error as exc:
        problem(f"reading the outbox failed: {describe(exc)}")


async def reconcile_status(
    lconn: psycopg.AsyncConnection[Any], *, lease_seconds: float | None = None
) -> tuple[outbox.ReconcileState | None, RunningReconcile | None]:
    """The last full reconcile and the one running now (if any), in one round trip. Takes no
    lock: a running reconcile is seen in pg_locks, never waited for.

    :param lease_seconds: the relays take a lease row (transaction pooling) valid this long."""
    async with lconn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql.query("litellm", "status_reconcile"))
        row = await cur.fetchone()
    assert row is not None
    return reconcile_from_row(row, lease_seconds=lease_seconds)


def reconcile_from_row(
    row: dict[str, Any], *, lease_seconds: float | None = None
) -> tuple[outbox.ReconcileState | None, RunningReconcile | None]:
    """``status_reconcile``'s row as (last full reconcile, the one running now or None)."""
    last = None
    if row["has_state"]:
        age = row["age_seconds"]
        last = outbox.ReconcileState(
            last_started_at=row["last_started_at"],
            last_finished_at=row["last_finished_at"],
            last_runner=row["last_runner"],
            last_summary=row["last_summary"],
            age_seconds=None if age is None else max(0.0, age),  # clock stepped back: never < 0
        )
    started, finished = row["last_started_at"], row["last_finished_at"]
    this_run = started is not None and (finished is None or started > finished)
    since = row["started_seconds_ago"] if this_run else None
    seconds = None if since is None else max(0.0, since)
    if row["running_pid"] is not None:
        return last, RunningReconcile(
            pid=row["running_pid"],
            application_name=row["running_application"] or None,
            runner=row["last_runner"] if this_run else None,
            seconds=seconds,
        )
    if lease_seconds is not None and since is not None and 0 <= since < lease_seconds:
        return last, RunningReconcile(
            pid=None, application_name=None, runner=row["last_runner"], seconds=seconds, lease=True
        )
    return last, None


async def _drift_part(
    report: StatusReport,
    settings: Settings,
    lconn: psycopg.AsyncConnection[Any],
    bconn: psycopg.AsyncConnection[Any],
    key: KeyFunc | None,
    config_models: ConfigModels | None,
    problem: Callable[[str], None],
) -> None:
    from litemaas_hooks.planning import NOT_IN_TABLE
    from litemaas_hooks.reconcile import Reconciler

    drift = report.drift
    drift.config_models_known = config_models is not None
    try:
        engine = Reconciler(settings, config_models=config_models, key=key)
        # without the router's config models, only rows known to come from LiteLLM's table count as
        # gone
        retire: Any = True if config_models is not None else "db-rows"
        result = await engine.converge(
            lconn, bconn, names=None, retire_missing=retire, dry_run=True
        )
    except Exception as exc:
        drift.error = scrub(describe(exc), settings.secrets())
        problem(f"the drift check failed: {drift.error}")
        return
    drift.checked = True
    for name, outcome in sorted(result.outcomes.items()):
        if outcome.action == "created":
            drift.missing_in_backend.append(name)
        elif outcome.action == "retired":
            drift.gone_from_litellm.append(name)
        elif outcome.action == "updated":
            drift.out_of_date.append(name)
        elif outcome.action == "unchanged" and outcome.message == NOT_IN_TABLE:
            drift.not_in_table.append(name)
        elif outcome.action == "error":
            drift.errors[name] = scrub(outcome.message or "error", settings.secrets())
    if drift.missing_in_backend:
        problem(
            f"{len(drift.missing_in_backend)} LiteLLM models are missing from the backend: "
            f"{_names(drift.missing_in_backend)}; run `litemaas-hooks backfill`"
        )
    if drift.out_of_date:
        problem(
            f"{len(drift.out_of_date)} backend models differ from LiteLLM: "
            f"{_names(drift.out_of_date)}; run `litemaas-hooks backfill`"
        )
    if drift.gone_from_litellm:
        problem(
            f"{len(drift.gone_from_litellm)} backend models are gone from LiteLLM but not retired: "
            f"{_names(drift.gone_from_litellm)}; run `litemaas-hooks backfill --retire-missing`"
        )
    if drift.errors:
        problem(f"{len(drift.errors)} LiteLLM models cannot be synced (see drift errors)")


async def _retire_part(
    report: StatusReport, bconn: psycopg.AsyncConnection[Any], problem: Callable[[str], None]
) -> None:
    """Retire cascades that wait; held ones (the mass-retire guard) are a problem with its fix."""
    from litemaas_hooks import backend_sink

    try:
        report.retire_queue = await backend_sink.retire_queue(bconn)
    except (psycopg.OperationalError, psycopg.InterfaceError):
        raise
    except psycopg.Error:  # installed before retire safety, or no grant: the other checks say so
        return
    held = [str(r["model_id"]) for r in report.retire_queue if r["held_at"] is not None]
    if held:
        problem(
            f"the mass-retire guard holds the retire cascade of {len(held)} models gone from "
            f"LiteLLM at once ({_names(held)}): they are unavailable, their subscriptions and keys "
            "untouched. If they are really gone run `litemaas-hooks retire --confirm`; "
            "if LiteLLM's table is being restored or its master key rotated, wait: the hold clears "
            "when they come back"
        )


def read_only_kind(kind: DatabaseKind) -> str | None:
    """``"standby"`` (a hot standby / read replica), ``"session"`` (a read-only session on a
    writable server) or None (writable)."""
    if kind.in_recovery:
        return "standby"
    return "session" if kind.read_only else None


def read_only_problem(settings: Settings, which: Which, kind: DatabaseKind) -> str | None:
    """One line when the relay cannot write where ``which``'s URL points (None when it can)."""
    how = read_only_kind(kind)
    if how is None:
        return None
    var = settings.dsn_variable(which)
    where = (
        f'LiteLLM\'s database "{kind.database}"'
        if which == "litellm"
        else f'the backend database "{kind.database}"'
    )
    cannot = (
        "the relay can neither claim nor complete outbox events there"
        if which == "litellm"
        else "the relay cannot write the backend's models there"
    )
    endpoint = (
        "on AWS RDS/Aurora the cluster's writer endpoint, not the reader endpoint; "
        "see docs/remote-databases.md"
    )
    if how == "standby":
        return (
            f"{var} points at a read-only server: {where} is a hot standby / read replica "
            f"(pg_is_in_recovery() is true) and {cannot}: set {var} to the primary (read-write) "
            f"server, {endpoint}"
        )
    return (
        f"{var} opens read-only sessions: {where} has transaction_read_only on "
        "(default_transaction_read_only set for the database or the role, or a reader endpoint) "
        f"and {cannot}: set {var} to the read-write endpoint ({endpoint}), or turn the setting "
        "off (ALTER DATABASE/ROLE ... RESET default_transaction_read_only)"
    )


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _names(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... (+{len(names) - limit})" if len(names) > limit else "")


def _trigger_text(t: outbox.TriggerState | None) -> str:
    if t is None:
        return "unknown (LiteLLM database not checked)"
    if not t.outbox_present:
        return "NOT installed (no outbox in LiteLLM's database)"
    if t.ok:
        return 'installed and enabled on public."LiteLLM_ProxyModelTable"'
    if not t.trigger_present:
        return "MISSING"
    return "present but disabled or outdated"


def _outbox_text(c: outbox.OutboxCounts) -> str:
    oldest = (
        f"; oldest pending event {_age(c.oldest_pending_age_seconds)} old"
        if c.oldest_pending_age_seconds is not None
        else ""
    )
    return f"{c.pending} pending, {c.claimed} claimed, {c.dead} dead{oldest}"


def _drift_lines(d: Drift) -> list[str]:
    """The drift line and its details; never "none" above a list that says otherwise."""
    if d.error:
        return [f"  drift            : check failed: {d.error}"]
    if not d.checked:
        return ["  drift            : not checked"]
    # rows not in LiteLLM's table and not known to come from it (config-file models of the proxy are
    # not visible from here) are listed, but not counted as drift
    unknown_gone = d.not_in_table
    if d.in_sync:
        head = "none: every backend row matches LiteLLM"
        if unknown_gone:
            head = "none among the models in LiteLLM's table"
    else:
        head = "yes: the backend differs from LiteLLM (see problems)"
    lines = [f"  drift            : {head}"]
    if d.missing_in_backend:
        lines.append(
            f"    missing in backend ({len(d.missing_in_backend)}): {_names(d.missing_in_backend)}"
        )
    if d.out_of_date:
        lines.append(f"    differ from LiteLLM ({len(d.out_of_date)}): {_names(d.out_of_date)}")
    if d.gone_from_litellm:
        lines.append(
            f"    gone from LiteLLM, not retired ({len(d.gone_from_litellm)}): "
            f"{_names(d.gone_from_litellm)}"
        )
    if unknown_gone:
        lines.append(
            f"    not in LiteLLM's table, not known to come from it ({len(unknown_gone)}; "
            "config-file models of the proxy are not visible from here, so these are not counted "
            f"as drift): {_names(unknown_gone)}"
        )
    lines.extend(f"    cannot sync {name}: {message}" for name, message in sorted(d.errors.items()))
    return lines


def running_text(run: RunningReconcile) -> str:
    """The line of a full reconcile running now: who holds the fleet-wide lock, since when."""
    since = f" for {_age(run.seconds)}" if run.seconds is not None else ""
    who = run.runner or run.application_name or "a session"
    if run.lease or run.pid is None:
        how = "its lease row: transaction pooling, no session lock"
    else:
        session = f"session {run.application_name}, " if run.application_name else ""
        how = f"{session}pid {run.pid}, holding the fleet-wide lock"
    return (
        f"RUNNING now{since}, by {who} ({how}): changes still sync meanwhile; the drift below "
        "may shrink when it finishes"
    )


def verdict(report: StatusReport) -> str:
    """The first line: healthy or not, and why, in one sentence."""
    if not report.healthy:
        n = len(report.problems)
        problems = f"{n} problem{'s' if n != 1 else ''}"
        return f"litemaas-hooks status: UNHEALTHY, {problems} (each with its fix):"
    why = ["trigger installed"]
    c = report.counts
    if c is not None:
        why.append(
            "outbox empty"
            if not (c.pending or c.claimed)
            else f"outbox draining ({c.pending} pending)"
        )
        why.append("no dead events")
    d = report.drift
    why.append("backend in sync with LiteLLM" if d.checked else "drift not checked")
    if report.running_reconcile is not None:
        why.append("a full reconcile is running")
    return "litemaas-hooks status: HEALTHY: " + ", ".join(why)


def pooling_note(settings: Settings) -> str | None:
    """One line when the relay's LiteLLM connection is transaction-pooled (None otherwise)."""
    if pool_mode(settings, "litellm") != "transaction":
        return None
    return (
        f"{settings.dsn_variable('litellm')} is transaction-pooled (PgBouncer): the relay polls "
        f"every {settings.pooled_poll_interval_seconds:g}s instead of LISTEN; for instant wake-ups "
        "give the relay a direct or session-pooled URL (LITELLM_DATABASE_URL, or "
        "LITEMAAS_HOOKS_POOL_MODE=session)"
    )


def format_status(report: StatusReport) -> str:
    """A screenful for humans (``litemaas-hooks status``): the verdict, the problems, then the
    details."""
    lines = [verdict(report)]
    lines.extend(f"  - {p}" for p in report.problems)
    lines.append("details:")
    marks = {"standby": " (READ-ONLY: a hot standby)", "session": " (READ-ONLY session)", None: ""}
    lines.append(f"  LiteLLM database : {report.litellm_db}{marks[report.read_only['litellm']]}")
    lines.append(f"  backend database : {report.backend_db}{marks[report.read_only['backend']]}")
    if report.pooling:
        lines.append(f"  pooling          : {report.pooling}")
    lines.append(f"  trigger          : {_trigger_text(report.trigger)}")
    if report.counts is not None:
        lines.append(f"  outbox           : {_outbox_text(report.counts)}")
    last = report.last_reconcile
    if last is not None:
        when = "never" if last.last_finished_at is None else f"{_age(last.age_seconds)} ago"
        lines.append(
            f"  full reconcile   : last finished {when}"
            + (f" ({last.last_summary})" if last.last_summary else "")
        )
    if report.running_reconcile is not None:
        lines.append(f"  full reconcile   : {running_text(report.running_reconcile)}")
    lines.extend(_drift_lines(report.drift))
    if report.retire_queue:
        from litemaas_hooks.retire_ops import format_queue

        lines.append("  retire cascades that wait (`litemaas-hooks retire`):")
        lines.extend("  " + line for line in format_queue(report.retire_queue))
    if report.dead_events:
        lines.append(
            "  dead events (replay them with `litemaas-hooks replay ID ...` once the cause is "
            "fixed):"
        )
        for e in report.dead_events:
            name = e.new_model_name or e.old_model_name or "-"
            if e.old_model_name and e.new_model_name and e.old_model_name != e.new_model_name:
                name = f"{e.old_model_name} -> {e.new_model_name}"
            lines.append(
                f"    #{e.id} {e.op} {name} ({e.attempts} attempts, since "
                f"{e.created_at:%Y-%m-%d %H:%M:%S}): {e.last_error or '-'}"
            )
    return "\n".join(lines)
