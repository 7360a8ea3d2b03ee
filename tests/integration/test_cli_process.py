"""The CLI as an operator runs it, as a process: LiteLLM is imported only by the commands that need
it, and the relay starts, connects, catches up and
stops (SIGTERM: exit 0) with one log line each."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import cast

import pytest

from litemaas_hooks import cli
from tests.helpers import DETECT, insert_rows, litellm_row, probe, probe_env


def test_commands_that_do_not_need_litellm_never_import_it(
    hooks_env: dict[str, str], tmp_path: Path
) -> None:
    cases: list[tuple[list[str], dict[str, str], int]] = [
        (["write-shim", str(tmp_path)], {}, 0),
        (["install"], hooks_env, 0),
        (["replay"], hooks_env, 0),
        (["status", "--no-drift"], hooks_env, 0),
        (["backfill"], {}, 1),  # a settings error
        (["backfill"], {**hooks_env, "LITEMAAS_HOOKS_BATCH_SIZE": "x"}, 1),
        (["relay", "--bogus"], {}, 1),  # a usage error
    ]
    subparsers = cli._parser()._subparsers
    assert subparsers is not None
    subcommands = cast(Mapping[str, object], subparsers._group_actions[0].choices)
    if "uninstall" in subcommands:
        cases.append((["uninstall", "--dry-run"], hooks_env, 0))
    for argv, env, code in cases:
        rc, out, err = probe(argv, env)
        assert rc == code, (argv, out, err)
        assert out.strip().endswith("NO_LITELLM"), (argv, out, err)


def test_the_probe_sees_an_import_of_litellm() -> None:
    code = f"import sys\nfrom litellm.integrations import custom_logger\n{DETECT}"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=probe_env({}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.stdout.strip() == "LITELLM_IMPORTED"


def test_no_runtime_module_but_the_plugin_imports_litellm_at_module_level() -> None:
    code = (
        "import importlib, pkgutil, sys, litemaas_hooks\n"
        "names = [m.name for m in "
        "pkgutil.iter_modules(litemaas_hooks.__path__, 'litemaas_hooks.')]\n"
        "bad = []\n"
        "for name in names:\n"
        "    if name == 'litemaas_hooks.plugin':\n"
        "        continue\n"
        "    importlib.import_module(name)\n"
        "    if 'litellm' in sys.modules:\n"
        "        bad.append(name); break\n"
        "print(bad, len(names))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=probe_env({}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    bad, count = proc.stdout.split("] ")
    assert bad == "["
    assert int(count) >= 15


def _reader(stream: object, lines: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.put(line.rstrip("\n"))


def _wait_for(
    lines: queue.Queue[str], seen: list[str], text: str, deadline_seconds: float
) -> dict[str, object]:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        record: dict[str, object] = json.loads(line)  # every line is one JSON object
        if text in str(record["message"]):
            return record
    raise AssertionError(
        f"no log line with {text!r} within {deadline_seconds}s; saw:\n" + "\n".join(seen)
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_relay_lifecycle_lines_json_logs_and_clean_stop(
    hooks_env: dict[str, str], master_key: str, sig: signal.Signals, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in hooks_env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert cli.main(["install"]) == 0
    env = probe_env(
        {**hooks_env, "JSON_LOGS": "true", "LITEMAAS_HOOKS_RECONCILE_INTERVAL_SECONDS": "0"}
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "litemaas_hooks.cli", "relay"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_reader, args=(proc.stderr, lines), daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        start = _wait_for(lines, seen, "starting: relaying LiteLLM", 60)
        assert start["level"] == "INFO"
        assert start["logger"] == "litemaas_hooks.relay"
        _wait_for(lines, seen, "connected to both databases", 60)
        _wait_for(lines, seen, "caught up", 60)
        insert_rows(
            hooks_env["LITELLM_DATABASE_URL"],
            [litellm_row("granite-json", {"model": "openai/granite"}, key=master_key)],
        )
        batch = _wait_for(lines, seen, "granite-json created", 30)
        assert batch["models"] == {"granite-json": "created"}
        assert batch["outcome"] == "applied"
        assert isinstance(batch["event_ids"], list)
        proc.send_signal(sig)
        _wait_for(lines, seen, f"{sig.name} received: finishing the current batch", 30)
        _wait_for(lines, seen, "stopped", 30)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=30)  # at the end of stderr, then its pipes can be closed
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    text = "\n".join(seen)
    assert master_key not in text
    password = hooks_env["LITEMAAS_DATABASE_URL"].split(":")[2].split("@")[0]
    assert password not in text


def test_offline_cost_map_fallback_is_one_line(tmp_path: Path) -> None:
    """Without LITELLM_LOCAL_MODEL_COST_MAP, LiteLLM fetches its cost map at import; offline (here:
    a loopback URL nothing listens on) its several warnings become one line in a CLI process,
    whichever command imports LiteLLM (the import is done right after the command here, so the test
    does not depend on which commands still need LiteLLM)."""
    env = probe_env({"LITELLM_MODEL_COST_MAP_URL": "http://127.0.0.1:9/model_prices.json"})
    env.pop("LITELLM_LOCAL_MODEL_COST_MAP")
    code = (
        "from litemaas_hooks import cli\ncli.main(['write-shim', "
        f"{str(tmp_path)!r}])\nimport litellm\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    cost_map_lines = [line for line in proc.stderr.splitlines() if "cost map" in line.lower()]
    from litellm.litellm_core_utils import get_model_cost_map as fetcher

    # 1.108: warns at each attempt; 1.81: falls back silently
    if hasattr(fetcher, "_attempt_fetch_sync"):
        assert len(cost_map_lines) == 1, proc.stderr
        assert "LITELLM_LOCAL_MODEL_COST_MAP=True" in cost_map_lines[0]
    else:
        assert cost_map_lines == [], proc.stderr
