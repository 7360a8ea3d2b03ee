"""dburl: every URL LiteLLM's CLI can leave (taken from LiteLLM's own code on the installed
version) and every Prisma parameter becomes a libpq conninfo; settings' DSN getters use it (no
database here)."""

from __future__ import annotations

import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import pytest
from psycopg.conninfo import conninfo_to_dict

from litemaas_hooks import dburl
from litemaas_hooks.dburl import PRISMA_PARAMS, libpq_keywords, parse
from litemaas_hooks.errors import ConfigError, DatabaseUrlError
from litemaas_hooks.redaction import redact_dsn, scrub
from litemaas_hooks.settings import load_settings
from tests.litellm_cli_url import cli_database_url

Database = Literal["backend", "litellm"]  # settings' name for it may move (issue 19)

UPSTREAM = "postgresql://llm%40user:s3cr%2Ft%40pw@db.example:5432/litellm"
PASSWORD = "s3cr/t@pw"

# Every general_settings key LiteLLM's CLI turns into a DATABASE_URL parameter (1.81 reads the first
# two; 1.108 all of them), and an operator's extra Prisma parameter.
FULL_CONFIG = """
general_settings:
  database_connection_pool_limit: 7
  database_connection_timeout: 30
  database_connection_pool_timeout: 30
  database_connect_timeout: 4.5
  database_socket_timeout: 20
  database_disable_prepared_statements: true
  database_statement_timeout: 30
  database_lock_timeout: 5
  database_idle_in_transaction_session_timeout: 60
  database_max_idle_connection_lifetime: 120
  database_extra_connection_params:
    statement_cache_size: 0
"""

CASES = {
    # the LiteMaaS way: DATABASE_URL in the environment, a config.yaml, TLS verified the libpq way
    "full config, verify-full": (
        {
            "DATABASE_URL": UPSTREAM + "?sslmode=verify-full&sslrootcert=/etc/ssl/rds-ca.pem",
            "DATABASE_DISABLE_PREPARED_STATEMENTS": "true",
        },
        FULL_CONFIG,
    ),
    # LiteLLM builds DATABASE_URL from the discrete DATABASE_* variables (schema included)
    "discrete DATABASE_* variables": (
        {
            "DATABASE_HOST": "db.example:5432",
            "DATABASE_USERNAME": "llm@user",
            "DATABASE_USER": "llm@user",
            "DATABASE_PASSWORD": PASSWORD,
            "DATABASE_NAME": "litellm",
            "DATABASE_SCHEMA": "public",
        },
        None,
    ),
}


@pytest.fixture(scope="module")
def cli_urls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """name -> DATABASE_URL as the installed litellm CLI rewrote it (children run side by side)."""

    def run(item: tuple[str, tuple[dict[str, str], str | None]]) -> tuple[str, str]:
        name, (env, config) = item
        return name, cli_database_url(env, config, tmp_path_factory.mktemp("cli"))

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(run, CASES.items()))


def _query(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True))


def _assert_libpq_ready(url: str) -> dburl.DatabaseUrl:
    """Every parameter is one we know (Prisma's or libpq's), and the result is a conninfo libpq
    with no Prisma-only keyword left."""
    unknown = sorted(set(_query(url)) - PRISMA_PARAMS - libpq_keywords())
    assert not unknown, (
        f"LiteLLM's CLI now writes {unknown} into DATABASE_URL: add them to "
        "dburl.PRISMA_POOL_PARAMS (dropped) "
        "or PRISMA_TRANSLATED_PARAMS (translated) after reading what Prisma does with them"
    )
    parsed = parse(url)
    assert parsed.unknown == ()
    keys = set(conninfo_to_dict(parsed.conninfo))
    assert not keys & (PRISMA_PARAMS - libpq_keywords())
    assert {"user", "password", "host", "port", "dbname"} <= keys
    return parsed


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_every_url_the_litellm_cli_leaves_is_accepted(cli_urls: dict[str, str], case: str) -> None:
    url = cli_urls[case]
    assert "connection_limit" in _query(url), url  # the CLI did rewrite it
    parsed = _assert_libpq_ready(url)
    info = conninfo_to_dict(parsed.conninfo)
    assert (info["user"], info["password"], info["dbname"]) == ("llm@user", PASSWORD, "litellm")
    assert parsed.pgbouncer == (_query(url).get("pgbouncer") == "true")


@pytest.mark.slow
def test_the_full_config_url_keeps_its_meaning(cli_urls: dict[str, str]) -> None:
    url = cli_urls["full config, verify-full"]
    info = conninfo_to_dict(parse(url).conninfo)
    q = _query(url)
    if "sslaccept" in q:  # 1.108 rewrote libpq's TLS parameters into Prisma's: we get them back
        assert (q["sslmode"], q["sslaccept"], q["sslcert"]) == (
            "require",
            "strict",
            "/etc/ssl/rds-ca.pem",
        )
    assert (info["sslmode"], info["sslrootcert"]) == ("verify-full", "/etc/ssl/rds-ca.pem")
    assert "sslcert" not in info
    if "options" in q:  # 1.108 carries the timeouts in libpq's options, unchanged
        assert info["options"] == q["options"]
        assert "-c statement_timeout=30000" in info["options"]
    if "connect_timeout" in q:
        assert info["connect_timeout"] == "5"  # 4.5 s, in libpq's whole seconds
    assert parse(url).dropped  # pool parameters went


