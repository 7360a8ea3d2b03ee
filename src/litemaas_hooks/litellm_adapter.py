"""Everything of ours that knows LiteLLM's internals, in three parts:

- ``decrypt_params``: ``litellm_params`` decrypted as LiteLLM does it, with LiteLLM's algorithm
  reimplemented in ``litellm_crypto`` (no LiteLLM import);
- the ``/model/info`` view (``proxy_view``, ``enrich_model_info``): LiteLLM's cost-map answers,
  straight from LiteLLM when it is loaded (inside the proxy), else from the disk memo of its own
  answers (``cost_map.Memo``, chosen by ``Enricher``), importing LiteLLM only for an answer the
  memo lacks;
- the running proxy's globals (``proxy_master_key``, ``router_config_models``), read from
  ``sys.modules``: nothing here imports ``litellm.proxy.proxy_server`` (seconds, every proxy
  dependency).

They stay one module on purpose: the import-linter contract lets only this module and ``plugin``
import LiteLLM, so a change of LiteLLM's internals is a change here.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import re
import sys
import threading
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from litemaas_hooks import cost_map, litellm_crypto
from litemaas_hooks.errors import DecryptError
from litemaas_hooks.redaction import is_secret_key

_V2_PREFIX = "v2:gcm:"
_B64 = re.compile(r"[A-Za-z0-9_\-+/]+={0,2}")
# NaCl SecretBox output = 24-byte nonce + 16-byte MAC + plaintext.
_MIN_CIPHERTEXT_BYTES = 40


def warm_up() -> None:
    """Load the cost-map memo now (LiteLLM itself is imported only on the first memo miss: a module
    imported in a background thread is half-initialised meanwhile, and a lookup then fails).
    Decryption needs no LiteLLM (``litellm_crypto``); inside the proxy LiteLLM is already loaded."""
    _enricher()


def looks_encrypted(value: str) -> bool:
    """True when ``value`` has the shape of a LiteLLM ciphertext (so a failed decrypt means a wrong
    key)."""
    if value.startswith(_V2_PREFIX):
        return True
    if len(value) % 4 or not _B64.fullmatch(value):
        return False
    try:
        raw = (
            base64.urlsafe_b64decode(value)
            if "+" not in value and "/" not in value
            else base64.b64decode(value)
        )
    except (binascii.Error, ValueError):
        return False
    return len(raw) >= _MIN_CIPHERTEXT_BYTES


def decrypt_params(params: Mapping[str, Any], key: str | None, *, model_id: str) -> dict[str, Any]:
    """Decrypt every string value of ``litellm_params`` like LiteLLM does.

    Credential values are dropped unread (they never leave LiteLLM). Plaintext values are accepted
    as LiteLLM accepts them; a value that is a ciphertext under another key raises DecryptError.
    """
    decrypt = litellm_crypto.decrypt
    out: dict[str, Any] = {}
    for name, value in params.items():
        if is_secret_key(str(name)):
            continue
        if not isinstance(value, str):
            out[name] = value
            continue
        plain = decrypt(value, key) if key else None
        if plain is None and looks_encrypted(value):
            if key is None:
                raise DecryptError(
                    f"litellm_params.{name} of deployment {model_id} is encrypted but no key is "
                    "set: set LITELLM_SALT_KEY (or, if the proxy has no salt key, "
                    "LITELLM_MASTER_KEY) to the value the LiteLLM proxy uses"
                )
            raise DecryptError(
                f"litellm_params.{name} of deployment {model_id} could not be decrypted: it was "
                "encrypted with another key. Set LITELLM_SALT_KEY (or LITELLM_MASTER_KEY when "
                "the proxy has no salt key) to the exact value the LiteLLM proxy uses"
            )
        out[name] = value if plain is None else plain
    return out


# -- the /model/info view
# ---------------------------------------------------------------------------

COST_KEYS = ("input_cost_per_token", "output_cost_per_token")
PROBE_ID = "litemaas-hooks-lookup-probe"
# one probe at a time: two lookups in two threads would wrap LiteLLM's functions in each other's
# wrappers and each take the other's probe entry for a value to put back
_PROBE_LOCK = threading.RLock()
# LiteLLM >= 1.108's one write of a registration into model_cost (utils.py)
_REGISTRATION_WRITE = "_replace_cost_map_entry"
_ABSENT: Any = object()  # no value: the key was not in model_cost


def _import_litellm() -> Any:
    """``import litellm`` with its own import-time warnings silenced (they are LiteLLM's, not
    ours)."""
    if "litellm" not in sys.modules:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import litellm
            import litellm.types.router  # noqa: F401
    return sys.modules["litellm"]


@contextlib.contextmanager
def _registered_like_the_router(litellm: Any, model: str) -> Iterator[None]:
    """LiteLLM >= 1.108's router registers every deployment it holds in ``litellm.model_cost``
    (under its model name), so the proxy's lookups find an entry even for a model the cost map does
    not know. Do the same for the lookup, then put ``model_cost`` back as it was."""
    from litellm.router import Router

    register = getattr(Router, "_register_deployment_pricing", None)
    if register is None:  # 1.81: no registration
        yield
        return
    from litellm.types.router import Deployment

    with _PROBE_LOCK:
        cost = litellm.model_cost
        probe = _ProbeWrites(litellm.utils, cost)
        index = _LowercaseIndex(litellm.utils, probe)
        try:
            with probe.recording(), index.registering():
                register(
                    Deployment.model_validate(
                        {
                            "model_name": PROBE_ID,
                            "litellm_params": {"model": model},
                            "model_info": {"id": PROBE_ID},
                        }
                    )
                )
            _clear_lookup_cache(litellm)
            yield
        finally:
            probe.undo()
            index.restore(intact=probe.alone() and litellm.model_cost is cost)
            _clear_lookup_cache(litellm)


class _ProbeWrites:
    """The keys the probe's registration writes into ``model_cost``, each with the value it held
    before (``_ABSENT``: none), so that undoing it touches those few keys, not the thousands of the
    map: an old key assigned its old value keeps its place, a new one is popped, the order of the
    keys stays. Seen where LiteLLM writes a registration (``utils._replace_cost_map_entry``, called
    by name: it writes the key it is given and the aliases sharing that key's entry, and a
    registration never deletes), for this thread and this map only. ``tracked`` says every write
    was seen as it happened and was the probe's: another thread's write (or a price reload swapping
    the map) clears it, and the index is then left to LiteLLM. A LiteLLM without that function has
    the whole map compared once, after the registration."""

    def __init__(self, utils: Any, cost: dict[str, Any]) -> None:
        self.cost = cost
        self.size = len(cost)
        self.before: dict[str, Any] = {}
        self.added: list[str] = []  # in the order they were added, as LiteLLM's rebuild sees them
        self.tracked = True
        self._utils = utils
        self._thread = threading.get_ident()

    def ours(self) -> bool:
        """Called in the lookup's thread (our wrappers are module globals: any thread may call
        them)."""
        return threading.get_ident() == self._thread

    def alone(self) -> bool:
        """After ``undo``: nothing but the probe changed the map (every write seen, the number of
        keys back to what it was: a key added or deleted by anyone else, even without LiteLLM's
        invalidation, changes it)."""
        return self.tracked and len(self.cost) == self.size

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """Around the probe's registration (synchronous: the swap is ours only for it)."""
        utils, cost = self._utils, self.cost
        write = getattr(utils, _REGISTRATION_WRITE, None)
        if not callable(write):
            self.tracked = False
            snapshot = cost.copy()
            try:
                yield
            finally:
                self._compare(snapshot)
            return

        def recorded(cost_map: Any, key: str, *args: Any, **kwargs: Any) -> Any:
            if cost_map is cost and self.ours():
                self._remember(key)
                for alias in getattr(cost.get(key), "names", ()):
                    if alias in cost:  # an absent alias is never written
                        self._remember(alias)
            else:
                self.tracked = False
            return write(cost_map, key, *args, **kwargs)

        setattr(utils, _REGISTRATION_WRITE, recorded)
        try:
            yield
        finally:
            setattr(utils, _REGISTRATION_WRITE, write)

    def _remember(self, key: str) -> None:
        if key not in self.before:
            old = self.before[key] = self.cost.get(key, _ABSENT)
            if old is _ABSENT:
                self.added.append(key)

    def _compare(self, snapshot: dict[str, Any]) -> None:
        """Without the write point: every key whose value is not the snapshot's (a tuple: another
        thread may write meanwhile), and any key deleted."""
        for key, value in tuple(self.cost.items()):
            old = snapshot.get(key, _ABSENT)
            if old is not value:
                self.before.setdefault(key, old)
        for key in snapshot.keys() - self.cost.keys():
            self.before.setdefault(key, snapshot[key])

    def undo(self) -> None:
        """``model_cost`` as before the probe: its writes undone, anything else's left."""
        cost = self.cost
        for key, old in self.before.items():
            if old is _ABSENT:
                cost.pop(key, None)
            else:
                cost[key] = old


