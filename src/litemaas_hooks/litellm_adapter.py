"""Every use of LiteLLM internals in one place: decryption, cost-map enrichment, proxy globals.

Supports litellm 1.81.x (``decrypt_value`` on base64-decoded bytes) and >= 1.108
(``decrypt_if_encrypted_with``). Nothing here imports ``litellm.proxy.proxy_server`` unless we are
running inside the proxy (it takes seconds and needs every proxy dependency).
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

from litemaas_hooks.errors import DecryptError
from litemaas_hooks.redaction import is_secret_key

_V2_PREFIX = "v2:gcm:"
_B64 = re.compile(r"[A-Za-z0-9_\-+/]+={0,2}")
# NaCl SecretBox output = 24-byte nonce + 16-byte MAC + plaintext.
_MIN_CIPHERTEXT_BYTES = 40


@functools.cache
def _decryptor() -> Callable[[str, str], str | None]:
    """LiteLLM's own decryption helper, adapted to one signature: (value, key) -> plaintext | None."""
    from litellm.proxy.common_utils import encrypt_decrypt_utils as edu

    if hasattr(edu, "decrypt_if_encrypted_with"):
        helper: Callable[..., str | None] = edu.decrypt_if_encrypted_with

        def decrypt_new(value: str, key: str) -> str | None:
            return helper(value=value, signing_key=key)

        return decrypt_new

    legacy: Callable[..., str] = edu.decrypt_value  # litellm 1.81: bytes in, str out, raises on failure

    def decrypt_legacy(value: str, key: str) -> str | None:
        try:
            raw = base64.urlsafe_b64decode(value)
        except (binascii.Error, ValueError):
            try:
                raw = base64.b64decode(value)
            except (binascii.Error, ValueError):
                return None
        if not raw:
            return None
        try:
            return legacy(value=raw, signing_key=key)
        except Exception:
            return None

    return decrypt_legacy


def warm_up() -> None:
    """Import LiteLLM's decryption helper and cost map now (seconds, once per process), so the first
    event does not pay for it. A no-op inside the proxy, where LiteLLM is already imported."""
    _decryptor()
    import litellm  # noqa: F401


def looks_encrypted(value: str) -> bool:
    """True when ``value`` has the shape of a LiteLLM ciphertext (so a failed decrypt means a wrong key)."""
    if value.startswith(_V2_PREFIX):
        return True
    if len(value) % 4 or not _B64.fullmatch(value):
        return False
    try:
        raw = base64.urlsafe_b64decode(value) if "+" not in value and "/" not in value else base64.b64decode(value)
    except (binascii.Error, ValueError):
        return False
    return len(raw) >= _MIN_CIPHERTEXT_BYTES


def decrypt_params(params: Mapping[str, Any], key: str | None, *, model_id: str) -> dict[str, Any]:
    """Decrypt every string value of ``litellm_params`` like LiteLLM does.

    Credential values are dropped unread (they never leave LiteLLM). Plaintext values are accepted as
    LiteLLM accepts them; a value that is a ciphertext under another key raises DecryptError.
    """
    decrypt = _decryptor()
    out: dict[str, Any] = {}
    for name, value in params.items():
        if is_secret_key(str(name)):
            continue
        if not isinstance(value, str):
            out[name] = value
            continue
        plain = decrypt(value, key) if key else None
        if plain is None and looks_encrypted(value):
            if key is None:
                raise DecryptError(
                    f"litellm_params.{name} of deployment {model_id} is encrypted but no key is set: "
                    "set LITELLM_SALT_KEY (or, if the proxy has no salt key, LITELLM_MASTER_KEY) to the "
                    "value the LiteLLM proxy uses"
                )
            raise DecryptError(
                f"litellm_params.{name} of deployment {model_id} could not be decrypted: it was encrypted "
                "with another key. Set LITELLM_SALT_KEY (or LITELLM_MASTER_KEY when the proxy has no salt "
                "key) to the exact value the LiteLLM proxy uses"
            )
        out[name] = value if plain is None else plain
    return out


@functools.cache  # one entry per distinct (model, base_model): small, and the relay lives long
def _cost_map_info(model: str, base_model: str | None) -> tuple[tuple[str, Any], ...]:
    import litellm

    def lookup(name: str | None, provider: str | None = None) -> dict[str, Any]:
        if not name:
            return {}
        try:
            info = litellm.get_model_info(model=name, custom_llm_provider=provider)
        except Exception:
            return {}
        return dict(info) if isinstance(info, Mapping) else {}

    lookup_name = base_model if ("azure" in model or base_model) else model
    info = lookup(lookup_name)
    if not info and lookup_name != model:
        info = lookup(model)
    if not info and "/" in model:
        provider, _, rest = model.partition("/")
        info = lookup(rest.rsplit("/", 1)[-1], provider)
    return tuple(info.items())


def clear_cost_map_cache() -> None:
    """Forget cached cost-map lookups (benchmarks measure cold runs with it)."""
    _cost_map_info.cache_clear()


def enrich_model_info(params: Mapping[str, Any], model_info: Mapping[str, Any]) -> dict[str, Any]:
    """``model_info`` completed from LiteLLM's cost map, the way ``/model/info`` reports it.

    Explicit ``model_info`` values always win; only missing keys are filled in.
    """
    model = params.get("model")
    if not isinstance(model, str) or not model:
        return dict(model_info)
    base = model_info.get("base_model")
    extra = _cost_map_info(model, base if isinstance(base, str) else None)
    merged = dict(model_info)
    for k, v in extra:
        if k not in merged:
            merged[k] = v
    return merged


# -- inside the proxy ------------------------------------------------------------------------------


def proxy_server_module() -> Any | None:
    """``litellm.proxy.proxy_server`` when this process is the proxy (never imports it)."""
    return sys.modules.get("litellm.proxy.proxy_server")


def proxy_master_key() -> str | None:
    """The running proxy's master key (may come from config.yaml), read lazily."""
    mod = proxy_server_module()
    key = getattr(mod, "master_key", None) if mod is not None else None
    return key if isinstance(key, str) and key else None


def router_config_models() -> list[dict[str, Any]]:
    """Config-file deployments of the running proxy's router (DB deployments excluded)."""
    mod = proxy_server_module()
    router = getattr(mod, "llm_router", None) if mod is not None else None
    if router is None:
        return []
    out: list[dict[str, Any]] = []
    for dep in router.get_model_list() or []:
        item = dict(dep)
        info = dict(item.get("model_info") or {})
        if info.get("db_model"):
            continue
        out.append(
            {
                "model_name": item.get("model_name"),
                "litellm_params": dict(item.get("litellm_params") or {}),
                "model_info": info,
            }
        )
    return out
