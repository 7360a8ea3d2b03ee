"""``litellm_adapter.cost_map_lookup`` against a plain reference, with LiteLLM itself.

The lookup registers a probe deployment in ``litellm.model_cost`` as LiteLLM >= 1.108's router
does, then undoes exactly what the probe's registration wrote (``_ProbeWrites``) and puts LiteLLM's
lowercase index back (``_LowercaseIndex``). The reference registers the same probe and puts the
whole map back from a copy, leaving the index to LiteLLM's own rebuild: obviously right, O(size of
the map). Both must give the same answer, and after the lookup the map must be the one before it:
the same keys in the same order, each with the very same value, none changed in place; a later
``get_model_info`` must answer as if no probe had ever been registered. Runs on the installed
LiteLLM (1.108.7: registration; 1.81.0: none, the lookup only asks).
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from litemaas_hooks import litellm_adapter

pytestmark = pytest.mark.filterwarnings("ignore")

# (model, base_model): unknown models, known ones, names that match a cost-map key only by case or
# by their last segment (the probe's registration then overwrites that key), azure with base_model
CASES: list[tuple[str, str | None]] = [
    ("openai/foo-1", None),
    ("hosted_vllm/x", None),
    ("foo", None),
    ("openai/gpt-4o", None),
    ("gpt-4o", None),
    ("openai/GPT-4o", None),
    ("GPT-4O", None),
    ("openai/gpt-4o-2024-08-06", None),
    ("azure/my-deployment", "gpt-4o"),
    ("azure/my-deployment", "azure/gpt-4o"),
    ("azure/gpt-4o", None),
    ("openai/gpt-4o", "gpt-4o-mini"),
    ("responses/openai/gpt-4o", None),
    ("anthropic/claude-3-5-sonnet-20240620", None),
    ("bedrock/anthropic.claude-3-sonnet-20240229-v1:0", None),
    ("text-embedding-3-small", None),
    (litellm_adapter.PROBE_ID, None),
]


def _litellm() -> Any:
    return litellm_adapter._import_litellm()


def _cases(cost: dict[str, Any]) -> list[tuple[str, str | None]]:
    """``CASES`` and a sample of the map's own keys: as they are, upper-cased, and as
    ``provider/last segment``."""
    keys = [k for k in cost if k != "sample_spec"]
    sample = keys[::60]
    return [
        *CASES,
        *((k, None) for k in sample),
        *((k.upper(), None) for k in sample[::3]),
        *((f"openai/{k.split('/')[-1]}", None) for k in sample[1::3]),
    ]


@contextlib.contextmanager
def _plainly_registered(litellm: Any, model: str) -> Iterator[None]:
    """The reference for ``_registered_like_the_router``: the same probe, the whole map put back
    from a copy, the index left to LiteLLM."""
    from litellm.router import Router
    from litellm.types.router import Deployment

    cost = litellm.model_cost
    saved = dict(cost)
    register = getattr(Router, "_register_deployment_pricing", None)
    try:
        if register is not None:
            probe = litellm_adapter.PROBE_ID
            register(
                Deployment.model_validate(
                    {
                        "model_name": probe,
                        "litellm_params": {"model": model},
                        "model_info": {"id": probe},
                    }
                )
            )
            litellm_adapter._clear_lookup_cache(litellm)
        yield
    finally:
        cost.clear()
        cost.update(saved)
        drop = getattr(litellm.utils, "_invalidate_model_cost_lowercase_map", None)
        if callable(drop):
            drop()
        litellm_adapter._clear_lookup_cache(litellm)


def _reference(monkeypatch: pytest.MonkeyPatch, model: str, base: str | None) -> dict[str, Any]:
    with monkeypatch.context() as patched:
        patched.setattr(litellm_adapter, "_registered_like_the_router", _plainly_registered)
        return litellm_adapter.cost_map_lookup(model, base)


def _asked(litellm: Any, model: str) -> object:
    """LiteLLM's own answer for ``model`` and its case variants (what a later lookup sees)."""
    out: list[object] = []
    for name in (model, model.lower(), model.upper()):
        try:
            out.append(dict(litellm.get_model_info(model=name)))
        except Exception as exc:
            out.append(type(exc).__name__)
    key_of = getattr(litellm.utils, "get_model_cost_key", None)
    if callable(key_of):
        out.extend(key_of(name) for name in (model, model.lower(), model.upper()))
    return out


def _assert_as_before(litellm: Any, items: list[tuple[str, Any]], what: str) -> None:
    """``model_cost`` has the keys of ``items`` in their order with the very same values, and
    LiteLLM's index, when it has one, is the one its own rebuild would make."""
    cost = litellm.model_cost
    assert list(cost) == [k for k, _ in items], f"{what}: keys or their order changed"
    changed = [k for (k, v), now in zip(items, cost.values(), strict=True) if now is not v]
    assert not changed, f"{what}: values not put back: {changed[:5]}"
    index = getattr(litellm.utils, "_model_cost_lowercase_map", None)
    if index is not None:
        assert index == {k.lower(): k for k in cost}, f"{what}: LiteLLM's index is not its own"


