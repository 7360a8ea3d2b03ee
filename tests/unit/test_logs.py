"""JSON log lines (LiteLLM's JSON_LOGS or
LITEMAAS_HOOKS_LOG_FORMAT=json) and the secret filter on them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator

import pytest

from litemaas_hooks import logs
from litemaas_hooks.settings import load_settings

PASSWORD = "pw-very-secret"
KEY = "sk-" + "ab" * 32


@pytest.fixture
def stream(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    """Our handler with JSON lines; returns what it wrote
    to stderr. Set back to text lines afterwards."""
    logs.configure("DEBUG", [PASSWORD, KEY], json_lines=True)
    capsys.readouterr()
    written: list[str] = []

    def read() -> str:
        written.append(capsys.readouterr().err)
        return "".join(written)

    yield read
    logs.configure("INFO", [], json_lines=False)


def test_one_json_object_per_line_with_fields(stream: Callable[[], str]) -> None:
    log = logging.getLogger("litemaas_hooks.relay")
    log.warning(
        "event %d failed: cannot reach postgresql://admin:%s@db/litemaas_db",
        7,
        PASSWORD,
        extra={
            "event_id": 7,
            "outcome": "retrying",
            "models": {"granite": "created"},
            "why": f"key {KEY}",
        },
    )
    log.info("second line")
    lines = stream().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["level"] == "WARNING"
    assert first["logger"] == "litemaas_hooks.relay"
    assert first["message"] == "event 7 failed: cannot reach postgresql://admin:***@db/litemaas_db"
    assert first["event_id"] == 7
    assert first["outcome"] == "retrying"
    assert first["models"] == {"granite": "created"}
    assert first["why"] == "key ***"
    assert first["time"].endswith("+00:00")
    assert json.loads(lines[1])["message"] == "second line"
    assert PASSWORD not in stream()
    assert KEY not in stream()


def test_exceptions_stay_on_one_line_and_are_scrubbed(stream: Callable[[], str]) -> None:
    try:
        raise RuntimeError(f"boom with {KEY}")
    except RuntimeError:
        logging.getLogger("litemaas_hooks.relay").exception("converge failed")
    (line,) = stream().splitlines()
    record = json.loads(line)
    assert "Traceback" in record["exception"]
    assert "RuntimeError: boom with ***" in record["exception"]
    assert KEY not in line


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"JSON_LOGS": "true"}, True),  # LiteLLM's own switch
        ({"JSON_LOGS": "False"}, False),
        ({"LITEMAAS_HOOKS_LOG_FORMAT": "json"}, True),
        ({"LITEMAAS_HOOKS_LOG_FORMAT": "JSON"}, True),
        ({"LITEMAAS_HOOKS_LOG_FORMAT": "text", "JSON_LOGS": "true"}, True),
    ],
)
def test_json_switches(env: dict[str, str], expected: bool) -> None:
    assert load_settings(env).json_log_lines is expected


def test_an_unknown_log_format_is_a_setting_error() -> None:
    with pytest.raises(
        Exception, match=r"LITEMAAS_HOOKS_LOG_FORMAT='yaml' must be one of text, json"
    ):
        load_settings({"LITEMAAS_HOOKS_LOG_FORMAT": "yaml"})


def test_litellms_cost_map_fetch_warnings_become_one_line() -> None:
    """What LiteLLM 1.108 logs offline (first attempt, fallback, background retries) -> one line."""
    logger = logging.getLogger("LiteLLM")
    saved = (logger.filters[:], logger.handlers[:], logger.propagate)
    out = io.StringIO()
    logger.handlers = [logging.StreamHandler(out)]
    logger.propagate = False
    logger.filters = []
    try:
        logs.collapse_litellm_cost_map_warnings()
        logs.collapse_litellm_cost_map_warnings()  # idempotent
        url = "https://raw.githubusercontent.com/BerriAI/litellm/main/model_prices_and_context_window.json"
        logger.warning(
            "LiteLLM: model cost map fetch attempt 1/3 failed (ConnectError fetching %s); retrying",
            url,
        )
        logger.warning(
            "LiteLLM: Failed to fetch remote model cost map "
            "from %s: boom. Falling back to local backup.",
            url,
        )
        logger.warning("LiteLLM: something else")
        logger.warning(
            "LiteLLM: Failed to fetch remote model cost map "
            "from %s after 3 attempts; keeping local backup",
            url,
        )
    finally:
        logger.filters, logger.handlers, logger.propagate = saved
    assert out.getvalue().splitlines() == [logs.COST_MAP_FALLBACK_LINE, "LiteLLM: something else"]
