"""Proxy overhead benchmark: a real LiteLLM proxy without and with the litemaas-hooks plugin.

Two proxies are started on loopback by the sandbox launcher, as LiteMaaS starts LiteLLM (the
``litellm`` CLI, ``DATABASE_URL`` = one throwaway LiteLLM database served by the Prisma stand-in,
one worker each, a ``mock_response`` model, so nothing leaves the machine): A without callbacks, B
with ``callbacks: ["litemaas_hooks.proxy_handler_instance"]`` + shim and ``LITEMAAS_DATABASE_URL``
(a throwaway PostgreSQL with both schemas, `litemaas-hooks install` run first). B is used only once
its relay is connected and its start-up full reconcile has synced the config-file model.

Load: an in-process asyncio load generator (httpx, ``--concurrency`` workers, keep-alive) sends
``/v1/chat/completions`` requests; each round is bounded by ``--requests`` and ``--round-seconds``.
Rounds alternate A, B, B, A, A, B, ... (``--rounds`` each) so drift (other load on the machine, CPU
frequency) hits both alike; only one proxy is loaded at
a time, the other is idle. Both are warmed up first.

Printed: throughput (requests/s over all rounds) and p50/p99 latency per variant, and the ratios B/A
(targets: throughput >= 0.98, p99 <= 1.02); RSS of each proxy process group (all its processes)
after warm-up and after the load, and B - A = the plugin's RSS cost per worker (target <= 30 MB).

    .venv/bin/python bench/proxy_overhead.py [--rounds 6] [--requests 400] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, os.path.dirname(__file__))

from _common import MASTER_KEY, databases, machine
from latency import install

from litemaas_hooks_sandbox.proxy import SandboxProxy, sandbox_proxy

START_DEADLINE_SECONDS = 240.0
MOCK_MODEL = {
    "model_name": "mock-gpt",
    "litellm_params": {
        "model": "openai/mock-gpt",
        "api_key": "not-a-real-key",
        "mock_response": "hello from the mock",
    },
}


@dataclass
class Proxy:
    label: str
    sandbox: SandboxProxy

    @property
    def base_url(self) -> str:
        return self.sandbox.base_url

    def rss_mb(self) -> float:
        """Resident memory of every process of the proxy's process group (workers included)."""
        total = 0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                if os.getpgid(int(pid)) != self.sandbox.pid:
                    continue
                with open(f"/proc/{pid}/status") as status:
                    for line in status:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1])
            except (OSError, ProcessLookupError):
                continue
        return total / 1024


@dataclass
class Sample:
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    errors: int = 0


@contextmanager
def litellm_proxy(
    label: str, workdir: Path, litellm_dsn: str, backend_dsn: str, *, plugin: bool
) -> Iterator[Proxy]:
    """The sandbox proxy (on the host's loopback, as before:
    no namespace bridge in the measured path)."""
    with sandbox_proxy(
        litellm_dsn,
        backend_dsn=backend_dsn if plugin else None,
        master_key=MASTER_KEY,
        models=[MOCK_MODEL],
        plugin=plugin,
        workdir=workdir / label,
        isolate_network=False,
        start_timeout=START_DEADLINE_SECONDS,
    ) as sandbox:
        yield Proxy(label, sandbox)


