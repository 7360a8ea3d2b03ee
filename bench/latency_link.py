"""A TCP link with a round-trip time of its own, and a counter of round trips (benchmarks only).

No netem on these machines: this asyncio proxy sits between a client and PostgreSQL and delivers
every chunk of bytes ``rtt / 2`` after it arrived, in each direction, in order. It runs in a thread
of its own (its own event loop), so the process that uses it may block.

It also COUNTS round trips, per connection: a *flight* is client data sent after the server last
answered (the first client bytes of a connection, or the first client bytes after server bytes). A
client that pipelines several statements before reading makes one flight; a client that waits for
each answer makes one per statement. Counted at the proxy, from the bytes: nothing is inferred.

    link = LatencyLink("127.0.0.1", 5432, rtt_ms=65).start()
    dsn = link.dsn(original_dsn)     # same database, through the link
    before = link.flights()
    ...
    print(link.flights() - before)
    link.stop()
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

CHUNK = 65536


@dataclass
class _Conn:
    flights: int = 0
    last_from_server: bool = True  # the first client bytes are a flight
    opened: float = field(default_factory=time.monotonic)


class LatencyLink:
    """A delaying, round-trip-counting TCP proxy to ``host:port`` (see the module docstring)."""

    def __init__(self, host: str, port: int, *, rtt_ms: float = 0.0) -> None:
        self.upstream = (host, port)
        self.one_way = rtt_ms / 2000.0
        self.rtt_ms = rtt_ms
        self.port = 0
        self._conns: list[_Conn] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self.trace: list[str] | None = (
            None  # set to a list: each flight's first bytes, for debugging
        )

    # -- control (any thread) --------------------------------------------------------------------

    def start(self) -> LatencyLink:
        self._thread = threading.Thread(
            target=self._run, name=f"latency-link-{self.rtt_ms:g}ms", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the latency link did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def dsn(self, dsn: str) -> str:
        """``dsn`` (a postgresql:// URL) with host and port replaced by this link's."""
        url = urlsplit(dsn)
        userinfo = url.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return urlunsplit(url._replace(netloc=netloc))

    def flights(self) -> int:
        """Client -> server flights so far, over every connection (round trips, counted)."""
        with self._lock:
            return sum(c.flights for c in self._conns)

    def connections(self) -> int:
        with self._lock:
            return len(self._conns)

    # -- the proxy (its own thread and loop) -----------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._server = loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            loop.close()

    async def _serve(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        try:
            sreader, swriter = await asyncio.open_connection(*self.upstream)
        except OSError:
            cwriter.close()
            return
        conn = _Conn()
        with self._lock:
            self._conns.append(conn)

        def client_data(data: bytes) -> None:
            with self._lock:
                if conn.last_from_server:
                    conn.flights += 1
                    if self.trace is not None:
                        text = "".join(chr(b) if 32 <= b < 127 else " " for b in data[:400])
                        self.trace.append(" ".join(text.split())[:120])
                conn.last_from_server = False

        def server_data(_data: bytes) -> None:
            with self._lock:
                conn.last_from_server = True

        await asyncio.gather(
            self._pump(creader, swriter, client_data),
            self._pump(sreader, cwriter, server_data),
            return_exceptions=True,
        )

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        seen: Callable[[bytes], None],
    ) -> None:
        """Forward bytes, each chunk ``one_way`` seconds after it arrived (order kept)."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            writer.close()

        sender = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await reader.read(CHUNK)
                if data:
                    seen(data)
                queue.put_nowait((time.monotonic() + self.one_way, data))
                if not data:
                    break
            await sender
        except (OSError, asyncio.IncompleteReadError):
            sender.cancel()
            writer.close()
