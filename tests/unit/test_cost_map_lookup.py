"""LiteLLM's own cost-map answer (``litellm_adapter.cost_map_lookup``) without rebuilding LiteLLM's
index of the whole cost map for each never-seen model.

LiteLLM >= 1.108 drops its lowercase index of ``model_cost`` at every registration and rebuilds it
over every key (thousands) at the next lookup. The lookup registers a probe deployment as the
router does, then removes it: the index was rebuilt inside the lookup AND again at the next one
(about 1 ms each, on the relay's path for every new model); now never. Putting the map back touches
only the keys the probe's registration wrote (``_ProbeWrites``), checked here on a map of our own
like LiteLLM's. The answers themselves are checked against the proxy's view over the whole cost map
in ``test_model_info_view``, and against a plain copy-and-restore in ``test_lookup_restore``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from types import SimpleNamespace
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


class _Aliased(dict[str, Any]):
    """LiteLLM 1.108's ``AliasedCostEntry``: one entry served under several names."""

    def __init__(self, entry: Mapping[str, Any], names: tuple[str, ...]) -> None:
        super().__init__(entry)
        self.names = names


def _write(cost: dict[str, Any], key: str, entry: Mapping[str, Any], _: Mapping[str, Any]) -> None:
    """LiteLLM 1.108's ``_replace_cost_map_entry``: the key, and the aliases sharing its entry."""
    current = cost.get(key)
    names = getattr(current, "names", ())
    sharing = tuple(name for name in names if cost.get(name) is current)
    cost.update(dict.fromkeys((key, *sharing), _Aliased({**(current or {}), **entry}, names)))


def _cost_map() -> dict[str, Any]:
    cost: dict[str, Any] = {f"k{i}": {"i": i} for i in range(1000)}
    # k5 and alias-5 share one entry; alias-gone is one of its names but not in the map
    cost["k5"] = cost["alias-5"] = _Aliased({"i": 5}, ("k5", "alias-5", "alias-gone"))
    return cost


def _assert_same(cost: dict[str, Any], items: list[tuple[str, Any]]) -> None:
    """The same keys in the same order, each with the very same value."""
    assert list(cost) == [k for k, _ in items]
    changed = [k for (k, v), now in zip(items, cost.values(), strict=True) if now is not v]
    assert not changed, f"values not put back: {changed}"


@pytest.mark.parametrize("write_point", [True, False], ids=["write-point", "compared-whole"])
def test_the_probes_writes_are_undone_key_by_key(write_point: bool) -> None:
    cost = _cost_map()
    items = list(cost.items())
    utils = SimpleNamespace(_replace_cost_map_entry=_write) if write_point else SimpleNamespace()
    probe = litellm_adapter._ProbeWrites(utils, cost)
    with probe.recording():
        write = getattr(utils, "_replace_cost_map_entry", _write)  # our wrapper, when there is one
        # what a registration does: new keys, old keys overwritten (one of them aliased), twice
        for key in ("probe", "k5", "k7", "openai/probe", "probe", "k999"):
            write(cost, key, {"x": 1}, {})
    assert cost["alias-5"] is cost["k5"]
    assert cost["k5"]["x"] == 1, "the alias was written with its key"
    if write_point:
        assert utils._replace_cost_map_entry is _write, "LiteLLM's function not put back"
        assert probe.added == ["probe", "openai/probe"]
        assert set(probe.before) == {"probe", "k5", "alias-5", "k7", "openai/probe", "k999"}
    probe.undo()
    _assert_same(cost, items)
    assert probe.alone() is write_point, "a compared map is never followed by the index"


def test_another_threads_write_is_left_to_it_and_ends_the_tracking() -> None:
    cost = _cost_map()
    items = list(cost.items())
    utils = SimpleNamespace(_replace_cost_map_entry=_write)
    probe = litellm_adapter._ProbeWrites(utils, cost)
    with probe.recording():
        utils._replace_cost_map_entry(cost, "probe", {"x": 1}, {})
        theirs = threading.Thread(
            target=utils._replace_cost_map_entry, args=(cost, "theirs", {"y": 2}, {})
        )
        theirs.start()
        theirs.join()
    probe.undo()
    assert "theirs" in cost
    assert "probe" not in cost
    del cost["theirs"]
    _assert_same(cost, items)
    assert not probe.tracked


