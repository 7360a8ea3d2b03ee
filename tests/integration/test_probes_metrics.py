"""The standalone relay's /healthz, /readyz and /metrics, scraped over HTTP from a real relay on
real PostgreSQL (LiteLLM's schema, the backend schema), plus the multiprocess mode of the series."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from litemaas_hooks.probes import ProbeServer, run_relay_with_probes
from litemaas_hooks.relay import Relay
from tests.helpers import DROP_TRIGGERS, eventually, insert, install, make_settings

pytestmark = pytest.mark.anyio


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


@asynccontextmanager
async def served(
    relay: Relay,
) -> AsyncIterator[tuple[httpx.AsyncClient, asyncio.Task[None], asyncio.Event]]:
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    server = ProbeServer(relay, alive=lambda: not task.done())
    await server.start("127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{server.port}", timeout=10
        ) as client:
            yield client, task, stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await server.close()


async def test_ready_only_when_connected_trigger_present_and_caught_up_and_metrics_count_events(
    litellm_dsn: str, backend_dsn: str, master_key: str
) -> None:
    await install(litellm_dsn, backend_dsn)
    settings = make_settings(
        litellm_dsn, backend_dsn, master_key, poll_interval_seconds=0.2, max_attempts=1
    )
    relay = Relay(settings, name="probe-relay")
    async with (
        served(relay) as (client, _task, _stop),
        await psycopg.AsyncConnection.connect(litellm_dsn, autocommit=True) as lc,
    ):
        assert (await client.get("/healthz")).status_code == 200

        async def ready() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await eventually(ready, deadline_seconds=30, what="/readyz 200")
        body = (await client.get("/readyz")).json()
        assert body["checks"]["litellm_database_connected"]
        assert body["checks"]["backend_database_connected"]
        assert body["checks"]["trigger_installed"]
        assert body["checks"]["caught_up"]

        before = (await client.get("/metrics")).text
        assert value(before, "litemaas_hooks_database_connected", database="litellm") == 1
        assert value(before, "litemaas_hooks_database_connected", database="backend") == 1
        assert value(before, "litemaas_hooks_trigger_installed") == 1

        await insert(lc, "probe-model", master_key)
        # a name the backend cannot hold: fails, dead at once
        await insert(lc, "x" * 300, master_key)

        async def counted() -> bool:
            text = (await client.get("/metrics")).text
            return (
                value(text, "litemaas_hooks_events_applied_total")
                >= value(before, "litemaas_hooks_events_applied_total") + 1
                and value(text, "litemaas_hooks_outbox_events", status="dead") == 1
            )

        await eventually(counted, deadline_seconds=15, what="applied and dead events counted")
        after = (await client.get("/metrics")).text
        assert value(
            after, "litemaas_hooks_models_converged_total", outcome="created"
        ) >= 1 + value(before, "litemaas_hooks_models_converged_total", outcome="created")
        assert value(after, "litemaas_hooks_events_failed_total", outcome="dead") == 1 + value(
            before, "litemaas_hooks_events_failed_total", outcome="dead"
        )
        # one batch or two: both events may be claimed together
        assert value(after, "litemaas_hooks_apply_duration_seconds_count") >= 1 + value(
            before, "litemaas_hooks_apply_duration_seconds_count"
        )
        assert value(after, "litemaas_hooks_outbox_events", status="pending") == 0
        # dead ones do not count
        assert value(after, "litemaas_hooks_outbox_oldest_pending_age_seconds") == 0

        # LiteLLM drops the trigger (a schema update): not ready, saying why
        await lc.execute(DROP_TRIGGERS)

        async def unready() -> bool:
            r = await client.get("/readyz")
            return r.status_code == 503 and r.json()["checks"]["trigger_installed"] is False

        await eventually(unready, deadline_seconds=15, what="/readyz 503 without the trigger")
        assert value((await client.get("/metrics")).text, "litemaas_hooks_trigger_installed") == 0
        assert (await client.get("/healthz")).status_code == 200  # alive all the same: no restart
        assert (await client.get("/nope")).status_code == 404


async def test_not_ready_while_the_backend_is_unreachable(
    litellm_dsn: str, backend_dsn: str, master_key: str
) -> None:
    await install(litellm_dsn, backend_dsn)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    settings = make_settings(
        litellm_dsn,
        f"postgresql://nobody:Sekr3tPw@127.0.0.1:{closed_port}/none",
        master_key,
        reconnect_max_seconds=0.2,
    )
    relay = Relay(settings, name="probe-relay-down")
    async with served(relay) as (client, _task, _stop):

        async def reconnecting() -> bool:
            return relay.stats.reconnects >= 2

        await eventually(reconnecting, deadline_seconds=15, what="the relay retries")
        r = await client.get("/readyz")
        assert r.status_code == 503
        checks = r.json()["checks"]
        assert checks["backend_database_connected"] is False
        assert checks["caught_up"] is False
        # the last error names the server, never the password
        assert "Sekr3tPw" not in json.dumps(checks)
        assert (await client.get("/healthz")).status_code == 200
        text = (await client.get("/metrics")).text
        assert value(text, "litemaas_hooks_database_connected", database="backend") == 0
        assert value(text, "litemaas_hooks_reconnects_total") >= 2


async def test_relay_command_serves_on_the_configured_port_and_stops(
    litellm_dsn: str, backend_dsn: str, master_key: str
) -> None:
    await install(litellm_dsn, backend_dsn)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = make_settings(
        litellm_dsn,
        backend_dsn,
        master_key,
        http_port=port,
        http_host="127.0.0.1",
        poll_interval_seconds=0.2,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_relay_with_probes(settings, stop=stop))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:

        async def ready() -> bool:
            try:
                return (await client.get("/readyz")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(ready, deadline_seconds=30, what="relay command ready on its port")
        assert "litemaas_hooks_outbox_events" in (await client.get("/metrics")).text
        stop.set()
        await asyncio.wait_for(task, 30)
        with pytest.raises(httpx.TransportError):
            await client.get("/healthz")


MULTIPROC = textwrap.dedent(
    """
    import os, sys
    from litemaas_hooks import metrics
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess
    obs = metrics.Observer()
    obs.connected_to("litellm")
    obs.batch(applied=3, seconds=0.01, outcomes={})
    obs.full_reconcile(ok=True)
    metrics.OUTBOX_EVENTS.labels(status="pending").set(7)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    sys.stdout.write(generate_latest(registry).decode())
    """
)


def test_series_are_multiprocess_safe(tmp_path: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR set (LiteLLM with several workers) every series declares how
    processes combine, and the aggregated output holds them."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", MULTIPROC], env=env, capture_output=True, text=True, check=True
    )
    text = out.stdout
    assert value(text, "litemaas_hooks_events_applied_total") == 3
    assert value(text, "litemaas_hooks_outbox_events", status="pending") == 7
    assert value(text, "litemaas_hooks_database_connected", database="litellm") == 1
    assert value(text, "litemaas_hooks_full_reconciles_total", result="ok") == 1
    assert list(tmp_path.glob("*.db")), "values went to the multiprocess directory"
