"""Backoff: exponential growth, the cap, the jitter band and reset (no DB)."""

from __future__ import annotations

import pytest

from litemaas_hooks.backoff import Backoff


def test_delays_grow_by_the_factor_until_the_cap() -> None:
    b = Backoff(initial_delay_seconds=1.0, max_delay_seconds=5.0, factor=2.0, jitter=0.0)
    assert [b.next_delay() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert b.failures == 5


def test_jitter_stays_within_its_band() -> None:
    b = Backoff(initial_delay_seconds=10.0, max_delay_seconds=100.0, factor=1.0, jitter=0.1)
    delays = [b.next_delay() for _ in range(200)]
    assert all(9.0 <= d <= 11.0 for d in delays)
    assert len(set(delays)) > 1  # jittered, not lock-step


def test_reset_starts_over() -> None:
    b = Backoff(initial_delay_seconds=1.0, max_delay_seconds=30.0, jitter=0.0)
    b.next_delay()
    b.next_delay()
    b.reset()
    assert b.failures == 0
    assert b.next_delay() == 1.0


@pytest.mark.parametrize(
    "kwargs",
    [{"initial_delay_seconds": 0}, {"max_delay_seconds": -1}, {"factor": 0.5}, {"jitter": 1.0}],
)
def test_bad_arguments_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(**kwargs)
