"""LiteLLM's own cost-map answer (``litellm_adapter.cost_map_lookup``) without rebuilding LiteLLM's
index of the whole cost map for each never-seen model.

LiteLLM >= 1.108 drops its lowercase index of ``model_cost`` at every registration and rebuilds it
over every key (thousands) at the next lookup. The lookup registers a probe deployment as the
router does, then removes it: the index was rebuilt inside the lookup AND again at the next one
(about 1 ms each, on the relay's path for every new model); now never. The answers themselves are
checked against the proxy's view over the whole cost map in ``test_model_info_view``.
"""

from __future__ import annotations

from typing import Any

import pytest

from litemaas_hooks import litellm_adapter

pytestmark = pytest.mark.filterwarnings("ignore")


def _utils() -> Any:
    litellm = litellm_adapter._import_litellm()
    from litellm.router import Router

    if getattr(Router, "_register_deployment_pricing", None) is None or not hasattr(
        litellm.utils, "_model_cost_mutation_generation"
    ):
        pytest.skip("this LiteLLM's router registers no deployment in its cost map (1.81)")
    return litellm.utils


def test_a_lookup_never_rebuilds_litellms_cost_map_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    utils = _utils()
    litellm_adapter.cost_map_lookup("openai/gpt-4o", None)  # warm: LiteLLM's own first build
    rebuild = utils._rebuild_model_cost_lowercase_map
    rebuilds: list[int] = []

    def counted() -> Any:
        rebuilds.append(1)
        return rebuild()

    monkeypatch.setattr(utils, "_rebuild_model_cost_lowercase_map", counted)
    for i in range(5):
        litellm_adapter.cost_map_lookup(f"openai/never-seen-{i}", None)
    assert not rebuilds, f"{len(rebuilds)} rebuilds of LiteLLM's index for 5 lookups"


def test_the_index_after_a_lookup_is_litellms_own() -> None:
    utils = _utils()
    litellm = litellm_adapter._import_litellm()
    before = set(litellm.model_cost)
    litellm_adapter.cost_map_lookup("openai/never-seen-x", None)
    assert set(litellm.model_cost) == before, "the probe's keys were left in the cost map"
    index = utils._model_cost_lowercase_map
    if index is not None:  # None: LiteLLM rebuilds it lazily
        assert index == {k.lower(): k for k in litellm.model_cost}
    # LiteLLM's case-insensitive lookups still answer, for a key the map has
    mixed = [k for k in litellm.model_cost if k.lower() != k]
    for key in mixed[:20]:
        assert utils.get_model_cost_key(key.lower()) is not None


def test_the_keys_a_registration_added_are_found_from_the_end() -> None:
    before = {f"k{i}" for i in range(1000)}
    cost: dict[str, Any] = {k: {} for k in sorted(before)}
    cost["probe"] = {}
    cost.pop("k5")
    cost["k5"] = {}  # an old key written again moves to the end: not added
    cost["openai/probe"] = {}
    assert sorted(litellm_adapter._added_keys(cost, before)) == ["openai/probe", "probe"]
    # keys removed as well: the count does not tell, the whole map is compared
    del cost["k7"]
    cost["third"] = {}
    assert sorted(litellm_adapter._added_keys(cost, before)) == ["openai/probe", "probe", "third"]
    assert litellm_adapter._added_keys({k: {} for k in before}, before) == []
