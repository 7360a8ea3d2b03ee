"""LiteLLM's cost-map answers shared through LiteLLM's database: a fresh pod (empty disk cache)
reads what another process learnt and does not import LiteLLM; without the table it still works."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from tests.helpers import execute, insert_rows, litellm_row, probe


def _seed(litellm_dsn: str, master_key: str, count: int = 3) -> list[str]:
    tag = uuid.uuid4().hex[:10]  # model strings no memo on this machine has seen
    models = [f"openai/memo-share-{tag}-{i}" for i in range(count)]
    insert_rows(
        litellm_dsn,
        [
            litellm_row(f"share-{tag}-{i}", {"model": m, "api_key": "sk-x"}, key=master_key)
            for i, m in enumerate(models)
        ],
    )
    return models


def test_a_fresh_pod_uses_answers_another_process_learnt(
    hooks_env: dict[str, str], litellm_dsn: str, master_key: str, tmp_path: Path
) -> None:
    rc, out, err = probe(["install"], hooks_env)
    assert rc == 0, err
    models = _seed(litellm_dsn, master_key)

    rc, out, err = probe(
        ["backfill"], {**hooks_env, "LITEMAAS_HOOKS_CACHE_DIR": str(tmp_path / "pod-a")}
    )
    assert rc == 0, (out, err)
    assert out.strip().endswith("LITELLM_IMPORTED"), (
        "the first process had nothing to read: it asks LiteLLM"
    )
    assert "created 3" in out

    [(entries,)] = execute(litellm_dsn, "SELECT entries FROM litemaas_hooks.cost_map_memo")
    assert {f"{m}\x1f" for m in models} <= set(entries)

    rc, out, err = probe(
        ["backfill"], {**hooks_env, "LITEMAAS_HOOKS_CACHE_DIR": str(tmp_path / "pod-b")}
    )
    assert rc == 0, (out, err)
    assert "unchanged 3" in out, out  # the same answers: nothing to rewrite
    assert out.strip().endswith("NO_LITELLM"), (
        "a fresh pod imported LiteLLM although its answers were shared"
    )


def test_without_the_shared_table_a_process_asks_litellm(
    hooks_env: dict[str, str], litellm_dsn: str, master_key: str, tmp_path: Path
) -> None:
    rc, out, err = probe(["install"], hooks_env)
    assert rc == 0, err
    _seed(litellm_dsn, master_key, 2)
    # an install older than migration 0006
    execute(litellm_dsn, "DROP TABLE litemaas_hooks.cost_map_memo")

    rc, out, err = probe(
        ["backfill"], {**hooks_env, "LITEMAAS_HOOKS_CACHE_DIR": str(tmp_path / "pod-c")}
    )
    assert rc == 0, (out, err)
    assert "created 2" in out
    assert out.strip().endswith("LITELLM_IMPORTED")


def test_a_memo_written_without_our_key_changes_no_decision_and_status_says_so(
    hooks_env: dict[str, str], litellm_dsn: str, master_key: str, tmp_path: Path
) -> None:
    """Issue 20 item 4: whoever can write the table (LiteLLM's own role in plugin mode) sets facts
    that
    would make every model a team model (skipped) and forges entries: a fresh pod ignores them,
    syncs
    every model, and `status` reports the memo it had to ignore."""
    rc, out, err = probe(["install"], hooks_env)
    assert rc == 0, err
    models = _seed(litellm_dsn, master_key)
    rc, out, err = probe(
        ["backfill"], {**hooks_env, "LITEMAAS_HOOKS_CACHE_DIR": str(tmp_path / "pod-a")}
    )
    assert rc == 0, (out, err)
    assert "created 3" in out
    evil = {"info_defaults": {"team_id": "evil"}, "param_defaults": {}, "pricing_pattern": "(a+)+$"}
    execute(
        litellm_dsn,
        """UPDATE litemaas_hooks.cost_map_memo
              SET facts = jsonb_build_object('text', %(facts)s::text, 'mac', repeat('0', 64)),
                  entries = entries || jsonb_build_object(%(k)s::text, entries -> %(k)s)""",
        {"facts": json.dumps(evil), "k": f"{models[0]}\x1f"},
    )
    execute(  # an entry of ours re-pointed: its MAC no longer matches
        litellm_dsn,
        """UPDATE litemaas_hooks.cost_map_memo
              SET entries = jsonb_set(entries, ARRAY[%(k)s::text, '1'], '"forged"')""",
        {"k": f"{models[1]}\x1f"},
    )
    rc, out, err = probe(
        ["status"], {**hooks_env, "LITEMAAS_HOOKS_CACHE_DIR": str(tmp_path / "pod-c")}
    )
    assert "UNHEALTHY" in out, out
    assert "not signed with this installation's key" in out, out
    assert "drift            : none" in out, out  # the forged facts skipped no model
    env = {**hooks_env, "LITEMAAS_HOOKS_CACHE_DIR": str(tmp_path / "pod-b")}
    rc, out, err = probe(["backfill", "--dry-run"], env)
    assert rc == 0, (out, err)  # in sync: no model skipped as a team model, nothing to change
    # a signed write repaired the row: the facts are ours again, the next status is clean
    [(facts,)] = execute(litellm_dsn, "SELECT facts FROM litemaas_hooks.cost_map_memo")
    assert "evil" not in json.dumps(facts)
    rc, out, err = probe(
        ["status"], {**hooks_env, "LITEMAAS_HOOKS_CACHE_DIR": str(tmp_path / "pod-d")}
    )
    assert "not signed" not in out, out


def test_the_first_share_prunes_other_versions_old_answers_in_its_round_trip(
    hooks_env: dict[str, str], litellm_dsn: str, master_key: str, tmp_path: Path
) -> None:
    """Answers of another LiteLLM version nobody used for 30 days go with a process's first share;
    recent ones of another version stay. (That the prune now rides in the merge's round trip is
    counted by test_remote's round-trip tests, which wait for the first share.)"""
    rc, out, err = probe(["install"], hooks_env)
    assert rc == 0, err
    _seed(litellm_dsn, master_key, 1)
    execute(
        litellm_dsn,
        "INSERT INTO litemaas_hooks.cost_map_memo (fingerprint, litellm_version, updated_at) "
        "VALUES ('old-version', '0.0.1', now() - interval '40 days'), "
        "('recent-version', '0.0.2', now() - interval '1 day')",
    )
    pod = {**hooks_env, "LITEMAAS_HOOKS_CACHE_DIR": str(tmp_path / "pod")}
    rc, out, err = probe(["backfill"], pod)
    assert rc == 0, (out, err)
    rows = execute(litellm_dsn, "SELECT fingerprint FROM litemaas_hooks.cost_map_memo")
    kept = {str(r[0]) for r in rows}
    assert "old-version" not in kept
    assert "recent-version" in kept
    assert len(kept) == 2  # ours and the recent one
