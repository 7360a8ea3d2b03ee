"""Keep secrets out of logs, errors and the backend database.

``strip_credentials`` removes every credential-looking key from LiteLLM params/model_info, as
LiteLLM's ``/model/info`` does (it drops ``api_key`` & co and masks secret-looking keys), and masks
credentials embedded in URLs (userinfo, ``?sig=``/``code=``/``pwd=``/``api-key=`` and any
secret-looking parameter); ``redact_dsn`` hides the password of a PostgreSQL URL or keyword DSN.
``strip_metadata`` and ``strip_model_info`` are what ``models.metadata`` keeps
(``mapping.metadata_of``); their caches live here, so that ``mapping`` stays free of process-wide
state.

Second line of defence, by value: ``known_secrets`` collects the values that must never leave (the
deployments' own credentials, LiteLLM's master and salt keys, both database passwords, the value of
every environment variable whose name marks a secret); ``scrub_record`` replaces them in every field
of a backend record and ``scrub`` in every log line and error, whatever key or field holds them.

``os.environ/NAME`` references (LiteLLM resolves them for routing) are resolved for the catalogue
only in routing fields and for variable names on an allow-list (``env_reference_value``); otherwise
the reference text itself is kept, which names the variable and holds no secret. The deployment's
own credentials are decrypted (or their references resolved) only to be masked by value, then
dropped.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import orjson

# Exact keys LiteLLM treats as credentials in litellm_params (provider configs, cloud auth, OAuth).
CREDENTIAL_KEYS: frozenset[str] = frozenset(
    {
        "api_key",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "aws_web_identity_token",
        "aws_bedrock_runtime_endpoint_api_key",
        "vertex_credentials",
        "vertex_ai_credentials",
        "azure_ad_token",
        "azure_ad_token_provider",
        "client_secret",
        "client_id",
        "tenant_id",
        "azure_username",
        "azure_password",
        "litellm_credential_name",
        "watsonx_api_key",
        "watsonx_token",
        "token",
        "password",
        "private_key",
        "service_account_json",
        "hf_token",
        "huggingface_api_key",
        "extra_headers",
        "headers",
    }
)

# Substrings that make a key secret-looking (LiteLLM's SensitiveDataMasker uses the same idea).
_SECRET_KEY_PARTS: tuple[str, ...] = (
    "key",
    "secret",
    "token",
    "password",
    "passwd",
    "credential",
    "auth",
    "signature",
    "cookie",
    "session",
    "bearer",
    "jwt",
    "passphrase",
)

# Keys that contain a secret-looking part but are known to be harmless metadata.
_HARMLESS_KEYS: frozenset[str] = frozenset(
    {
        "max_tokens",
        "max_input_tokens",
        "max_output_tokens",
        "tokenizer",
        "tokenize",
        "supports_tokenize",
        "input_cost_per_token",
        "output_cost_per_token",
        "input_cost_per_token_batches",
        "output_cost_per_token_batches",
        "cache_read_input_token_cost",
        "cache_creation_input_token_cost",
        "output_cost_per_reasoning_token",
        "key_hash",
    }
)


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """True when a params/model_info key names (or may name) a credential."""
    lowered = key.lower()
    if lowered in CREDENTIAL_KEYS:
        return True
    if lowered in _HARMLESS_KEYS or _is_token_count_or_cost(lowered):
        return False
    return any(part in lowered for part in _SECRET_KEY_PARTS)


def _is_token_count_or_cost(lowered: str) -> bool:
    """LiteLLM's token limits and prices (``max_output_tokens``,
    ``input_cost_per_token_above_128k_tokens``, ``cache_read_input_token_cost``), not ``api_tokens``
    or ``access_tokens``."""
    if "cost" in lowered or "per_token" in lowered:
        return True
    return lowered.endswith("_tokens") and lowered.startswith(("max_", "min_", "num_", "context_"))


# Query/fragment parameter names that carry a credential in URLs although they do not look like one:
# Azure Storage SAS (sig), Azure Functions (code), ODBC-style passwords (pwd, pass), signed URLs.
_SECRET_QUERY_KEYS: frozenset[str] = frozenset(
    {
        "sig",
        "code",
        "pwd",
        "pass",
        "passwd",
        "apikey",
        "key",
        "sas",
        "jwt",
        "bearer",
        "x-amz-signature",
        "x-goog-signature",
        "signature",
        "access_token",
        "id_token",
        "refresh_token",
        "client_secret",
    }
)


def is_secret_query_key(key: str) -> bool:
    """True when a URL query/fragment parameter name carries (or may carry) a credential."""
    lowered = key.lower().strip()
    return lowered in _SECRET_QUERY_KEYS or is_secret_key(lowered)


# Parts of an environment variable's name that mark its value as a secret.
_SECRET_ENV_PARTS: tuple[str, ...] = (
    "KEY",
    "SECRET",
    "TOKEN",
    "PASSWORD",
    "PASSWD",
    "PWD",
    "SALT",
    "CREDENTIAL",
    "AUTH",
    "SIGNATURE",
    "COOKIE",
    "SESSION",
    "PRIVATE",
    "CERT",
    "DATABASE_URL",
    "DSN",
    "CONNECTION_STRING",
    "SAS",
)


@functools.lru_cache(maxsize=1024)
def is_secret_env_name(name: str) -> bool:
    """True when an environment variable's name marks its value as a secret (``LITELLM_SALT_KEY``,
    ``OPENAI_API_KEY``, ``DATABASE_URL``, ``AZURE_SAS``...)."""
    upper = name.upper()
    return any(part in upper for part in _SECRET_ENV_PARTS)


ENV_PREFIX = "os.environ/"


# ``os.environ/NAME`` is resolved for the catalogue only in these routing fields (LiteLLM resolves
# them when it routes; none is a credential), and only for a variable whose name says it holds such
# a value: the field -> the endings of the variable names LiteLLM itself reads for it
# (``AZURE_API_BASE``, ``OPENAI_BASE_URL``, ``AZURE_OPENAI_ENDPOINT``, ``AZURE_API_VERSION``,
# ``AWS_REGION_NAME``...). Any other reference (``os.environ/SLACK_WEBHOOK_URL`` in api_base,
# ``os.environ/LITELLM_LICENSE``, anything in another field) keeps its reference text, which names
# the variable and holds no value.
ENV_RESOLVED_FIELDS: Mapping[str, tuple[str, ...]] = {
    "api_base": ("API_BASE", "BASE", "BASE_URL", "API_URL", "ENDPOINT", "HOST"),
    "base_url": ("API_BASE", "BASE", "BASE_URL", "API_URL", "ENDPOINT", "HOST"),
    "api_version": ("API_VERSION",),
    "aws_region_name": ("REGION_NAME", "REGION"),
    "vertex_location": ("LOCATION", "REGION"),
    "vertex_project": ("PROJECT", "PROJECT_ID"),
}


def env_name_resolvable(field: str, name: str) -> bool:
    """Whether ``os.environ/NAME`` in ``field`` is resolved for the catalogue (see
    ENV_RESOLVED_FIELDS)."""
    endings = ENV_RESOLVED_FIELDS.get(field)
    if not endings or not name or is_secret_env_name(name):
        return False
    upper = name.upper()
    return any(upper == end or upper.endswith("_" + end) for end in endings)


def env_reference_value(
    value: str, environ: Mapping[str, str] | None = None, *, field: str = "api_base"
) -> str:
    """What the catalogue keeps for ``os.environ/NAME`` in ``field``: the variable's value when the
    field
    and the name are on the routing allow-list (``env_name_resolvable``; URLs still get their
    credentials masked later), else the reference text itself."""
    if not value.startswith(ENV_PREFIX):
        return value
    name = value.removeprefix(ENV_PREFIX)
    if not env_name_resolvable(field, name):
        return value
    resolved = (os.environ if environ is None else environ).get(name)
    return resolved if resolved else value


def strip_credentials(value: Any, secrets: frozenset[str] = frozenset()) -> Any:
    """A deep copy of ``value`` without any credential-looking key (at any depth), with credentials
    embedded in URLs (``https://user:pw@host``, ``https://TOKEN@host``, ``?sig=...``) masked, and
    every string holding one of ``secrets`` masked."""
    if isinstance(value, Mapping):
        return {
            str(k): strip_credentials(v, secrets)
            for k, v in value.items()
            if not is_secret_key(str(k)) and not _holds_secret(str(k), secrets)
        }
    if isinstance(value, list | tuple):
        return [strip_credentials(v, secrets) for v in value]
    if isinstance(value, str):
        out = redact_url(value) if "://" in value else value
        return mask_values(out, secrets) if secrets else out
    return value


def _holds_secret(text: str, secrets: frozenset[str]) -> bool:
    return any(secret in text for secret in secrets)


def mask_values(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret value (longest first) replaced by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return text


_SCHEME = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)")


def _split_userinfo(rest: str) -> tuple[str | None, str]:
    """``user:pw@host/...`` -> (``user:pw``, ``host/...``). Tolerates what urlsplit does not: a
    ``#``, ``?`` or ``/`` inside an unencoded password. An ``@`` after a path without ``:`` is not
    userinfo."""
    first_at = rest.find("@")
    if first_at < 0:
        return None, rest
    before = rest[:first_at]
    if (
        "/" in before
        and ":" not in before.split("/", 1)[0]
        and "?" not in before
        and "#" not in before
    ):
        return None, rest  # e.g. host/path@version
    slash = rest.find("/", first_at)
    region = rest if slash < 0 else rest[:slash]
    last_at = region.rfind("@")
    return rest[:last_at], rest[last_at + 1 :]


def _mask_params(text: str) -> str:
    pairs = parse_qsl(text, keep_blank_values=True)
    if not any(is_secret_query_key(k) for k, _ in pairs):
        return text
    return urlencode([(k, "***" if is_secret_query_key(k) else v) for k, v in pairs], safe="*/:")


def redact_url(url: str) -> str:
    """``url`` with its userinfo masked (``user:***@`` with a password, ``***@`` for a bare token)
    and the values of credential query/fragment parameters replaced by ``***``."""
    m = _SCHEME.match(url)
    if m is None:
        return redact_dsn(url) if "://" in url else url
    scheme, rest = m["scheme"], url[m.end() :]
    userinfo, rest = _split_userinfo(rest)
    masked_userinfo = None
    if userinfo is not None:
        user, sep, _ = userinfo.partition(":")
        masked_userinfo = f"{user}:***" if sep else "***"
    try:
        parts = urlsplit(scheme + rest)
    except ValueError:
        base = scheme + (f"{masked_userinfo}@" if masked_userinfo is not None else "") + rest
        return redact_dsn(base)
    query = _mask_params(parts.query) if parts.query else parts.query
    fragment = _mask_params(parts.fragment) if "=" in parts.fragment else parts.fragment
    netloc = parts.netloc if masked_userinfo is None else f"{masked_userinfo}@{parts.netloc}"
    if masked_userinfo is None and query == parts.query and fragment == parts.fragment:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@")
_KV_PASSWORD = re.compile(r"(?P<k>\bpassword\s*=\s*)(?P<v>'(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"(?P<k>[?&]password=)(?P<v>[^&\s]*)", re.IGNORECASE)


def redact_dsn(dsn: str) -> str:
    """Hide the password of a ``postgresql://user:pw@host/db`` URL or a ``password=...`` DSN."""
    out = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", dsn)
    out = _KV_PASSWORD.sub(lambda m: f"{m['k']}***", out)
    return _QUERY_PASSWORD.sub(lambda m: f"{m['k']}***", out)


_MIN_SECRET_LENGTH = 4


@functools.lru_cache(maxsize=1024)  # the same provider key often serves many deployments
def _with_parts(secret: str) -> tuple[str, ...]:
    """A secret plus the password inside it when it is a URL or keyword DSN (a password alone shows
    up in some server messages)."""
    out = [secret]
    if "://" in secret:
        m = _SCHEME.match(secret)
        userinfo, _ = _split_userinfo(secret[m.end() :]) if m else (None, secret)
        if userinfo is not None:
            _, sep, password = userinfo.partition(":")
            out.append(password if sep else userinfo)
            out.append(unquote(password if sep else userinfo))
    for kv in re.finditer(r"\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", secret, re.IGNORECASE):
        out.append(kv.group(1).strip("'"))
    return tuple(s for s in out if len(s) >= _MIN_SECRET_LENGTH)


def environment_secrets(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """The values of every environment variable whose name marks a secret (and the passwords of URLs
    in any variable): LITELLM_MASTER_KEY, LITELLM_SALT_KEY, DATABASE_URL, OPENAI_API_KEY, ... For
    the process environment the result is cached until the environment changes."""
    if environ is not None:
        return _environment_secrets(environ)
    raw = getattr(os.environ, "_data", None)  # CPython: a plain dict, compared in C (µs)
    if not isinstance(raw, dict):
        return _environment_secrets(os.environ)
    snapshot = tuple(raw.items())
    cached = _ENV_CACHE.get("env")
    if cached is not None and cached[0] == snapshot:
        return cached[1]
    value = _environment_secrets(os.environ)
    _ENV_CACHE["env"] = (snapshot, value)
    return value


_ENV_CACHE: dict[str, tuple[tuple[Any, ...], frozenset[str]]] = {}


def _environment_secrets(env: Mapping[str, str]) -> frozenset[str]:
    out: set[str] = set()
    for name, value in env.items():
        if not value:
            continue
        if is_secret_env_name(name):
            out.update(_with_parts(value))
        elif "://" in value and "@" in value:
            out.update(_with_parts(value)[1:])
    return frozenset(out)


def deployment_secrets(litellm_params: Mapping[str, Any]) -> set[str]:
    """Every string value under a credential-looking key of one deployment's params (any depth)."""
    out: set[str] = set()

    def walk(value: Any, *, secret: bool) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, secret=secret or is_secret_key(str(k)))
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v, secret=secret)
        elif (
            secret
            and isinstance(value, str)
            and len(value) >= _MIN_SECRET_LENGTH
            and not value.startswith(ENV_PREFIX)
        ):
            out.update(_with_parts(value))

    walk(litellm_params, secret=False)
    return out


