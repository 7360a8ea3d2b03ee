"""The cost-map memo shared through LiteLLM's database (``litemaas_hooks.cost_map_memo``).

A process outside the proxy learns LiteLLM's cost-map answers by importing LiteLLM (seconds, ~200
MB) and keeps them on disk (``cost_map.Memo``). A pod's disk is gone with the pod, so the answers
are also merged into one row per (LiteLLM version, cost map) fingerprint in LiteLLM's database: the
next backfill Job, or a restarted relay, reads them and does not import LiteLLM for models some
process has already asked about. Best effort throughout: without the table (an install older than
migration 0006), without the grants, or behind a lock, the process keeps its answers to itself and
nothing else changes.

Whoever can write the table (the relay role, i.e. LiteLLM's own role in plugin mode) must not be
able to
steer our decisions through it, so every shared item is signed with a key only our processes and
LiteLLM hold (HMAC-SHA256 under a key derived from LiteLLM's salt key, else its master key, the
same key
that decrypts ``litellm_params``): each lookup entry carries the MAC of (fingerprint, lookup,
entry);
each answer is stored as the exact JSON text its content id hashes; the facts as JSON text with
their
MAC. An item that fails verification is ignored (LiteLLM answers instead) and counted: ``status``
reports it. Without a key nothing is shared.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson
import psycopg
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb

from litemaas_hooks import cost_map, litellm_adapter, sql

log = logging.getLogger("litemaas_hooks.memo_share")

# Never make LiteLLM's database wait for a cache: a locked row or a slow server skips the exchange.
_LIMITS = (
    "SELECT set_config('lock_timeout', '200ms', true), set_config('statement_timeout', '5s', true)"
)


class _State:
    pulled: ClassVar[set[str]] = set()  # fingerprints read from the database in this process
    pruned: ClassVar[set[str]] = set()  # fingerprints whose old rows this process pruned
    unavailable: ClassVar[bool] = False  # no table / no grants here: stop trying in this process
    may_prune: ClassVar[bool] = False  # this role may delete old rows (cost_map_memo_exists)
    ignored: ClassVar[dict[str, int]] = {}  # what failed verification -> how many items


_KEY_LABEL = b"litemaas-hooks cost-map memo v1"


def memo_key(key: str) -> bytes:
    """The signing key: derived from LiteLLM's encryption key (never the key itself)."""
    return hmac.new(key.encode(), _KEY_LABEL, hashlib.sha256).digest()


def _mac(mkey: bytes, *parts: str) -> str:
    return hmac.new(mkey, "\x00".join(parts).encode(), hashlib.sha256).hexdigest()


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()


def sign(
    mkey: bytes,
    fingerprint: str,
    facts: Mapping[str, Any],
    answers: Mapping[str, Any],
    entries: Mapping[str, list[Any]],
) -> tuple[dict[str, Any], dict[str, str], dict[str, list[Any]]]:
    """The shared form of (facts, answers, entries): facts as signed text, each answer as the JSON
    text
    its content id hashes, each entry with its MAC (an answer whose text does not hash to its id is
    left
    out, with the entries naming it)."""
    texts: dict[str, str] = {}
    for answer_id, info in answers.items():
        text = _dumps(info)
        if cost_map.answer_id(text.encode()) == answer_id:
            texts[answer_id] = text
    signed = {
        k: [*e[:4], _mac(mkey, fingerprint, k, _dumps(e[:4]))]
        for k, e in entries.items()
        if len(e) >= 4 and e[0] in texts
    }
    shared_facts: dict[str, Any] = {}
    if facts:
        text = _dumps(facts)
        shared_facts = {"text": text, "mac": _mac(mkey, fingerprint, "facts", text)}
    return shared_facts, texts, signed


def verify(
    mkey: bytes, fingerprint: str, facts: Any, answers: Any, entries: Any
) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[Any]], dict[str, int]]:
    """The items of a shared row that our key signed, as the memo holds them, and the count of those
    that failed (forged, altered, or from a writer without the key), by kind."""
    bad: dict[str, int] = {}
    good_facts: dict[str, Any] = {}
    if isinstance(facts, Mapping) and facts:
        text, mac = facts.get("text"), facts.get("mac")
        ok = isinstance(text, str) and isinstance(mac, str)
        if ok and hmac.compare_digest(_mac(mkey, fingerprint, "facts", str(text)), str(mac)):
            loaded = orjson.loads(str(text))
            if isinstance(loaded, dict) and cost_map.facts_problem(loaded) is None:
                good_facts = loaded
            else:
                bad["facts"] = 1
        else:
            bad["facts"] = 1
    good_entries: dict[str, list[Any]] = {}
    for k, e in (entries if isinstance(entries, Mapping) else {}).items():
        if (
            isinstance(e, list)
            and len(e) == 5
            and isinstance(e[4], str)
            and hmac.compare_digest(_mac(mkey, fingerprint, str(k), _dumps(e[:4])), e[4])
        ):
            good_entries[str(k)] = list(e[:4])
        else:
            bad["entries"] = bad.get("entries", 0) + 1
    good_answers: dict[str, Any] = {}
    wanted = {e[0] for e in good_entries.values()}
    for answer_id, text in (answers if isinstance(answers, Mapping) else {}).items():
        if answer_id not in wanted:
            continue  # nothing signed names it: never used
        info = None
        if isinstance(text, str) and cost_map.answer_id(text.encode()) == answer_id:
            info = orjson.loads(text)
        if isinstance(info, dict):
            good_answers[str(answer_id)] = info
        else:
            bad["answers"] = bad.get("answers", 0) + 1
    dropped = [k for k, e in good_entries.items() if e[0] not in good_answers]
    for k in dropped:
        del good_entries[k]
    return good_facts, good_answers, good_entries, bad