def test_litellm_in_container_pgbouncer_url() -> None:
    """1.108's LITELLM_PGBOUNCER_ENABLED: the URL the workers (and the plugin) get, by LiteLLM's
    own code."""
    pgbouncer = pytest.importorskip("litellm.proxy.db.pgbouncer", reason="LiteLLM < 1.108 has none")
    upstream = UPSTREAM + "?sslmode=require&sslcert=%2Fca.pem&sslaccept=strict&connection_limit=7"
    plan = pgbouncer.plan_pgbouncer(
        upstream, pgbouncer.PgBouncerSettings(), Path("/nonexistent"), None
    )
    assert not isinstance(plan, pgbouncer.PgBouncerError), plan
    parsed = _assert_libpq_ready(plan.pooled_url)
    assert parsed.pgbouncer is True
    info = conninfo_to_dict(parsed.conninfo)
    assert (info["host"], info["port"], info["user"]) == ("127.0.0.1", "6432", "litellm_pgbouncer")
    assert "options" not in info


@pytest.mark.parametrize(
    ("query", "expected", "dropped"),
    [
        (
            "connection_limit=5&pool_timeout=10&socket_timeout=3",
            {},
            ["connection_limit", "pool_timeout", "socket_timeout"],
        ),
        (
            "statement_cache_size=0&max_idle_connection_lifetime=60",
            {},
            ["statement_cache_size", "max_idle_connection_lifetime"],
        ),
        ("connect_timeout=10", {"connect_timeout": "10"}, []),
        ("connect_timeout=0.2", {"connect_timeout": "1"}, []),
        ("options=-c+statement_timeout%3D5000", {"options": "-c statement_timeout=5000"}, []),
        ("options=-c%20lock_timeout%3D1s", {"options": "-c lock_timeout=1s"}, []),
        ("application_name=x&sslmode=disable", {"application_name": "x", "sslmode": "disable"}, []),
        # Prisma's TLS dialect
        ("sslmode=require", {"sslmode": "require"}, []),
        (
            "sslmode=require&sslcert=%2Fca.pem&sslaccept=strict",
            {"sslmode": "verify-full", "sslrootcert": "/ca.pem"},
            ["sslaccept"],
        ),
        ("sslaccept=strict", {"sslmode": "verify-full", "sslrootcert": "system"}, ["sslaccept"]),
        ("sslmode=require&sslcert=%2Fca.pem", {"sslmode": "require"}, ["sslcert"]),
        (
            "sslmode=require&sslcert=%2Fca.pem&sslaccept=accept_invalid_certs",
            {"sslmode": "require"},
            ["sslaccept", "sslcert"],
        ),
        (
            "sslmode=disable&sslaccept=strict",
            {"sslmode": "disable", "sslrootcert": "system"},
            ["sslaccept"],
        ),
        # libpq's own spelling stays libpq's: sslcert with sslkey is the client certificate
        (
            "sslmode=verify-ca&sslrootcert=%2Fca.pem"
            "&sslcert=%2Fc.crt&sslkey=%2Fc.key&sslpassword=k",
            {
                "sslmode": "verify-ca",
                "sslrootcert": "/ca.pem",
                "sslcert": "/c.crt",
                "sslkey": "/c.key",
                "sslpassword": "k",
            },
            [],
        ),
        ("pgbouncer=true&schema=public", {}, ["pgbouncer", "schema"]),
    ],
)
def test_prisma_parameters(query: str, expected: dict[str, str], dropped: list[str]) -> None:
    parsed = parse(f"{UPSTREAM}?{query}")
    info = conninfo_to_dict(parsed.conninfo)
    base = {"user", "password", "host", "port", "dbname"}
    assert {k: v for k, v in info.items() if k not in base} == expected
    assert sorted(parsed.dropped) == sorted(dropped)
    assert parsed.unknown == ()


