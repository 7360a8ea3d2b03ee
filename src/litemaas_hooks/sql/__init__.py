"""SQL lives in ``.sql`` files next to this module, loaded with importlib.resources.

- ``<side>/migrations/NNNN_name.sql``: versioned schema migrations (side = ``backend`` or
  ``litellm``).
- ``<side>/repeatable/name.sql``: idempotent statements run on every install, after the migrations
  (e.g. re-creating a trigger that LiteLLM's own schema update dropped).
- ``<side>/*.sql`` (top level): named queries, each introduced by a ``-- name: query_name`` line.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from litemaas_hooks.settings import Which

# a folder of SQL files: one per database, and ``common`` (the migrations ledger) for both
Folder = Which | Literal["common"]

_NAME_LINE = re.compile(r"^--\s*name:\s*(?P<name>[a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def _side(side: Folder) -> resources.abc.Traversable:
    return resources.files(__package__).joinpath(side)


@functools.cache
def migrations(side: Folder) -> tuple[Migration, ...]:
    """All migrations of one side, ordered by version."""
    out = []
    folder = _side(side).joinpath("migrations")
    if not folder.is_dir():
        return ()
    for entry in folder.iterdir():
        m = re.fullmatch(r"(?P<v>\d{4})_(?P<n>[a-z0-9_]+)\.sql", entry.name)
        if m:
            out.append(Migration(int(m["v"]), m["n"], entry.read_text(encoding="utf-8")))
    out.sort(key=lambda mig: mig.version)
    return tuple(out)


@functools.cache
def repeatables(side: Folder) -> tuple[Migration, ...]:
    """Idempotent scripts of one side, run on every install, in name order."""
    folder = _side(side).joinpath("repeatable")
    if not folder.is_dir():
        return ()
    out = [
        Migration(0, entry.name.removesuffix(".sql"), entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    ]
    out.sort(key=lambda mig: mig.name)
    return tuple(out)


@functools.cache
def queries(side: Folder) -> dict[str, str]:
    """Named queries of one side (every top-level ``sql/<side>/*.sql`` file): ``{name: sql}``."""
    out: dict[str, str] = {}
    sql_files = (e for e in _side(side).iterdir() if e.name.endswith(".sql"))
    files = sorted(sql_files, key=lambda e: e.name)
    for entry in files:
        parts = _NAME_LINE.split(entry.read_text(encoding="utf-8"))
        # parts = [preamble, name1, body1, name2, body2, ...]
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in out:
                raise ValueError(f"duplicate query name {name!r} in sql/{side}/{entry.name}")
            out[name] = body.strip().rstrip(";")
    return out


def query(side: Folder, name: str) -> str:
    """One named query; KeyError names the file when it does not exist."""
    try:
        return queries(side)[name]
    except KeyError:
        raise KeyError(f"no query {name!r} in sql/{side}/*.sql") from None
