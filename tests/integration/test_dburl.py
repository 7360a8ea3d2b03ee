"""The URL LiteLLM's CLI leaves in DATABASE_URL
connects through litemaas-hooks, options honoured."""

from __future__ import annotations

from pathlib import Path

import pytest

from litemaas_hooks.connections import connect
from litemaas_hooks.settings import load_settings
from tests.litellm_cli_url import cli_database_url

pytestmark = pytest.mark.anyio


CONFIG = """
general_settings:
  database_connection_pool_limit: 3
  database_connection_pool_timeout: 15
  database_connect_timeout: 4.5
  database_socket_timeout: 20
  database_statement_timeout: 42
  database_max_idle_connection_lifetime: 30
"""


@pytest.mark.slow
async def test_connect_with_the_url_the_litellm_cli_rewrote(
    litellm_dsn: str, tmp_path: Path
) -> None:
    url = cli_database_url({"DATABASE_URL": litellm_dsn + "?sslmode=disable"}, CONFIG, tmp_path)
    assert "connection_limit=3" in url  # what libpq alone refuses
    settings = load_settings({"DATABASE_URL": url}, require=("litellm",))
    conn = await connect(settings, "litellm")
    try:
        cur = await conn.execute("SELECT current_setting('statement_timeout'), current_database()")
        timeout, database = await cur.fetchone()
        assert database == litellm_dsn.rsplit("/", 1)[1]
        if "statement_timeout" in url:  # 1.108 passes it in options; kept, next to our own pin
            assert timeout == "42s"
        cur = await conn.execute("SELECT current_setting('search_path')")
        assert (await cur.fetchone())[0] == "pg_catalog,pg_temp"
    finally:
        await conn.close()
