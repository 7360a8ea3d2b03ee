"""The cost-map memo's compact form: every answer comes back exactly as LiteLLM gave it, an answer
shared by many models is stored once, and two copies merge by union."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from litemaas_hooks import cost_map


def _template(key: str, provider: str = "openai") -> dict[str, Any]:
    return {
        "key": key,
        "max_tokens": None,
        "input_cost_per_token": 0,
        "litellm_provider": provider,
        "mode": None,
    }


def _memo() -> cost_map.Memo:
    return cost_map.Memo("f" * 32, "1.108.7")


def test_answers_come_back_exactly_and_are_fresh_copies() -> None:
    memo = _memo()
    answers: dict[str, dict[str, Any]] = {
        cost_map.lookup_key(f"openai/m-{i}", None): {
            "info": _template(f"openai/m-{i}"),
            "unpriced": True,
        }
        for i in range(500)
    }
    answers[cost_map.lookup_key("gpt-4o", "azure/gpt-4o")] = {
        "info": {"key": "gpt-4o", "max_tokens": 16384},
        "unpriced": False,
    }
    answers[cost_map.lookup_key("ollama/x", None)] = {"info": {}, "unpriced": False}  # 1.81: a miss
    for key, answer in answers.items():
        memo.put(key, answer)
    assert len(memo.answers) == 3  # 500 misses share one stored answer
    for key, answer in answers.items():
        got = memo.get(key)
        assert got == answer
        assert got is not None
        assert list(got["info"]) == list(answer["info"])  # key order kept
    got = memo.get(cost_map.lookup_key("openai/m-1", None))
    assert got is not None
    got["info"]["max_tokens"] = 1
    assert (
        memo.get(cost_map.lookup_key("openai/m-1", None))
        == answers[cost_map.lookup_key("openai/m-1", None)]
    )
    assert memo.get(cost_map.lookup_key("unknown", None)) is None


def test_saved_and_loaded_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITEMAAS_HOOKS_CACHE_DIR", str(tmp_path))
    source = cost_map.Source("local", "x", b"{}", "1.108.7")
    memo = cost_map.Memo.load(source)
    memo.facts = {"param_defaults": {}}
    memo.put("a\x1f", {"info": _template("a"), "unpriced": True})
    memo.save()
    again = cost_map.Memo.load(source)
    assert again.get("a\x1f") == {"info": _template("a"), "unpriced": True}
    assert again.facts == {"param_defaults": {}}
    assert not again.fresh  # read from disk: nothing learnt in this process


def test_two_copies_merge_by_union() -> None:
    one, two = _memo(), _memo()
    one.put("a\x1f", {"info": _template("a"), "unpriced": True})
    two.put("b\x1f", {"info": _template("b", "hosted_vllm"), "unpriced": True})
    answers, entries = two.delta()
    assert one.merge({}, answers, entries) == 1
    assert one.get("b\x1f") == two.get("b\x1f")
    assert one.merge({}, answers, entries) == 0
    # a lookup whose stored answer is missing (a torn copy) is unknown, never a wrong answer
    one.merge({}, {}, {"c\x1f": ["missing", "c", True, False]})
    assert one.get("c\x1f") is None
