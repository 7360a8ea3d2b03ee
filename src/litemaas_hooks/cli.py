"""The ``litemaas-hooks`` command line: install, backfill, relay, status, replay, write-shim, demo,
retire, restore.

Exit codes: 0 = in sync / applied / healthy; 1 = error (a mistake gets one line saying what is wrong
and which setting or command fixes it; usage errors too); 2 = ``backfill --dry-run`` found
differences (``status``: unhealthy). Tracebacks only with ``LITEMAAS_HOOKS_LOG_LEVEL=DEBUG``.

Only the commands that read LiteLLM's models (``backfill``, ``relay``, ``status`` with its drift
check) import LiteLLM; every other command, and every settings error, starts in a fraction of a
second.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from litemaas_hooks import __version__
from litemaas_hooks.errors import LiteMaaSHooksError, UsageError, describe
from litemaas_hooks.logs import collapse_litellm_cost_map_warnings, configure
from litemaas_hooks.redaction import scrub
from litemaas_hooks.settings import Settings, Which, env_secrets, load_settings

EXIT_OK, EXIT_ERROR, EXIT_DIFF = 0, 1, 2
PROG = "litemaas-hooks"
DEBUG_HINT = "set LITEMAAS_HOOKS_LOG_LEVEL=DEBUG for the traceback"

log = logging.getLogger("litemaas_hooks.cli")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(self.prog, message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Keep the LiteMaaS backend models table in sync with LiteLLM's models.",
        epilog="Settings come from the environment: LITEMAAS_DATABASE_URL, "
        "LITELLM_DATABASE_URL (or DATABASE_URL), LITELLM_SALT_KEY (or LITELLM_MASTER_KEY), "
        "LITEMAAS_HOOKS_*. See docs/configuration.md.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    install = sub.add_parser(
        "install", help="apply the SQL migrations to both databases (idempotent)"
    )
    only = install.add_mutually_exclusive_group()
    only.add_argument(
        "--backend-only", action="store_true", help="only the backend (LiteMaaS) database"
    )
    only.add_argument(
        "--litellm-only", action="store_true", help="only the LiteLLM database (trigger, outbox)"
    )
    install.add_argument(
        "--print-sql",
        action="store_true",
        help="print the whole SQL install would run, per database; apply nothing",
    )
    install.add_argument(
        "--print-grants",
        action="store_true",
        help="print the GRANT statements for the relay role; apply nothing",
    )
    install.add_argument(
        "--relay-role", default="litemaas_hooks_relay", help="role of the relay (--print-grants)"
    )
    install.add_argument(
        "--grant-relay",
        action="store_true",
        help="create the relay role (password from LITEMAAS_HOOKS_RELAY_PASSWORD) and grant it "
        "exactly --print-grants (needs CREATEROLE)",
    )
    install.add_argument(
        "--backend-role",
        default=None,
        help="backend role of the relay if not --relay-role (--print-grants)",
    )
    install.add_argument(
        "--litellm-role",
        action="append",
        default=[],
        help="another role that writes LiteLLM's model table (--print-grants; repeatable)",
    )
    install.add_argument(
        "--wait-for-litellm",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to SECONDS for both databases and their tables (LiteLLM's, the "
        "backend's models)",
    )

    backfill = sub.add_parser(
        "backfill", help="bring every LiteLLM model into the backend (one shot)"
    )
    backfill.add_argument(
        "--dry-run", action="store_true", help="print the per-model plan, write nothing"
    )
    backfill.add_argument(
        "--retire-missing",
        action="store_true",
        help="also retire backend models that came from LiteLLM but no longer exist there",
    )
    backfill.add_argument("--quiet", action="store_true", help="no progress on stderr")

    sub.add_parser("relay", help="run the sync relay in the foreground (sidecar / Deployment)")

    status = sub.add_parser(
        "status", help="healthy or not, and why: trigger, outbox, dead events, drift"
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument(
        "--no-drift",
        action="store_true",
        help="skip the drift check (no LiteLLM import: fast, for probes)",
    )

    replay = sub.add_parser(
        "replay", help="make dead outbox events pending again (after fixing their cause)"
    )
    replay.add_argument(
        "ids", nargs="*", type=int, metavar="ID", help="event ids (default: every dead event)"
    )

    shim = sub.add_parser(
        "write-shim",
        help="write litemaas_hooks.py next to LiteLLM's config.yaml (needed by LiteLLM 1.81)",
    )
    shim.add_argument(
        "config_dir", metavar="DIR", help="the directory that holds LiteLLM's config.yaml"
    )

    uninstall = sub.add_parser(
        "uninstall",
        help="remove the trigger, functions and schemas of litemaas-hooks (backend rows stay)",
    )
    uninstall_only = uninstall.add_mutually_exclusive_group()
    uninstall_only.add_argument(
        "--backend-only", action="store_true", help="only the backend (LiteMaaS) database"
    )
    uninstall_only.add_argument(
        "--litellm-only", action="store_true", help="only the LiteLLM database"
    )
    uninstall.add_argument(
        "--dry-run", action="store_true", help="print the SQL, connect to nothing"
    )
    uninstall.add_argument(
        "--yes", action="store_true", help="really uninstall (required unless --dry-run)"
    )

    _add_model_commands(sub)

    retire = sub.add_parser(
        "retire",
        help="list retire cascades that wait (grace period, mass-retire guard); --confirm the held",
    )
    retire.add_argument(
        "--confirm", action="store_true", help="cascade the held names LiteLLM still does not have"
    )
    retire.add_argument(
        "models", nargs="*", metavar="MODEL", help="only these held names (default: all)"
    )

    restore = sub.add_parser(
        "restore", help="put back what the retire cascade of MODEL deactivated"
    )
    restore.add_argument("models", nargs="+", metavar="MODEL", help="backend model ids")
    restore_mode = restore.add_mutually_exclusive_group()
    restore_mode.add_argument(
        "--dry-run", action="store_true", help="print the plan only (the default)"
    )
    restore_mode.add_argument("--yes", action="store_true", help="apply the plan")

    demo = sub.add_parser("demo", help="run everything against a throwaway local PostgreSQL")
    demo.add_argument("--no-live", action="store_true", help="skip the live relay part of the demo")
    demo.add_argument(
        "--keep-running",
        action="store_true",
        help="leave the sandbox proxy up at the end (Admin UI URL printed)",
    )
    return parser


def _add_model_commands(sub: Any) -> None:
    """``apply`` and ``show``: the operator's guide (model files in, both sides verified)."""
    apply = sub.add_parser(
        "apply",
        help="create/update LiteLLM models from the guide's model files, through LiteLLM's API",
    )
    apply.add_argument("files", nargs="+", metavar="FILE", help="model files (the guide's format)")
    apply.add_argument(
        "--dry-run", action="store_true", help="print the plan, change nothing (exit 2: changes)"
    )
    apply.add_argument(
        "--prune",
        action="store_true",
        help="also delete models made by apply that are no longer in the files",
    )
    apply.add_argument(
        "--allow-inline-keys",
        action="store_true",
        help="accept literal api_key values (default: references only)",
    )
    apply.add_argument(
        "--adopt",
        action="store_true",
        help="take over a same-named model made in the UI/API (else an error)",
    )
    apply.add_argument(
        "--wait",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="wait up to SECONDS for the backend rows (needs LITEMAAS_DATABASE_URL; default 30)",
    )
    show = sub.add_parser(
        "show", help="a model in LiteLLM and in the backend, its subscriptions and outbox events"
    )
    show.add_argument("names", nargs="+", metavar="NAME", help="model names")
    show.add_argument("--json", action="store_true", help="machine-readable output")


