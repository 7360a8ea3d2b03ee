"""Settings from the environment: typed values, every
problem at once, secrets that mask only secrets."""

from __future__ import annotations

import pytest

from litemaas_hooks.errors import ConfigError
from litemaas_hooks.redaction import scrub
from litemaas_hooks.settings import SecretStr, Settings, dsn_passwords, load_settings

BACKEND = "postgresql://admin:p%40ss-word@db:5432/litemaas_db"


def test_defaults_and_types() -> None:
    s = load_settings({})
    assert (s.batch_size, s.poll_interval_seconds, s.enabled, s.log_level, s.log_format) == (
        500,
        5.0,
        True,
        "INFO",
        "text",
    )
    s = load_settings(
        {
            "litemaas_hooks_batch_size": " 20 ",
            "LITEMAAS_HOOKS_ENABLED": "off",
            "LITEMAAS_HOOKS_LOG_LEVEL": "debug",
        }
    )
    assert (s.batch_size, s.enabled, s.log_level) == (20, False, "DEBUG")
    assert load_settings({}, batch_size=3, enabled=False).batch_size == 3


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LITEMAAS_HOOKS_BATCH_SIZE": "0"}, "LITEMAAS_HOOKS_BATCH_SIZE='0' must be at least 1"),
        (
            {"LITEMAAS_HOOKS_BATCH_SIZE": "1e3"},
            "LITEMAAS_HOOKS_BATCH_SIZE='1e3' must be a whole number",
        ),
        ({"LITEMAAS_HOOKS_POLL_INTERVAL_SECONDS": "0"}, "must be greater than 0"),
        ({"LITEMAAS_HOOKS_POLL_INTERVAL_SECONDS": "nan"}, "must be a finite number"),
        (
            {"LITEMAAS_HOOKS_RETIRE_CASCADE": "sure"},
            "LITEMAAS_HOOKS_RETIRE_CASCADE='sure' must be true or false",
        ),
        ({"LITEMAAS_HOOKS_LOG_LEVEL": "TRACE"}, "must be one of DEBUG, INFO, WARNING, ERROR"),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(env)


def test_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(
            {"LITEMAAS_HOOKS_MAX_ATTEMPTS": "-1", "LITEMAAS_HOOKS_ENABLED": "maybe"},
            require=("backend", "litellm"),
        )
    lines = str(exc.value).splitlines()
    assert lines[0] == "4 settings need fixing:"
    assert [line.split()[1].split("=")[0] for line in lines[1:]] == [
        "LITEMAAS_HOOKS_MAX_ATTEMPTS",
        "LITEMAAS_HOOKS_ENABLED",
        "LITEMAAS_DATABASE_URL",
        "neither",
    ]


def test_url_checks_only_for_the_databases_a_command_needs() -> None:
    s = load_settings({"LITEMAAS_DATABASE_URL": "mysql://x"})  # e.g. write-shim: no URL needed
    with pytest.raises(ConfigError, match="is not a PostgreSQL URL"):
        s.backend_dsn()
    assert load_settings(
        {"LITEMAAS_DATABASE_URL": "host=db dbname=litemaas_db"}, require=["backend"]
    )
    assert (
        load_settings({"DATABASE_URL": "postgres://db/litellm"}).litellm_dsn_source()
        == "DATABASE_URL"
    )


def test_secrets_are_passwords_and_keys_not_whole_urls() -> None:
    s = load_settings({"LITEMAAS_DATABASE_URL": BACKEND, "LITELLM_DATABASE_URL": "postgresql:///litellm_db"})
    assert s.secrets() == ["p%40ss-word", "p@ss-word"]
    # the database names stay readable in errors; the password does not
    assert (
        scrub("litellm_db and litemaas_db with p@ss-word", s.secrets())
        == "litellm_db and litemaas_db with ***"
    )
    assert dsn_passwords("host=db password='a b c' dbname=x") == ["'a b c'", "a b c"]
    assert repr(SecretStr("x")) == "SecretStr('**********')"
    assert "p@ss" not in repr(s)


def test_field_declarations_like_pydantic() -> None:
    fields = Settings.fields()
    assert fields["batch_size"].alias == "LITEMAAS_HOOKS_BATCH_SIZE"
    assert fields["batch_size"].default_text == "500"
    assert fields["poll_interval_seconds"].default_text == "5"
    assert fields["enabled"].default_text == "true"
    assert fields["litemaas_database_url"].optional
    assert fields["litemaas_database_url"].type is SecretStr


def test_env_secrets_gathers_url_passwords_and_keys_without_reading_the_settings() -> None:
    """One gatherer for the CLI and the plugin: the passwords (not the whole URLs: a database name
    stays readable) and the two keys, even when the settings themselves are invalid."""
    from litemaas_hooks.settings import env_secrets

    env = {
        "LITEMAAS_DATABASE_URL": "postgresql://u:pw%21x@h/litemaas",
        "DATABASE_URL": "host=h password=kv-secret dbname=litellm",
        "LITELLM_MASTER_KEY": "sk-master",
        "LITEMAAS_HOOKS_RELAY_BATCH_SIZE": "not a number",
    }
    found = env_secrets(env)
    assert {"pw%21x", "pw!x", "kv-secret", "sk-master"} <= set(found)
    assert not any("litemaas" in s or "litellm" in s for s in found)
