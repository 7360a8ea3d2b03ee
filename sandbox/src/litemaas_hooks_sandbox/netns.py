"""A process in a network namespace that has only loopback, reachable from the host through a Unix
socket.

``unshare --net`` gives the LiteLLM proxy a namespace with nothing but its own ``lo``: whatever it
tries to reach off the machine fails at once, and its port is private to it. A process in that
namespace cannot be reached from the host's loopback, but a Unix socket is a file, shared by both
sides, so:

    host 127.0.0.1:<port>  --(tcp-to-uds bridge, host side)-->  <dir>/proxy.sock
        --(uds-to-tcp bridge, inside the namespace)-->  127.0.0.1:<port> (the proxy, inside)

The browser, httpx and the tests use the host address; the proxy only ever sees loopback. PostgreSQL
is reached from inside through its Unix socket directory the same way (``host=<socket dir>`` in the
DSN).

Commands (both run by :mod:`litemaas_hooks_sandbox.proxy`):

* ``python -m litemaas_hooks_sandbox.netns inside --uds PATH --port N -- CMD...``: run under
  ``unshare --net``: bring ``lo`` up, serve ``PATH`` -> ``127.0.0.1:N``, run ``CMD`` and exit with
  its status (SIGTERM/SIGINT are passed on to it).
* ``python -m litemaas_hooks_sandbox.netns outside --listen HOST:PORT --uds PATH``: on the host.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Final

_CHUNK: Final = 65536


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()


Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _handler(connect: Callable[[], Awaitable[Streams]]) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await connect()
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except asyncio.CancelledError:
            pass  # the bridge is shutting down: drop the connection quietly
        finally:
            for w in (writer, up_writer):
                w.close()
                with contextlib.suppress(Exception):
                    await w.wait_closed()

    return handle


async def serve_uds_to_tcp(path: str, port: int) -> asyncio.AbstractServer:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    handle = _handler(lambda: asyncio.open_connection("127.0.0.1", port))
    return await asyncio.start_unix_server(handle, path=path)


async def serve_tcp_to_uds(host: str, port: int, path: str) -> asyncio.AbstractServer:
    handle = _handler(lambda: asyncio.open_unix_connection(path))
    return await asyncio.start_server(handle, host=host, port=port, reuse_address=True)


def _loopback_up() -> None:
    ip = shutil.which("ip") or "/usr/sbin/ip"
    subprocess.run([ip, "link", "set", "lo", "up"], check=True)  # noqa: S603 - fixed argv, no shell


async def _inside(uds: str, port: int, command: list[str]) -> int:
    _loopback_up()
    server = await serve_uds_to_tcp(uds, port)
    process = await asyncio.create_subprocess_exec(*command)
    loop = asyncio.get_running_loop()

    def forward(sig: signal.Signals) -> None:
        if process.returncode is None:
            process.send_signal(sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, forward, sig)
    try:
        return await process.wait()
    finally:
        server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(uds)


async def _outside(host: str, port: int, uds: str) -> int:
    server = await serve_tcp_to_uds(host, port, uds)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m litemaas_hooks_sandbox.netns")
    sub = parser.add_subparsers(dest="side", required=True)
    inside = sub.add_parser(
        "inside", help="run CMD in this (new) namespace, reachable through --uds"
    )
    inside.add_argument("--uds", required=True)
    inside.add_argument("--port", type=int, required=True)
    inside.add_argument("command", nargs=argparse.REMAINDER)
    outside = sub.add_parser("outside", help="listen on the host's loopback, forward to --uds")
    outside.add_argument("--listen", required=True, help="HOST:PORT")
    outside.add_argument("--uds", required=True)
    args = parser.parse_args(argv)
    if args.side == "inside":
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        if not command:
            parser.error("inside: no command given after --")
        return asyncio.run(_inside(args.uds, args.port, command))
    host, _, port = args.listen.rpartition(":")
    return asyncio.run(_outside(host, int(port), args.uds))


if __name__ == "__main__":
    sys.exit(main())
