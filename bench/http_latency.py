"""Through a real DB-backed LiteLLM proxy (sandbox launcher): HTTP ``POST /model/new`` -> backend row, and the
plugin's cost on LLM requests.

1. ``--adds`` (>= 200) sequential ``POST /model/new`` (master key) on a proxy with our plugin mounted;
   per add: the HTTP answer time, and the time from sending the request until the backend ``models`` row
   exists (polled on one connection). Printed: p50/p95/p99 of both and of the lag after the answer.
2. Two DB-backed proxies from the same config (a ``mock_response`` model; nothing leaves the machine):
   A without the plugin, B with it (installed, relay connected). ``/v1/chat/completions`` rounds alternate
   A, B, B, A, ... (``--rounds`` each, ``--requests`` per round, ``--concurrency`` workers); only one is
   loaded at a time. Printed: throughput and p50/p99 per variant and the ratios B/A.

No timed asserts: figures and ratios against the baseline of the same run.

    .venv/bin/python bench/http_latency.py [--adds 200] [--rounds 4] [--requests 300] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

import httpx
import psycopg

sys.path.insert(0, os.path.dirname(__file__))

from _common import MASTER_KEY, databases, machine
from latency import install

from litemaas_hooks_sandbox.litellm_schema import apply_litellm_schema
from litemaas_hooks_sandbox.proxy import SandboxProxy, sandbox_proxy

MOCK_MODEL = {
    "model_name": "mock-gpt",
    "litellm_params": {
        "model": "openai/mock-gpt",
        "api_key": "not-a-real-key",
        "mock_response": "hello",
    },
}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def fmt(values: list[float]) -> str:
    return (
        f"p50 {pct(values, 50):7.1f}  p95 {pct(values, 95):7.1f} "
        f" p99 {pct(values, 99):7.1f}  max {max(values):7.1f} ms"
    )


def wait_relay(litellm_dsn: str, deadline_seconds: float = 60) -> None:
    deadline = time.monotonic() + deadline_seconds
    with psycopg.connect(litellm_dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE "
                "application_name LIKE 'litemaas-hooks[%%]:litellm'"
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.05)
    raise SystemExit("the plugin's relay did not connect")


def bench_adds(proxy: SandboxProxy, backend_dsn: str, adds: int) -> None:
    answer_ms: list[float] = []
    row_ms: list[float] = []
    lag_ms: list[float] = []
    with proxy.client() as client, psycopg.connect(backend_dsn, autocommit=True) as conn:
        for i in range(adds):
            name = f"http-bench-{i}"
            body = {
                "model_name": name,
                "litellm_params": {
                    "model": f"openai/{name}",
                    "api_base": "http://vllm.models.svc:8000/v1",
                    "api_key": "sk-provider-" + "7" * 40,
                    "tpm": 100000,
                    "rpm": 60,
                },
            }
            sent = time.perf_counter()
            response = client.post("/model/new", json=body)
            answered = time.perf_counter()
            if response.status_code != 200:
                raise SystemExit(
                    f"POST /model/new answered {response.status_code}: {response.text[:300]}"
                )
            deadline = answered + 30
            while (
                conn.execute("SELECT 1 FROM public.models WHERE id = %s", (name,)).fetchone()
                is None
            ):
                if time.perf_counter() > deadline:
                    raise SystemExit(f"{name} did not reach the backend within 30 s")
                time.sleep(0.001)  # polling interval of a condition with a deadline
            seen = time.perf_counter()
            answer_ms.append((answered - sent) * 1000)
            row_ms.append((seen - sent) * 1000)
            lag_ms.append(max(0.0, seen - answered) * 1000)
    print(f"\n1. POST /model/new -> backend row, {adds} sequential adds through the real proxy")
    print(f"   HTTP answer            {fmt(answer_ms)}")
    print(f"   request -> backend row {fmt(row_ms)}")
    print(f"   answer -> backend row  {fmt(lag_ms)}")


async def round_(base_url: str, requests: int, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    remaining = requests
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            t = time.perf_counter()
            r = await client.post("/v1/chat/completions", json=body, headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"chat answered {r.status_code}: {r.text[:200]}")
            latencies.append((time.perf_counter() - t) * 1000)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return time.perf_counter() - started, latencies


def bench_requests(
    a: SandboxProxy, b: SandboxProxy, rounds: int, requests: int, concurrency: int
) -> None:
    for proxy in (a, b):  # warm-up
        asyncio.run(round_(proxy.base_url, 50, concurrency))
    totals = {"A": [0.0, 0], "B": [0.0, 0]}
    lat: dict[str, list[float]] = {"A": [], "B": []}
    order: list[str] = []
    for i in range(rounds):
        order += ["A", "B"] if i % 2 == 0 else ["B", "A"]
    for variant in order:
        proxy = a if variant == "A" else b
        seconds, latencies = asyncio.run(round_(proxy.base_url, requests, concurrency))
        totals[variant][0] += seconds
        totals[variant][1] += len(latencies)
        lat[variant] += latencies
    rps = {v: totals[v][1] / totals[v][0] for v in totals}
    print(
        f"\n2. LLM requests (mock_response) on DB-backed proxies, rounds {' '.join(order)}, "
        f"{requests} requests x concurrency {concurrency}"
    )
    for v, label in (("A", "without plugin"), ("B", "with plugin   ")):
        print(
            f"   {v} {label}: {rps[v]:7.1f} req/s   p50 "
            f"{pct(lat[v], 50):6.1f} ms   p99 {pct(lat[v], 99):6.1f} ms"
        )
    print(
        f"   B/A: throughput {rps['B'] / rps['A']:.3f}   "
        f"p50 {pct(lat['B'], 50) / pct(lat['A'], 50):.3f}   "
        f"p99 {pct(lat['B'], 99) / pct(lat['A'], 99):.3f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adds", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    print(f"http_latency: {machine()}")
    with databases() as (pg, litellm_dsn, backend_dsn):
        pg.create_database("litellm_plain")
        apply_litellm_schema(pg.dsn("litellm_plain"))
        install(litellm_dsn, backend_dsn)
        with sandbox_proxy(
            litellm_dsn, backend_dsn=backend_dsn, master_key=MASTER_KEY, models=[MOCK_MODEL]
        ) as b:
            wait_relay(litellm_dsn)
            where = "network namespace" if b.isolated else "host loopback"
            print(
                f"proxy B (plugin) LiteLLM {b.litellm_version} "
                f"up in {b.startup_seconds:.1f} s, {where}"
            )
            # first the request A/B (both proxies serve the same single model), then the adds on B
            with sandbox_proxy(
                pg.dsn("litellm_plain"), plugin=False, master_key=MASTER_KEY, models=[MOCK_MODEL]
            ) as a:
                print(f"proxy A (no plugin) up in {a.startup_seconds:.1f} s")
                bench_requests(a, b, args.rounds, args.requests, args.concurrency)
            bench_adds(b, backend_dsn, args.adds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
