"""Exception types. Every message says what was checked and how to fix it, and never holds a secret."""

from __future__ import annotations


class LiteMaaSHooksError(Exception):
    """Base class for every error this package raises on purpose."""


class ConfigError(LiteMaaSHooksError):
    """A setting is missing or invalid (the message names the variable and shows an example)."""


class DatabaseUnavailableError(LiteMaaSHooksError):
    """A database could not be reached (the message names the env var and the redacted DSN)."""


class MigrationError(LiteMaaSHooksError):
    """A schema migration could not be applied, or an applied one was edited afterwards."""


class DecryptError(LiteMaaSHooksError):
    """A litellm_params value could not be decrypted with the configured key."""


class MappingError(LiteMaaSHooksError):
    """A LiteLLM deployment cannot be mapped to a backend ``models`` row."""


class WrongDatabaseError(ConfigError):
    """A database URL points at the wrong kind of database (e.g. the two URLs swapped)."""


class NotInstalledError(LiteMaaSHooksError):
    """litemaas-hooks' schema is missing from a database: ``litemaas-hooks install`` first."""


class UnsafeObjectError(LiteMaaSHooksError):
    """An object another role controls was changed so that using it could run that role's code with
    our
    privileges (a column of a foreign type, a function altered after install): refused."""
