"""Which database errors are the database's fault (an outage or contention), not the event's.

An attempt (``model_events.attempts``) is spent only on a failure that says something about the
model: a value the backend rejects, a constraint. When the database cannot take the write at all —
read-only after a failover, disk full, too many connections, an admin shutdown, a lost connection —
or another session holds a lock we would have to wait for, the same write will succeed later
unchanged: the work is given back without an attempt and retried (``outage``: after reconnecting
with backoff; ``contention``: after a short delay, on the same connection).

Timeouts and replicas, each with its own outcome (and ``explain`` names the setting to look at):

- ``statement_timeout`` (57014, query_canceled): NOT contention: the statement did run, for too
  long; it is the batch's failure and spends an attempt, so it ends ``dead`` after max_attempts
  (with the setting named in its last error) instead of being deferred forever;
- ``lock_timeout`` (55P03): contention, retried after a short delay without an attempt; the relay
  logs a warning when events stay deferred long, and ``status`` reports the old backlog;
- ``idle_in_transaction_session_timeout`` (25P03, the server ends the session): an outage
  (reconnect);
- a read-only server (25006: a replica after a failover, ``default_transaction_read_only``), on
  either side: an outage, retried with backoff, each retry logged with the fix (point the URL at the
  primary);
- a failover or restart (57P01/57P02/57P03, a lost connection): an outage; claims are given back.

Classification by SQLSTATE (https://www.postgresql.org/docs/current/errcodes-appendix.html).
"""

from __future__ import annotations

from typing import Literal

import psycopg

Kind = Literal["outage", "contention"]

# whole classes: connection exception, insufficient resources (disk full, out of memory, too many
# connections), operator intervention (admin/crash shutdown, cannot connect now, database dropped),
# system error (I/O), configuration file error
_OUTAGE_CLASSES = ("08", "53", "57P", "58", "F0")
_OUTAGE_STATES = {
    "25006",  # read_only_sql_transaction: default_transaction_read_only, a standby after failover
    "25P03",  # idle_in_transaction_session_timeout: the server ended the session
    "25P04",  # transaction_timeout
    "72000",  # snapshot_too_old
}
_CONTENTION_STATES = {
    "55P03",  # lock_not_available: our lock_timeout, NOWAIT
    "55006",  # object_in_use
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
}
# 57014 (query_canceled: statement_timeout, or an admin's pg_cancel_backend) is the batch's failure
# (an attempt): see the module docstring.

_HINTS = {
    "57014": "a statement ran longer than statement_timeout (SQLSTATE 57014); retried with an "
    "attempt. If it repeats, raise statement_timeout for the relay's role (ALTER ROLE ... SET "
    "statement_timeout = '60s') or lower LITEMAAS_HOOKS_BATCH_SIZE",
    "55P03": "another transaction held a lock longer than our lock_timeout (SQLSTATE 55P03); "
    "retried shortly without an attempt. If it persists, find the holder in pg_locks / "
    "pg_stat_activity",
    "25P03": "the server ended the session after idle_in_transaction_session_timeout "
    "(SQLSTATE 25P03); reconnecting. If it repeats, raise idle_in_transaction_session_timeout "
    "for the relay's role",
    "25006": "the server is read-only (SQLSTATE 25006: a replica after a failover, or "
    "default_transaction_read_only=on); retried without attempts. The database URL must name the "
    "primary (on RDS/Aurora: the writer or cluster endpoint, not a reader endpoint)",
    "57P01": "the server is shutting down or restarting (SQLSTATE 57P01: a failover, a restart); "
    "reconnecting with backoff",
    "57P02": "the server crashed (SQLSTATE 57P02); reconnecting with backoff",
    "57P03": "the server is starting up or in recovery (SQLSTATE 57P03: a failover in progress); "
    "reconnecting with backoff",
}


def classify(exc: BaseException) -> Kind | None:
    """``outage`` / ``contention`` for errors that are not the data's fault, else None."""
    if isinstance(exc, psycopg.InterfaceError):
        return "outage"  # the connection object is closed or broken
    if not isinstance(exc, psycopg.Error):
        return None
    state = exc.sqlstate or ""
    if state in _CONTENTION_STATES:
        return "contention"
    if state in _OUTAGE_STATES or state.startswith(_OUTAGE_CLASSES):
        return "outage"
    if not state and isinstance(exc, psycopg.OperationalError):
        return "outage"  # a client-side connection failure carries no SQLSTATE
    return None


def explain(exc: BaseException) -> str | None:
    """What a timeout, a read-only server or a failover means and what to set (None for others)."""
    if not isinstance(exc, psycopg.Error):
        return None
    state = exc.sqlstate or ""
    if not state and "idle-in-transaction" in str(exc):  # the FATAL text of a session ended by it
        state = "25P03"
    return _HINTS.get(state)

