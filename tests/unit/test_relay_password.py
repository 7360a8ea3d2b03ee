"""`install --grant-relay` refuses a relay password the deploy manifests cannot put into a URL as
is, or one too short to resist guessing: one line naming the fix, never the password itself."""

from __future__ import annotations

import pytest

from litemaas_hooks.errors import ConfigError
from litemaas_hooks.privileges import check_relay_password


@pytest.mark.parametrize("password", ["a" * 16, "0123456789abcdef0123", "Ab9-._~" * 3])
def test_url_safe_long_passwords_pass(password: str) -> None:
    check_relay_password(password)


@pytest.mark.parametrize(
    ("password", "said"),
    [
        ("short1", "has 6 characters (at least 16 needed)"),
        ("p@ss/word:with#stuff", "has 4 kind(s) of character a URL must escape"),
        ("spaces are not ok here", "1 kind(s) of character"),
    ],
)
def test_bad_passwords_are_refused_in_one_line(password: str, said: str) -> None:
    with pytest.raises(ConfigError) as err:
        check_relay_password(password)
    text = str(err.value)
    assert said in text
    assert "LITEMAAS_HOOKS_RELAY_PASSWORD" in text
    assert "openssl rand -hex 24" in text
    assert password not in text
    assert "\n" not in text
