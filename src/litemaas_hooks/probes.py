"""HTTP probes and metrics of the standalone relay (``litemaas-hooks relay``).

Served on ``LITEMAAS_HOOKS_HTTP_HOST``:``LITEMAAS_HOOKS_HTTP_PORT`` (port default ``0`` = off; the
relay image and the manifests set ``9464``; host default ``0.0.0.0``), on the relay's own event loop
(no thread, no extra dependency):

- ``GET /healthz``: 200 while the relay loop runs (it retries database outages forever, so a
  database outage is not a reason to restart the pod); 503 once the relay task has ended.
- ``GET /readyz``: 200 when both databases are connected, the outbox trigger is installed and the
  relay has drained the outbox since it (re)connected; else 503 naming what is missing. JSON body.
- ``GET /metrics``: the Prometheus text format of prometheus_client's default registry (or of
  ``PROMETHEUS_MULTIPROC_DIR`` when set); see ``metrics.py`` for the series.

Inside the LiteLLM proxy this server is not started: the same series appear in LiteLLM's
``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from litemaas_hooks.relay import Relay
from litemaas_hooks.settings import Settings

log = logging.getLogger("litemaas_hooks.probes")

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


def readiness(relay: Relay) -> tuple[bool, dict[str, Any]]:
    """(ready, checks) of one relay, as ``/readyz`` reports them."""
    obs = relay.observe
    checks: dict[str, Any] = {
        "litellm_database_connected": obs.connected["litellm"],
        "backend_database_connected": obs.connected["backend"],
        "trigger_installed": bool(obs.trigger_ok),
        "caught_up": relay.ready.is_set(),
    }
    ready = all(checks.values())
    if obs.counts is not None:
        checks["outbox"] = {
            "pending": obs.counts.pending,
            "claimed": obs.counts.claimed,
            "dead": obs.counts.dead,
            "oldest_pending_age_seconds": obs.counts.oldest_pending_age_seconds,
        }
    if relay.stats.last_error and not ready:
        checks["last_error"] = relay.stats.last_error
    return ready, checks


def _metrics_body() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


class ProbeServer:
    """``/healthz``, ``/readyz`` and ``/metrics`` for one relay."""

    def __init__(self, relay: Relay, *, alive: Any = None) -> None:
        """:param alive: callable returning whether the relay task still runs (default: always)."""
        self.relay = relay
        self._alive = alive or (lambda: True)
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        assert self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, host, port)
        log.info("probes: serving /healthz, /readyz and /metrics on %s:%d", host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def respond(self, method: str, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for one request; pure apart from reading the relay's
        state."""
        path = path.split("?", 1)[0]
        if path not in {"/healthz", "/readyz", "/metrics"}:
            return (
                404,
                "text/plain; charset=utf-8",
                b"not found: try /healthz, /readyz or /metrics\n",
            )
        if method not in {"GET", "HEAD"}:
            return 405, "text/plain; charset=utf-8", b"only GET\n"
        if path == "/healthz":
            ok = bool(self._alive())
            return (
                (200 if ok else 503),
                "text/plain; charset=utf-8",
                b"ok\n" if ok else b"relay stopped\n",
            )
        if path == "/readyz":
            ready, checks = readiness(self.relay)
            body = json.dumps({"ready": ready, "checks": checks}, sort_keys=True).encode() + b"\n"
            return (200 if ready else 503), "application/json", body
        return 200, CONTENT_TYPE_LATEST, _metrics_body()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, path, *_ = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            status, ctype, body = self.respond(method, path)
            head = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass  # a client that hung up or sent garbage: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def run_relay_with_probes(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """``litemaas-hooks relay``: the relay, plus the probe server unless ``http_port`` is 0."""
    relay = Relay(settings)
    if settings.http_port == 0:
        await relay.run(stop)
        return
    task = asyncio.ensure_future(relay.run(stop))
    server = ProbeServer(relay, alive=lambda: not task.done())
    try:
        await server.start(settings.http_host, settings.http_port)
    except OSError as exc:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        from litemaas_hooks.errors import ConfigError

        raise ConfigError(
            f"cannot serve probes on {settings.http_host}:{settings.http_port}: "
            f"{exc.strerror or exc}. "
            "Set LITEMAAS_HOOKS_HTTP_PORT to a free port (0 turns the probe server off)."
        ) from None
    try:
        await task
    finally:
        await server.close()
