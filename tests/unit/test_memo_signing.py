"""The shared cost-map memo is signed (issue 20 item 4): an item written by a role without our key —
forged facts, a forged or altered entry, an altered answer, a regular expression of its choosing —
is
never used and is counted for ``status``. Pure functions, no database."""

from __future__ import annotations

import json
from typing import Any

import pytest

from litemaas_hooks import cost_map, memo_share

FP = "f" * 32
KEY = memo_share.memo_key("sk-salt-of-this-installation")
OTHER = memo_share.memo_key("sk-someone-else")
FACTS = {
    "param_defaults": {},
    "info_defaults": {},
    "pricing_pattern": r"_above_\d+k?_tokens(?:_batches)?$",
}


def _memo() -> cost_map.Memo:
    memo = cost_map.Memo(FP, "1.108.7")
    memo.put(
        "openai/a\x1f",
        {"info": {"key": "a", "max_tokens": 8, "input_cost_per_token": 1e-06}, "unpriced": False},
    )
    memo.put("openai/b\x1f", {"info": {"key": "b", "max_tokens": 9}, "unpriced": True})
    return memo


def _shared(mkey: bytes = KEY) -> tuple[Any, Any, Any]:
    memo = _memo()
    facts, answers, entries = memo_share.sign(mkey, FP, FACTS, memo.answers, memo.entries)
    # through jsonb and back, as the table returns them
    return tuple(json.loads(json.dumps(v)) for v in (facts, answers, entries))


def test_signed_items_verify_and_come_back_as_the_memo_holds_them() -> None:
    facts, answers, entries = memo_share.verify(KEY, FP, *_shared())[:3]
    memo = _memo()
    assert facts == FACTS
    assert entries == memo.entries
    assert answers == memo.answers


def test_items_of_a_writer_without_the_key_are_ignored_and_counted() -> None:
    facts, answers, entries, bad = memo_share.verify(KEY, FP, *_shared(OTHER))
    assert (facts, answers, entries) == ({}, {}, {})
    assert bad == {"facts": 1, "entries": 2}


@pytest.mark.parametrize(
    "tamper",
    [
        "facts: every model a team model",
        "entry: points a lookup at another answer",
        "entry: unsigned",
        "answer: altered text",
        "another fingerprint's entry replayed",
    ],
)
def test_each_forgery_is_refused(tamper: str) -> None:
    facts, answers, entries = _shared()
    if tamper.startswith("facts"):
        evil = {**FACTS, "info_defaults": {"team_id": "evil"}}
        facts = {"text": json.dumps(evil), "mac": facts["mac"]}
    elif tamper.startswith("entry: points"):
        entries["openai/a\x1f"][0] = entries["openai/b\x1f"][0]
    elif tamper.startswith("entry: unsigned"):
        entries["openai/c\x1f"] = entries["openai/a\x1f"][:4]
    elif tamper.startswith("answer"):
        aid = entries["openai/a\x1f"][0]
        answers[aid] = answers[aid].replace('"max_tokens":8', '"max_tokens":1')
    else:
        _, _, entries = memo_share.sign(KEY, "e" * 32, {}, _memo().answers, _memo().entries)
    got_facts, got_answers, got_entries, bad = memo_share.verify(KEY, FP, facts, answers, entries)
    assert bad, tamper
    assert got_facts.get("info_defaults", {}).get("team_id") is None
    for k, entry in got_entries.items():
        assert got_answers[entry[0]] == _memo().answers[_memo().entries[k][0]]


@pytest.mark.parametrize(
    "pattern",
    ["(a+)+$", "(x|y)*z", "a" * 300, "_above_.*", "[", 42],
)
def test_a_regular_expression_of_the_wrong_shape_is_never_used(pattern: Any) -> None:
    facts = {**FACTS, "pricing_pattern": pattern}
    assert cost_map.facts_problem(facts) is not None
    memo = cost_map.Memo(FP, "1.108.7")
    memo.merge(facts, {}, {})
    assert memo.facts == {}  # not taken (LiteLLM is asked instead)
    signed = memo_share.sign(KEY, FP, facts, {}, {})
    assert memo_share.verify(KEY, FP, *signed)[3] == {
        "facts": 1
    }  # signed but unusable: refused too


def test_litellm_s_own_pattern_is_accepted() -> None:
    assert cost_map.facts_problem(FACTS) is None
