"""Plugin mode as deploy/ mounts it: a real LiteLLM proxy loading our ConfigMap's config.yaml + shim
through ``CONFIG_FILE_PATH`` (with LiteLLM's own ``prometheus`` callback added), and the
litemaas_hooks_* series scraped from LiteLLM's own ``/metrics``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.upstream import ROOT
from tests.helpers import wait_until
from tests.integration.plugin_proxy import (
    MODELS,
    backend_availability,
    install_schemas,
    litellm_proxy,
)

pytestmark = [pytest.mark.proxy, pytest.mark.slow]

PLUGIN_CONFIG = ROOT / "deploy" / "shared" / "plugin-config"


def _series(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_deploy_configmap_loads_the_plugin_and_litellms_metrics_carry_our_series(
    tmp_path: Path, litellm_dsn: str, backend_dsn: str, master_key: str
) -> None:
    mounted = tmp_path / "etc-litemaas-hooks"  # the ConfigMap volume
    mounted.mkdir()
    config = yaml.safe_load((PLUGIN_CONFIG / "config.yaml").read_text())
    config["litellm_settings"]["callbacks"] = [
        "prometheus",
        *config["litellm_settings"]["callbacks"],
    ]
    config["model_list"] = MODELS
    (mounted / "config.yaml").write_text(yaml.safe_dump(config))
    (mounted / "litemaas_hooks.py").write_text((PLUGIN_CONFIG / "litemaas_hooks.py").read_text())
    install_schemas(litellm_dsn, backend_dsn)
    with litellm_proxy(
        tmp_path, litellm_dsn, backend_dsn=backend_dsn, master_key=master_key, config_dir=mounted
    ) as proxy:
        # what deploy/ sets, at the mounted file
        assert "CONFIG_FILE_PATH" in proxy.worker_env()["set"]
        assert proxy.config_path == mounted / "config.yaml"

        def scraped() -> dict[Any, float]:
            # newer LiteLLM protect /metrics with LiteLLM's auth (1.81 serves it openly)
            response = httpx.get(
                f"{proxy.base_url}/metrics/",
                headers={"Authorization": f"Bearer {master_key}"},
                timeout=30,
                follow_redirects=True,
            )
            return _series(response.text) if response.status_code == 200 else {}

        def synced() -> bool:
            s = scraped()
            return (
                s.get(("litemaas_hooks_database_connected", (("database", "backend"),)), 0) == 1
                and s.get(("litemaas_hooks_full_reconciles_total", (("result", "ok"),)), 0) >= 1
            )

        wait_until(
            synced, deadline_seconds=90, what="our series in LiteLLM's /metrics", proxy=proxy
        )
        series = scraped()
        assert series[("litemaas_hooks_database_connected", (("database", "litellm"),))] == 1
        # mock-gpt
        assert series[("litemaas_hooks_models_converged_total", (("outcome", "created"),))] >= 1
        assert series[("litemaas_hooks_trigger_installed", ())] == 1
        assert ("litemaas_hooks_outbox_events", (("status", "pending"),)) in series
        assert backend_availability(backend_dsn).get("mock-gpt") == "available"
