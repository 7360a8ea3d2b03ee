"""Our ``/model/info`` view of a DB deployment = the proxy's own, over the WHOLE cost map.

Reference: LiteLLM's router holds each deployment as the proxy adds a DB row (``upsert_deployment``
of a ``Deployment`` whose model_info has the table's id and ``db_model: true``), and the proxy's own
``_get_proxy_model_info`` turns it into the ``/model/info`` entry. Ours:
``litellm_adapter.proxy_view`` fed from the disk memo, in a process that never imports LiteLLM.
Inputs: every cost-map key, as it is and with its provider prefix added or removed. Runs on the
installed LiteLLM version (``make test`` on 1.108.7, ``make test-litellm-1.81`` on 1.81.0). Imports
the proxy server (seconds).
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest

from litemaas_hooks import cost_map, litellm_adapter
from litemaas_hooks.redaction import strip_credentials

# LiteLLM as production runs it, where a warning is not an error: with warnings as errors its own
# /model/info view of some cost-map entries changes (21 cohere entries on 1.108.7), so the reference
# would not be the proxy's view any more
pytestmark = pytest.mark.filterwarnings("ignore")
CROSS_DEPLOYMENT = {"supported_openai_params"}
OURS = r"""
import json, sys
from litemaas_hooks import litellm_adapter
cases = json.load(open(sys.argv[1]))
out = []
for case in cases:
    params, info = litellm_adapter.proxy_view(case["params"], {}, model_id=case["id"])
    out.append({"litellm_params": params, "model_info": info})
assert "litellm" not in sys.modules, "the memo path imported litellm"
assert (
    litellm_adapter._enricher().memo is not None
    and not litellm_adapter._enricher().memo.dirty
), "memo miss"
json.dump(out, open(sys.argv[2], "w"))
"""


def inputs(model_cost: dict[str, Any]) -> list[str]:
    models: dict[str, None] = {}
    for key, entry in model_cost.items():
        if key == "sample_spec" or not isinstance(entry, dict):
            continue
        models[key] = None
        provider = entry.get("litellm_provider")
        if isinstance(provider, str) and provider:
            other = (
                key.removeprefix(provider + "/")
                if key.startswith(provider + "/")
                else f"{provider}/{key}"
            )
            models[other] = None
    return list(models)


def reference_views(models: list[str]) -> dict[str, dict[str, Any]]:
    """model -> the proxy's /model/info entry for a DB
    deployment of it (skipped if the router refuses it)."""
    from litellm.proxy import proxy_server
    from litellm.router import Router
    from litellm.types.router import Deployment

    router = Router(model_list=[], ignore_invalid_deployments=True)
    # what ProxyConfig.get_model_info_with_id puts into a
    # DB deployment's model_info (>= 1.108: blocked)
    new_proxy = '"blocked"' in inspect.getsource(proxy_server.ProxyConfig.get_model_info_with_id)
    views: dict[str, dict[str, Any]] = {}
    for i, model in enumerate(models):
        info: dict[str, Any] = {"id": f"dep-{i}", "db_model": True}
        if new_proxy:
            info["blocked"] = False
        try:
            router.upsert_deployment(
                deployment=Deployment(
                    model_name=f"name-{i}",
                    litellm_params=cast(Any, {"model": model}),
                    model_info=info,
                )
            )
        except Exception:
            continue
        held = router.get_deployment(model_id=f"dep-{i}")
        if held is None:
            continue
        listed = copy.deepcopy(held.model_dump(exclude_none=True))
        # model_info_v1 first adds the caller's access (prisma connected; an admin, no team)
        if new_proxy:
            listed["model_info"].update(access_via_team_ids=[], direct_access=True)
        entry = proxy_server._get_proxy_model_info(model=listed)
        views[model] = json.loads(json.dumps(entry, default=str))
    return views


def test_our_view_equals_the_proxys_over_the_whole_cost_map(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    monkeypatch.setenv("LITEMAAS_HOOKS_CACHE_DIR", str(tmp_path / "cache"))
    models = inputs(litellm.model_cost)
    assert len(models) > 1000
    expected = reference_views(models)
    # the router refuses names it cannot route (no provider): those never reach /model/info
    assert len(expected) > 0.5 * len(models), (
        "the router refused most deployments: reference broken"
    )

    # fill the memo the way a first CLI run does (LiteLLM computes each answer once), then read it
    # back in a process without LiteLLM
    enricher = litellm_adapter.Enricher()
    enricher.memo = cost_map.Memo.load(cost_map.current_source())
    enricher.facts()
    for model in expected:
        enricher.lookup_parts(model, None)
    enricher.save()

    cases = [{"id": f"dep-{models.index(m)}", "params": {"model": m}} for m in expected]
    cases_models = list(expected)
    (tmp_path / "in.json").write_text(json.dumps(cases))
    env = {**os.environ, "LITEMAAS_HOOKS_CACHE_DIR": str(tmp_path / "cache")}
    subprocess.run(
        [sys.executable, "-c", OURS, str(tmp_path / "in.json"), str(tmp_path / "out.json")],
        check=True,
        env=env,
    )
    ours = json.loads((tmp_path / "out.json").read_text())

    mismatches = []
    for model, view in zip(cases_models, ours, strict=True):
        theirs = expected[model]
        mine = {
            "litellm_params": strip_credentials(view["litellm_params"]),
            "model_info": view["model_info"],
        }
        want = {
            "litellm_params": strip_credentials(theirs["litellm_params"]),
            "model_info": theirs["model_info"],
        }
        if mine != want:
            keys = {
                part: sorted(
                    k
                    for k in set(mine[part]) | set(want[part])
                    if mine[part].get(k, "<absent>") != want[part].get(k, "<absent>")
                )
                for part in ("litellm_params", "model_info")
            }
            mismatches.append((model, keys))
    # One known cross-deployment effect: the router registers every deployment's pricing into
    # litellm.model_cost, and a few double-prefixed names (perplexity/perplexity/...) then resolve
    # their supported_openai_params through another deployment's entry. It is metadata only (no
    # column reads it, and metadata is not compared), and it
    # depends on which other deployments the proxy holds.
    columns_or_more = [
        (m, k)
        for m, k in mismatches
        if k["litellm_params"] or set(k["model_info"]) - CROSS_DEPLOYMENT
    ]
    assert not columns_or_more, (
        f"{len(columns_or_more)} of {len(cases)} differ, e.g. {columns_or_more[:5]}"
    )
    assert len(mismatches) <= 0.01 * len(cases), mismatches[:10]
