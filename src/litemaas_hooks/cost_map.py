"""Which cost map LiteLLM would load, and a disk memo of LiteLLM's own answers for it — no LiteLLM import.

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
import tempfile
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("litemaas_hooks.cost_map")

DEFAULT_URL = "https://raw.githubusercontent.com/BerriAI/litellm/main/model_prices_and_context_window.json"
BUNDLED_FILE = "model_prices_and_context_window_backup.json"
MEMO_FORMAT = 3  # 2: lookups with the deployment registered like the router; 3: unpriced while registered
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
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:  # noqa: S310 (LiteLLM's URL)
            body = response.read()
        orjson.loads(body)
        return Source("remote", url, body, version)
    except Exception as exc:  # offline, HTTP error, invalid JSON: LiteLLM falls back the same way
        log.warning(
            "could not fetch LiteLLM's model cost map from %s (%s); using the map bundled with LiteLLM %s "
            "(set LITELLM_LOCAL_MODEL_COST_MAP=True to skip the fetch)",
            url,
            type(exc).__name__,
            version,
        )
        os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # same map, no second warning, for LiteLLM too
        return _bundled(version)


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    explicit = env.get("LITEMAAS_HOOKS_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "litemaas-hooks"


def lookup_key(model: str, base_model: str | None) -> str:
    return f"{model}\x00{base_model or ''}"


@dataclass
class Memo:
    """LiteLLM's answers for one (version, cost map): cost-map lookups and version facts."""

    fingerprint: str
    version: str
    facts: dict[str, Any] = field(default_factory=dict)
    lookups: dict[str, dict[str, Any]] = field(default_factory=dict)
    dirty: bool = False
    unwritable: bool = False  # one warning per process, then answers are kept in memory only

    @property
    def path(self) -> Path:
        return cache_dir() / f"model-info-{self.fingerprint}.json"

    @classmethod
    def load(cls, source: Source) -> Memo:
        memo = cls(source.fingerprint, source.version)
        with contextlib.suppress(OSError, orjson.JSONDecodeError, TypeError, KeyError):
            data = orjson.loads(memo.path.read_bytes())
            if data.get("format") == MEMO_FORMAT and data.get("fingerprint") == memo.fingerprint:
                memo.facts = dict(data["facts"])
                memo.lookups = dict(data["lookups"])
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
            "lookups": self.lookups,
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
                "cannot write the cost-map memo %s (%s): each process will import LiteLLM to learn its answers; "
                "set LITEMAAS_HOOKS_CACHE_DIR to a writable folder",
                self.path,
                exc,
            )
