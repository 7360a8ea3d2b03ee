"""Our decryption (no LiteLLM import) gives exactly
LiteLLM's answers, on the installed LiteLLM version.

Ciphertexts are made by LiteLLM's own ``encrypt_value`` (NaCl) and, where the version has it,
``_encrypt_aes_gcm`` (``v2:gcm:``); the reference answer is LiteLLM's own decryption function.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable

import pytest

from litemaas_hooks import litellm_crypto

edu = pytest.importorskip("litellm.proxy.common_utils.encrypt_decrypt_utils")

KEY = "sk-" + "ab" * 32
OTHER = "sk-" + "cd" * 32
PLAINTEXTS = [
    "openai/gpt-4o",
    "http://vllm.models.svc:8000/v1",
    "",
    "x",
    "modèle-日本語 'quoted' \"double\"",
    "os.environ/VLLM_API_KEY",
    "a" * 5000,
]
NOT_CIPHERTEXTS = [
    "",
    "*",
    "openai/gpt-4o",
    "hosted_vllm/org/model-x",
    "http://x:8000/v1",
    "AAAA",
    "Zm9vYmFy",  # base64 of "foobar": too short for a SecretBox
    # base64 of random bytes: no valid MAC
    base64.urlsafe_b64encode(secrets.token_bytes(60)).decode(),
    "v2:gcm:",
    "v2:gcm:not-base64!",
]


def litellm_decrypt() -> Callable[[str, str], str | None]:
    """LiteLLM's answer for (value, key): plaintext or None."""
    if hasattr(edu, "decrypt_if_encrypted_with"):  # >= 1.108
        return lambda value, key: edu.decrypt_if_encrypted_with(value=value, signing_key=key)

    # 1.81: what decrypt_value_helper does, without get_salt_key()
    def legacy(value: str, key: str) -> str | None:
        try:
            try:
                raw = base64.urlsafe_b64decode(value)
            except Exception:
                raw = base64.b64decode(value)
            if not raw:
                return None  # 1.81 returns "" for an empty decode; no real ciphertext is empty
            result: str = edu.decrypt_value(value=raw, signing_key=key)
            return result
        except Exception:
            return None

    return legacy


def nacl_ciphertext(plain: str, key: str, *, urlsafe: bool = True) -> str:
    sealed = edu.encrypt_value(value=plain, signing_key=key)
    return (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(sealed).decode()


@pytest.mark.parametrize("plain", PLAINTEXTS)
def test_nacl_values_decrypt_like_litellm(plain: str) -> None:
    theirs = litellm_decrypt()
    for urlsafe in (True, False):
        value = nacl_ciphertext(plain, KEY, urlsafe=urlsafe)
        assert litellm_crypto.decrypt(value, KEY) == theirs(value, KEY) == plain
        assert litellm_crypto.decrypt(value, OTHER) is None
        assert theirs(value, OTHER) is None


@pytest.mark.parametrize("value", NOT_CIPHERTEXTS)
def test_values_that_are_not_ciphertexts_are_none_like_litellm(value: str) -> None:
    assert litellm_crypto.decrypt(value, KEY) is None
    assert litellm_decrypt()(value, KEY) is None


def test_many_random_values_and_keys() -> None:
    theirs = litellm_decrypt()
    for _ in range(200):
        key = "sk-" + secrets.token_hex(32)
        plain = secrets.token_urlsafe(secrets.randbelow(80))
        value = nacl_ciphertext(plain, key)
        assert litellm_crypto.decrypt(value, key) == theirs(value, key) == plain


@pytest.mark.skipif(
    not hasattr(edu, "_encrypt_aes_gcm"), reason="this LiteLLM version has no v2:gcm: format"
)
@pytest.mark.parametrize("plain", PLAINTEXTS)
def test_aes_gcm_values_decrypt_like_litellm(plain: str) -> None:
    theirs = litellm_decrypt()
    value = edu._encrypt_aes_gcm(value=plain, signing_key=KEY)
    assert value.startswith(litellm_crypto.V2_GCM_PREFIX)
    assert litellm_crypto.decrypt(value, KEY) == theirs(value, KEY) == plain
    assert litellm_crypto.decrypt(value, OTHER) is None
    assert theirs(value, OTHER) is None
    tampered = value[:-2] + ("AA" if not value.endswith("AA") else "BB")
    assert litellm_crypto.decrypt(tampered, KEY) is None
    assert theirs(tampered, KEY) is None


def test_decryption_does_not_import_litellm() -> None:
    import subprocess
    import sys

    value = nacl_ciphertext("openai/gpt-4o", KEY)
    code = (
        "import sys\nfrom litemaas_hooks import litellm_crypto\n"
        f"assert litellm_crypto.decrypt({value!r}, {KEY!r}) == 'openai/gpt-4o'\n"
        "assert 'litellm' not in sys.modules, 'litellm was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
