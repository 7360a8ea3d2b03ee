"""`apply` end to end against an in-memory LiteLLM (httpx MockTransport): requests, idempotency,
errors.

The real proxy is in tests/e2e/test_apply.py; here each request apply sends is checked, fast and
without a DB.
"""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import httpx
import pytest

from litemaas_hooks import cli
from litemaas_hooks.model_apply import run_apply
from litemaas_hooks.model_file import parse_documents

MASTER = "sk-master-" + "1" * 40
KEY = "sk-upstream-secret-987"


class FakeLiteLLM:
    """The management endpoints apply uses, with LiteLLM's merge semantics for PATCH."""

    def __init__(self, *, can_block: bool = True) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.can_block = can_block

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != f"Bearer {MASTER}":
            return httpx.Response(401, json={"error": {"message": "Authentication Error"}})
        body: Any = json.loads(request.content) if request.content else None
        path = request.url.path
        self.requests.append((request.method, path, body))
        if path == "/model/info":
            data = [
                {
                    "model_name": r["model_name"],
                    "litellm_params": {
                        k: v for k, v in r["litellm_params"].items() if k != "api_key"
                    },
                    "model_info": {**r["model_info"], "db_model": True, "blocked": r["blocked"]},
                }
                for r in self.rows.values()
            ]
            return httpx.Response(200, json={"data": data})
        if path == "/openapi.json":
            return httpx.Response(
                200, json={"paths": {"/model/block": {}} if self.can_block else {}}
            )
        if path == "/model/new":
            model_id = body["model_info"]["id"]
            if model_id in self.rows:
                return httpx.Response(
                    500, json={"error": {"message": "Unique constraint failed on model_id"}}
                )
            self.rows[model_id] = {**body, "blocked": False}
            return httpx.Response(200, json={"model_id": model_id})
        if path.endswith("/update") and request.method == "PATCH":
            row = self.rows[path.split("/")[2]]
            row["litellm_params"].update(body.get("litellm_params") or {})
            row["model_info"].update(body.get("model_info") or {})
            return httpx.Response(200, json={})
        if path == "/model/delete":
            self.rows.pop(body["id"])
            return httpx.Response(200, json={})
        if path in ("/model/block", "/model/unblock") and self.can_block:
            self.rows[body["model_id"]]["blocked"] = path == "/model/block"
            return httpx.Response(200, json={})
        return httpx.Response(404, json={"detail": "Not Found"})

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p, _ in self.requests if m != "GET"]


def specs(**fields: Any) -> Any:
    entry = {
        "model_name": "granite",
        "litellm_model": "openai/granite",
        "api_key": "env:GRANITE_KEY",
        **fields,
    }
    return parse_documents([("m.yml", [entry])])


def apply(fake: FakeLiteLLM, models: Any, *, key: str = MASTER, **kwargs: Any) -> tuple[int, str]:
    out = io.StringIO()
    code = asyncio.run(
        run_apply(
            models,
            litellm_url="http://litellm.test",
            master_key=key,
            backend=None,
            environ={"GRANITE_KEY": KEY},
            out=out,
            transport=httpx.MockTransport(fake.handler),
            **kwargs,
        )
    )
    return code, out.getvalue()


def test_create_then_rerun_writes_nothing_and_the_key_is_never_printed() -> None:
    fake = FakeLiteLLM()
    code, out = apply(fake, specs(rpm=120, context_length=131072))
    assert code == 0, out
    assert fake.writes() == [("POST", "/model/new")]
    sent = fake.requests[-1][2]
    assert sent["litellm_params"]["api_key"] == KEY
    assert sent["model_info"]["max_tokens"] == 131072
    assert KEY not in out
    fake.requests.clear()
    code, out = apply(fake, specs(rpm=120, context_length=131072))
    assert code == 0, out
    assert fake.writes() == []
    assert "unchanged 1" in out


def test_dry_run_exit_codes() -> None:
    fake = FakeLiteLLM()
    assert apply(fake, specs(), dry_run=True)[0] == 2
    assert fake.writes() == []
    apply(fake, specs())
    assert apply(fake, specs(), dry_run=True)[0] == 0


def test_an_update_patches_in_place_and_a_second_create_is_refused_not_duplicated() -> None:
    fake = FakeLiteLLM()
    apply(fake, specs(rpm=1))
    (model_id,) = fake.rows
    fake.requests.clear()
    code, out = apply(fake, specs(rpm=2))
    assert code == 0, out
    assert fake.writes() == [("PATCH", f"/model/{model_id}/update")]
    assert fake.requests[-1][2]["litellm_params"] == {"rpm": 2}
    assert list(fake.rows) == [model_id]
    # a stale view (a replica that has not loaded the deployment yet): LiteLLM refuses the same id
    fake.rows[model_id]["model_name"] = "hidden-from-this-view"
    code, out = apply(fake, specs(rpm=2))
    assert code == 1
    assert "LiteLLM refused POST /model/new of granite: 500 Unique constraint failed" in out
    assert len(fake.rows) == 1


def test_unavailable_blocks_where_litellm_can_and_says_so_where_it_cannot() -> None:
    fake = FakeLiteLLM()
    code, _ = apply(fake, specs(availability="unavailable"))
    assert code == 0
    assert ("POST", "/model/block") in fake.writes()
    assert next(iter(fake.rows.values()))["blocked"] is True
    old = FakeLiteLLM(can_block=False)
    code, out = apply(old, specs(availability="unavailable"))
    assert code == 0
    assert "no /model/block" in out
    assert ("POST", "/model/block") not in old.writes()


def test_a_wrong_master_key_is_one_clear_error() -> None:
    code = None
    with pytest.raises(
        Exception, match=r"refused the master key \(401\).*check LITELLM_MASTER_KEY"
    ) as caught:
        code, _ = apply(FakeLiteLLM(), specs(), key="sk-wrong")
    assert code is None
    assert "sk-wrong" not in str(caught.value)


def test_cli_apply_settings_and_file_errors_are_one_line(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.yml"
    path.write_text("- model_name: a\n  litellm_model: openai/a\n")
    monkeypatch.delenv("LITELLM_URL", raising=False)
    monkeypatch.delenv("LITELLM_MASTER_KEY", raising=False)
    assert cli.main(["apply", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "litemaas-hooks apply: error: LITELLM_URL is not set: set it to LiteLLM's URL"
    )
    assert "LITELLM_MASTER_KEY is not set" in err
    path.write_text("- model_name: a\n  litellm_model: openai/a\n  api_key: sk-literal-zzz\n")
    assert cli.main(["apply", str(path)]) == 1
    err = capsys.readouterr().err
    assert "entry 1 (a): api_key: a literal key is refused" in err
    assert "sk-literal-zzz" not in err


def test_cli_apply_never_imports_litellm(tmp_path: Any) -> None:
    """apply talks to LiteLLM over HTTP only: the command
    stays fast and light (no LiteLLM import)."""
    import subprocess
    import sys

    from tests.helpers import PROBE

    path = tmp_path / "m.yml"
    path.write_text("- model_name: a\n  litellm_model: openai/a\n")
    env = {
        "PATH": "/usr/bin:/bin",
        "LITELLM_URL": "http://127.0.0.1:9",
        "LITELLM_MASTER_KEY": MASTER,
    }
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, "apply", "--dry-run", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr  # nothing listens on port 9: one error line
    assert "cannot reach LiteLLM at http://127.0.0.1:9 (LITELLM_URL)" in proc.stderr
    assert proc.stdout.strip().endswith("NO_LITELLM"), proc.stdout