def test_flags_schema_and_unknown_parameters() -> None:
    assert parse(UPSTREAM + "?pgbouncer=true").pgbouncer is True
    assert parse(UPSTREAM + "?pgbouncer=false").pgbouncer is False
    assert parse(UPSTREAM + "?schema=litellm").schema == "litellm"
    odd = parse(UPSTREAM + "?some_new_prisma_knob=1&sslmode=require")
    assert odd.unknown == ("some_new_prisma_knob",)
    assert conninfo_to_dict(odd.conninfo)["sslmode"] == "require"
    assert parse(UPSTREAM).conninfo == UPSTREAM  # nothing to do: unchanged
    clean = "postgresql://u@/db?host=/tmp/s&port=5"
    assert parse(clean).conninfo == clean
    # a '+' is a form-encoded space (LiteLLM's urlencode writes options so): libpq gets %20
    plus = parse("postgresql://u@h/db?options=-c+a%3D1").conninfo
    assert plus == "postgresql://u@h/db?options=-c%20a%3D1"
    assert (
        parse("host=db dbname=litellm user=u password=p").conninfo
        == "host=db dbname=litellm user=u password=p"
    )
    # '?' inside a percent-encoded password and in the user info: only the real query is read
    url = "postgresql://u:pa%3Fss@h/db?connection_limit=1"
    assert conninfo_to_dict(parse(url).conninfo)["password"] == "pa?ss"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            UPSTREAM + "?sslidentity=%2Fid.p12&sslpassword=x",
            "sslidentity (Prisma's PKCS#12 client certificate)",
        ),
        (UPSTREAM + "?sslaccept=maybe", "sslaccept='maybe' must be strict or accept_invalid_certs"),
        (UPSTREAM + "?pgbouncer=perhaps", "pgbouncer='perhaps' must be true or false"),
        (UPSTREAM + "?connect_timeout=soon", "connect_timeout='soon' must be a number of seconds"),
        (
            UPSTREAM + "?sslmode=sometimes",
            "sslmode='sometimes' must be one of disable, allow, prefer",
        ),
        ("host=db nonsense=1", "libpq cannot read it"),
    ],
)
def test_unusable_urls(url: str, message: str) -> None:
    with pytest.raises(DatabaseUrlError) as exc:
        parse(url)
    assert message in str(exc.value)
    assert "s3cr" not in str(exc.value)


def test_settings_getters_use_the_parser_for_all_three_urls() -> None:
    prisma = UPSTREAM + "?connection_limit=7&pool_timeout=60&pgbouncer=true&sslmode=require"
    cases: tuple[tuple[dict[str, str], Database], ...] = (
        ({"DATABASE_URL": prisma}, "litellm"),
        ({"LITELLM_DATABASE_URL": prisma, "DATABASE_URL": "postgresql://x@y/z"}, "litellm"),
        ({"LITEMAAS_DATABASE_URL": prisma}, "backend"),
    )
    for env, which in cases:
        s = load_settings(env, require=(which,))
        dsn = s.litellm_dsn() if which == "litellm" else s.backend_dsn()
        info = conninfo_to_dict(dsn)
        assert "connection_limit" not in info
        assert info["sslmode"] == "require"
        assert s.database_url_of(which).pgbouncer is True
        # the password is still found and masked in the converted form
        assert PASSWORD in s.secrets() or "s3cr%2Ft%40pw" in s.secrets()
        assert "s3cr" not in redact_dsn(dsn)
        assert "s3cr" not in scrub(f"failed: {dsn}", s.secrets())


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"DATABASE_URL": UPSTREAM + "?schema=litellm"},
            "DATABASE_URL='postgresql://llm%40user:***@db.example",
        ),
        ({"DATABASE_URL": UPSTREAM + "?schema=litellm"}, "has schema=litellm"),
        ({"DATABASE_URL": UPSTREAM + "?schema=litellm"}, "remove schema=litellm"),
        ({"LITEMAAS_DATABASE_URL": UPSTREAM + "?sslidentity=%2Fa.p12"}, "LITEMAAS_DATABASE_URL="),
        ({"LITELLM_DATABASE_URL": UPSTREAM + "?sslaccept=no"}, "LITELLM_DATABASE_URL="),
    ],
)
def test_settings_refuse_with_one_line_naming_the_variable(
    env: dict[str, str], message: str
) -> None:
    which: Database = "backend" if "LITEMAAS_DATABASE_URL" in env else "litellm"
    with pytest.raises(ConfigError) as exc:
        load_settings(env, require=(which,))
    text = str(exc.value)
    assert message in text
    assert len(text.splitlines()) == 1
    assert "s3cr" not in text


@pytest.mark.parametrize(
    ("url", "setting", "expected"),
    [
        (UPSTREAM, "auto", "direct"),
        (UPSTREAM + "?pgbouncer=true", "auto", "transaction"),
        (UPSTREAM + "?pgbouncer=false", "auto", "direct"),
        (UPSTREAM, "session", "session"),
        (UPSTREAM + "?pgbouncer=true", "session", "session"),
        (UPSTREAM, "transaction", "transaction"),
        (UPSTREAM + "?pgbouncer=true", "direct", "direct"),
    ],
)
def test_pool_mode(url: str, setting: str, expected: str) -> None:
    from litemaas_hooks.connections import pool_mode

    s = load_settings({"DATABASE_URL": url, "LITEMAAS_HOOKS_POOL_MODE": setting})
    assert pool_mode(s, "litellm") == expected


def test_options_as_settings_for_a_session_pooler() -> None:
    from litemaas_hooks.connections import _setting_pairs

    assert _setting_pairs("-c statement_timeout=30000 -c lock_timeout=5s") == [
        ("statement_timeout", "30000"),
        ("lock_timeout", "5s"),
    ]
    pairs = _setting_pairs("-cwork_mem=4MB --search_path=x")
    assert pairs == [("work_mem", "4MB"), ("search_path", "x")]
    assert _setting_pairs("-c 'application_name=a b'") == [("application_name", "a b")]
    assert _setting_pairs("--single") is None
    assert _setting_pairs("") == []
