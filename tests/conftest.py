"""Shared pytest fixtures: one throwaway PostgreSQL
server per test session, cheap per-test databases.

Fixture names are a contract (other test modules use them):

- ``pg_cluster`` (session): a started ``LocalPostgres`` with template databases ``tpl_litellm``
  (LiteLLM's real schema from litellm-proxy-extras) and ``tpl_litemaas`` (the LiteMaaS backend's own
  migrations, run with tsx); ``tpl_shared`` (both schemas, the RHDP "shared database" topology) is
  built on first use. Templates refuse connections (clone them, never connect to them).
- ``litellm_dsn`` / ``backend_dsn`` / ``shared_dsn`` (function): a fresh database cloned from the
  matching template (``CREATE DATABASE x TEMPLATE
  tpl_...``), dropped ``WITH (FORCE)`` after the test.
- ``master_key`` (session): ``sk-`` + 64 hex chars.
- ``hooks_env`` (function): ``{LITEMAAS_DATABASE_URL, LITELLM_DATABASE_URL, LITELLM_MASTER_KEY}``
  for running the CLI as a subprocess (merge it into ``os.environ``).

``LITELLM_LOCAL_MODEL_COST_MAP=True`` is set for the
whole session (no network fetch of the cost map).
"""

from __future__ import annotations

import itertools
import os
import queue
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from psycopg import sql

from litemaas_hooks_sandbox.cluster import LocalPostgres
from litemaas_hooks_sandbox.litellm_schema import apply_litellm_schema
from litemaas_hooks_sandbox.litemaas_schema import apply_litemaas_schema

TPL_LITELLM = "tpl_litellm"
TPL_LITEMAAS = "tpl_litemaas"
TPL_SHARED = "tpl_shared"


@dataclass
class _Timings:
    cluster_start: float | None = None
    litellm_schema: float | None = None
    litellm_migrations: int = 0
    litemaas_schema: float | None = None
    clones: list[float] = field(default_factory=list)
    drops: list[float] = field(default_factory=list)


_timings = _Timings()
_db_counter = itertools.count(1)
_built_templates: set[str] = set()


def pytest_configure(config: pytest.Config) -> None:
    # LiteLLM must never fetch its model cost map from the internet during tests.
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    # Tests written before the retire grace period expect the cascade at once: grace 0 and no
    # mass-retire guard unless a test asks for them (tests/integration/test_retire_*.py do).
    os.environ.setdefault("LITEMAAS_HOOKS_RETIRE_GRACE_SECONDS", "0")
    os.environ.setdefault("LITEMAAS_HOOKS_RETIRE_GUARD_MIN_MODELS", "0")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    t = _timings
    if t.cluster_start is None:
        return
    parts = [f"server start {t.cluster_start:.2f}s"]
    if t.litellm_schema is not None:
        parts.append(f"LiteLLM schema {t.litellm_schema:.2f}s ({t.litellm_migrations} migrations)")
    if t.litemaas_schema is not None:
        parts.append(f"backend schema {t.litemaas_schema * 1000:.0f}ms")
    if t.clones:
        avg = sum(t.clones) / len(t.clones)
        parts.append(
            f"{len(t.clones)} clones avg {avg * 1000:.0f}ms max {max(t.clones) * 1000:.0f}ms"
        )
    if t.drops:
        parts.append(f"drops (background) avg {sum(t.drops) / len(t.drops) * 1000:.0f}ms")
    terminalreporter.write_line("embedded postgres: " + ", ".join(parts))


def _build_template(pg: LocalPostgres, name: str) -> None:
    if name == TPL_LITELLM:
        pg.create_database(name)
        result = apply_litellm_schema(pg.dsn(name))
        _timings.litellm_schema = result.seconds
        _timings.litellm_migrations = len(result.applied)
    elif name == TPL_LITEMAAS:
        pg.create_database(name)
        _timings.litemaas_schema = apply_litemaas_schema(pg.dsn(name))
    elif name == TPL_SHARED:
        pg.create_database(name, template=TPL_LITELLM)
        apply_litemaas_schema(pg.dsn(name))
    else:
        raise ValueError(f"unknown template {name!r}")
    # no connections allowed: a stray session on a template makes CREATE DATABASE ... TEMPLATE fail
    pg.mark_template(name, allow_connections=False)
    _built_templates.add(name)


