"""Fixtures of the deploy tests (their helpers: ``tests/deploy/render.py``,
``tests/deploy/upstream.py``)."""

from __future__ import annotations

import pytest

from tests.deploy.render import FLAVOURS, MODES, Docs, render


@pytest.fixture(
    scope="module",
    params=[(f, m) for f in FLAVOURS for m in MODES],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def rendered(request: pytest.FixtureRequest) -> tuple[str, str, Docs]:
    """The manifests of one flavour and mode: a test using it runs for every combination."""
    flavour, mode = request.param
    return flavour, mode, render(flavour, mode)