def test_a_key_added_behind_litellms_back_is_seen_by_its_count() -> None:
    cost = _cost_map()
    probe = litellm_adapter._ProbeWrites(SimpleNamespace(_replace_cost_map_entry=_write), cost)
    with probe.recording():
        cost["raw"] = {}
    probe.undo()
    assert probe.tracked
    assert not probe.alone()


class _Utils:
    """LiteLLM 1.108's ``utils`` as the probe sees it: its write of a registration, its lowercase
    index of ``cost`` with the mutation counter, and ``register_model``'s write then drop."""

    def __init__(self, cost: dict[str, Any]) -> None:
        self.cost = cost
        self._replace_cost_map_entry = _write
        self._model_cost_mutation_generation = 0
        self._model_cost_lowercase_map: dict[str, str] | None = None
        self._rebuild_model_cost_lowercase_map()

    def _invalidate_model_cost_lowercase_map(self) -> None:
        self._model_cost_lowercase_map = None
        self._model_cost_mutation_generation += 1

    def _rebuild_model_cost_lowercase_map(self) -> dict[str, str]:
        self._model_cost_lowercase_map = {k.lower(): k for k in self.cost}
        return self._model_cost_lowercase_map

    def register(self, key: str) -> None:
        self._replace_cost_map_entry(self.cost, key, {"x": 1}, {})
        self._invalidate_model_cost_lowercase_map()


@contextlib.contextmanager
def _probe(utils: _Utils) -> Iterator[None]:
    """``_registered_like_the_router``'s frame, around what ``utils`` is made to do inside."""
    probe = litellm_adapter._ProbeWrites(utils, utils.cost)
    index = litellm_adapter._LowercaseIndex(utils, probe)
    try:
        with probe.recording(), index.registering():
            yield
    finally:
        probe.undo()
        index.restore(intact=probe.alone())


def test_the_index_follows_the_probe_and_is_put_back() -> None:
    cost = _cost_map()
    utils = _Utils(cost)
    before, drop = utils._model_cost_lowercase_map, utils._invalidate_model_cost_lowercase_map
    with _probe(utils):
        # new keys, an old one, and a new one with an old one's lower case (the later key wins)
        for key in ("Probe", "k5", "K7", "openai/probe"):
            utils.register(key)
            assert utils._model_cost_lowercase_map == {k.lower(): k for k in cost}
    assert utils._model_cost_lowercase_map is before
    assert before == {k.lower(): k for k in cost}
    assert utils._invalidate_model_cost_lowercase_map == drop, "LiteLLM's drop not put back"


def test_a_drop_by_another_thread_while_registering_leaves_litellms_lazy_rebuild() -> None:
    utils = _Utils(_cost_map())
    with _probe(utils):
        utils.register("probe")
        other = threading.Thread(target=utils._invalidate_model_cost_lowercase_map)
        other.start()
        other.join()
        utils.register("probe-2")
        assert utils._model_cost_lowercase_map is None, "our index set after another's drop"
    assert utils._model_cost_lowercase_map is None


def test_a_drop_by_anyone_during_the_lookup_leaves_litellms_lazy_rebuild() -> None:
    utils = _Utils(_cost_map())
    probe = litellm_adapter._ProbeWrites(utils, utils.cost)
    index = litellm_adapter._LowercaseIndex(utils, probe)
    with probe.recording(), index.registering():
        utils.register("probe")
    utils._invalidate_model_cost_lowercase_map()  # LiteLLM's own drop: the counter moves on
    probe.undo()
    index.restore(intact=probe.alone())
    assert utils._model_cost_lowercase_map is None