class _LowercaseIndex:
    """LiteLLM >= 1.108 keeps a lowercase index of ``model_cost``'s keys, drops it at every
    registration (``_invalidate_model_cost_lowercase_map``: its mutation counter moves on, its
    answer caches are cleared) and rebuilds it over the whole cost map (thousands of keys, about
    1 ms) at the next lookup: for each key the probe's registration writes, then again after the
    probe is gone. While the probe registers, each drop is followed by the index of the keys before
    plus the probe's new keys (LiteLLM's own drop still runs first); after the probe is gone the
    index of before is right again and is put back. Anything else touching ``model_cost``
    meanwhile (a write the probe did not make, the counter moved on without us) leaves LiteLLM's
    own lazy rebuild."""

    def __init__(self, utils: Any, probe: _ProbeWrites) -> None:
        self._utils = utils
        self._probe = probe
        self._index: dict[str, str] | None = None
        self._generation: int | None = None
        # what the probe's keys changed in the index (lower-case key: the entry before, None when
        # there was none), undone by restore: the index is extended in place, never copied
        self._changed: dict[str, str | None] = {}
        rebuild = getattr(utils, "_rebuild_model_cost_lowercase_map", None)
        drop = getattr(utils, "_invalidate_model_cost_lowercase_map", None)
        counted = hasattr(utils, "_model_cost_mutation_generation")
        if callable(rebuild) and callable(drop) and counted:
            current = utils._model_cost_lowercase_map
            self._index = current if current is not None else rebuild()

    @contextlib.contextmanager
    def registering(self) -> Iterator[None]:
        """Around the probe's registration (synchronous: the swap is ours only for it)."""
        if self._index is None:
            yield
            return
        utils, index, probe = self._utils, self._index, self._probe
        drop = utils._invalidate_model_cost_lowercase_map
        changed = self._changed
        done = 0  # the probe's new keys already in the index

        def drop_then_extend() -> None:
            nonlocal done
            drop()
            if not probe.ours():
                probe.tracked = False
            if not probe.tracked:
                return
            for key in probe.added[done:]:
                lower = key.lower()
                if lower not in changed:
                    changed[lower] = index.get(lower)
                index[lower] = key  # a later key wins, as in LiteLLM's own rebuild
            done = len(probe.added)
            utils._model_cost_lowercase_map = index

        utils._invalidate_model_cost_lowercase_map = drop_then_extend
        try:
            yield
        finally:
            utils._invalidate_model_cost_lowercase_map = drop
            self._generation = utils._model_cost_mutation_generation

    def restore(self, *, intact: bool) -> None:
        """The probe's keys are gone: the index of before when only the probe changed the map
        (``intact``), else LiteLLM's lazy rebuild."""
        index = self._index
        if index is None:
            return
        for lower, entry in self._changed.items():
            if entry is None:
                index.pop(lower, None)
            else:
                index[lower] = entry
        self._changed.clear()
        if self._generation is None:
            return
        if intact and self._utils._model_cost_mutation_generation == self._generation:
            self._utils._model_cost_lowercase_map = index
        else:
            self._utils._model_cost_lowercase_map = None


