"""Which cost map LiteLLM would load, and a disk memo of LiteLLM's own answers for it — no LiteLLM
import.

``import litellm`` costs seconds and ~200 MB; a command that only needs the cost-map part of
``/model/info`` does not pay it when the answers for this exact LiteLLM version and cost map are
already known. The memo stores what LiteLLM itself computed (``litellm_adapter.cost_map_lookup``),
keyed by a fingerprint of (LiteLLM version, the cost map's bytes as LiteLLM would read them), so a
new LiteLLM version or a changed map never reuses stale answers.

The source is chosen as LiteLLM chooses it: ``LITELLM_LOCAL_MODEL_COST_MAP`` selects the map bundled
in the installed LiteLLM package (found with ``importlib.util.find_spec``, without running LiteLLM's
``__init__``); otherwise ``LITELLM_MODEL_COST_MAP_URL`` (or LiteLLM's default URL) is fetched with
LiteLLM's 5 s timeout, falling back to the bundled map with ONE warning line — and the fallback is
pinned for the rest of the process (``LITELLM_LOCAL_MODEL_COST_MAP=True``) so a later LiteLLM import
uses the same map and does not warn again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import re
import tempfile
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("litemaas_hooks.cost_map")

DEFAULT_URL = (
    "https://raw.githubusercontent.com/BerriAI/litellm/main/model_prices_and_context_window.json"
)
BUNDLED_FILE = "model_prices_and_context_window_backup.json"
# 2: lookups with the deployment registered like the router; 3: unpriced while registered;
# 4: distinct answers stored once (content ids), mergeable with the copy in LiteLLM's database;
# 5: the copy in LiteLLM's database signed (memo_share): unsigned rows of format 4 are never read
MEMO_FORMAT = 5
FETCH_TIMEOUT_S = 5


def litellm_version() -> str:
    try:
        return importlib.metadata.version("litellm")
    except importlib.metadata.PackageNotFoundError:
        return "none"


def version_tuple(version: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def litellm_package_dir() -> Path | None:
    """The installed LiteLLM package folder, found without executing ``litellm/__init__.py``."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def local_map_forced(env: Mapping[str, str], version: str) -> bool:
    """``LITELLM_LOCAL_MODEL_COST_MAP`` as the given LiteLLM version reads it."""
    value = env.get("LITELLM_LOCAL_MODEL_COST_MAP", "")
    if version_tuple(version) < (1, 82):
        return bool(value)  # 1.81: os.getenv(...) truthiness, so any non-empty value
    return value.lower() == "true"


@dataclass(frozen=True, slots=True)
class Source:
    kind: str  # "local" | "remote"
    where: str
    body: bytes
    version: str

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(f"{MEMO_FORMAT}\0{self.version}\0".encode())
        digest.update(self.body)
        return digest.hexdigest()[:32]


def _bundled(version: str) -> Source:
    folder = litellm_package_dir()
    if folder is None:
        raise RuntimeError("LiteLLM is not installed: pip install 'litellm>=1.81'")
    path = folder / BUNDLED_FILE
    return Source("local", str(path), path.read_bytes(), version)