def ignored() -> dict[str, int]:
    """What this process read from the shared memo and ignored because it failed verification."""
    return dict(_State.ignored)


def ignored_problem() -> str | None:
    """One line for ``status`` when the shared memo held items that fail verification, else None."""
    bad = ignored()
    if not bad:
        return None
    what = ", ".join(f"{n} {kind}" for kind, n in sorted(bad.items()))
    return (
        f"the shared cost-map memo (litemaas_hooks.cost_map_memo) held items not signed with this "
        f"installation's key ({what}): they were ignored (LiteLLM answered instead). A role "
        "without the key wrote them: check who may write that table, then clear it "
        "(`DELETE FROM litemaas_hooks.cost_map_memo`; litemaas-hooks refills it)"
    )


def _usable(conn: psycopg.AsyncConnection[Any]) -> bool:
    # only on an idle autocommit connection: our own short transaction, never inside a caller's
    return (
        not _State.unavailable
        and conn.autocommit
        and conn.info.transaction_status == TransactionStatus.IDLE
    )


async def _rollback(conn: psycopg.AsyncConnection[Any]) -> None:
    """End the transaction a failed pipelined round trip left open; never raises."""
    if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
        with contextlib.suppress(psycopg.Error):
            await conn.execute(sql.query("litellm", "rollback"))


async def _available(conn: psycopg.AsyncConnection[Any]) -> bool:
    cur = await conn.execute(sql.query("litellm", "cost_map_memo_exists"))
    row = await cur.fetchone()
    _State.may_prune = bool(row and row[1])
    if not (row and row[0]):
        _State.unavailable = True
        log.debug(
            "no usable litemaas_hooks.cost_map_memo (run `litemaas-hooks install`): "
            "answers stay on disk"
        )
        return False
    return True


async def pull(conn: psycopg.AsyncConnection[Any], key: str | None) -> None:
    """Add the shared answers for this process's fingerprint to its memo (once per process): only
    the
    items signed with ``key``'s memo key; without a key nothing is read."""
    memo = litellm_adapter.memo_in_use()
    if memo is None or not key or memo.fingerprint in _State.pulled or not _usable(conn):
        return
    _State.pulled.add(memo.fingerprint)
    try:
        if not await _available(conn):
            return
        wanted = {"fingerprint": memo.fingerprint}
        try:  # one round trip: BEGIN, limits, read, COMMIT pipelined
            async with conn.pipeline():
                await conn.execute(sql.query("litellm", "begin"))
                await conn.execute(_LIMITS)
                cur = await conn.execute(sql.query("litellm", "cost_map_memo_read"), wanted)
                await conn.execute(sql.query("litellm", "commit"))
        except BaseException:
            await _rollback(conn)
            raise
        row = await cur.fetchone()
        if row is None:
            memo.fresh |= set(memo.entries)  # nothing shared yet: offer everything this disk knows
            return
        facts, answers, entries, bad = verify(memo_key(key), memo.fingerprint, *row)
        if bad:
            for kind, n in bad.items():
                _State.ignored[kind] = _State.ignored.get(kind, 0) + n
            log.warning(
                "ignored %s of the shared cost-map memo: not signed with this installation's key",
                ", ".join(f"{n} {kind}" for kind, n in sorted(bad.items())),
            )
            memo.fresh |= set(memo.entries)  # offer ours again: our push overwrites what failed
        memo.fresh |= set(memo.entries) - set(entries)
        added = memo.merge(facts, answers, entries)
        if added:
            memo.dirty = True  # the disk copy learns them too
        log.debug(
            "read %d cost-map answers from LiteLLM's database (%d new here)", len(entries), added
        )
    except psycopg.Error as exc:
        log.debug(
            "could not read the shared cost-map memo (%s): answers stay on disk", type(exc).__name__
        )


async def push(conn: psycopg.AsyncConnection[Any], key: str | None) -> None:
    """Merge the answers learnt in this process into the shared row, signed with ``key``'s memo key
    (no-op when nothing is new, or without a key)."""
    memo = litellm_adapter.memo_in_use()
    if memo is None or not key or not memo.fresh or not _usable(conn):
        return
    answers, entries = memo.delta()
    facts, answers, entries = sign(memo_key(key), memo.fingerprint, memo.facts, answers, entries)
    if not entries:
        return
    try:
        if memo.fingerprint not in _State.pulled and not await _available(conn):
            return
        merge = {
            "fingerprint": memo.fingerprint,
            "version": memo.version,
            "facts": Jsonb(facts),
            "answers": Jsonb(answers),
            "entries": Jsonb(entries),
        }
        # old rows of other LiteLLM versions: once per process is enough, in the same round trip
        prune = _State.may_prune and memo.fingerprint not in _State.pruned
        try:  # one round trip: BEGIN, limits, merge, [prune,] COMMIT pipelined
            async with conn.pipeline():
                await conn.execute(sql.query("litellm", "begin"))
                await conn.execute(_LIMITS)
                await conn.execute(sql.query("litellm", "cost_map_memo_merge"), merge)
                if prune:
                    fingerprint = {"fingerprint": memo.fingerprint}
                    await conn.execute(sql.query("litellm", "cost_map_memo_prune"), fingerprint)
                await conn.execute(sql.query("litellm", "commit"))
        except BaseException:
            await _rollback(conn)
            raise
        memo.fresh.clear()
        if prune:
            _State.pruned.add(memo.fingerprint)
    except psycopg.Error as exc:
        log.debug(
            "could not share %d cost-map answers (%s): kept on disk",
            len(entries),
            type(exc).__name__,
        )
