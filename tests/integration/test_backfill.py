"""The core engine against real PostgreSQL: install,
backfill, reconcile, retire (issue: core sync engine).

LiteLLM rows are built by LiteLLM's own row builder and encryption (tests/helpers.py); the backend
is the LiteMaaS schema made by its own migrations, with its real FK and updated_at trigger.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import psycopg
import pytest

from litemaas_hooks import sql
from litemaas_hooks.reconcile import Reconciler, Report
from tests.helpers import execute, insert_rows, litellm_row
from tests.integration.engine import API_KEY, SEED, connected, run, seed

USER = "11111111-1111-1111-1111-111111111111"


def converge(names: set[str] | None = None, **kw: Any) -> Report:
    return asyncio.run(
        connected(lambda engine, lite, back: engine.converge(lite, back, names, **kw))
    )


def models(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    with (
        psycopg.connect(env["LITEMAAS_DATABASE_URL"]) as conn,
        conn.cursor(row_factory=psycopg.rows.dict_row) as cur,
    ):
        cur.execute("SELECT *, xmin::text AS xmin FROM models ORDER BY id")
        return {r["id"]: r for r in cur.fetchall()}


def add_user(env: dict[str, str]) -> None:
    execute(
        env["LITEMAAS_DATABASE_URL"],
        "INSERT INTO users (id, username, email, oauth_provider, oauth_id) "
        "VALUES (%s, 'alice', 'alice@example.com', 'test', 'alice') ON CONFLICT DO NOTHING",
        (USER,),
    )


def test_install_is_idempotent(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run("install", "--backend-only") == 0
    assert "applied 0001_sync_functions" in capsys.readouterr().out
    assert run("install", "--backend-only") == 0
    assert "up to date" in capsys.readouterr().out
    rows = execute(
        env["LITEMAAS_DATABASE_URL"], "SELECT side, version FROM litemaas_hooks.schema_migrations"
    )
    assert sorted(rows) == [("backend", m.version) for m in sql.migrations("backend")]
    assert ("backend", 1) in rows


def test_edited_migration_is_detected(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("install", "--backend-only") == 0
    execute(
        env["LITEMAAS_DATABASE_URL"], "UPDATE litemaas_hooks.schema_migrations SET checksum = 'x'"
    )
    assert run("install", "--backend-only") == 1
    assert "was changed after it was applied" in capsys.readouterr().err


def test_backfill_then_rerun_writes_nothing(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    ids = seed(env)
    assert run("install", "--backend-only") == 0
    assert run("backfill") == 0
    out = capsys.readouterr().out
    assert "created 3" in out
    rows = models(env)
    assert set(rows) == {name for name, _, _ in SEED}
    g = rows["granite-8b-code-instruct-128k"]
    assert g["provider"] == "openai"
    assert g["backend_model_name"] == "granite-8b-code-instruct-128k"
    assert g["api_base"] == "http://vllm.example:8000/v1"
    # model_info.max_tokens, as the backend
    assert (g["context_length"], g["max_tokens"]) == (131072, 131072)
    assert g["litellm_model_id"] == ids[0]
    assert g["availability"] == "available"
    assert g["features"] == ["chat"]
    assert rows["llama-3-8b-instruct"]["features"] == ["chat", "function_calling"]
    assert rows["mistral-7b-instruct"]["description"] == "Mistral"
    assert API_KEY not in json.dumps([r["metadata"] for r in rows.values()])

    before = {k: (v["xmin"], v["updated_at"]) for k, v in rows.items()}
    report = converge()
    assert report.rows_written == 0
    assert set(report.counts()) == {"unchanged"}
    assert {k: (v["xmin"], v["updated_at"]) for k, v in models(env).items()} == before
    assert run("backfill", "--dry-run") == 0


def test_dry_run_writes_nothing_and_exits_2(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    seed(env)
    assert run("install", "--backend-only") == 0
    capsys.readouterr()
    assert run("backfill", "--dry-run") == 2
    out = capsys.readouterr().out
    assert "+ create  granite-8b-code-instruct-128k" in out
    assert "would be created 3" in out
    assert models(env) == {}


def test_subscribing_works_after_backfill(env: dict[str, str]) -> None:
    seed(env)
    add_user(env)
    insert = "INSERT INTO subscriptions (user_id, model_id) VALUES (%s, 'mistral-7b-instruct')"
    with pytest.raises(psycopg.errors.ForeignKeyViolation) as excinfo:
        execute(env["LITEMAAS_DATABASE_URL"], insert, (USER,))
    assert excinfo.value.sqlstate == "23503"
    assert run("install", "--backend-only") == 0
    assert run("backfill") == 0
    execute(env["LITEMAAS_DATABASE_URL"], insert, (USER,))


def test_two_deployments_one_row_survives_losing_one(env: dict[str, str]) -> None:
    key = env["LITELLM_MASTER_KEY"]
    first = litellm_row("shared", {"model": "openai/a", "api_base": "http://a"}, key=key)
    second = litellm_row("shared", {"model": "openai/b", "api_base": "http://b"}, key=key)
    insert_rows(env["LITELLM_DATABASE_URL"], [first])
    insert_rows(env["LITELLM_DATABASE_URL"], [second])
    execute(
        env["LITELLM_DATABASE_URL"],
        'UPDATE "LiteLLM_ProxyModelTable" SET updated_at = '
        "updated_at + interval '1 second' WHERE model_id = %s",
        (second["model_id"],),
    )
    assert run("install", "--backend-only") == 0
    assert run("backfill") == 0
    row = models(env)["shared"]
    assert row["litellm_model_id"] == second["model_id"]
    assert row["api_base"] == "http://b"

    execute(
        env["LITELLM_DATABASE_URL"],
        'DELETE FROM "LiteLLM_ProxyModelTable" WHERE model_id = %s',
        (second["model_id"],),
    )
    report = converge({"shared"})
    assert report.outcomes["shared"].action == "updated"
    row = models(env)["shared"]
    assert (row["availability"], row["litellm_model_id"], row["api_base"]) == (
        "available",
        first["model_id"],
        "http://a",
    )


def test_admin_fields_are_preserved(env: dict[str, str]) -> None:
    seed(env)
    assert run("install", "--backend-only") == 0
    assert run("backfill") == 0
    execute(
        env["LITEMAAS_DATABASE_URL"],
        """UPDATE models SET description = 'curated', restricted_access = true,
           encrypted_api_key = 'enc', availability = 'unavailable', provider = 'stale'
           WHERE id = 'mistral-7b-instruct'""",
    )
    report = converge()
    assert report.outcomes["mistral-7b-instruct"].action == "updated"
    row = models(env)["mistral-7b-instruct"]
    assert row["provider"] == "openai"
    assert (row["description"], row["restricted_access"], row["encrypted_api_key"]) == (
        "curated",
        True,
        "enc",
    )
    assert row["availability"] == "unavailable"  # hidden by an admin: left alone


def test_retire_cascade_audit_and_revival(env: dict[str, str]) -> None:
    ids = seed(env)
    add_user(env)
    assert run("install", "--backend-only") == 0
    assert run("backfill") == 0
    db = env["LITEMAAS_DATABASE_URL"]
    execute(
        db,
        "INSERT INTO subscriptions (user_id, model_id) "
        "VALUES (%s, 'granite-8b-code-instruct-128k')",
        (USER,),
    )
    key_only = execute(
        db,
        "INSERT INTO api_keys (user_id, key_hash, "
        "key_prefix) VALUES (%s, 'h1', 'sk-1') RETURNING id",
        (USER,),
    )[0][0]
    key_two = execute(
        db,
        "INSERT INTO api_keys (user_id, key_hash, "
        "key_prefix) VALUES (%s, 'h2', 'sk-2') RETURNING id",
        (USER,),
    )[0][0]
    execute(
        db,
        """INSERT INTO api_key_models (api_key_id, model_id) VALUES
           (%(a)s, 'granite-8b-code-instruct-128k'), (%(b)s, 'granite-8b-code-instruct-128k'),
           (%(b)s, 'mistral-7b-instruct')""",
        {"a": key_only, "b": key_two},
    )
    execute(
        env["LITELLM_DATABASE_URL"],
        'DELETE FROM "LiteLLM_ProxyModelTable" WHERE model_id = %s',
        (ids[0],),
    )

    report = converge({"granite-8b-code-instruct-128k"})
    assert report.outcomes["granite-8b-code-instruct-128k"].action == "retired"
    assert models(env)["granite-8b-code-instruct-128k"]["availability"] == "unavailable"
    assert execute(db, "SELECT status FROM subscriptions") == [("inactive",)]
    assert execute(db, "SELECT model_id FROM api_key_models") == [("mistral-7b-instruct",)]
    active = dict(execute(db, "SELECT key_hash, is_active FROM api_keys"))
    assert active == {"h1": False, "h2": True}
    audit = execute(db, "SELECT action, resource_type, resource_id, metadata FROM audit_logs")
    assert len(audit) == 1
    action, rtype, rid, meta = audit[0]
    assert (action, rtype, rid) == (
        "MODEL_MARKED_UNAVAILABLE_WITH_CASCADE",
        "MODEL",
        "granite-8b-code-instruct-128k",
    )
    assert (
        meta["subscriptionsDeactivated"],
        meta["apiKeyModelLinksRemoved"],
        meta["apiKeysDeactivated"],
    ) == (1, 2, 1)

    again = converge({"granite-8b-code-instruct-128k"})
    assert again.outcomes["granite-8b-code-instruct-128k"].action == "unchanged"
    assert len(execute(db, "SELECT 1 FROM audit_logs")) == 1

    seed(env, [SEED[0]])  # recreated in LiteLLM (a new deployment id)
    revived = converge({"granite-8b-code-instruct-128k"})
    assert revived.outcomes["granite-8b-code-instruct-128k"].action == "updated"
    assert models(env)["granite-8b-code-instruct-128k"]["availability"] == "available"
    assert execute(db, "SELECT status FROM subscriptions") == [("inactive",)]  # users re-subscribe


def test_retire_missing_only_touches_litellm_rows(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    ids = seed(env)
    assert run("install", "--backend-only") == 0
    assert run("backfill") == 0
    execute(
        env["LITEMAAS_DATABASE_URL"],
        "INSERT INTO models (id, name, provider) VALUES ('hand-made', 'Hand made', 'custom')",
    )
    execute(
        env["LITELLM_DATABASE_URL"],
        'DELETE FROM "LiteLLM_ProxyModelTable" WHERE model_id = %s',
        (ids[1],),
    )
    assert run("backfill") == 0  # without --retire-missing nothing is retired
    assert models(env)["mistral-7b-instruct"]["availability"] == "available"
    capsys.readouterr()
    assert run("backfill", "--dry-run", "--retire-missing") == 2
    assert "- retire  mistral-7b-instruct" in capsys.readouterr().out
    assert run("backfill", "--retire-missing") == 0
    rows = models(env)
    assert rows["mistral-7b-instruct"]["availability"] == "unavailable"
    assert rows["hand-made"]["availability"] == "available"


def test_ansible_rows_are_repaired(env: dict[str, str]) -> None:
    ids = seed(env)
    execute(
        env["LITEMAAS_DATABASE_URL"],
        """INSERT INTO models (id, name, provider, description, litellm_model_id, features,
                               restricted_access)
           VALUES ('llama-3-8b-instruct', 'llama-3-8b-instruct', 'litellm', 'AI model',
                   'llama-3-8b-instruct', NULL, true)""",
    )
    assert run("install", "--backend-only") == 0
    assert run("backfill") == 0
    row = models(env)["llama-3-8b-instruct"]
    assert (row["provider"], row["litellm_model_id"], row["features"]) == (
        "openai",
        ids[2],
        ["chat", "function_calling"],
    )
    assert (row["description"], row["restricted_access"]) == ("AI model", True)


def test_awkward_names_and_too_long_names(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    awkward = 'org/it\'s "q"; -- modèle-日本'
    too_long = "m" * 256
    seed(env, [(awkward, "openai/x", {}), (too_long, "openai/y", {}), ("fine", "openai/z", {})])
    assert run("install", "--backend-only") == 0
    capsys.readouterr()
    assert run("backfill") == 1  # one model could not be applied
    err = capsys.readouterr().err
    assert "256 characters long" in err
    assert set(models(env)) == {awkward, "fine"}


def test_wrong_key_is_reported_per_model(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(env, [SEED[0]])
    other = litellm_row(
        "other-key", {"model": "openai/o", "api_base": "http://o"}, key="sk-" + "1" * 64
    )
    insert_rows(env["LITELLM_DATABASE_URL"], [other])
    assert run("install", "--backend-only") == 0
    capsys.readouterr()
    assert run("backfill") == 1
    err = capsys.readouterr().err
    assert "other-key" in err
    assert "encrypted with another key" in err
    assert env["LITELLM_MASTER_KEY"] not in err
    assert set(models(env)) == {SEED[0][0]}


def test_team_models_are_skipped_by_default(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(
        env,
        [("model_name_team1_abc", "openai/t", {"team_id": "team1", "team_public_model_name": "t"})],
    )
    assert run("install", "--backend-only") == 0
    report = converge()
    assert report.outcomes["model_name_team1_abc"].action == "skipped"
    monkeypatch.setenv("LITEMAAS_HOOKS_SYNC_TEAM_MODELS", "true")
    assert converge().outcomes["model_name_team1_abc"].action == "created"


def test_shared_database_topology(
    shared_dsn: str, master_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "LITEMAAS_DATABASE_URL": shared_dsn,
        "LITELLM_DATABASE_URL": shared_dsn,
        "LITELLM_MASTER_KEY": master_key,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    seed(env)
    assert run("install", "--backend-only") == 0
    assert run("backfill") == 0
    assert len(models(env)) == 3


def test_full_reconcile_in_chunks(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A full run walks names in chunks (bounded memory); results equal a one-chunk run."""
    from litemaas_hooks import reconcile

    monkeypatch.setattr(reconcile, "CHUNK_NAMES", 2)
    extra: list[tuple[str, str, dict[str, Any]]] = [
        (f"chunk-{i}", f"openai/c{i}", {}) for i in range(5)
    ]
    ids = seed(env, [*SEED, *extra])
    nameless = litellm_row("", {"model": "openai/n"}, key=env["LITELLM_MASTER_KEY"])
    insert_rows(env["LITELLM_DATABASE_URL"], [nameless])
    assert run("install", "--backend-only") == 0
    progress: list[tuple[int, int]] = []

    report = asyncio.run(
        connected(
            lambda engine, lite, back: engine.converge(
                lite, back, None, progress=lambda d, t: progress.append((d, t))
            )
        )
    )
    assert report.counts()["created"] == 8
    assert report.outcomes[f"<deployment {nameless['model_id']}>"].action == "error"
    assert progress == [(2, 8), (4, 8), (6, 8), (8, 8)]
    execute(
        env["LITELLM_DATABASE_URL"],
        'DELETE FROM "LiteLLM_ProxyModelTable" WHERE model_id = %s',
        (ids[-1],),
    )
    retired = converge(None, retire_missing=True)
    assert retired.outcomes["chunk-4"].action == "retired"
    assert {
        o.action for n, o in retired.outcomes.items() if n != "chunk-4" and not n.startswith("<")
    } == {"unchanged"}