def required_databases(args: argparse.Namespace) -> tuple[Which, ...]:
    """The database URLs a command needs (all of them are checked before it starts)."""
    if getattr(args, "print_sql", False) or getattr(args, "print_grants", False):
        return ()  # printing SQL needs no database
    if args.command in {"install", "uninstall"}:
        if getattr(args, "backend_only", False):
            return ("backend",)
        if getattr(args, "litellm_only", False):
            return ("litellm",)
        return ("backend", "litellm")
    if args.command == "replay":
        return ("litellm",)
    if args.command in {"backfill", "relay", "status", "show", "retire"}:
        return ("backend", "litellm")
    if args.command == "restore":
        return ("backend",)
    return ()


async def _open(
    settings: Settings, sides: Sequence[Which], *, installed: Sequence[Which] = ()
) -> dict[Which, Any]:
    """Connections to ``sides``, each checked to be the right kind of database (one clear error if
    not)."""
    import asyncio

    from litemaas_hooks.connections import check_databases, connect

    conns: dict[Which, Any] = {}
    try:
        # both at once: on a remote server each connect costs a few round trips (TLS, SCRAM)
        opened = await asyncio.gather(
            *(connect(settings, side) for side in sides), return_exceptions=True
        )
        pairs = zip(sides, opened, strict=True)
        conns = {side: c for side, c in pairs if not isinstance(c, BaseException)}
        for result in opened:
            if isinstance(result, BaseException):
                raise result  # the first side's error, in the order of ``sides``
        await check_databases(settings, conns, installed=installed)
    except BaseException:
        for conn in conns.values():
            await conn.close()
        raise
    return conns