def wait_plugin_synced(backend_dsn: str) -> None:
    """The plugin's relay is up and its start-up reconcile synced the config-file model."""
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    with psycopg.connect(backend_dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT availability FROM models WHERE id = 'mock-gpt'").fetchone()
            if row is not None and row[0] == "available":
                return
            time.sleep(0.2)
    raise RuntimeError("the plugin did not sync the config-file model")


async def load(proxy: Proxy, *, requests: int, seconds: float, concurrency: int) -> Sample:
    sample = Sample()
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    issued = 0
    started = time.perf_counter()
    deadline = started + seconds
    async with httpx.AsyncClient(
        base_url=proxy.base_url, headers=headers, limits=limits, timeout=30
    ) as client:

        async def worker() -> None:
            nonlocal issued
            while issued < requests and time.perf_counter() < deadline:
                issued += 1
                t0 = time.perf_counter()
                try:
                    response = await client.post("/v1/chat/completions", json=body)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    sample.latencies.append(time.perf_counter() - t0)
                else:
                    sample.errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    sample.seconds = time.perf_counter() - started
    return sample


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--rounds", type=int, default=6, help="rounds per variant (alternating A/B)"
    )
    parser.add_argument(
        "--requests", type=int, default=400, help="requests per round (upper bound)"
    )
    parser.add_argument(
        "--round-seconds", type=float, default=8.0, help="time per round (upper bound)"
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=200, help="warm-up requests per proxy")
    args = parser.parse_args()
    with databases() as (_pg, litellm_dsn, backend_dsn), ExitStack() as stack:
        install(litellm_dsn, backend_dsn)
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="litemaas-bench-")))
        started = time.perf_counter()
        a = stack.enter_context(
            litellm_proxy("A-without", workdir, litellm_dsn, backend_dsn, plugin=False)
        )
        b = stack.enter_context(
            litellm_proxy("B-with-plugin", workdir, litellm_dsn, backend_dsn, plugin=True)
        )
        wait_plugin_synced(backend_dsn)
        boot = time.perf_counter() - started

        def run(proxy: Proxy, requests: int) -> Sample:
            return asyncio.run(
                load(
                    proxy,
                    requests=requests,
                    seconds=args.round_seconds,
                    concurrency=args.concurrency,
                )
            )

        for proxy in (a, b):
            run(proxy, args.warmup)
        rss_warm = {p.label: p.rss_mb() for p in (a, b)}
        samples: dict[str, list[Sample]] = {a.label: [], b.label: []}
        for i in range(args.rounds):
            # A B B A A B ...: cancels a linear drift
            for proxy in (a, b) if i % 2 == 0 else (b, a):
                samples[proxy.label].append(run(proxy, args.requests))
        rss_after = {p.label: p.rss_mb() for p in (a, b)}
        b_log = b.sandbox.log()

    print(
        "proxy overhead benchmark — litellm proxy, "
        f"mock_response model, 1 worker each — {machine()}"
    )
    print(
        "  both proxies up and the plugin synced in "
        f"{boot:.0f}s; rounds A B B A ... x{args.rounds} each"
    )
    print(
        f"  load: {args.concurrency} concurrent keep-alive "
        f"clients, <= {args.requests} requests and "
        f"<= {args.round_seconds:.0f}s per round; load generator in this process (same for A and B)"
    )
    figures: dict[str, tuple[float, float, float]] = {}
    for label, rounds in samples.items():
        latencies = [x for s in rounds for x in s.latencies]
        seconds = sum(s.seconds for s in rounds)
        errors = sum(s.errors for s in rounds)
        rps = len(latencies) / seconds
        per_round = ", ".join(f"{len(s.latencies) / s.seconds:.0f}" for s in rounds)
        p50, p99 = statistics.median(latencies) * 1000, pct(latencies, 99) * 1000
        figures[label] = (rps, p50, p99)
        print(
            f"  {label:14s} {rps:7.1f} req/s (rounds: "
            f"{per_round})  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  "
            f"ok {len(latencies)}  errors {errors}"
        )
    (ra, _, pa), (rb, _, pb) = figures[a.label], figures[b.label]
    pairs = [
        (len(sb.latencies) / sb.seconds) / (len(sa.latencies) / sa.seconds)
        for sa, sb in zip(samples[a.label], samples[b.label], strict=True)
    ]
    print(
        f"  throughput ratio B/A: {rb / ra:.3f} (median of the {len(pairs)} adjacent-pair ratios "
        f"{statistics.median(pairs):.3f}, range {min(pairs):.2f}-{max(pairs):.2f})  target >= 0.98"
    )
    print(f"  p99 latency ratio B/A: {pb / pa:.3f}  target <= 1.02")
    for when, rss in (("after warm-up", rss_warm), ("after the load", rss_after)):
        print(
            f"  RSS {when}: A {rss[a.label]:.0f} MB, B "
            f"{rss[b.label]:.0f} MB -> plugin cost per worker "
            f"{rss[b.label] - rss[a.label]:+.1f} MB  target <= 30 MB"
        )
    print(f"  plugin active in B: {'litemaas-hooks' in b_log}")


if __name__ == "__main__":
    main()