@contextlib.contextmanager
def _quiet(litellm: Any) -> Iterator[None]:
    """No ``print`` from LiteLLM while we ask it: for a model without a known provider (our probe
    deployment's registration in >= 1.108, or any unknown model) ``get_llm_provider`` prints a
    "Provider List" banner to stdout, which would land in ``status --json``, in a relay's stdout and
    in the proxy's. Synchronous (no await inside), so the flag is ours only for the lookup."""
    saved = litellm.suppress_debug_info
    litellm.suppress_debug_info = True
    try:
        yield
    finally:
        litellm.suppress_debug_info = saved


def _clear_lookup_cache(litellm: Any) -> None:
    """Answers LiteLLM cached while the probe was (or was not yet) registered."""
    for owner, name in (
        (litellm, "get_model_info"),
        (litellm.utils, "_cached_get_model_info"),
        (litellm.utils, "cached_get_model_info_helper"),
    ):
        clear = getattr(getattr(owner, name, None), "cache_clear", None)
        if callable(clear):
            clear()


def _litellm_loaded() -> bool:
    return "litellm" in sys.modules and hasattr(sys.modules["litellm"], "model_cost")


def _cost_map_lookup(model: str, base_model: str | None) -> dict[str, Any]:
    """LiteLLM's own cost-map answer for a deployment's ``model`` (imports LiteLLM).

    The three passes of the proxy's ``/model/info`` (``get_litellm_model_info`` then
    ``_get_proxy_model_info`` / ``_enrich_model_info_with_litellm_data``, 1.81 and 1.108 alike):
    ``base_model`` when the model is an azure one or a base_model is set, then ``model``, then the
    last path segment with the first as provider. Returns ``{"info": {...}, "unpriced": bool}``.
    """
    litellm = _import_litellm()

    def lookup(name: str | None, provider: str | None = None) -> dict[str, Any]:
        try:
            info = litellm.get_model_info(model=name, custom_llm_provider=provider)
        except Exception:
            return {}
        return dict(info) if isinstance(info, Mapping) else {}

    omits = getattr(litellm.utils, "cost_map_omits_token_price", None)
    with _quiet(litellm), _registered_like_the_router(litellm, model):
        info = lookup(base_model) if ("azure" in model or base_model) else lookup(model)
        if not info:
            info = lookup(model)
        if not info and model:
            split = model.split("/")
            info = lookup(split[-1], split[0])
        # the proxy asks with the deployment's id (its registered entry) and the matched cost-map
        # key
        unpriced = bool(omits(PROBE_ID, info.get("key"))) if callable(omits) else False
    return {"info": info, "unpriced": unpriced}