# -- install ---------------------------------------------------------------------------------------


def install_line(
    side: Which, database: str, result: Any, trigger: tuple[bool, bool] | None = None
) -> str:
    """What install did on one database: created (migrations applied), repaired, left as it was."""
    label = f'{"backend (LiteMaaS)" if side == "backend" else "LiteLLM"} database "{database}"'
    done: list[str] = []
    if result.applied:
        done.append("applied " + ", ".join(result.applied))
    repaired = list(getattr(result, "repaired", None) or [])
    if trigger is not None:
        was_ok, now_ok = trigger
        if now_ok and not was_ok and not result.applied:
            repaired.append(
                'the outbox trigger on public."LiteLLM_ProxyModelTable" (it was missing or '
                "disabled)"
            )
        elif now_ok and result.applied:
            done.append('trigger installed on public."LiteLLM_ProxyModelTable"')
    if repaired:
        done.append("restored " + "; ".join(repaired))
    if result.already:
        n = len(result.already)
        done.append(
            f"{'left' if done else 'up to date:'} {n} migration{'s' if n != 1 else ''} already "
            "applied"
        )
    if result.ensured and side == "backend":
        done.append(f"{len(result.ensured)} functions in place")
    recognised = list(getattr(result, "recognised", None) or [])
    if recognised:
        done.append(
            "recognised its own objects of " + ", ".join(recognised) + " (their records were gone)"
        )
    waited = list(getattr(result, "waited", None) or [])
    if waited:  # a lock another transaction held (LiteLLM's writes never wait on install's locks)
        done.append("waited for a lock held by another transaction: " + ", ".join(waited))
    return f"{label}: " + "; ".join(done or ["nothing to do"])


