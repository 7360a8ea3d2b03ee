"""Logging setup: text or JSON lines, and a filter that removes every known secret from every
record.

JSON lines (``LITEMAAS_HOOKS_LOG_FORMAT=json``, or LiteLLM's own ``JSON_LOGS=true``): one object per
line with ``time``, ``level``, ``logger``, ``message`` and the record's fields passed with
``extra={...}`` (e.g. ``model``, ``event_id``, ``outcome``), plus ``exception`` when there is one.
The secret filter runs before either formatter, on the message, the fields and the traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from litemaas_hooks.redaction import scrub

# attributes every LogRecord has: anything else on a record came from ``extra=``
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra=`` fields of a record."""
    return {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
    }


def _scrub_value(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dict):
        return {str(k): _scrub_value(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub_value(v, secrets) for v in value]
    return value


class SecretFilter(logging.Filter):
    """Rewrites a record's message, fields and traceback with DSN passwords and the given secrets
    masked."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        for key, value in record_fields(record).items():
            setattr(record, key, _scrub_value(value, self.secrets))
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrub(
                logging.Formatter().formatException(record.exc_info), self.secrets
            )
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text, self.secrets)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the ``extra=`` fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record_fields(record).items():
            out.setdefault(key, value)
        if record.exc_info and record.exc_info[1] is not None:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out, default=str, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record (like logging's last resort),
    so a handler created while stderr was redirected (tests, an embedding process) never writes into
    a closed stream."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> Any:
        return sys.stderr


def configure(level: str, secrets: Iterable[str], *, json_lines: bool = False) -> None:
    """Log to stderr under the ``litemaas_hooks`` logger, scrubbing secrets (idempotent)."""
    logger = logging.getLogger("litemaas_hooks")
    logger.setLevel(level)
    formatter = JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT)
    for handler in logger.handlers:
        if getattr(handler, "_litemaas_hooks", False):
            handler.filters = [SecretFilter(secrets)]
            handler.setFormatter(formatter)
            return
    handler = StderrHandler()
    handler._litemaas_hooks = True  # type: ignore[attr-defined]
    handler.setFormatter(formatter)
    handler.addFilter(SecretFilter(secrets))
    logger.addHandler(handler)
    logger.propagate = False


class CostMapFallbackFilter(logging.Filter):
    """LiteLLM's warnings about fetching its model cost map (three or more per process when offline:
    the first attempt, the fallback, each background retry) become one line saying what it means."""

    def __init__(self) -> None:
        super().__init__()
        self.reported = False

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or "cost map" not in record.getMessage().lower():
            return True
        if self.reported:
            return False
        self.reported = True
        record.msg, record.args = COST_MAP_FALLBACK_LINE, None
        return True


COST_MAP_FALLBACK_LINE = (
    "LiteLLM could not fetch its model cost map from the internet and uses the copy bundled with "
    "the installed "
    "litellm; set LITELLM_LOCAL_MODEL_COST_MAP=True to skip the fetch (use the same value as the "
    "proxy, so that model info matches its /model/info)"
)


def collapse_litellm_cost_map_warnings() -> None:
    """Install ``CostMapFallbackFilter`` on LiteLLM's logger (before LiteLLM is imported;
    idempotent)."""
    logger = logging.getLogger("LiteLLM")
    if not any(isinstance(f, CostMapFallbackFilter) for f in logger.filters):
        logger.addFilter(CostMapFallbackFilter())