def test_an_admins_hide_survives_a_delete_and_re_add(env: dict[str, str]) -> None:
    """Issue 10 item 11: the re-added deployment (a new model_id) finds the row still hidden."""
    name = "granite-8b-code-instruct-128k"
    seed(env)
    assert run("install") == 0
    assert run("backfill", "--quiet") == 0
    execute(
        env["LITEMAAS_DATABASE_URL"],
        "UPDATE models SET availability = 'unavailable' WHERE id = %s",
        (name,),
    )
    execute(
        env["LITELLM_DATABASE_URL"],
        'DELETE FROM "LiteLLM_ProxyModelTable" WHERE model_name = %s',
        (name,),
    )
    converge({name})
    assert models(env)[name]["availability"] == "unavailable"
    seed(env, [SEED[0]])  # the same name again, a new deployment id
    report = converge({name})
    row = models(env)[name]
    assert row["availability"] == "unavailable", report.outcomes[name]
    assert row["litellm_model_id"] != name


def test_a_full_run_commits_chunk_by_chunk_and_holds_no_user_up(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full reconcile of 2 chunks, paused while it reads its second chunk (that chunk's names
    locked). Meanwhile, from other connections: the first chunk is committed (visible); a user's
    subscription to a model of either chunk goes through at once (lock_timeout 1 s: it would fail
    if it had to wait); a change to a first-chunk name is applied, not deferred; status's drift
    check (a dry run) completes. Before: one transaction
    and the exclusive fleet lock for the whole run."""
    from litemaas_hooks import reconcile

    monkeypatch.setattr(reconcile, "CHUNK_NAMES", 2)
    seed(env, [*SEED, ("chunk-x", "openai/x", {})])  # 4 names: 2 chunks
    add_user(env)
    assert run("install", "--backend-only") == 0
    assert run("backfill") == 0  # rows exist: the run below rewrites them (a synced column spoilt)
    db = env["LITEMAAS_DATABASE_URL"]
    execute(db, "UPDATE models SET tpm = -1")
    every = sorted(n for n, _, _ in [*SEED, ("chunk-x", "", {})])
    first, second = every[:2], every[2:]
    seen: dict[str, Any] = {}
    real_read = vars(reconcile)["read_truth"]  # reconcile's own binding: what it calls

    async def pause(names: Any) -> None:
        with psycopg.connect(db, autocommit=True) as other:
            other.execute("SET lock_timeout = '1s'")
            fixed = other.execute("SELECT id FROM models WHERE tpm IS DISTINCT FROM -1 ORDER BY id")
            seen["committed"] = [r[0] for r in fixed.fetchall()]
            for model in (first[0], second[0]):
                other.execute(
                    "INSERT INTO subscriptions (user_id, model_id) VALUES (%s, %s)", (USER, model)
                )
            seen["subscribed"] = True
        change = await connected(lambda engine, lite, back: engine.converge(lite, back, {first[1]}))
        seen["change"] = change.outcomes[first[1]].action
        drift = await connected(
            lambda engine, lite, back: engine.converge(lite, back, None, dry_run=True)
        )
        seen["drift"] = sorted(drift.counts().items())

    async def read_truth(conn: Any, names: Any, **kwargs: Any) -> Any:
        if names is not None and sorted(names) == second and "committed" not in seen:
            await pause(names)
        return await real_read(conn, names, **kwargs)

    monkeypatch.setattr(reconcile, "read_truth", read_truth)
    report = asyncio.run(connected(lambda engine, lite, back: engine.converge(lite, back, None)))
    assert seen["committed"] == first  # the first chunk was committed before the second was read
    assert seen["subscribed"] is True
    assert seen["change"] in {"unchanged", "updated"}  # not "deferred": first's locks were gone
    assert ("error", 0) not in seen["drift"]
    assert "deferred" not in dict(seen["drift"])
    assert report.counts()["updated"] == 4 - (seen["change"] == "updated")
    assert all(m["tpm"] != -1 for m in models(env).values())


def test_an_error_in_a_later_chunk_keeps_the_committed_chunks(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading the second chunk fails: the first chunk stays committed (each chunk is its own
    transaction; a re-run completes the rest), the error reaches the caller and the connection is
    usable again."""
    from litemaas_hooks import reconcile

    monkeypatch.setattr(reconcile, "CHUNK_NAMES", 2)
    seed(env, [*SEED, ("chunk-x", "openai/x", {})])
    assert run("install", "--backend-only") == 0
    reads = {"n": 0}
    real_read = vars(reconcile)["read_truth"]  # reconcile's own binding: what it calls

    async def read_truth(*args: Any, **kwargs: Any) -> Any:
        reads["n"] += 1
        if reads["n"] == 2:
            raise RuntimeError("LiteLLM's table went away")
        return await real_read(*args, **kwargs)

    monkeypatch.setattr(reconcile, "read_truth", read_truth)

    async def body(engine: Reconciler, lite: Any, back: Any) -> int:
        with pytest.raises(RuntimeError, match="went away"):
            await engine.converge(lite, back, None)
        cur = await back.execute("SELECT count(*) FROM public.models")
        row = await cur.fetchone()
        return int(row[0]) if row else -1

    assert asyncio.run(connected(body)) == 2
    assert len(models(env)) == 2
    assert run("backfill") == 0
    assert len(models(env)) == 4


def test_metadata_is_written_with_lz4_where_the_server_has_it(env: dict[str, str]) -> None:
    """The upsert compresses the ~9 KB metadata with lz4 (twice as fast to write as pglz)."""
    with psycopg.connect(env["LITEMAAS_DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT 'lz4' = ANY (enumvals) FROM pg_settings "
            "WHERE name = 'default_toast_compression'"
        ).fetchone()
    if not (row and row[0]):
        pytest.skip("this PostgreSQL has no lz4")
    big = {"notes": " ".join(f"word{i}" for i in range(2000))}  # large enough to be compressed
    seed(env, [("lz4-model", "openai/lz4", big)])
    assert run("install", "--backend-only") == 0
    assert run("backfill") == 0
    with psycopg.connect(env["LITEMAAS_DATABASE_URL"]) as conn:
        got = conn.execute(
            "SELECT pg_column_compression(metadata) FROM models WHERE id = 'lz4-model'"
        ).fetchone()
        setting = conn.execute("SHOW default_toast_compression").fetchone()
    assert got == ("lz4",)
    assert setting == ("pglz",)  # the caller's own setting is untouched


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        {},
        {
            "litellm_model_info": {"blocked": True, "max_tokens": 8192},
            "litellm_params": {"model": "openai/x"},
        },
        {"litellm_model_info": {"blocked": False}},
        {"litellm_model_info": {"blocked": "true"}},  # a string is not LiteLLM's flag
        {"litellm_model_info": "odd", "other": 1},
        {"litellm_params": {}},
        {"notes": "hand-made"},
        ["litellm_model_info"],
        "litellm_params",
    ],
)
def test_the_snapshot_carries_what_planning_reads_of_metadata(
    env: dict[str, str], metadata: Any
) -> None:
    """The snapshot leaves the bulk of metadata in the database: what planning decides from it (a
    sync's row? written while blocked?) is the same as from the whole value."""
    from litemaas_hooks import backend_sink
    from litemaas_hooks.planning import CurrentRow

    assert run("install", "--backend-only") == 0
    execute(
        env["LITEMAAS_DATABASE_URL"],
        "INSERT INTO models (id, name, provider, metadata) VALUES ('m', 'm', 'p', %s::jsonb)",
        (None if metadata is None else json.dumps(metadata),),
    )

    async def body(engine: Reconciler, lite: Any, back: Any) -> tuple[CurrentRow, CurrentRow]:
        async with back.cursor(row_factory=psycopg.rows.dict_row) as cur:
            await cur.execute("SELECT * FROM litemaas_hooks.models_snapshot_v1(ARRAY['m'])")
            row = await cur.fetchone()
        return (await backend_sink.snapshot(back, ["m"]))["m"], CurrentRow.from_db(row)

    slim, whole = asyncio.run(connected(body))
    assert (slim.from_litellm, slim.written_while_blocked) == (
        whole.from_litellm,
        whole.written_while_blocked,
    )
    assert slim.name == whole.name