async def _install(settings: Settings, args: argparse.Namespace) -> int:
    from litemaas_hooks import outbox
    from litemaas_hooks.connections import database_kind
    from litemaas_hooks.migrations import apply_migrations

    both: tuple[Which, ...] = ("backend", "litellm")
    sides = both[:1] if args.backend_only else both[1:] if args.litellm_only else both
    if args.print_sql or args.print_grants:
        return _print_install(args, sides)
    # the deploy Job: wait for LiteLLM's (and the backend's) tables first
    if args.wait_for_litellm > 0:
        from litemaas_hooks.wait_tables import wait_for_tables

        await wait_for_tables(settings, args.wait_for_litellm, sides)
    conns = await _open(settings, sides)
    try:
        for side in sides:
            conn = conns[side]
            before = await outbox.trigger_state(conn) if side == "litellm" else None
            result = await apply_migrations(conn, side)
            trigger = None
            if before is not None:
                trigger = (before.ok, (await outbox.trigger_state(conn)).ok)
            print(install_line(side, (await database_kind(conn)).database, result, trigger))
            if getattr(args, "grant_relay", False):
                import os

                from litemaas_hooks.privileges import RELAY_PASSWORD_ENV, Roles, ensure_relay_role

                roles = Roles(relay=args.relay_role, backend=args.backend_role)
                password = os.environ.get(RELAY_PASSWORD_ENV) or None
                print(await ensure_relay_role(conn, side, roles, password))
    finally:
        for conn in conns.values():
            await conn.close()
    return EXIT_OK


def _print_install(args: argparse.Namespace, sides: tuple[Any, ...]) -> int:
    from litemaas_hooks.privileges import Roles, render

    roles = Roles(
        relay=args.relay_role, backend=args.backend_role, litellm_writers=tuple(args.litellm_role)
    )
    print(
        render(print_sql=args.print_sql, print_grants=args.print_grants, sides=sides, roles=roles),
        end="",
    )
    return EXIT_OK


# -- backfill --------------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if isinstance(value, dict):
        return "{…}"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(map(str, value)) + "]"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def print_plan(report: Any, out: Any = None) -> None:
    out = out or sys.stdout
    marks = {"created": "+", "updated": "~", "retired": "-", "error": "!", "skipped": "?"}
    verbs = {
        "created": "create",
        "updated": "update",
        "retired": "retire",
        "error": "error",
        "skipped": "skip",
    }
    for name in sorted(report.outcomes):
        outcome = report.outcomes[name]
        if outcome.action == "unchanged":
            continue
        line = f"{marks[outcome.action]} {verbs[outcome.action]:<7} {name}"
        if outcome.action == "updated" and outcome.changes:
            fields = ", ".join(
                f"{field}: {_fmt(old)} -> {_fmt(new)}"
                if field != "metadata"
                else "metadata changed"
                for field, (old, new) in sorted(outcome.changes.items())
            )
            line += f"  ({fields})"
        elif outcome.message:
            line += f"  ({outcome.message})"
        print(line, file=out)


async def _backfill(settings: Settings, args: argparse.Namespace) -> int:
    from litemaas_hooks.reconcile import Reconciler

    show_progress = not args.quiet and not args.dry_run

    def progress(done: int, total: int) -> None:
        if show_progress and total >= 1000:
            print(
                f"\rapplying {done}/{total}",
                end="" if done < total else "\n",
                file=sys.stderr,
                flush=True,
            )

    # backfill reads LiteLLM's table and writes through the backend functions: the outbox is not
    # needed
    conns, spare = await _open_for_backfill(settings, spare=not args.dry_run)
    try:
        from litemaas_hooks.litellm_adapter import warm_up

        warm_up()  # load the cost-map memo before timing the run
        report = await Reconciler(settings).converge(
            conns["litellm"],
            conns["backend"],
            None,
            retire_missing=args.retire_missing,
            dry_run=args.dry_run,
            progress=progress,
            spare_backend=spare,
        )
    finally:
        for conn in (*conns.values(), *([spare] if spare is not None else [])):
            await conn.close()
    if args.dry_run:
        print_plan(report)
    else:
        for name in sorted(report.outcomes):
            outcome = report.outcomes[name]
            if outcome.action in {"error", "skipped"}:
                print(f"{outcome.action}: {name}: {outcome.message}", file=sys.stderr)
    print(("dry run: " if args.dry_run else "backfill: ") + report.summary())
    counts = report.counts()
    if counts["error"]:
        return EXIT_ERROR
    if args.dry_run and (counts["created"] or counts["updated"] or counts["retired"]):
        return EXIT_DIFF
    return EXIT_OK


