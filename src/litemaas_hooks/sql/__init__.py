"""SQL lives in ``.sql`` files next to this module, loaded with importlib.resources.

- ``<side>/migrations/NNNN_name.sql``: versioned schema migrations (side = ``backend`` or ``litellm``).
- ``<side>/queries.sql``: named queries, each introduced by a ``-- name: query_name`` line.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from typing import Literal

Side = Literal["backend", "litellm"]

_NAME_LINE = re.compile(r"^--\s*name:\s*(?P<name>[a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def _side(side: Side) -> resources.abc.Traversable:
    return resources.files(__package__).joinpath(side)


@functools.cache
def migrations(side: Side) -> tuple[Migration, ...]:
    """All migrations of one side, ordered by version."""
    out = []
    folder = _side(side).joinpath("migrations")
    for entry in folder.iterdir():
        m = re.fullmatch(r"(?P<v>\d{4})_(?P<n>[a-z0-9_]+)\.sql", entry.name)
        if m:
            out.append(Migration(int(m["v"]), m["n"], entry.read_text(encoding="utf-8")))
    out.sort(key=lambda mig: mig.version)
    return tuple(out)


@functools.cache
def queries(side: Side) -> dict[str, str]:
    """Named queries of one side: ``{name: sql}``."""
    text = _side(side).joinpath("queries.sql").read_text(encoding="utf-8")
    parts = _NAME_LINE.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    out: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in out:
            raise ValueError(f"duplicate query name {name!r} in sql/{side}/queries.sql")
        out[name] = body.strip().rstrip(";")
    return out


def query(side: Side, name: str) -> str:
    """One named query; KeyError names the file when it does not exist."""
    try:
        return queries(side)[name]
    except KeyError:
        raise KeyError(f"no query {name!r} in sql/{side}/queries.sql") from None
