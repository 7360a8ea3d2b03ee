"""Shared by the benchmark scripts: a throwaway
PostgreSQL with both schemas, and LiteLLM-made rows."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg

from litemaas_hooks_sandbox.cluster import LocalPostgres
from litemaas_hooks_sandbox.litellm_admin import encrypted_row
from litemaas_hooks_sandbox.litellm_schema import apply_litellm_schema
from litemaas_hooks_sandbox.litemaas_schema import apply_litemaas_schema

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
MASTER_KEY = "sk-" + secrets.token_hex(32)

INSERT_ROW = """
INSERT INTO public."LiteLLM_ProxyModelTable"
    (model_id, model_name, litellm_params, model_info, created_by, updated_by)
VALUES (%s, %s, %s::jsonb, %s::jsonb, 'bench', 'bench')
"""


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


# Production-like durability: fsync and synchronous commit on, data on disk (not tmpfs). Per-row
# writers pay a WAL flush per commit there, as they do against a real server.
DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}


@contextlib.contextmanager
def databases(*, durable: bool = False) -> Iterator[tuple[LocalPostgres, str, str]]:
    """(cluster, litellm_dsn, backend_dsn) on a fresh
    throwaway server (``durable``: on disk, fsync on)."""
    kwargs: dict[str, Any] = {"settings": DURABLE, "base_dir": "/var/tmp"} if durable else {}
    with LocalPostgres(**kwargs) as pg:
        pg.create_database("litellm_db")
        pg.create_database("litemaas_db")
        apply_litellm_schema(pg.dsn("litellm_db"))
        apply_litemaas_schema(pg.dsn("litemaas_db"))
        yield pg, pg.dsn("litellm_db"), pg.dsn("litemaas_db")


def model_row(i: int, *, key: str = MASTER_KEY) -> tuple[Any, ...]:
    params = {
        "model": f"openai/bench-model-{i}",
        "api_base": f"http://vllm-{i % 17}.models.svc:8000/v1",
        "api_key": "sk-provider-" + "7" * 40,
        "rpm": 60,
        "tpm": 100000,
    }
    info = {
        "id": str(uuid.uuid4()),
        "supports_function_calling": i % 2 == 0,
        "description": f"model {i}",
    }
    row = encrypted_row(f"bench-model-{i}", params, info, key=key)
    lp, mi = row["litellm_params"], row["model_info"]
    import json

    return (
        row["model_id"],
        row["model_name"],
        lp if isinstance(lp, str) else json.dumps(lp),
        mi if isinstance(mi, str) else json.dumps(mi),
    )


def seed(dsn: str, count: int, *, start: int = 0) -> float:
    started = time.perf_counter()
    rows = [model_row(i) for i in range(start, start + count)]
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(INSERT_ROW, rows)
    return time.perf_counter() - started


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024
