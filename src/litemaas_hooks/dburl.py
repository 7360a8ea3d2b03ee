"""Any PostgreSQL URL LiteLLM, Prisma or an operator hands us -> a libpq conninfo (pure, no I/O).

Inside the proxy, ``DATABASE_URL`` is what the ``litellm`` CLI left for Prisma: pool parameters
(``connection_limit``, ``pool_timeout``, ...), ``pgbouncer=true``, ``schema=``, TLS parameters in
Prisma's dialect (``sslcert`` = the CA, ``sslaccept=strict``) appended to the operator's URL. libpq
refuses every query parameter it does not know (``invalid URI query parameter``), so ``parse`` turns
such a URL into one libpq accepts and says what the Prisma-only parameters meant:

- pool parameters of Prisma's own pool (``PRISMA_POOL_PARAMS``): dropped (we open our own
  connections);
- ``pgbouncer=true``: dropped, reported as ``pgbouncer`` (the URL points at a PgBouncer: no
  ``options`` startup parameter, no server-side prepared statements, transaction pooling assumed);
- ``schema=NAME``: dropped, reported as ``schema`` (the caller decides what a non-``public`` schema
  means);
- TLS in Prisma's spelling: ``sslcert`` (Prisma: the CA certificate; libpq: ``sslrootcert``),
  ``sslaccept=strict`` (Prisma checks chain and host name: libpq ``sslmode=verify-full``, with the
  system's CA roots when no certificate is named), ``sslaccept=accept_invalid_certs`` (Prisma's
  default: no check, so a named ``sslcert`` is not used either). ``sslidentity`` (a PKCS#12 client
  certificate) has no libpq equivalent and is refused with the fix. A URL that names ``sslkey`` is
  libpq's own: its ``sslcert`` is the client certificate and is kept;
- ``connect_timeout`` kept (Prisma allows a fraction, libpq whole seconds: rounded up),
  ``options`` (e.g. ``-c statement_timeout=...``), ``application_name`` and every other libpq
  keyword kept;
- anything else: dropped and reported in ``unknown`` (the caller logs it once). A new parameter a
  LiteLLM release starts writing fails a unit test (tests/unit/test_dburl.py), not a deployment.

Query values are read as Prisma and LiteLLM's ``urlencode`` write them: form-encoded, a ``+`` is a
space (write ``%2B`` for a plus sign). User, password, hosts and database name are passed on as
written. Keyword DSNs (``host=... dbname=...``) are libpq's own and are only checked.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote

from litemaas_hooks.errors import DatabaseUrlError, first_line

SCHEMES = ("postgresql://", "postgres://")

# Parameters of Prisma's own connection pool / query engine, meaningless for a libpq connection.
PRISMA_POOL_PARAMS: dict[str, str] = {
    "connection_limit": "size of Prisma's connection pool",
    "pool_timeout": "how long Prisma waits for a free pooled connection",
    "socket_timeout": "Prisma's per-query socket timeout",
    "statement_cache_size": "Prisma's prepared-statement cache",
    "max_idle_connection_lifetime": "how long Prisma keeps an idle pooled connection",
    "max_connection_lifetime": "how long Prisma keeps a pooled connection",
}
# Parameters Prisma gives a meaning libpq does not have (translated, see the module docstring).
PRISMA_TRANSLATED_PARAMS: dict[str, str] = {
    "pgbouncer": "the URL points at a PgBouncer (-> DatabaseUrl.pgbouncer)",
    "schema": "the schema of LiteLLM's tables (-> DatabaseUrl.schema)",
    "sslcert": "Prisma: the CA (-> sslrootcert); with sslkey, libpq's client certificate",
    "sslaccept": "strict -> sslmode=verify-full; accept_invalid_certs -> no certificate check",
    "sslidentity": "PKCS#12 client certificate (no libpq equivalent: refused with the fix)",
    "sslpassword": "password of sslidentity (with sslidentity); else libpq's key password",
}
# Every parameter this module knows in Prisma's dialect (a unit test: LiteLLM writes no other).
PRISMA_PARAMS = frozenset(PRISMA_POOL_PARAMS) | frozenset(PRISMA_TRANSLATED_PARAMS)

SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


@dataclass(frozen=True)
class DatabaseUrl:
    """A database URL made fit for libpq, and what its Prisma-only parameters meant."""

    conninfo: str  # a libpq URL (or the keyword DSN as given)
    pgbouncer: bool = False  # pgbouncer=true: the URL points at a (transaction-pooling) PgBouncer
    schema: str | None = None  # schema=NAME (Prisma's schema of LiteLLM's tables)
    dropped: tuple[str, ...] = ()  # Prisma-only parameters left out (their names)
    unknown: tuple[
        str, ...
    ] = ()  # parameters neither libpq nor Prisma (as we know it) has: left out


@functools.cache
def libpq_keywords() -> frozenset[str]:
    """Every connection keyword the libpq psycopg runs on knows (``sslmode``, ``options``, ...)."""
    import psycopg  # here, not at the top: settings imports this module and must stay cheap

    return frozenset(opt.keyword.decode() for opt in psycopg.pq.Conninfo.get_defaults())


def _split_query(url: str) -> tuple[str, str]:
    """(``postgresql://user:pw@host/db``, ``a=1&b=2``): the query starts at the first ``?``
    after the user info, which (as libpq reads it) ends at the first ``@`` before any ``/``."""
    start = url.index("://") + 3
    rest = url[start:]
    cut = min((i for i in (rest.find("@"), rest.find("/")) if i >= 0), default=-1)
    if cut >= 0 and rest[cut] == "@":
        start += cut + 1
    q = url.find("?", start)
    return (url, "") if q < 0 else (url[:q], url[q + 1 :])


def _flag(name: str, value: str) -> bool:
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise DatabaseUrlError(f"{name}={value!r} must be true or false")


def _whole_seconds(name: str, value: str) -> str:
    try:
        seconds = float(value)
    except ValueError:
        raise DatabaseUrlError(f"{name}={value!r} must be a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise DatabaseUrlError(f"{name}={value!r} must be a number of seconds (0 = no limit)")
    return str(math.ceil(seconds))


def _translate_tls(params: dict[str, str], dropped: list[str]) -> None:
    """Prisma's TLS parameters -> libpq's, in place (see the module docstring)."""
    if "sslidentity" in params:
        raise DatabaseUrlError(
            "sslidentity (Prisma's PKCS#12 client certificate) has no libpq equivalent: convert "
            "it to PEM (openssl pkcs12 -in FILE -clcerts -nokeys -out client.crt; openssl pkcs12 "
            "-in FILE -nocerts -nodes -out client.key) and use "
            "sslcert=client.crt&sslkey=client.key "
            "instead"
        )
    libpq_client_cert = "sslkey" in params
    ca = None if libpq_client_cert else params.pop("sslcert", None)
    accept = params.pop("sslaccept", None)
    if accept is not None:
        dropped.append("sslaccept")
    mode = params.get("sslmode")
    if accept == "strict":
        if mode != "disable" and mode not in ("verify-ca", "verify-full"):
            params["sslmode"] = "verify-full"  # Prisma strict checks the chain and the host name
        if "sslrootcert" not in params:
            params["sslrootcert"] = ca if ca is not None else "system"
        elif ca is not None:
            dropped.append("sslcert")
    elif accept in (None, "accept_invalid_certs"):
        if ca is not None:  # Prisma loads it but checks nothing without sslaccept=strict
            dropped.append("sslcert")
    else:
        raise DatabaseUrlError(f"sslaccept={accept!r} must be strict or accept_invalid_certs")


def parse(url: str) -> DatabaseUrl:
    """``url`` (a LiteLLM/Prisma/libpq URL or a keyword DSN) as a libpq conninfo;
    DatabaseUrlError when it cannot be one."""
    text = url.strip()
    if not text.startswith(SCHEMES):
        _check(text)
        return DatabaseUrl(conninfo=text)
    base, query = _split_query(text)
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        params[key] = value  # the last one wins, as in libpq and Prisma
    dropped: list[str] = []
    unknown: list[str] = []
    pgbouncer = False
    if "pgbouncer" in params:
        pgbouncer = _flag("pgbouncer", params.pop("pgbouncer"))
        dropped.append("pgbouncer")
    schema = None
    if "schema" in params:
        schema = params.pop("schema").strip() or None
        dropped.append("schema")
    for key in PRISMA_POOL_PARAMS:
        if params.pop(key, None) is not None:
            dropped.append(key)
    _translate_tls(params, dropped)
    if params.get("sslpassword") is not None and "sslkey" not in params:
        params.pop("sslpassword")
        dropped.append("sslpassword")
    if params.get("sslmode", "prefer") not in SSLMODES:
        raise DatabaseUrlError(
            f"sslmode={params['sslmode']!r} must be one of {', '.join(SSLMODES)}"
        )
    if "connect_timeout" in params:
        params["connect_timeout"] = _whole_seconds("connect_timeout", params["connect_timeout"])
    keywords = libpq_keywords()
    for key in [k for k in params if k not in keywords]:
        params.pop(key)
        unknown.append(key)
    if "+" not in query and params == dict(parse_qsl(query, keep_blank_values=True)):
        out = text  # nothing of Prisma's (nor a form-encoded space): the URL as written
    else:
        out = base + ("?" if params else "")
        out += "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params.items())
    _check(out)
    return DatabaseUrl(
        conninfo=out,
        pgbouncer=pgbouncer,
        schema=schema,
        dropped=tuple(dropped),
        unknown=tuple(unknown),
    )


def _check(conninfo: str) -> None:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        raise DatabaseUrlError(f"libpq cannot read it: {first_line(exc)}") from None