def test_answers_and_the_map_left_behind_are_the_plain_references(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    litellm = _litellm()
    cost = litellm.model_cost
    deep = copy.deepcopy(cost)
    for model, base in _cases(cost):
        items = list(cost.items())
        asked = _asked(litellm, model)
        expected = _reference(monkeypatch, model, base)
        _assert_as_before(litellm, items, f"reference {model!r}")
        got = litellm_adapter.cost_map_lookup(model, base)
        assert got == expected, f"{model!r} (base_model {base!r})"
        _assert_as_before(litellm, items, f"{model!r} (base_model {base!r})")
        assert _asked(litellm, model) == asked, f"{model!r}: LiteLLM answers otherwise after it"
    assert cost == deep, "an entry of the cost map was changed in place"


def _registers(litellm: Any) -> Any:
    from litellm.router import Router

    register = getattr(Router, "_register_deployment_pricing", None)
    if register is None:
        pytest.skip("this LiteLLM's router registers no deployment in its cost map (1.81)")
    return register


def test_aliases_sharing_an_overwritten_entry_are_put_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    litellm = _litellm()
    _registers(litellm)
    from litellm.litellm_core_utils.get_model_cost_map import AliasedCostEntry

    cost = litellm.model_cost
    names = ("gpt-4o", "litemaas-test-alias")
    shared = AliasedCostEntry(cost["gpt-4o"], names)
    for name in names:  # put back (and the alias removed) by monkeypatch at the end
        monkeypatch.setitem(cost, name, shared)
    litellm.utils._invalidate_model_cost_lowercase_map()
    items = list(cost.items())
    for model in ("openai/gpt-4o", "openai/GPT-4o", "litemaas-test-alias"):
        expected = _reference(monkeypatch, model, None)
        got = litellm_adapter.cost_map_lookup(model, None)
        assert got == expected, model
        _assert_as_before(litellm, items, model)
    litellm.utils._invalidate_model_cost_lowercase_map()


def test_the_index_while_the_probe_is_registered_is_litellms_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    litellm = _litellm()
    register = _registers(litellm)
    from litellm.router import Router

    seen: list[bool] = []

    def checked(deployment: Any) -> None:
        register(deployment)
        index = litellm.utils._model_cost_lowercase_map
        seen.append(index == {k.lower(): k for k in litellm.model_cost})

    monkeypatch.setattr(Router, "_register_deployment_pricing", staticmethod(checked))
    litellm_adapter.cost_map_lookup("openai/gpt-4o", None)  # LiteLLM's index exists
    for model in ("openai/Never-Seen-Index", "openai/GPT-4o", "hosted_vllm/x"):
        litellm_adapter.cost_map_lookup(model, None)
    assert seen == [True] * 4


@pytest.mark.parametrize("how", ["another thread", "behind litellm's back"])
def test_a_key_someone_else_adds_meanwhile_stays_and_is_found(
    monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Not the probe's: left in the map, and LiteLLM's index (rebuilt lazily) finds it."""
    litellm = _litellm()
    register = _registers(litellm)
    from litellm.router import Router

    key = "litemaas-test-someone-else"

    def add() -> None:
        litellm.register_model({key: {"mode": "chat"}}, persist_across_reloads=False)

    def with_another_write(deployment: Any) -> None:
        register(deployment)
        if how == "another thread":
            thread = threading.Thread(target=add)
            thread.start()
            thread.join()
        else:
            litellm.model_cost[key] = {"mode": "chat"}

    monkeypatch.setattr(Router, "_register_deployment_pricing", staticmethod(with_another_write))
    items = list(litellm.model_cost.items())
    try:
        litellm_adapter.cost_map_lookup("openai/never-seen-meanwhile", None)
        assert key in litellm.model_cost
        assert litellm.utils.get_model_cost_key(key.upper()) == key
        del litellm.model_cost[key]
        litellm.utils._invalidate_model_cost_lowercase_map()
        _assert_as_before(litellm, items, how)
    finally:
        litellm.model_cost.pop(key, None)
        litellm.utils._invalidate_model_cost_lowercase_map()


def test_two_lookups_in_two_threads_leave_the_map_and_litellm_as_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The second thread's probe would register while the first's is in the map, and the first
    would finish first (it waits for the second to register, 0.3 s at most: one at a time, it
    never does)."""
    litellm = _litellm()
    register = _registers(litellm)
    from litellm.router import Router

    first_in, second_in, first_done = threading.Event(), threading.Event(), threading.Event()

    def paced(deployment: Any) -> None:
        register(deployment)
        if deployment.litellm_params.model == "openai/first-thread":
            first_in.set()
            second_in.wait(timeout=0.3)
        else:
            second_in.set()
            first_done.wait(timeout=5)

    def second() -> None:
        first_in.wait(timeout=5)
        litellm_adapter.cost_map_lookup("openai/second-thread", None)

    monkeypatch.setattr(Router, "_register_deployment_pricing", staticmethod(paced))
    utils = litellm.utils
    write, drop = utils._replace_cost_map_entry, utils._invalidate_model_cost_lowercase_map
    items = list(litellm.model_cost.items())
    thread = threading.Thread(target=second)
    thread.start()
    litellm_adapter.cost_map_lookup("openai/first-thread", None)
    first_done.set()
    thread.join()
    _assert_as_before(litellm, items, "two threads")
    assert utils._replace_cost_map_entry is write
    assert utils._invalidate_model_cost_lowercase_map is drop