def test_reading_many_deployments_lets_the_event_loop_run(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building deployments is CPU work; between slices of it the event loop runs other tasks (the
    chunk being written, inside the proxy its requests) instead of waiting for the whole chunk."""
    from litemaas_hooks import litellm_source

    monkeypatch.setattr(litellm_source, "YIELD_AFTER_SECONDS", 0.0)  # a turn after every deployment
    seed(env, [(f"many-{i}", f"openai/many-{i}", {}) for i in range(20)])
    ticks = {"n": 0}
    seen: list[int] = []
    real_build = litellm_source.build_deployment

    def build(*args: Any, **kwargs: Any) -> Any:
        seen.append(ticks["n"])
        return real_build(*args, **kwargs)

    monkeypatch.setattr(litellm_source, "build_deployment", build)

    async def body(engine: Reconciler, lite: Any, back: Any) -> None:
        loop, running = asyncio.get_running_loop(), {"on": True}

        def tick() -> None:  # counts the event loop's turns (one callback per turn)
            ticks["n"] += 1
            if running["on"]:
                loop.call_soon(tick)

        loop.call_soon(tick)
        try:
            await litellm_source.read_truth(lite, None, key=env["LITELLM_MASTER_KEY"])
        finally:
            running["on"] = False

    asyncio.run(connected(body))
    assert len(seen) == 20
    assert seen[-1] > seen[0]  # the ticker ran while the deployments were being built