class _Dropper:
    """Drops per-test databases on a background thread with its own connection.

    ``DROP DATABASE ... WITH (FORCE)`` often waits ~100 ms for the test's just-closed sessions to
    exit; doing it off the test's critical path keeps the per-test overhead to the clone alone."""

    def __init__(self, pg: LocalPostgres) -> None:
        self._pg = pg
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, name="test-db-dropper", daemon=True)
        self._thread.start()

    def drop(self, name: str) -> None:
        self._queue.put(name)

    def _run(self) -> None:
        conn = None
        while (name := self._queue.get()) is not None:
            started = time.perf_counter()
            try:
                if conn is None or conn.closed:
                    conn = self._pg.connect()
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
            except Exception as exc:
                self.errors.append(f"{name}: {exc}")
                if conn is not None:
                    conn.close()
                conn = None
            _timings.drops.append(time.perf_counter() - started)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Finish the pending drops."""
        self._queue.put(None)
        self._thread.join(timeout=120)


_dropper: _Dropper | None = None


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[LocalPostgres]:
    """One throwaway PostgreSQL server for the whole run (superuser ``postgres``, random password),
    with the template databases ``tpl_litellm`` and ``tpl_litemaas`` (``tpl_shared`` is built on
    first use of ``shared_dsn``)."""
    started = time.perf_counter()
    with LocalPostgres(max_connections=200) as pg:
        _timings.cluster_start = time.perf_counter() - started
        _built_templates.clear()
        _build_template(pg, TPL_LITELLM)
        _build_template(pg, TPL_LITEMAAS)
        global _dropper
        _dropper = _Dropper(pg)
        try:
            yield pg
        finally:
            dropper, _dropper = _dropper, None
            dropper.close()
        if dropper.errors:
            raise RuntimeError("dropping test databases failed:\n" + "\n".join(dropper.errors))


def _clone(pg: LocalPostgres, template: str, kind: str) -> Iterator[str]:
    if template not in _built_templates:
        _build_template(pg, template)
    name = f"t_{kind}_{next(_db_counter)}_{secrets.token_hex(3)}"
    started = time.perf_counter()
    pg.create_database(name, template=template)
    _timings.clones.append(time.perf_counter() - started)
    try:
        yield pg.dsn(name)
    finally:
        if _dropper is not None and pg.running:
            _dropper.drop(name)


@pytest.fixture
def litellm_dsn(pg_cluster: LocalPostgres) -> Iterator[str]:
    """A fresh database with LiteLLM's schema (the LiteLLM DB of the two-database topology)."""
    yield from _clone(pg_cluster, TPL_LITELLM, "litellm")


@pytest.fixture
def backend_dsn(pg_cluster: LocalPostgres) -> Iterator[str]:
    """A fresh database with the LiteMaaS backend schema (the backend DB)."""
    yield from _clone(pg_cluster, TPL_LITEMAAS, "backend")


@pytest.fixture
def shared_dsn(pg_cluster: LocalPostgres) -> Iterator[str]:
    """A fresh database holding both schemas (the RHDP shared-database topology)."""
    yield from _clone(pg_cluster, TPL_SHARED, "shared")


@pytest.fixture
def anyio_backend() -> str:
    """``pytest.mark.anyio`` tests run on asyncio (the relay's loop)."""
    return "asyncio"


@pytest.fixture(scope="session")
def master_key() -> str:
    """A strong LiteLLM master key: ``sk-`` + 64 hex chars."""
    return "sk-" + secrets.token_hex(32)


@pytest.fixture
def hooks_env(backend_dsn: str, litellm_dsn: str, master_key: str) -> dict[str, str]:
    """Env vars for running the CLI as a subprocess: ``env={**os.environ, **hooks_env}``."""
    return {
        "LITEMAAS_DATABASE_URL": backend_dsn,
        "LITELLM_DATABASE_URL": litellm_dsn,
        "LITELLM_MASTER_KEY": master_key,
    }