SPARE_BACKEND_NAME = "litemaas-hooks (backfill, second connection)"


async def _open_for_backfill(settings: Settings, *, spare: bool) -> tuple[dict[Which, Any], Any]:
    """``_open``'s two connections and, with ``spare``, a second backend connection, all opened at
    once (on a remote server each costs a few round trips): with it one chunk is written while the
    next one is read and planned. Where the server or the pooler refuses the spare, that is said on
    stderr and the chunks take turns on one connection (None). Never through a session-pooled URL:
    each of our connections holds a server connection there, and a pool sized for the others would
    make one of them wait (PgBouncer's query_wait_timeout, two minutes by default)."""
    import asyncio

    from litemaas_hooks.connections import connect, pool_mode
    from litemaas_hooks.errors import DatabaseUnavailableError

    spare = spare and pool_mode(settings, "backend") != "session"

    async def open_spare() -> Any:
        try:
            return await connect(settings, "backend", application_name=SPARE_BACKEND_NAME)
        except DatabaseUnavailableError as exc:
            return exc

    extra = asyncio.ensure_future(open_spare()) if spare else None
    try:
        conns = await _open(settings, ("litellm", "backend"), installed=("backend",))
    except BaseException:
        if extra is not None:
            got = await asyncio.gather(extra, return_exceptions=True)
            if not isinstance(got[0], BaseException):
                await got[0].close()
        raise
    second = await extra if extra is not None else None
    if isinstance(second, DatabaseUnavailableError):
        print(
            f"note: a second backend connection was refused ({second}); writing chunk after "
            "chunk on one connection",
            file=sys.stderr,
        )
        second = None
    return conns, second


# -- relay -----------------------------------------------------------------------------------------