def credential_values(
    params: Mapping[str, Any],
    decrypt: Callable[[str], str | None],
    environ: Mapping[str, str] | None = None,
) -> frozenset[str]:
    """The plaintext of every credential of one deployment's stored ``litellm_params``, only so
    that it
    can be masked by value wherever else it appears: each top-level value under a credential-looking
    key decrypted (``decrypt`` returns None for a value that is no ciphertext: it is then the
    value),
    an ``os.environ/NAME`` reference there resolved (whatever NAME is: the field makes it a
    credential),
    nested values taken as they are. The caller drops the result with the mapping."""
    env = os.environ if environ is None else environ
    out: set[str] = set()

    def plain(value: str, *, top: bool) -> str | None:
        text = (decrypt(value) if top else None) or value
        if text.startswith(ENV_PREFIX):
            return env.get(text.removeprefix(ENV_PREFIX)) or None
        return text

    def walk(value: Any, *, top: bool) -> None:
        if isinstance(value, Mapping):
            for v in value.values():
                walk(v, top=False)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v, top=False)
        elif isinstance(value, str):
            text = plain(value, top=top)
            if text is not None and len(text) >= _MIN_SECRET_LENGTH:
                out.update(_with_parts(text))

    for name, value in params.items():
        if is_secret_key(str(name)):
            walk(value, top=True)
    return frozenset(out)


