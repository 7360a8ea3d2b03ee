"""TLS: a PostgreSQL with ssl=on and certificates the test makes; sslmode=require, verify-full with
sslrootcert (libpq's and Prisma's spelling), and a wrong certificate (another CA, a wrong host)
failing with one line that names the variable and sslrootcert, password masked."""

from __future__ import annotations

import shutil
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from litemaas_hooks.connections import connect
from litemaas_hooks.errors import DatabaseUnavailableError
from litemaas_hooks.settings import load_settings
from litemaas_hooks_sandbox.cluster import LocalPostgres
from litemaas_hooks_sandbox.tls import ServerTls, make_ca, make_server_tls

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def tls_pg() -> Iterator[tuple[LocalPostgres, ServerTls]]:
    # not under pytest's tmp dir (private to this user): the server's OS user must read the files
    directory = Path(tempfile.mkdtemp(prefix="lmh-tls-"))
    try:
        certs = make_server_tls(directory)
        with LocalPostgres(max_connections=20, settings=certs.postgres_settings()) as pg:
            yield pg, certs
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = Path(tmp_path_factory.mktemp("other")) / "other-ca.pem"
    make_ca(path, "some other CA")
    return path


def url(pg: LocalPostgres, host: str = "127.0.0.1", **params: str) -> str:
    query = urllib.parse.urlencode(params)
    return f"postgresql://{pg.user}:{pg.password}@{host}:{pg.port}/postgres" + (
        f"?{query}" if query else ""
    )


async def ssl_in_use(settings: Any) -> bool:
    conn = await connect(settings, "litellm")
    try:
        cur = await conn.execute(
            "SELECT ssl FROM pg_catalog.pg_stat_ssl WHERE pid = pg_catalog.pg_backend_pid()"
        )
        row = await cur.fetchone()
        return bool(row and row[0])
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"sslmode": "require"}, id="require"),
        pytest.param({"sslmode": "verify-full", "sslrootcert": "CA"}, id="verify-full"),
        pytest.param({"sslmode": "verify-ca", "sslrootcert": "CA"}, id="verify-ca"),
        # what LiteLLM 1.108's CLI leaves for Prisma from verify-full + sslrootcert
        pytest.param(
            {"sslmode": "require", "sslcert": "CA", "sslaccept": "strict", "connection_limit": "5"},
            id="prisma-strict",
        ),
    ],
)
async def test_tls_connections(
    tls_pg: tuple[LocalPostgres, ServerTls], params: dict[str, str]
) -> None:
    pg, certs = tls_pg
    filled = {k: (str(certs.ca) if v == "CA" else v) for k, v in params.items()}
    settings = load_settings({"DATABASE_URL": url(pg, **filled)})
    assert await ssl_in_use(settings)


@pytest.mark.parametrize("case", ["other CA", "wrong host", "prisma strict, other CA", "no TLS"])
async def test_wrong_certificate_is_one_clear_line(
    tls_pg: tuple[LocalPostgres, ServerTls], other_ca: Path, pg_cluster: LocalPostgres, case: str
) -> None:
    pg, certs = tls_pg
    if case == "other CA":
        value = url(pg, sslmode="verify-full", sslrootcert=str(other_ca))
    elif case == "wrong host":  # the right CA, but the URL's host is not in the certificate
        value = url(
            pg,
            "db.wrong.example",
            hostaddr="127.0.0.1",
            sslmode="verify-full",
            sslrootcert=str(certs.ca),
        )
    elif case == "prisma strict, other CA":
        value = url(pg, sslmode="require", sslcert=str(other_ca), sslaccept="strict")
    else:  # the test cluster has TLS off
        value = pg_cluster.dsn("postgres") + "?sslmode=require"
    settings = load_settings({"LITELLM_DATABASE_URL": value})
    with pytest.raises(DatabaseUnavailableError) as exc:
        await connect(settings, "litellm")
    text = str(exc.value)
    assert len(text.splitlines()) == 1, text
    assert "LITELLM_DATABASE_URL=postgresql://postgres:***@" in text
    assert pg.password not in text
    assert pg_cluster.password not in text
    if case == "no TLS":
        assert "does not offer TLS" in text
    else:
        assert "Check the sslrootcert of LITELLM_DATABASE_URL" in text
        assert "certificate" in text
    if case == "wrong host":
        assert "db.wrong.example" in text
