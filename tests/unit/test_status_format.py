"""`status` reads as a verdict, and no line contradicts another."""

from __future__ import annotations

from litemaas_hooks import outbox
from litemaas_hooks.status import Drift, StatusReport, format_status


def _report(**kwargs: object) -> StatusReport:
    report = StatusReport(litellm_db="postgresql://u:***@h/litellm", backend_db="postgresql://u:***@h/litemaas")
    report.trigger = outbox.TriggerState(True, True, True, True)
    report.counts = outbox.OutboxCounts(0, 0, 0, None)
    for k, v in kwargs.items():
        setattr(report, k, v)
    return report


def test_healthy_says_why() -> None:
    text = format_status(_report(drift=Drift(checked=True)))
    assert text.splitlines()[0] == (
        "litemaas-hooks status: HEALTHY: trigger installed, "
        "outbox empty, no dead events, backend in sync with LiteLLM"
    )


def test_rows_not_in_litellms_table_outside_the_proxy_do_not_contradict_no_drift() -> None:
    drift = Drift(checked=True, not_in_table=["from-config-file"], config_models_known=False)
    text = format_status(_report(drift=drift))
    assert "HEALTHY" in text.splitlines()[0]
    assert "drift            : none among the models in LiteLLM's table" in text
    assert "every backend row matches" not in text
    assert "not in LiteLLM's table, not known to come from it (1; config-file models" in text
    assert "gone from LiteLLM, not retired" not in text


def test_unhealthy_lists_the_problems_first() -> None:
    drift = Drift(checked=True, missing_in_backend=["a"])
    text = format_status(
        _report(
            drift=drift, problems=["1 LiteLLM models are missing: run `litemaas-hooks backfill`"]
        )
    )
    lines = text.splitlines()
    assert lines[0] == "litemaas-hooks status: UNHEALTHY, 1 problem (each with its fix):"
    assert lines[1].startswith("  - 1 LiteLLM models are missing")
    assert "drift            : yes" in text
    assert "none" not in text
