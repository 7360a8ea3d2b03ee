"""The ``litemaas-hooks`` command line: install, backfill, relay, status, demo.

Exit codes: 0 = in sync / applied / healthy; 1 = error; 2 = ``backfill --dry-run`` found differences
(``status``: unhealthy).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from litemaas_hooks import __version__
from litemaas_hooks.errors import LiteMaaSHooksError
from litemaas_hooks.logs import configure
from litemaas_hooks.redaction import scrub
from litemaas_hooks.settings import Settings, load_settings

EXIT_OK, EXIT_ERROR, EXIT_DIFF = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="litemaas-hooks",
        description="Keep the LiteMaaS backend models table in sync with LiteLLM's models.",
        epilog="Settings come from the environment: LITEMAAS_DATABASE_URL, LITELLM_DATABASE_URL (or "
        "DATABASE_URL), LITELLM_SALT_KEY (or LITELLM_MASTER_KEY), LITEMAAS_HOOKS_*. See README.",
    )
    parser.add_argument("--version", action="version", version=f"litemaas-hooks {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    install = sub.add_parser("install", help="apply the SQL migrations to both databases (idempotent)")
    only = install.add_mutually_exclusive_group()
    only.add_argument("--backend-only", action="store_true", help="only the backend (LiteMaaS) database")
    only.add_argument("--litellm-only", action="store_true", help="only the LiteLLM database (trigger, outbox)")
    install.add_argument(
        "--print-sql", action="store_true", help="print the whole SQL install would run, per database; apply nothing"
    )
    install.add_argument(
        "--print-grants", action="store_true", help="print the GRANT statements for the relay role; apply nothing"
    )
    install.add_argument("--relay-role", default="litemaas_hooks_relay", help="role of the relay (--print-grants)")
    install.add_argument(
        "--backend-role", default=None, help="backend role of the relay if not --relay-role (--print-grants)"
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
        help="first wait up to SECONDS for both databases and their tables (LiteLLM's, the backend's models)",
    )

    backfill = sub.add_parser("backfill", help="bring every LiteLLM model into the backend (one shot)")
    backfill.add_argument("--dry-run", action="store_true", help="print the per-model plan, write nothing")
    backfill.add_argument(
        "--retire-missing",
        action="store_true",
        help="also retire backend models that came from LiteLLM but no longer exist there",
    )
    backfill.add_argument("--quiet", action="store_true", help="no progress on stderr")

    sub.add_parser("relay", help="run the sync relay in the foreground (sidecar / Deployment)")

    status = sub.add_parser("status", help="trigger, outbox backlog, dead events and drift")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    replay = sub.add_parser("replay", help="make dead outbox events pending again (after fixing their cause)")
    replay.add_argument("ids", nargs="*", type=int, help="event ids (default: every dead event)")

    shim = sub.add_parser(
        "write-shim", help="write litemaas_hooks.py next to LiteLLM's config.yaml (needed by LiteLLM 1.81)"
    )
    shim.add_argument("config_dir", help="the directory that holds LiteLLM's config.yaml")

    uninstall = sub.add_parser(
        "uninstall", help="remove the trigger, functions and schemas of litemaas-hooks (backend rows stay)"
    )
    uninstall_only = uninstall.add_mutually_exclusive_group()
    uninstall_only.add_argument("--backend-only", action="store_true", help="only the backend (LiteMaaS) database")
    uninstall_only.add_argument("--litellm-only", action="store_true", help="only the LiteLLM database")
    uninstall.add_argument("--dry-run", action="store_true", help="print the SQL, connect to nothing")
    uninstall.add_argument("--yes", action="store_true", help="really uninstall (required unless --dry-run)")

    demo = sub.add_parser("demo", help="run everything against a throwaway local PostgreSQL")
    demo.add_argument("--no-live", action="store_true", help="skip the live relay part of the demo")
    return parser


# -- install ------------------------------------------------------------------------------------------


async def _install(settings: Settings, args: argparse.Namespace) -> int:
    from litemaas_hooks.connections import connect
    from litemaas_hooks.migrations import apply_migrations

    sides: list[Any] = []
    if not args.litellm_only:
        sides.append("backend")
    if not args.backend_only:
        sides.append("litellm")
    if args.print_sql or args.print_grants:
        return _print_install(args, tuple(sides))
    if args.wait_for_litellm > 0:
        from litemaas_hooks.wait_tables import wait_for_tables

        await wait_for_tables(settings, args.wait_for_litellm, sides)
    for side in sides:
        conn = await connect(settings, side)
        try:
            result = await apply_migrations(conn, side)
        finally:
            await conn.close()
        db = "backend (LiteMaaS)" if side == "backend" else "LiteLLM"
        if result.applied:
            print(f"{db} database: applied {', '.join(result.applied)}")
        else:
            print(f"{db} database: up to date ({len(result.already)} migrations already applied)")
    return EXIT_OK


def _print_install(args: argparse.Namespace, sides: tuple[Any, ...]) -> int:
    from litemaas_hooks.privileges import Roles, render

    roles = Roles(relay=args.relay_role, backend=args.backend_role, litellm_writers=tuple(args.litellm_role))
    print(render(print_sql=args.print_sql, print_grants=args.print_grants, sides=sides, roles=roles), end="")
    return EXIT_OK


# -- backfill -----------------------------------------------------------------------------------------


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
                f"{field}: {_fmt(old)} -> {_fmt(new)}" if field != "metadata" else "metadata changed"
                for field, (old, new) in sorted(outcome.changes.items())
            )
            line += f"  ({fields})"
        elif outcome.message:
            line += f"  ({outcome.message})"
        print(line, file=out)


async def _backfill(settings: Settings, args: argparse.Namespace) -> int:
    from litemaas_hooks.connections import connect
    from litemaas_hooks.reconcile import Reconciler

    show_progress = not args.quiet and not args.dry_run

    def progress(done: int, total: int) -> None:
        if show_progress and total >= 1000:
            print(f"\rapplying {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    from litemaas_hooks.litellm_adapter import warm_up

    warm_up()  # import LiteLLM's helpers before timing the run (seconds, once per process)
    litellm = await connect(settings, "litellm")
    try:
        backend = await connect(settings, "backend")
        try:
            report = await Reconciler(settings).converge(
                litellm,
                backend,
                None,
                retire_missing=args.retire_missing,
                dry_run=args.dry_run,
                progress=progress,
            )
        finally:
            await backend.close()
    finally:
        await litellm.close()
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


# -- relay / status / demo (their modules hold the logic) ---------------------------------------------


async def _relay(settings: Settings, args: argparse.Namespace) -> int:
    from litemaas_hooks.probes import run_relay_with_probes

    await run_relay_with_probes(settings)
    return EXIT_OK


async def _status(settings: Settings, args: argparse.Namespace) -> int:
    from litemaas_hooks.status import collect_status, format_status

    report = await collect_status(settings)
    print(report.to_json() if args.json else format_status(report))
    return EXIT_OK if report.healthy else EXIT_DIFF


async def _replay(settings: Settings, args: argparse.Namespace) -> int:
    from litemaas_hooks import outbox
    from litemaas_hooks.connections import connect

    conn = await connect(settings, "litellm")
    try:
        count = await outbox.replay_dead(conn, args.ids or None)
    finally:
        await conn.close()
    print(f"replayed {count} dead event(s); the relays pick them up now")
    return EXIT_OK


async def _write_shim(settings: Settings, args: argparse.Namespace) -> int:
    from litemaas_hooks.plugin import write_shim

    print(f"wrote {write_shim(args.config_dir)}")
    return EXIT_OK


async def _uninstall(settings: Settings, args: argparse.Namespace) -> int:
    from litemaas_hooks.uninstall import run_command

    return await run_command(settings, args)


async def _demo(settings: Settings, args: argparse.Namespace) -> int:
    try:
        from litemaas_hooks_sandbox.demo import run_demo
    except ImportError:
        raise LiteMaaSHooksError(
            "the demo lives in the sandbox package, which is not installed: run `make demo` from a clone of "
            "litemaas-hooks (or `pip install -e ./sandbox`)"
        ) from None

    return await run_demo(live=not args.no_live)


_COMMANDS = {
    "install": _install,
    "backfill": _backfill,
    "relay": _relay,
    "status": _status,
    "replay": _replay,
    "write-shim": _write_shim,
    "uninstall": _uninstall,
    "demo": _demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings: Settings | None = None
    try:
        settings = load_settings()
        configure(settings.log_level, settings.secrets())
        return asyncio.run(_COMMANDS[args.command](settings, args))
    except LiteMaaSHooksError as exc:
        secrets = settings.secrets() if settings else []
        print(f"litemaas-hooks {args.command}: error: {scrub(str(exc), secrets)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
