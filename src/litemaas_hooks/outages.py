"""Which database errors are the database's fault (an outage or contention), not the event's.

An attempt (``model_events.attempts``) is spent only on a failure that says something about the model:
a value the backend rejects, a constraint. When the database cannot take the write at all — read-only
after a failover, disk full, too many connections, an admin shutdown, a lost connection — or another
session holds a lock we would have to wait for, the same write will succeed later unchanged: the work
is given back without an attempt and retried (``outage``: after reconnecting with backoff;
``contention``: after a short delay, on the same connection).

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
    "25006",  # read_only_sql_transaction: default_transaction_read_only, a hot standby after failover
    "25P04",  # transaction_timeout
    "72000",  # snapshot_too_old
}
_CONTENTION_STATES = {
    "55P03",  # lock_not_available: our lock_timeout, NOWAIT
    "55006",  # object_in_use
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "57014",  # query_canceled: a statement_timeout (ours or the role's)
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


def is_outage(exc: BaseException) -> bool:
    return classify(exc) == "outage"


def not_the_data(exc: BaseException) -> bool:
    """True when retrying the same write later can succeed (outage or contention): never an attempt."""
    return classify(exc) is not None