@functools.cache
def current_source() -> Source:
    """The cost map LiteLLM would load in this process (fetched at most once per process)."""
    version = litellm_version()
    if local_map_forced(os.environ, version):
        return _bundled(version)
    url = os.environ.get("LITELLM_MODEL_COST_MAP_URL") or DEFAULT_URL
    try:
        # S310: the URL is LiteLLM's cost map URL
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:  # noqa: S310
            body = response.read()
        orjson.loads(body)
        return Source("remote", url, body, version)
    except Exception as exc:  # offline, HTTP error, invalid JSON: LiteLLM falls back the same way
        log.warning(
            "could not fetch LiteLLM's model cost map from %s (%s); using the map bundled with "
            "LiteLLM %s (set LITELLM_LOCAL_MODEL_COST_MAP=True to skip the fetch)",
            url,
            type(exc).__name__,
            version,
        )
        # same map, no second warning, for LiteLLM too
        os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
        return _bundled(version)


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    explicit = env.get("LITEMAAS_HOOKS_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "litemaas-hooks"


def lookup_key(model: str, base_model: str | None) -> str:
    return f"{model}\x1f{base_model or ''}"  # not NUL: jsonb (the shared copy) refuses \u0000


def answer_id(body: bytes) -> str:
    """The content id of an answer: its sorted JSON text hashed."""
    return hashlib.sha256(body).hexdigest()[:24]


MAX_PATTERN = 200
# what LiteLLM's ABOVE_THRESHOLD_COST_KEY_PATTERN is made of: literals, \d, classes, groups, ?, +, $
_PATTERN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_\\()?:+$^[]-")


def facts_problem(facts: Mapping[str, Any]) -> str | None:
    """Why version facts cannot be used (None when they can): ``pricing_pattern`` is compiled as a
    regular expression, so it must be a short pattern of the shape LiteLLM uses, without a nested
    quantifier (no catastrophic backtracking), and compile."""
    pattern = facts.get("pricing_pattern")
    if pattern is None:
        return None
    if not isinstance(pattern, str) or len(pattern) > MAX_PATTERN:
        return "pricing_pattern is not a short string"
    if not set(pattern) <= _PATTERN_CHARS or ")+" in pattern or ")*" in pattern or "*" in pattern:
        return f"pricing_pattern {pattern[:60]!r} is not of the shape LiteLLM uses"
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"pricing_pattern does not compile ({exc})"
    return None


@dataclass
class Memo:
    """LiteLLM's answers for one (version, cost map): cost-map lookups and version facts.

    Stored compactly: an answer of LiteLLM >= 1.108 is a ~250-key ``model_info`` that is the same
    for every model its cost map does not know, apart from its ``key`` field; so each distinct
    answer (its ``key`` blanked) is kept once under a content id, and each lookup names its answer
    id, its ``key`` and its ``unpriced`` flag. Content ids make two writers' memos merge by plain
    union (the disk file here, the shared copy in LiteLLM's database: ``memo_share``).
    """

    fingerprint: str
    version: str
    facts: dict[str, Any] = field(default_factory=dict)
    # answer id -> info with key blanked
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    # lookup key -> [answer id, key?, has key, unpriced]
    entries: dict[str, list[Any]] = field(default_factory=dict)
    dirty: bool = False
    unwritable: bool = False  # one warning per process, then answers are kept in memory only
    # lookup keys learnt in this process (not yet shared)
    fresh: set[str] = field(default_factory=set)

    @property
    def path(self) -> Path:
        return cache_dir() / f"model-info-{self.fingerprint}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """``{"info": {...}, "unpriced": bool}`` as LiteLLM answered, a fresh copy; None if
        unknown."""
        parts = self.parts(key)
        if parts is None:
            return None
        shared, own, unpriced = parts
        return {"info": {**shared, **own}, "unpriced": unpriced}

    def parts(self, key: str) -> tuple[Mapping[str, Any], dict[str, Any], bool] | None:
        """The same answer as ``(shared, own, unpriced)``: ``shared`` is the stored answer (one
        object for every lookup with that answer: never mutate it), ``own`` this lookup's matched
        ``key``."""
        entry = self.entries.get(key)
        if entry is None:
            return None
        answer_id, info_key, has_key, unpriced = entry
        template = self.answers.get(answer_id)
        if template is None:  # a torn merge: treat as unknown, LiteLLM answers again
            return None
        return template, ({"key": info_key} if has_key else {}), bool(unpriced)

    def put(self, key: str, answer: Mapping[str, Any]) -> None:
        info = dict(answer.get("info") or {})
        has_key = "key" in info
        info_key = info.get("key")
        if has_key:
            info["key"] = None
        body = orjson.dumps(info, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
        content_id = answer_id(body)
        self.answers.setdefault(content_id, info)
        self.entries[key] = [content_id, info_key, has_key, bool(answer.get("unpriced"))]
        self.fresh.add(key)
        self.dirty = True

    def merge(
        self,
        facts: Mapping[str, Any] | None,
        answers: Mapping[str, Any],
        entries: Mapping[str, Any],
    ) -> int:
        """Add another copy's answers (ours win on a clash; they are LiteLLM's answers either way).
        Returns how many lookups were new here."""
        if facts and not self.facts and facts_problem(facts) is None:
            self.facts = dict(facts)
        for answer_id, info in answers.items():
            if isinstance(info, dict):
                self.answers.setdefault(str(answer_id), info)
        added = 0
        for key, entry in entries.items():
            if key not in self.entries and isinstance(entry, list) and len(entry) == 4:
                self.entries[str(key)] = entry
                added += 1
        return added

    def delta(self) -> tuple[dict[str, Any], dict[str, list[Any]]]:
        """The answers and lookups learnt in this process (what the shared copy may lack)."""
        entries = {k: self.entries[k] for k in self.fresh if k in self.entries}
        answers = {e[0]: self.answers[e[0]] for e in entries.values() if e[0] in self.answers}
        return answers, entries

    @classmethod
    def load(cls, source: Source) -> Memo:
        memo = cls(source.fingerprint, source.version)
        with contextlib.suppress(
            OSError, orjson.JSONDecodeError, TypeError, KeyError, AttributeError
        ):
            data = orjson.loads(memo.path.read_bytes())
            if data.get("format") == MEMO_FORMAT and data.get("fingerprint") == memo.fingerprint:
                memo.merge(data["facts"], data["answers"], data["entries"])
        return memo

    def save(self) -> None:
        """Write atomically (concurrent writers: last one wins, each file is whole). Best effort."""
        if not self.dirty or self.unwritable:
            return
        data = {
            "format": MEMO_FORMAT,
            "fingerprint": self.fingerprint,
            "litellm_version": self.version,
            "facts": self.facts,
            "answers": self.answers,
            "entries": self.entries,
        }
        try:
            folder = self.path.parent
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".model-info-", suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS))
            os.replace(tmp, self.path)
            self.dirty = False
        except OSError as exc:
            self.unwritable = True
            log.warning(
                "cannot write the cost-map memo %s (%s): answers are kept in memory (and in "
                "LiteLLM's "
                "database when installed); set LITEMAAS_HOOKS_CACHE_DIR to a writable folder",
                self.path,
                exc,
            )
