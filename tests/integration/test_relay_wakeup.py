"""The relay's wake-up: a notification never waits for the next poll.

psycopg's ``notifies()`` yields what psycopg saw, then waits for the connection's socket. In
pipeline mode (the relay's claim) psycopg hands libpq's parsed notifications over BEFORE it parses
the results; a change committed while a claim runs is notified right after the claim's
ReadyForQuery, and when both arrive in the same read libpq parses the notification with the last
result, after psycopg looked. ``bench/latency.py`` saw it: one change of 600 waited 5 s, another
run 30 s (the poll interval). The state is made here as psycopg's pipeline leaves it: the bytes
read (``consume_input``) and parsed by the results loop's ``is_busy``, nothing handed over.
"""

from __future__ import annotations

import select
import time

import psycopg
import pytest

from litemaas_hooks import relay

pytestmark = pytest.mark.anyio

CHANNEL = "litemaas_hooks_wakeup_test"


def _parse_like_the_pipeline(conn: psycopg.AsyncConnection[object]) -> None:
    """Wait (deadline) until the notification is on the socket, then read and parse it as
    psycopg's ``_pipeline_communicate`` does after its last ``_consume_notifies``."""
    deadline = time.monotonic() + 10
    while not select.select([conn.pgconn.socket], [], [], 0.05)[0]:
        assert time.monotonic() < deadline, "the notification never reached the socket"
    conn.pgconn.consume_input()
    assert not conn.pgconn.is_busy()


async def test_a_notification_libpq_parsed_after_psycopg_looked_wakes_the_relay(
    litellm_dsn: str,
) -> None:
    async with (
        await psycopg.AsyncConnection.connect(litellm_dsn, autocommit=True) as listener,
        await psycopg.AsyncConnection.connect(litellm_dsn, autocommit=True) as writer,
    ):
        await listener.execute(f"LISTEN {CHANNEL}")
        await writer.execute("SELECT pg_notify(%s, 'x')", (CHANNEL,))
        _parse_like_the_pipeline(listener)
        # psycopg saw nothing: without looking into libpq's queue this sleeps 3 s, then says False
        woke = await relay._next_notification(listener, 3.0)
        assert woke, "the parsed notification was left in libpq's queue: the relay slept"
        # and a later notification still wakes it the usual way
        await writer.execute("SELECT pg_notify(%s, 'y')", (CHANNEL,))
        assert await relay._next_notification(listener, 10.0)


async def test_no_notification_no_wake_up(litellm_dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(litellm_dsn, autocommit=True) as listener:
        await listener.execute(f"LISTEN {CHANNEL}")
        assert not await relay._next_notification(listener, 0.2)
