"""How fast each ``litemaas-hooks`` command finishes,
and how much memory it takes, as an operator runs it.

    .venv/bin/python bench/cli_startup.py [--runs 5]

Starts a throwaway PostgreSQL with LiteLLM's schema and the backend schema, installs, then runs
every command as its own process ``--runs`` times: median wall time and peak RSS per command, next
to the baselines measured in the same run (an empty
interpreter, ``import psycopg``, ``import litellm``).
Target: every command that does not need LiteLLM (and every settings or usage error) under 0.5 s.

Where the time goes, for one command::

    python -X importtime -m litemaas_hooks.cli write-shim /tmp 2> imports.txt
    sort -t'|' -k2 -n imports.txt | tail -20     # the slowest imports, cumulative microseconds
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))

from _common import MASTER_KEY, databases, machine

TARGET_SECONDS = 0.5


# A fresh, small interpreter starts each measured process and reports its wall time and peak RSS: a
# process forked from this (large) one would report this one's pages as its own peak.
LAUNCHER = """
import os, sys, time
devnull = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_WRONLY, 0) for fd in (1, 2)]
started = time.perf_counter()
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ, file_actions=devnull)
_, status, usage = os.wait4(pid, 0)
print(time.perf_counter() - started, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MB, exit code) of one process; its output goes to /dev/null."""
    out = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *argv], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), int(out[1]) / 1024, int(out[2])


def subcommands() -> set[str]:
    from litemaas_hooks.cli import _parser

    for action in _parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    py = sys.executable
    cli = [py, "-m", "litemaas_hooks.cli"]
    shim_dir = tempfile.mkdtemp(prefix="cli-startup-")
    base_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("LITEMAAS_", "LITELLM_DATABASE"))
    }
    base_env.pop("DATABASE_URL", None)
    base_env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    print(
        f"machine: {machine()}; load average {os.getloadavg()[0]:.2f}; {args.runs} runs per command"
    )
    with databases() as (_, litellm_dsn, backend_dsn):
        env = {
            **base_env,
            "LITEMAAS_DATABASE_URL": backend_dsn,
            "LITELLM_DATABASE_URL": litellm_dsn,
        }
        env["LITELLM_MASTER_KEY"] = MASTER_KEY
        assert run_once([*cli, "install"], env)[2] == 0, "install failed"
        cases: list[tuple[str, list[str], dict[str, str], bool]] = [
            # (label, argv, env, must be under the target)
            ("baseline: python -c pass", [py, "-c", "pass"], base_env, False),
            ("baseline: import psycopg", [py, "-c", "import psycopg"], base_env, False),
            ("baseline: import litellm", [py, "-c", "import litellm"], base_env, False),
            ("--help", [*cli, "--help"], base_env, True),
            ("usage error (exit 1)", [*cli, "backfill", "--bogus"], base_env, True),
            ("settings error (exit 1)", [*cli, "backfill"], base_env, True),
            ("write-shim DIR", [*cli, "write-shim", shim_dir], base_env, True),
            ("install (up to date)", [*cli, "install"], env, True),
            ("replay", [*cli, "replay"], env, True),
            ("status --no-drift", [*cli, "status", "--no-drift"], env, True),
            ("status (with drift: reads LiteLLM's models)", [*cli, "status"], env, False),
            ("backfill (0 models)", [*cli, "backfill"], env, False),
        ]
        if "uninstall" in subcommands():
            cases.insert(-2, ("uninstall --dry-run", [*cli, "uninstall", "--dry-run"], env, True))
        litellm_wall = None
        print(f"{'command':<46} {'median s':>9} {'max s':>7} {'RSS MB':>7}  {'exit':>4}  target")
        failed = []
        for label, argv, case_env, targeted in cases:
            runs = [run_once(argv, case_env) for _ in range(args.runs)]
            walls = [r[0] for r in runs]
            median, rss, code = statistics.median(walls), max(r[1] for r in runs), runs[-1][2]
            if label == "baseline: import litellm":
                litellm_wall = median
            mark = ""
            if targeted:
                ok = median < TARGET_SECONDS
                mark = f"{'ok' if ok else 'OVER'} < {TARGET_SECONDS} s"
                if litellm_wall:
                    mark += f" ({litellm_wall / median:.0f}x faster than import litellm)"
                if not ok:
                    failed.append(label)
            print(f"{label:<46} {median:>9.3f} {max(walls):>7.3f} {rss:>7.0f}  {code:>4}  {mark}")
    Path(shim_dir, "litemaas_hooks.py").unlink(missing_ok=True)
    os.rmdir(shim_dir)
    print("over the target: " + (", ".join(failed) if failed else "none"))
    print(
        "where the time goes: python -X importtime -m "
        "litemaas_hooks.cli write-shim /tmp 2>&1 | sort -t'|' -k2 -n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
