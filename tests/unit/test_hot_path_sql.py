"""What every relayed change and every process start pays for stays small.

A LANGUAGE sql function that cannot be inlined (ours are SECURITY DEFINER with a pinned
search_path) is parsed and planned again at every call: ~0.3 ms for the snapshot alone, on every
change. PL/pgSQL caches its plans per session."""

from __future__ import annotations

import re

import pytest

from litemaas_hooks import sql
from litemaas_hooks.settings import Which

# every backend function of a relay's batch (reconcile.Reconciler._converge_names)
PER_CHANGE = (
    "check_function_v1",
    "try_lock_models_v1",
    "models_snapshot_v1",
    "upsert_models_v1",
    "note_model_sources_v1",
    "note_model_instances_v1",
    "retire_model_v2",
    "write_models_v1",
)
_FUNCTION = re.compile(
    r"CREATE OR REPLACE FUNCTION litemaas_hooks\.(?P<name>\w+)\(.*?\bLANGUAGE (?P<lang>\w+)",
    re.DOTALL | re.IGNORECASE,
)


# the relay's claim in LiteLLM's database (outbox.claim_batch), twice per change
PER_CHANGE_LITELLM = ("claim_batch_v1",)


@pytest.mark.parametrize(
    ("side", "names"), [("backend", PER_CHANGE), ("litellm", PER_CHANGE_LITELLM)]
)
def test_per_change_functions_are_plpgsql(side: Which, names: tuple[str, ...]) -> None:
    languages: dict[str, str] = {}
    for script in sql.repeatables(side):
        for match in _FUNCTION.finditer(script.sql):
            languages[match["name"]] = match["lang"].lower()
    expected = dict.fromkeys(names, "plpgsql")
    assert {name: languages.get(name) for name in names} == expected


def test_blank_chars_are_every_whitespace_character_of_unicode() -> None:
    """mapping.BLANK_CHARS scans only the code points below U+3001 (a process's start would spend
    ~0.25 s on all 1.1 million): no whitespace character lies beyond."""
    from litemaas_hooks import mapping

    beyond = [hex(c) for c in range(mapping._SPACE_BELOW, 0x110000) if chr(c).isspace()]
    assert beyond == []
    assert set(mapping.BLANK_CHARS) >= {" ", "\t", "\u00a0", "\u3000", "\u200b"}