def _view_facts() -> dict[str, Any]:
    """Per-version facts of the proxy's view (imports LiteLLM): the defaults the router adds to a
    deployment's litellm_params/model_info, and (>= 1.108) which keys count as server-derived
    pricing."""
    _import_litellm()
    from litellm.types.router import Deployment

    deployment = Deployment.model_validate(
        {"model_name": "x", "litellm_params": {"model": "x"}, "model_info": {"id": "x"}}
    )
    probe: dict[str, Any] = deployment.to_json(exclude_none=True)  # type: ignore[no-untyped-call]
    facts: dict[str, Any] = {
        "param_defaults": {k: v for k, v in probe["litellm_params"].items() if k != "model"},
        "info_defaults": {k: v for k, v in probe["model_info"].items() if k != "id"},
    }
    try:
        from litellm.types import utils as lt

        facts["pricing_fields"] = sorted(lt.SERVER_DERIVED_PRICING_FIELDS)
        facts["pricing_pattern"] = lt.ABOVE_THRESHOLD_COST_KEY_PATTERN.pattern
        facts["pricing_overrides_key"] = lt.PRICING_OVERRIDES_KEY
    except (ImportError, AttributeError):  # 1.81: no pricing stamps
        pass
    return facts


def cost_map_lookup(model: str, base_model: str | None) -> dict[str, Any]:
    """See ``_cost_map_lookup``; LiteLLM's own warnings (pydantic schema building) silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _cost_map_lookup(model, base_model)


def view_facts() -> dict[str, Any]:
    """See ``_view_facts``; LiteLLM's own warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _view_facts()


