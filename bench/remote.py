"""Remote-database benchmark: both databases behind a link of 0, 10 and 65 ms round trip.

Method. One throwaway PostgreSQL holds the LiteLLM and the backend database; the relay (a
`litemaas-hooks relay` process) and `litemaas-hooks backfill` reach both through
``bench/latency_link.py``: an asyncio TCP proxy that delays every chunk by half the round trip in each
direction and COUNTS round trips (client -> server flights, per connection). LiteLLM's own writes and
the observer (a LISTEN on the backend database, see bench/latency.py) connect directly.

Per round trip time:
- change -> backend row: single changes (insert / update of model_info / delete), each committed
  alone and paced; p50 / p99 latency, and round trips per change: the flights the relay's two
  connections made over the run divided by the changes (counted). Target <= 4.
- `backfill` (a whole process, fresh pod cache; cold = empty backend, then warm) at 1,000 and
  10,000 deployments (10,000: not in --quick), with its round trips. LiteLLM's answers are shared
  in its database by a first-ever run before (printed on its own: CPU-bound, no link), as they are
  for every pod after an install's first.
- the backend's own ``syncModels`` (the real LiteMaaS code, litemaas_hooks_sandbox.litemaas_backend,
  reading a real LiteLLM proxy of the sandbox over HTTP; its database behind the same link) at 1,000
  deployments (one transaction per row: minutes at 65 ms; --backend-sync-rtts chooses where). Target:
  our backfill >= 20x faster than its sync at 65 ms.
- --big N: one `backfill` of N deployments (default off; 100000 for the lock-scope work): time and
  peak RSS, no link.

Figures are noisy on a shared machine: compare within one run. No assertion anywhere.

    .venv/bin/python bench/remote.py [--quick] [--rtts 0,10,65] [--changes 40] [--big 100000]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import psycopg

sys.path.insert(0, os.path.dirname(__file__))

from _common import MASTER_KEY, databases, machine, seed
from latency import OBSERVE_SQL, Observer, install, measure_relay, relays, summary
from latency_link import LatencyLink

_SUMMARY = re.compile(r"created (\d+), updated (\d+), unchanged (\d+), retired (\d+)")
_HWM = (
    "print(next(l.split()[1] for l in open('/proc/self/status') "
    "if l.startswith('VmHWM')), file=sys.stderr)"
)


@dataclass
class Backfill:
    seconds: float
    written: int
    flights: int
    peak_mb: float


def backfill(litellm_dsn: str, backend_dsn: str, links: list[LatencyLink]) -> Backfill:
    """A whole `litemaas-hooks backfill` process (fresh disk cache, as a new pod)."""
    code = (
        "import sys\nfrom litemaas_hooks.cli import main\n"
        f"try:\n    rc = main(['backfill', '--quiet'])\nfinally:\n    {_HWM}\nsys.exit(rc)"
    )
    with tempfile.TemporaryDirectory(prefix="pod-cache-") as cache:
        env = {
            **os.environ,
            "LITELLM_DATABASE_URL": litellm_dsn,
            "LITEMAAS_DATABASE_URL": backend_dsn,
            "LITELLM_MASTER_KEY": MASTER_KEY,
            "LITEMAAS_HOOKS_CACHE_DIR": cache,
        }
        before = sum(link.flights() for link in links)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
        )
        seconds = time.perf_counter() - started
    match = _SUMMARY.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise SystemExit(
            "litemaas-hooks backfill failed "
            f"({done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}"
        )
    created, updated, _unchanged, retired = map(int, match.groups())
    peak = int(done.stderr.strip().splitlines()[-1]) / 1024
    return Backfill(
        seconds, created + updated + retired, sum(link.flights() for link in links) - before, peak
    )


def reset_backend(backend_dsn: str) -> None:
    with psycopg.connect(backend_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE models CASCADE")
        conn.execute("TRUNCATE litemaas_hooks.hidden_models, litemaas_hooks.model_sources")


def changes_under(pg_port: int, litellm_dsn: str, backend_dsn: str, rtt: float, count: int) -> None:
    llink = LatencyLink("127.0.0.1", pg_port, rtt_ms=rtt).start()
    blink = LatencyLink("127.0.0.1", pg_port, rtt_ms=rtt).start()
    observer = Observer(backend_dsn)
    try:
        with relays(llink.dsn(litellm_dsn), blink.dsn(backend_dsn)):
            observer.wait_seconds = 300.0  # the first new model imports LiteLLM in the relay
            measure_relay(
                litellm_dsn, observer, 10, 0.05, random.Random(1), start=900_000
            )  # warm-up
            observer.wait_seconds = 60.0
            quiet_until = time.monotonic() + max(0.5, rtt * 0.02)
            while time.monotonic() < quiet_until:
                time.sleep(0.05)
            lb, bb = llink.flights(), blink.flights()
            if os.environ.get("BENCH_TRACE"):
                llink.trace, blink.trace = [], []
            gap = max(0.02, rtt * 0.004)
            lat, ops = measure_relay(
                litellm_dsn, observer, count, gap, random.Random(7), start=800_000
            )
            time.sleep(max(0.3, rtt * 0.01))  # the relay's completion after the backend commit
            lf, bf = llink.flights() - lb, blink.flights() - bb
        if llink.trace is not None and blink.trace is not None:
            for label, trace in (("litellm", llink.trace), ("backend", blink.trace)):
                print(f"  {label} flights:", *trace[:60], sep="\n    ")
    finally:
        observer.close()
        llink.stop()
        blink.stop()
    s = summary(lat)
    per = (lf + bf) / len(lat)
    print(
        f"  change -> backend row ({len(lat)} changes {ops}): "
        f"p50 {s['p50']:7.1f} ms  p99 {s['p99']:7.1f} ms  "
        f"max {s['max']:7.1f} ms"
    )
    print(
        f"    round trips per change (counted): {per:.2f} (LiteLLM "
        f"{lf / len(lat):.2f}, backend {bf / len(lat):.2f})"
        f"   target <= 4: {'MET' if per <= 4 else 'MISSED'}"
        + (f"; p50 = {s['p50'] / rtt:.1f} x RTT" if rtt else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rtts", default="0,10,65", help="round trip times in ms, comma-separated")
    parser.add_argument(
        "--changes", type=int, default=40, help="single changes per round trip time"
    )
    parser.add_argument("--sizes", default="1000,10000", help="backfill sizes")
    parser.add_argument("--quick", action="store_true", help="20 changes, backfill at 1,000 only")
    parser.add_argument(
        "--backend-sync-rtts", default="65", help="where to run the backend's sync (1,000)"
    )
    parser.add_argument(
        "--big", type=int, default=0, help="also one backfill of this many deployments, no link"
    )
    args = parser.parse_args()
    rtts = [float(r) for r in args.rtts.split(",") if r]
    sizes = [1000] if args.quick else [int(s) for s in args.sizes.split(",") if s]
    changes = 20 if args.quick else args.changes
    sync_rtts = {float(r) for r in args.backend_sync_rtts.split(",") if r}
    print(f"remote benchmark — both databases behind a latency link — {machine()}")
    ours_at: dict[tuple[float, int], Backfill] = {}
    with databases() as (pg, litellm_dsn, backend_dsn):
        port = int(psycopg.conninfo.conninfo_to_dict(litellm_dsn)["port"])  # type: ignore[arg-type]
        install(litellm_dsn, backend_dsn)
        with psycopg.connect(backend_dsn, autocommit=True) as conn:
            conn.execute(OBSERVE_SQL)
        for rtt in rtts:
            print(f"\nround trip {rtt:g} ms:")
            changes_under(port, litellm_dsn, backend_dsn, rtt, changes)
        for size in sizes:
            pg.create_database(f"litellm_{size}")
            pg.create_database(f"backend_{size}")
            ldsn, bdsn = pg.dsn(f"litellm_{size}"), pg.dsn(f"backend_{size}")
            from litemaas_hooks_sandbox.litellm_schema import apply_litellm_schema
            from litemaas_hooks_sandbox.litemaas_schema import apply_litemaas_schema

            apply_litellm_schema(ldsn)
            apply_litemaas_schema(bdsn)
            install(ldsn, bdsn)
            seed(ldsn, size)
            print(f"\nbackfill of {size} deployments (whole process, fresh pod cache):")
            # the very first process of an install asks LiteLLM about every model (imports it,
            # CPU-bound) and shares the answers in LiteLLM's database; every later pod reads them
            first = backfill(ldsn, bdsn, [])
            print(
                f"  first-ever, no link (nothing shared yet: LiteLLM imported and asked): "
                f"{first.seconds:6.2f}s, peak RSS {first.peak_mb:.0f} MB; below: answers shared"
            )
            for rtt in rtts:
                llink = LatencyLink("127.0.0.1", port, rtt_ms=rtt).start()
                blink = LatencyLink("127.0.0.1", port, rtt_ms=rtt).start()
                try:
                    reset_backend(bdsn)
                    cold = backfill(llink.dsn(ldsn), blink.dsn(bdsn), [llink, blink])
                    warm = backfill(llink.dsn(ldsn), blink.dsn(bdsn), [llink, blink])
                finally:
                    llink.stop()
                    blink.stop()
                ours_at[(rtt, size)] = cold
                print(
                    f"  {rtt:4g} ms: cold {cold.seconds:6.2f}s "
                    f"({cold.written} rows, {cold.flights} round trips), "
                    f"warm {warm.seconds:6.2f}s ({warm.written} rows, {warm.flights} round trips), "
                    f"peak RSS {max(cold.peak_mb, warm.peak_mb):.0f} MB"
                )
            if size == 1000 and sync_rtts:
                backend_sync(pg, port, ldsn, size, sorted(sync_rtts), ours_at)
        if args.big:
            pg.create_database("litellm_big")
            pg.create_database("backend_big")
            ldsn, bdsn = pg.dsn("litellm_big"), pg.dsn("backend_big")
            from litemaas_hooks_sandbox.litellm_schema import apply_litellm_schema
            from litemaas_hooks_sandbox.litemaas_schema import apply_litemaas_schema

            apply_litellm_schema(ldsn)
            apply_litemaas_schema(bdsn)
            install(ldsn, bdsn)
            seeded = seed(ldsn, args.big)
            big = backfill(ldsn, bdsn, [])
            again = backfill(ldsn, bdsn, [])
            print(
                f"\nbackfill of {args.big} deployments, no link "
                f"(seeded in {seeded:.0f}s): cold {big.seconds:.1f}s, "
                f"{big.written} rows, peak RSS {big.peak_mb:.0f} MB; warm {again.seconds:.1f}s, "
                f"peak RSS {again.peak_mb:.0f} MB"
            )


def backend_sync(
    pg: object,
    port: int,
    ldsn: str,
    size: int,
    rtts: list[float],
    ours_at: dict[tuple[float, int], Backfill],
) -> None:
    """The backend's own syncModels, its database behind the same link; cold (fresh schema)."""
    from litemaas_hooks_sandbox import litemaas_backend
    from litemaas_hooks_sandbox.litemaas_schema import apply_litemaas_schema
    from litemaas_hooks_sandbox.proxy import sandbox_proxy

    with sandbox_proxy(ldsn, master_key=MASTER_KEY, plugin=False) as proxy:
        _wait_served(proxy, size)
        for rtt in rtts:
            name = f"its_{size}_{int(rtt)}"
            pg.create_database(name)  # type: ignore[attr-defined]
            dsn = pg.dsn(name)  # type: ignore[attr-defined]
            apply_litemaas_schema(dsn)
            link = LatencyLink("127.0.0.1", port, rtt_ms=rtt).start()
            try:
                runs = []
                for _phase in ("cold", "warm"):
                    before = link.flights()
                    run = litemaas_backend.sync_models(
                        link.dsn(dsn),
                        litellm_url=proxy.base_url,
                        litellm_key=MASTER_KEY,
                        check=False,
                    )
                    runs.append((run, link.flights() - before))
            finally:
                link.stop()
            ours = ours_at.get((rtt, size))
            (cold, cold_f), (warm, warm_f) = runs
            print(
                f"  backend's own syncModels at {rtt:g} ms: cold call {cold.call_seconds:.1f}s "
                f"({cold.written} rows, {cold_f} round trips), "
                f"warm call {warm.call_seconds:.1f}s ({warm_f} round trips)"
            )
            if ours is not None:
                ratio = cold.call_seconds / ours.seconds
                print(
                    f"    ratio its cold call / our cold backfill process: {ratio:.1f}x"
                    + (
                        "   target >= 20x at 65 ms: " + ("MET" if ratio >= 20 else "MISSED")
                        if rtt == 65
                        else ""
                    )
                )


def _wait_served(proxy: object, count: int) -> None:
    started = time.monotonic()
    with proxy.client() as client:  # type: ignore[attr-defined]
        client.timeout = 300
        while len(client.get("/model/info").json().get("data", [])) < count:
            if time.monotonic() - started > 600:
                raise SystemExit("the sandbox LiteLLM proxy did not serve every deployment")
            time.sleep(1.0)


if __name__ == "__main__":
    main()
