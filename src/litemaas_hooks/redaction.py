"""Keep secrets out of logs, errors and the backend database.

``strip_credentials`` removes every credential-looking key from LiteLLM params/model_info, as LiteLLM's
``/model/info`` does (it drops ``api_key`` & co and masks secret-looking keys); ``redact_dsn`` hides the
password of a PostgreSQL URL or keyword DSN.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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
    if lowered in _HARMLESS_KEYS or lowered.endswith(("_per_token", "_token_cost", "_tokens")):
        return False
    return any(part in lowered for part in _SECRET_KEY_PARTS)


def strip_credentials(value: Any) -> Any:
    """A deep copy of ``value`` without any credential-looking key (at any depth), and with credentials
    embedded in URLs (``https://user:pw@host``, ``?api-key=...``) masked."""
    if isinstance(value, Mapping):
        return {str(k): strip_credentials(v) for k, v in value.items() if not is_secret_key(str(k))}
    if isinstance(value, list | tuple):
        return [strip_credentials(v) for v in value]
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value


def redact_url(url: str) -> str:
    """``url`` with a userinfo password and secret-looking query parameter values replaced by ``***``."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_dsn(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else netloc
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_secret_key(k) for k, _ in pairs):
            query = urlencode([(k, "***" if is_secret_key(k) else v) for k, v in pairs], safe="*")
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@")
_KV_PASSWORD = re.compile(r"(?P<k>\bpassword\s*=\s*)(?P<v>'(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"(?P<k>[?&]password=)(?P<v>[^&\s]*)", re.IGNORECASE)


def redact_dsn(dsn: str) -> str:
    """Hide the password of a ``postgresql://user:pw@host/db`` URL or a ``password=...`` DSN."""
    out = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", dsn)
    out = _KV_PASSWORD.sub(lambda m: f"{m['k']}***", out)
    return _QUERY_PASSWORD.sub(lambda m: f"{m['k']}***", out)


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of the given secret values (and URL passwords) in ``text``."""
    out = redact_dsn(text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            out = out.replace(secret, "***")
    return out