class Enricher:
    """LiteLLM's answers: straight from LiteLLM when it is loaded (the proxy), else from the disk
    memo, importing LiteLLM only for answers the memo lacks."""

    def __init__(self) -> None:
        self.memo: cost_map.Memo | None = None
        self._live: dict[str, dict[str, Any]] = {}
        self._live_facts: dict[str, Any] | None = None

    def _use_litellm(self) -> bool:
        return _litellm_loaded() and self.memo is None

    def _memo(self) -> cost_map.Memo:
        if self.memo is None:
            self.memo = cost_map.Memo.load(cost_map.current_source())
        return self.memo

    def facts(self) -> dict[str, Any]:
        if self._use_litellm():
            if self._live_facts is None:
                self._live_facts = view_facts()
            return self._live_facts
        memo = self._memo()
        if not memo.facts:
            memo.facts, memo.dirty = view_facts(), True
        return memo.facts

    def lookup_parts(
        self, model: str, base_model: str | None
    ) -> tuple[Mapping[str, Any], dict[str, Any], bool]:
        """LiteLLM's answer as ``(shared, own, unpriced)`` (see ``cost_map.Memo.parts``): ``shared``
        is one object for every deployment with the same answer, so the mapping can strip it
        once."""
        key = cost_map.lookup_key(model, base_model)
        if self._use_litellm():
            if key not in self._live:
                self._live[key] = cost_map_lookup(model, base_model)
            live = self._live[key]
            return live["info"], {}, bool(live.get("unpriced"))
        memo = self._memo()
        parts = memo.parts(key)
        if parts is None:
            found = cost_map_lookup(model, base_model)
            memo.put(key, found)
            parts = memo.parts(key) or (
                dict(found.get("info") or {}),
                {},
                bool(found.get("unpriced")),
            )
        return parts

    def save(self) -> None:
        if self.memo is not None:
            self.memo.save()


@functools.cache
def _enricher() -> Enricher:
    enricher = Enricher()
    if not _litellm_loaded():
        enricher._memo()
    return enricher


def memo_in_use() -> cost_map.Memo | None:
    """This process's memo, when its answers come from one (None inside the proxy: LiteLLM
    answers)."""
    enricher = _enricher()
    return None if enricher._use_litellm() else enricher._memo()


def save_memo() -> None:
    """Persist answers learnt in this process (a no-op when nothing new was learnt)."""
    _enricher().save()


def clear_cost_map_cache() -> None:
    """Forget this process's answers (benchmarks measure cold runs with it; the disk memo stays)."""
    _enricher.cache_clear()


def _pricing_stamps(
    facts: Mapping[str, Any], info: Mapping[str, Any], params: Mapping[str, Any]
) -> dict[str, Any]:
    """>= 1.108: the deployment's own prices and the ``pricing_overrides`` list the proxy stamps
    in."""
    fields = facts.get("pricing_fields")
    if fields is None:
        return {}
    names, pattern = frozenset(fields), re.compile(facts["pricing_pattern"])

    def derived(k: str) -> bool:
        return k in names or pattern.search(k) is not None

    own = {k: v for k, v in params.items() if v is not None and derived(str(k))}
    overrides = sorted(
        {k for src in (info, own) for k, v in src.items() if v is not None and derived(str(k))}
    )
    return {**own, facts["pricing_overrides_key"]: overrides}


@dataclass(frozen=True, slots=True)
class ProxyView:
    """A deployment as the proxy's ``GET /model/info`` shows it (before credential removal). Its
    ``model_info`` is ``{**shared_info, **own_info}``: ``shared_info`` is LiteLLM's cost-map answer,
    one object for every deployment with that answer (never mutate it); ``own_info`` the rest."""

    litellm_params: dict[str, Any]
    own_info: dict[str, Any]
    shared_info: Mapping[str, Any]

    @property
    def model_info(self) -> dict[str, Any]:
        return {**self.shared_info, **self.own_info}