def known_secrets(
    params: Iterable[Mapping[str, Any]] = (), extra: Iterable[str | None] = ()
) -> frozenset[str]:
    """Every secret value that must never leave: the given deployments' credentials, ``extra`` (e.g.
    Settings.secrets()) and the secret-named environment variables."""
    env = environment_secrets()
    out: set[str] = set()
    for p in params:
        out |= deployment_secrets(p)
    for secret in extra:
        if secret:
            out.update(_with_parts(secret))
    if not out:
        return env
    return env | frozenset(s for s in out if len(s) >= _MIN_SECRET_LENGTH)


R = TypeVar("R")


_JSON_ESCAPED = re.compile(r'["\\\x00-\x1f]')


@functools.lru_cache(maxsize=4096)
def _json_safe(secret: str) -> bool:
    """True when JSON writes ``secret`` as it is (no escaped character)."""
    return _JSON_ESCAPED.search(secret) is None


_PLAIN = (bool, int, float, tuple, list, str, bytes)


@functools.lru_cache(maxsize=64)
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def scrub_record(record: R, secrets: frozenset[str]) -> R:
    """A dataclass record with every secret value masked in each of its string and JSON fields."""
    if not secrets or not dataclasses.is_dataclass(record) or isinstance(record, type):
        return record
    values = {name: getattr(record, name) for name in _field_names(type(record))}
    strings: list[str] = []
    mappings: list[Mapping[str, Any]] = []
    for v in values.values():
        if type(v) is str:
            strings.append(v)
        elif isinstance(v, dict) or (
            v is not None and not isinstance(v, _PLAIN) and isinstance(v, Mapping)
        ):
            mappings.append(v)
    # fast path (the common case): one text holding every field, no secret in it
    if all(_json_safe(secret) for secret in secrets):
        try:
            text = (
                "\x00".join(strings)
                + "\x00"
                + orjson.dumps(mappings, default=str, option=orjson.OPT_NON_STR_KEYS).decode(
                    "utf-8"
                )
            )
        except (TypeError, orjson.JSONEncodeError):
            text = None
        if text is not None and not any(secret in text for secret in secrets):
            return record
    ordered = sorted(secrets, key=len, reverse=True)
    changes: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, str):
            masked: Any = mask_values(value, ordered)
        elif isinstance(value, Mapping):
            masked = strip_credentials(value, secrets)
        else:
            continue
        if masked != value:
            changes[name] = masked
    return dataclasses.replace(record, **changes) if changes else record


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of the given secret values, of the secret-named environment
    variables' values and of URL passwords in ``text``."""
    out = redact_dsn(text)
    values: set[str] = set(environment_secrets())
    for secret in secrets:
        if secret:
            values.update(_with_parts(secret))
    return mask_values(out, [v for v in values if len(v) >= _MIN_SECRET_LENGTH])


