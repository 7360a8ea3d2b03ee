"""Logging setup: one format, and a filter that removes every known secret from every record."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from litemaas_hooks.redaction import scrub


class SecretFilter(logging.Filter):
    """Rewrites a record's message with DSN passwords and the given secret values masked."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info), self.secrets)
            record.exc_info = None
        return True


def configure(level: str, secrets: Iterable[str]) -> None:
    """Log to stderr under the ``litemaas_hooks`` logger, scrubbing secrets (idempotent)."""
    logger = logging.getLogger("litemaas_hooks")
    logger.setLevel(level)
    for handler in logger.handlers:
        if getattr(handler, "_litemaas_hooks", False):
            handler.filters = [SecretFilter(secrets)]
            return
    handler = logging.StreamHandler()
    handler._litemaas_hooks = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretFilter(secrets))
    logger.addHandler(handler)
    logger.propagate = False
