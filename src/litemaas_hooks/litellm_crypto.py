"""LiteLLM's decryption of ``litellm_params`` values, without importing LiteLLM.

The same algorithms as ``litellm.proxy.common_utils.encrypt_decrypt_utils`` (1.81 and >= 1.108):
- legacy: NaCl SecretBox (XSalsa20-Poly1305) keyed with sha256(key), stored URL-safe base64
  (standard base64 accepted, as LiteLLM falls back to it);
- ``v2:gcm:`` + URL-safe base64(nonce(12) || ciphertext || tag(16)), AES-256-GCM with the same key
  (written by LiteLLM >= 1.108 with ``general_settings.encryption_algorithm: aes-256-gcm``).
``tests/unit/test_litellm_crypto.py`` proves the results equal LiteLLM's own functions.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib

V2_GCM_PREFIX = "v2:gcm:"


@functools.lru_cache(maxsize=8)
def _derive_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@functools.lru_cache(maxsize=8)
def _secret_box(key: str) -> object:
    import nacl.secret

    return nacl.secret.SecretBox(_derive_key(key))


def _legacy_bytes(value: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(value)
    except (binascii.Error, ValueError):
        return base64.b64decode(value)


def decrypt(value: str, key: str) -> str | None:
    """The plaintext of ``value`` under ``key``, or None when it is not a ciphertext under that key.

    Same answer as LiteLLM >= 1.108's ``decrypt_if_encrypted_with(value, key)``.
    """
    try:
        if value.startswith(V2_GCM_PREFIX):
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            sealed = base64.urlsafe_b64decode(value[len(V2_GCM_PREFIX) :])
            return AESGCM(_derive_key(key)).decrypt(sealed[:12], sealed[12:], None).decode("utf-8")
        raw = _legacy_bytes(value)
        if not raw:  # base64 skips characters outside its alphabet: "" and "*" decode to nothing
            return None
        box = _secret_box(key)
        plain: bytes = box.decrypt(raw)  # type: ignore[attr-defined]
        return plain.decode("utf-8")
    # binascii, nacl, cryptography and UnicodeDecodeError all mean "not a ciphertext under key"
    except Exception:
        return None