# -- models.metadata: what the backend may keep of model_info and litellm_params ------------------


def strip_model_info(
    info: Mapping[str, Any], parts: tuple[Mapping[str, Any], Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """What ``models.metadata`` keeps of model_info: ``strip_metadata``, except that ``key`` is the
    matched cost-map key (``/model/info`` shows it), not a credential. With ``parts``
    (``info == {**shared, **own}``) the shared part is stripped once for all."""
    if parts is None:
        out = dict(strip_metadata(info))
    else:
        shared, own = parts
        mine = strip_metadata(own)
        out = {**_stripped_shared(shared), **mine}
        for k in own.keys() - mine.keys():
            out.pop(k, None)  # a value of its own that is dropped hides the shared one too
    if isinstance(info.get("key"), str) and "key" not in out:
        out["key"] = strip_credentials(info["key"])
    return out


def _stripped_shared(shared: Mapping[str, Any]) -> Mapping[str, Any]:
    hit = _STRIPPED.get(id(shared))
    if hit is not None and hit[0] is shared:
        return hit[1]
    if len(_STRIPPED) >= _STRIPPED_MAX:
        _STRIPPED.clear()
    stripped: Mapping[str, Any] = strip_metadata(shared)
    # kept alive with it: its id cannot be reused meanwhile
    _STRIPPED[id(shared)] = (shared, stripped)
    return stripped


_STRIPPED: dict[int, tuple[Mapping[str, Any], Mapping[str, Any]]] = {}
_STRIPPED_MAX = 4096


def strip_metadata(value: Any) -> Any:
    """What ``models.metadata`` keeps of a value: ``strip_credentials``, except that a
    secret-looking key whose value cannot hold a secret (a boolean, a number, null:
    ``use_xai_oauth: false``, ``cache_read_input_token_cost_flex: null``) is kept, as
    ``/model/info`` keeps it (else the backend's copy of the same view differs from ours)."""
    if _plain(value):
        return value
    if type(value) is dict or isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = k if type(k) is str else str(k)
            verdict = _key_verdict(key)
            if verdict != "keep" and (verdict == "drop" or not (v is None or type(v) in _SCALARS)):
                continue
            out[key] = v if _plain(v) else strip_metadata(v)
        return out
    if isinstance(value, list | tuple):
        return [v if _plain(v) else strip_metadata(v) for v in value]
    return strip_credentials(value)


# JSON's scalars as a decoder returns them (exact types: a subclass takes the slow, general path)
_SCALARS = frozenset({bool, int, float, type(None)})


def _plain(value: Any) -> bool:
    """Nothing ``strip_credentials`` would change: a scalar, or a string without a URL in it (most
    of a ~250-key /model/info entry and its ``supported_openai_params`` list)."""
    kind = type(value)
    if kind is str:
        return "://" not in value
    return kind in _SCALARS


@functools.lru_cache(maxsize=4096)
def _key_verdict(key: str) -> Literal["keep", "drop", "scalar-only"]:
    """Per key name, once: a credential key is dropped, a secret-looking one keeps only scalars."""
    if key.lower() in CREDENTIAL_KEYS:
        return "drop"
    return "scalar-only" if is_secret_key(key) else "keep"