async def _relay(settings: Settings, args: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT: the batch in progress is finished, then exit 0."""
    import asyncio
    import signal

    from litemaas_hooks.errors import DatabaseUnavailableError, NotInstalledError
    from litemaas_hooks.probes import run_relay_with_probes

    try:  # a wrong URL is a mistake to report now; an outage or a missing install is waited out
        conns = await _open(settings, ("litellm", "backend"), installed=("litellm", "backend"))
    except (DatabaseUnavailableError, NotInstalledError):
        pass
    else:
        for conn in conns.values():
            await conn.close()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def request_stop(signame: str) -> None:
        if not stop.is_set():
            log.info(
                "litemaas-hooks relay: %s received: finishing the current batch, then stopping",
                signame,
            )
        stop.set()

    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, request_stop, sig.name)
    try:
        await run_relay_with_probes(settings, stop=stop)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
    return EXIT_OK


# -- status / replay / write-shim / demo -----------------------------------------------------------


async def _status(settings: Settings, args: argparse.Namespace) -> int:
    from litemaas_hooks.status import collect_status, format_status

    report = await collect_status(settings, check_drift=not args.no_drift)
    print(report.to_json() if args.json else format_status(report))
    return EXIT_OK if report.healthy else EXIT_DIFF


async def _replay(settings: Settings, args: argparse.Namespace) -> int:
    from litemaas_hooks import outbox, sql

    conns = await _open(settings, ("litellm",), installed=("litellm",))
    conn = conns["litellm"]
    try:
        ids = sorted(set(args.ids))
        if ids:
            cur = await conn.execute(sql.query("litellm", "events_status"), {"ids": ids})
            found = {int(i): str(s) for i, s in await cur.fetchall()}
            wrong = [
                f"{i} does not exist" if i not in found else f"{i} is {found[i]}"
                for i in ids
                if found.get(i) != "dead"
            ]
            if wrong:
                raise LiteMaaSHooksError(
                    "nothing replayed: only dead events can be replayed, and event "
                    f"{'; event '.join(wrong)} "
                    "(`litemaas-hooks status` lists the dead events with their ids)"
                )
        count = await outbox.replay_dead(conn, ids or None)
    finally:
        await conn.close()
    if count == 0:
        print("no dead events: nothing to replay")
    else:
        events, them = ("event", "it") if count == 1 else ("events", "them")
        print(f"replayed {count} dead {events}: the relays pick {them} up now")
    return EXIT_OK


def _write_shim(settings: Settings, args: argparse.Namespace) -> int:
    from litemaas_hooks.shim import write_shim

    if not os.path.isdir(args.config_dir):
        raise LiteMaaSHooksError(
            f"{args.config_dir!r} is not a directory: give the directory that holds LiteLLM's "
            "config.yaml"
        )
    print(f"wrote {write_shim(args.config_dir)}")
    return EXIT_OK


async def _apply(settings: Settings, args: argparse.Namespace) -> int:
    from litemaas_hooks.errors import ConfigError
    from litemaas_hooks.model_apply import KEY_HINT, URL_HINT, run_apply
    from litemaas_hooks.model_file import load_files

    specs = load_files(args.files, allow_inline_keys=args.allow_inline_keys)
    url, key = settings.litellm_url, settings.litellm_master_key
    missing = [hint for ok, hint in ((bool(url), URL_HINT), (key is not None, KEY_HINT)) if not ok]
    if url is None or key is None or missing:
        raise ConfigError("; ".join(missing))
    backend = None
    if settings.litemaas_database_url is not None and not args.dry_run:
        try:  # the backend is only read to verify: without it apply still applies, and says so
            backend = (await _open(settings, ("backend",)))["backend"]
        except LiteMaaSHooksError as exc:
            print(f"the backend rows will not be verified: {exc}")
    try:
        return await run_apply(
            specs,
            litellm_url=url,
            master_key=key.get_secret_value(),
            backend=backend,
            dry_run=args.dry_run,
            prune=args.prune,
            adopt=args.adopt,
            wait_seconds=args.wait,
        )
    finally:
        if backend is not None:
            await backend.close()


async def _show(settings: Settings, args: argparse.Namespace) -> int:
    from litemaas_hooks.model_show import collect, format_views, to_json

    conns = await _open(settings, ("litellm", "backend"), installed=("litellm", "backend"))
    try:
        views = await collect(settings, conns["litellm"], conns["backend"], args.names)
    finally:
        for conn in conns.values():
            await conn.close()
    print(to_json(views) if args.json else format_views(views))
    return EXIT_OK if all(v.in_sync for v in views) else EXIT_DIFF


async def _uninstall(settings: Settings, args: argparse.Namespace) -> int:
    """``uninstall [--backend-only | --litellm-only] [--dry-run] [--yes]`` (logic: uninstall.py)."""
    from litemaas_hooks.connections import connect
    from litemaas_hooks.uninstall import DATABASE_LABELS, KEEPS, REMOVES, script, uninstall

    sides: list[Which] = []
    if not args.backend_only:
        sides.append("litellm")  # the trigger first: no new events once the backend's functions go
    if not args.litellm_only:
        sides.append("backend")
    if args.dry_run:
        print(script(sides), end="")
        print(KEEPS, file=sys.stderr)
        return EXIT_OK
    if not args.yes:
        print(
            f"{PROG} uninstall: refusing without --yes. It drops, in "
            + " and ".join(DATABASE_LABELS[s] for s in sides)
            + ": "
            + "; ".join(REMOVES[s] for s in sides)
            + ". Run with --dry-run to see the SQL.",
            file=sys.stderr,
        )
        return EXIT_ERROR
    for side in sides:
        conn = await connect(settings, side)
        try:
            result = await uninstall(conn, side)
        finally:
            await conn.close()
        extra = ""
        if result.pending_discarded:
            extra = (
                f" ({result.pending_discarded} outbox events were not applied yet: run "
                f"`{PROG} backfill` before uninstalling, or let the backend's own sync catch up)"
            )
        print(f"{DATABASE_LABELS[side]}: removed {REMOVES[side]}{extra}")
    print(KEEPS)
    return EXIT_OK


async def _demo(settings: Settings, args: argparse.Namespace) -> int:
    try:
        from litemaas_hooks_sandbox.demo import run_demo
    except ImportError:
        raise LiteMaaSHooksError(
            "the demo lives in the sandbox package, which is not installed: run `make demo` from a "
            "clone of litemaas-hooks (or `pip install -e ./sandbox`)"
        ) from None

    return await run_demo(live=not args.no_live, keep_running=args.keep_running)


async def _retire(settings: Settings, args: argparse.Namespace) -> int:
    from litemaas_hooks.retire_ops import retire_command

    conns = await _open(settings, ("litellm", "backend"), installed=("backend",))
    try:
        code, lines = await retire_command(
            settings, conns["litellm"], conns["backend"], confirm=args.confirm, names=args.models
        )
    finally:
        for conn in conns.values():
            await conn.close()
    print("\n".join(lines))
    return code


async def _restore(settings: Settings, args: argparse.Namespace) -> int:
    from litemaas_hooks.retire_ops import restore_command

    conns = await _open(settings, ("backend",), installed=("backend",))
    try:
        code, lines = await restore_command(conns["backend"], args.models, apply=args.yes)
    finally:
        await conns["backend"].close()
    print("\n".join(lines))
    return code


_COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], Any]] = {
    "install": _install,
    "backfill": _backfill,
    "relay": _relay,
    "status": _status,
    "replay": _replay,
    "write-shim": _write_shim,
    "uninstall": _uninstall,
    "apply": _apply,
    "show": _show,
    "demo": _demo,
    "retire": _retire,
    "restore": _restore,
}


# -- main ------------------------------------------------------------------------------------------


def _mask(text: str, secrets: Sequence[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def _debug() -> bool:
    return os.environ.get("LITEMAAS_HOOKS_LOG_LEVEL", "").strip().upper() == "DEBUG"


def error_text(exc: BaseException) -> str:
    """What the operator reads: our errors as they are; anything else as its type and first line."""
    if isinstance(exc, LiteMaaSHooksError):
        return str(exc)
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(exc, psycopg.Error):
        return f"the database refused: {describe(exc)}; {DEBUG_HINT}"
    return f"unexpected {describe(exc)}; {DEBUG_HINT}"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except UsageError as exc:
        print(f"{exc.prog}: error: {exc}; see `{exc.prog} --help`", file=sys.stderr)
        return EXIT_ERROR
    secrets = env_secrets()
    try:
        settings = load_settings(require=required_databases(args))
        secrets = [*secrets, *settings.secrets()]
        configure(settings.log_level, secrets, json_lines=settings.json_log_lines)
        collapse_litellm_cost_map_warnings()  # offline, LiteLLM's import would print several
        outcome = _COMMANDS[args.command](settings, args)
        # a command without a database (write-shim): no event loop needed
        if isinstance(outcome, int):
            return outcome
        import asyncio

        # a full reconcile plans in a worker thread while the event loop feeds the backend's writes:
        # the loop gets the GIL back within 1 ms instead of 5 (our own process; the proxy keeps its
        # own)
        sys.setswitchinterval(0.001)
        return int(asyncio.run(outcome))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if _debug():
            print(scrub("".join(traceback.format_exception(exc)), secrets), file=sys.stderr, end="")
        # our own errors show URLs already masked (and examples such as USER:PASSWORD@ stay
        # readable); anything else goes through the full scrub
        text = error_text(exc)
        text = _mask(text, secrets) if isinstance(exc, LiteMaaSHooksError) else scrub(text, secrets)
        lines = text.splitlines() or [type(exc).__name__]
        first, rest = lines[0], lines[1:]
        print(f"{PROG} {args.command}: error: {first}", *rest, sep="\n", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