def proxy_view(
    params: Mapping[str, Any],
    model_info: Mapping[str, Any],
    *,
    model_id: str | None,
    blocked: bool = False,
    db_model: bool = True,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(litellm_params, model_info)`` of a deployment as the proxy's ``GET /model/info`` shows
    them (before credential removal): the router's view (its defaults, ``id``, ``db_model``)
    completed from LiteLLM's cost map. Explicit values always win; only missing keys are filled
    in."""
    view = proxy_view_parts(
        params, model_info, model_id=model_id, blocked=blocked, db_model=db_model
    )
    return view.litellm_params, view.model_info


def proxy_view_parts(
    params: Mapping[str, Any],
    model_info: Mapping[str, Any],
    *,
    model_id: str | None,
    blocked: bool = False,
    db_model: bool = True,
) -> ProxyView:
    """``proxy_view`` with the cost-map answer kept apart (see ``ProxyView``)."""
    enricher = _enricher()
    facts = enricher.facts()
    new_proxy = "pricing_fields" in facts
    view_params = {**facts.get("param_defaults", {}), **params}
    info: dict[str, Any] = dict(model_info)
    if model_id is not None and db_model:
        info["id"] = model_id
        info["db_model"] = True
        if new_proxy:
            info["blocked"] = bool(blocked)
    for k, v in facts.get("info_defaults", {}).items():
        info.setdefault(k, v)
    if new_proxy and db_model:
        # >= 1.108's /model/info adds the caller's access (prisma connected) before enriching; the
        # backend's admin key sees every deployment directly, none through a team
        info.setdefault("access_via_team_ids", [])
        info.setdefault("direct_access", True)
    if not new_proxy:  # 1.81's router copies the deployment's own token prices into model_info
        for k in COST_KEYS:
            if params.get(k) is not None:
                info.setdefault(k, params[k])
    model = params.get("model")
    shared: Mapping[str, Any] = {}
    own: dict[str, Any] = {}
    unpriced = False
    if isinstance(model, str) and model:
        base = info.get("base_model")
        shared, own, unpriced = enricher.lookup_parts(
            model, base if isinstance(base, str) and base else None
        )
    # the deployment's own values (and the proxy's pricing stamps) win over the cost map's
    own = {**own, **info, **_pricing_stamps(facts, info, params)}
    return ProxyView(view_params, own, _priced(shared) if unpriced else shared)


def _priced(shared: Mapping[str, Any]) -> Mapping[str, Any]:
    """An answer whose token prices the proxy does not show (``cost_map_omits_token_price``): the
    same with those prices null; one object per answer, like the answer itself."""
    hit = _UNPRICED.get(id(shared))
    if hit is not None and hit[0] is shared:
        return hit[1]
    if len(_UNPRICED) >= _UNPRICED_MAX:
        _UNPRICED.clear()
    view = {k: (None if k in COST_KEYS else v) for k, v in shared.items()}
    # the answer is kept alive with it: its id cannot be reused
    _UNPRICED[id(shared)] = (shared, view)
    return view


_UNPRICED: dict[int, tuple[Mapping[str, Any], Mapping[str, Any]]] = {}
_UNPRICED_MAX = 4096


def enrich_model_info(params: Mapping[str, Any], model_info: Mapping[str, Any]) -> dict[str, Any]:
    """``model_info`` completed from LiteLLM's cost map (config-file deployments: no DB id)."""
    return proxy_view(params, model_info, model_id=None, db_model=False)[1]


# -- inside the proxy ------------------------------------------------------------------------------


def proxy_server_module() -> Any | None:
    """``litellm.proxy.proxy_server`` when this process is the proxy (never imports it)."""
    return sys.modules.get("litellm.proxy.proxy_server")


def proxy_master_key() -> str | None:
    """The running proxy's master key (may come from config.yaml), read lazily."""
    mod = proxy_server_module()
    key = getattr(mod, "master_key", None) if mod is not None else None
    return key if isinstance(key, str) and key else None


def router_config_models() -> list[dict[str, Any]]:
    """Config-file deployments of the running proxy's router (DB deployments excluded)."""
    mod = proxy_server_module()
    router = getattr(mod, "llm_router", None) if mod is not None else None
    if router is None:
        return []
    out: list[dict[str, Any]] = []
    for dep in router.get_model_list() or []:
        item = dict(dep)
        info = dict(item.get("model_info") or {})
        if info.get("db_model"):
            continue
        out.append(
            {
                "model_name": item.get("model_name"),
                "litellm_params": dict(item.get("litellm_params") or {}),
                "model_info": info,
            }
        )
    return out
