"""LiteLLMAdmin drives LiteLLM's real model endpoints
and they write real rows through the Prisma stand-in.

Every assertion reads the table with a separate plain psycopg connection, never through the
stand-in, and decrypts with LiteLLM's own helpers: what is checked is what LiteLLM wrote.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import secrets
from collections.abc import Coroutine
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from litemaas_hooks_sandbox.litellm_admin import (
    LiteLLMAdmin,
    LiteLLMAdminError,
    UnsupportedByLiteLLMVersion,
    encrypted_row,
)

T = TypeVar("T")

PROVIDER_KEY = "sk-provider-" + "7" * 40
PARAMS = {
    "model": "openai/granite-3-8b-instruct",
    "api_base": "http://vllm-granite.models.svc:8000/v1",
    "api_key": PROVIDER_KEY,
    "rpm": 60,
    "tpm": 100000,
}
INFO = {"description": "Granite 3 8B", "supports_function_calling": True, "max_tokens": 4096}


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def fetch_row(dsn: str, model_id: str) -> dict[str, Any] | None:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return conn.execute(
            'SELECT * FROM public."LiteLLM_ProxyModelTable" WHERE model_id = %s', (model_id,)
        ).fetchone()


def count_rows(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute('SELECT count(*) FROM public."LiteLLM_ProxyModelTable"').fetchone()
        assert row is not None
        return int(row[0])


def decrypt(value: str, key: str) -> str | None:
    """LiteLLM's own decryption of one stored value (None when ``key`` does not open it)."""
    from litellm.proxy.common_utils import encrypt_decrypt_utils as utils

    if hasattr(utils, "decrypt_if_encrypted_with"):  # litellm >= 1.108
        result: str | None = utils.decrypt_if_encrypted_with(value, key)
        return result
    try:  # litellm 1.81: NaCl SecretBox over URL-safe base64
        plain: str = utils.decrypt_value(value=base64.urlsafe_b64decode(value), signing_key=key)
        return plain
    except Exception:
        return None


async def _add(dsn: str, key: str, **kwargs: Any) -> str:
    async with await LiteLLMAdmin.open(dsn, master_key=key) as admin:
        return await admin.add_model("granite-3-8b", PARAMS, INFO, **kwargs)


def test_add_writes_a_real_encrypted_row(litellm_dsn: str, master_key: str) -> None:
    model_id = run(_add(litellm_dsn, master_key))

    row = fetch_row(litellm_dsn, model_id)
    assert row is not None
    assert row["model_name"] == "granite-3-8b"
    params = row["litellm_params"]
    for name in ("model", "api_base", "api_key"):
        stored = params[name]
        assert stored != PARAMS[name], f"{name} is stored in clear"
        assert PARAMS[name] not in stored
        assert decrypt(stored, master_key) == PARAMS[name]
        # another key does not open it
        assert decrypt(stored, "sk-" + secrets.token_hex(32)) is None
    assert params["rpm"] == 60  # numbers stay plain
    assert params["tpm"] == 100000
    info = row["model_info"]  # model_info is plain JSON
    assert info["id"] == model_id
    assert info["description"] == "Granite 3 8B"
    assert info["supports_function_calling"] is True
    assert info["max_tokens"] == 4096
    assert row["created_by"] == row["updated_by"]
    assert row["created_by"]
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert abs(now - row["created_at"]) < dt.timedelta(minutes=1)  # UTC, written just now
    assert row["updated_at"] >= row["created_at"]


def test_add_keeps_a_given_model_id(litellm_dsn: str, master_key: str) -> None:
    async def scenario() -> str:
        async with await LiteLLMAdmin.open(litellm_dsn, master_key=master_key) as admin:
            return await admin.add_model(
                "granite-3-8b", PARAMS, {**INFO, "id": "granite-deployment-1"}
            )

    assert run(scenario()) == "granite-deployment-1"
    row = fetch_row(litellm_dsn, "granite-deployment-1")
    assert row is not None
    assert row["model_info"]["id"] == "granite-deployment-1"


def _backdate(dsn: str, model_id: str) -> None:
    """Move the row's updated_at a minute back, so "the
    write moved it" needs no waiting for the clock."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            """UPDATE "LiteLLM_ProxyModelTable" SET updated_at = updated_at - interval '1 minute'
               WHERE model_id = %s""",
            (model_id,),
        )


def test_patch_renames_and_moves_updated_at(litellm_dsn: str, master_key: str) -> None:
    model_id = run(_add(litellm_dsn, master_key))
    _backdate(litellm_dsn, model_id)
    before = fetch_row(litellm_dsn, model_id)
    assert before is not None

    async def scenario() -> None:
        async with await LiteLLMAdmin.open(litellm_dsn, master_key=master_key) as admin:
            await admin.patch_model(model_id, model_name="granite-3-8b-v2")

    run(scenario())
    after = fetch_row(litellm_dsn, model_id)
    assert after is not None
    assert after["model_name"] == "granite-3-8b-v2"
    assert after["model_id"] == model_id
    assert after["updated_at"] > before["updated_at"]
    assert after["created_at"] == before["created_at"]
    assert decrypt(after["litellm_params"]["api_key"], master_key) == PROVIDER_KEY
    assert count_rows(litellm_dsn) == 1


def test_patch_encrypts_new_params_and_merges_model_info(litellm_dsn: str, master_key: str) -> None:
    model_id = run(_add(litellm_dsn, master_key))

    async def scenario() -> None:
        async with await LiteLLMAdmin.open(litellm_dsn, master_key=master_key) as admin:
            await admin.patch_model(
                model_id,
                litellm_params={"api_base": "http://vllm-granite-2.models.svc:8000/v1"},
                model_info={"id": model_id, "supports_vision": True},
            )

    run(scenario())
    row = fetch_row(litellm_dsn, model_id)
    assert row is not None
    assert decrypt(row["litellm_params"]["api_base"], master_key) == "http://vllm-granite-2.models.svc:8000/v1"
    assert decrypt(row["litellm_params"]["api_key"], master_key) == PROVIDER_KEY
    assert row["model_info"]["supports_vision"] is True
    assert row["model_info"]["description"] == "Granite 3 8B"


def test_update_merges_litellm_params_and_sets_updated_at(
    litellm_dsn: str, master_key: str
) -> None:
    model_id = run(_add(litellm_dsn, master_key))
    _backdate(litellm_dsn, model_id)
    before = fetch_row(litellm_dsn, model_id)
    assert before is not None

    async def scenario() -> None:
        async with await LiteLLMAdmin.open(litellm_dsn, master_key=master_key) as admin:
            # POST /model/update does not set updated_at itself: Prisma's @updatedAt does
            await admin.update_model(
                model_id, litellm_params={"api_base": "http://other:8000/v1", "rpm": 5}
            )

    run(scenario())
    after = fetch_row(litellm_dsn, model_id)
    assert after is not None
    params = after["litellm_params"]
    assert decrypt(params["api_base"], master_key) == "http://other:8000/v1"
    assert decrypt(params["api_key"], master_key) == PROVIDER_KEY  # untouched values kept
    assert decrypt(params["model"], master_key) == PARAMS["model"]
    assert params["rpm"] == 5
    assert params["tpm"] == 100000
    assert after["model_name"] == "granite-3-8b"
    assert after["updated_at"] > before["updated_at"]


def test_delete_removes_the_row(litellm_dsn: str, master_key: str) -> None:
    async def scenario() -> tuple[str, str]:
        async with await LiteLLMAdmin.open(litellm_dsn, master_key=master_key) as admin:
            keep = await admin.add_model("granite-3-8b", PARAMS, INFO)
            # a second deployment of the name
            gone = await admin.add_model("granite-3-8b", PARAMS, INFO)
            await admin.delete_model(gone)
            return keep, gone

    keep, gone = run(scenario())
    assert fetch_row(litellm_dsn, gone) is None
    assert fetch_row(litellm_dsn, keep) is not None
    assert count_rows(litellm_dsn) == 1


def test_block_and_unblock_flip_blocked(litellm_dsn: str, master_key: str) -> None:
    async def scenario() -> list[bool]:
        async with await LiteLLMAdmin.open(litellm_dsn, master_key=master_key) as admin:
            if not admin.supports_block:
                with pytest.raises(UnsupportedByLiteLLMVersion):
                    await admin.block("any")
                pytest.skip(f"LiteLLM {admin.litellm_version} has no /model/block")
            model_id = await admin.add_model("granite-3-8b", PARAMS, INFO)
            seen = [bool(_row(model_id)["blocked"])]
            await admin.block(model_id)
            seen.append(bool(_row(model_id)["blocked"]))
            await admin.unblock(model_id)
            seen.append(bool(_row(model_id)["blocked"]))
            return seen

    def _row(model_id: str) -> dict[str, Any]:
        row = fetch_row(litellm_dsn, model_id)
        assert row is not None
        return row

    assert run(scenario()) == [False, True, False]


def test_errors_carry_litellm_status(litellm_dsn: str, master_key: str) -> None:
    async def scenario() -> None:
        async with await LiteLLMAdmin.open(litellm_dsn, master_key=master_key) as admin:
            with pytest.raises(LiteLLMAdminError) as missing:
                await admin.patch_model("no-such-model", model_name="x")
            assert missing.value.status_code == 404
            with pytest.raises(LiteLLMAdminError):
                await admin.delete_model("no-such-model")

    run(scenario())


def test_instances_on_different_databases(
    litellm_dsn: str, shared_dsn: str, master_key: str
) -> None:
    """Two instances, two databases, one process: each write lands in its own database and LiteLLM's
    globals are handed back between calls."""
    from litellm.proxy import proxy_server

    previous_client = proxy_server.prisma_client

    async def scenario() -> tuple[str, str]:
        first = await LiteLLMAdmin.open(litellm_dsn, master_key=master_key)
        second = await LiteLLMAdmin.open(shared_dsn, master_key=master_key)
        try:
            a = await first.add_model("model-a", PARAMS, INFO)
            b = await second.add_model("model-b", PARAMS, INFO)
            await first.patch_model(a, model_name="model-a2")
            assert proxy_server.prisma_client is previous_client
            return a, b
        finally:
            await first.close()
            await second.close()

    a, b = run(scenario())
    row_a, row_b = fetch_row(litellm_dsn, a), fetch_row(shared_dsn, b)
    assert row_a is not None
    assert row_a["model_name"] == "model-a2"
    assert row_b is not None
    assert row_b["model_name"] == "model-b"
    assert fetch_row(shared_dsn, a) is None
    assert fetch_row(litellm_dsn, b) is None


def test_salt_key_is_used_when_given(litellm_dsn: str, master_key: str) -> None:
    salt = "salt-" + secrets.token_hex(16)

    async def scenario() -> str:
        async with await LiteLLMAdmin.open(
            litellm_dsn, master_key=master_key, salt_key=salt
        ) as admin:
            return await admin.add_model("granite-3-8b", PARAMS, INFO)

    row = fetch_row(litellm_dsn, run(scenario()))
    assert row is not None
    assert decrypt(row["litellm_params"]["api_key"], salt) == PROVIDER_KEY
    assert decrypt(row["litellm_params"]["api_key"], master_key) is None


def test_encrypted_row_is_what_litellm_reads(litellm_dsn: str, master_key: str) -> None:
    """A row from LiteLLM's row builder, inserted with
    plain SQL, is served by LiteLLM's own endpoints."""
    row = encrypted_row("seeded", PARAMS, {**INFO, "id": "seeded-1"}, key=master_key)
    assert row["model_id"] == "seeded-1"
    assert decrypt(row["litellm_params"]["api_key"], master_key) == PROVIDER_KEY
    assert row["litellm_params"]["rpm"] == 60
    with psycopg.connect(litellm_dsn, autocommit=True) as conn:
        conn.execute(
            'INSERT INTO public."LiteLLM_ProxyModelTable" '
            "(model_id, model_name, litellm_params, model_info, created_by, updated_by) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (
                row["model_id"],
                row["model_name"],
                Jsonb(row["litellm_params"]),
                Jsonb(row["model_info"]),
                row["created_by"],
                row["updated_by"],
            ),
        )

    async def scenario() -> None:
        async with await LiteLLMAdmin.open(litellm_dsn, master_key=master_key) as admin:
            await admin.update_model("seeded-1", litellm_params={"rpm": 7})

    run(scenario())
    stored = fetch_row(litellm_dsn, "seeded-1")
    assert stored is not None
    assert stored["litellm_params"]["rpm"] == 7
    assert decrypt(stored["litellm_params"]["api_key"], master_key) == PROVIDER_KEY


def test_team_model_as_a_licensed_proxy(litellm_dsn: str, master_key: str) -> None:
    """Team models (``model_info.team_id``) need a licence: LiteLLM stores them under an internal
    name and adds the public name to the team, through the stand-in's team-table support."""
    with psycopg.connect(litellm_dsn, autocommit=True) as conn:
        conn.execute(
            'INSERT INTO public."LiteLLM_TeamTable" (team_id, '
            "team_alias, models, admins, members, updated_at) "
            "VALUES ('team-1', 'Team One', ARRAY['other-model'], '{}', '{}', now())"
        )

    async def scenario() -> tuple[str, list[str]]:
        async with await LiteLLMAdmin.open(litellm_dsn, master_key=master_key) as unlicensed:
            with pytest.raises(LiteLLMAdminError) as refused:
                await unlicensed.add_model("team-granite", PARAMS, {"team_id": "team-1"})
            assert refused.value.status_code == 403
        async with await LiteLLMAdmin.open(
            litellm_dsn, master_key=master_key, premium_user=True
        ) as admin:
            model_id = await admin.add_model("team-granite", PARAMS, {"team_id": "team-1"})
            teams: Any = admin.prisma_client.db.litellm_teamtable  # rows: pydantic extras, untyped
            team = await teams.find_unique(where={"team_id": "team-1"})
            assert team is not None
            return model_id, list(team.models)

    model_id, team_models = run(scenario())
    row = fetch_row(litellm_dsn, model_id)
    assert row is not None
    assert row["model_name"].startswith("model_name_team-1_")
    assert row["model_info"]["team_id"] == "team-1"
    assert row["model_info"]["team_public_model_name"] == "team-granite"
    assert decrypt(row["litellm_params"]["api_key"], master_key) == PROVIDER_KEY
    assert "team-granite" in team_models
    assert "other-model" in team_models
    assert count_rows(litellm_dsn) == 1


# ---- the Prisma stand-in on its own --------------------------------------------------------------


def test_translate_raw_query_leaves_literals_alone() -> None:
    from litemaas_hooks_sandbox.prisma_standin import translate_raw_query

    query = (
        "SELECT '$1 %', \"a$2\", $$ $1 $$ -- $1\n, x LIKE "
        "'a%' FROM t WHERE a = $2 AND b = $1 AND c = $2"
    )
    text, params = translate_raw_query(query, ["one", "two"])
    assert text == (
        "SELECT '$1 %%', \"a$2\", $$ $1 $$ -- $1\n, x LIKE "
        "'a%%' FROM t WHERE a = %s AND b = %s AND c = %s"
    )
    assert params == ["two", "one", "two"]


def test_standin_translates_prisma_calls(litellm_dsn: str) -> None:
    from litemaas_hooks_sandbox.prisma_standin import StandinPrismaClient, UnsupportedPrismaQuery

    def model(model_id: str, name: str) -> dict[str, Any]:
        return {
            "model_id": model_id,
            "model_name": name,
            "litellm_params": '{"model": "x", "rpm": 1}',  # a JSON string, as LiteLLM passes it
            "model_info": {"id": model_id},
            "created_by": "t",
            "updated_by": "t",
        }

    async def scenario() -> None:
        client = await StandinPrismaClient.connect(litellm_dsn)
        try:
            table: Any = client.db.litellm_proxymodeltable  # rows: pydantic extras, untyped
            created = await table.create(data=model("a", "alpha"))
            assert created.litellm_params == {"model": "x", "rpm": 1}
            assert created.created_at.tzinfo is not None
            assert created.updated_at == created.created_at
            assert (
                await table.create_many(
                    data=[model("b", "beta"), model("a", "dup")], skip_duplicates=True
                )
                == 1
            )
            names = [
                r.model_name
                for r in await table.find_many(
                    where={"model_id": {"in": ["a", "b"]}}, order={"model_name": "desc"}
                )
            ]
            assert names == ["beta", "alpha"]
            assert (
                await table.count(where={"model_name": {"contains": "ph", "mode": "insensitive"}})
                == 1
            )
            assert (
                await table.count(
                    where={"OR": [{"model_name": "alpha"}, {"model_id": {"not": "a"}}]}
                )
                == 2
            )
            assert (
                await table.find_first(where={"model_info": {"path": ["id"], "equals": "b"}})
                is not None
            )
            assert await table.update(where={"model_id": "zz"}, data={"model_name": "x"}) is None
            _backdate(litellm_dsn, "a")
            before = await table.find_unique(where={"model_id": "a"})
            assert before is not None
            assert before.updated_at < created.updated_at
            updated = await table.update(where={"model_id": "a"}, data={"model_name": "alpha2"})
            assert updated is not None
            assert updated.updated_at > before.updated_at  # @updatedAt

            upserted = await table.upsert(
                where={"model_id": "c"},
                data={"create": model("c", "gamma"), "update": {"model_name": "no"}},
            )
            assert upserted.model_name == "gamma"
            upserted = await table.upsert(
                where={"model_id": "c"},
                data={"create": model("c", "no"), "update": {"model_name": "gamma2"}},
            )
            assert upserted.model_name == "gamma2"

            async with client.db.tx() as tx:
                await tx.query_raw("SELECT 1 AS locked FROM pg_advisory_xact_lock($1)", 42)
                await tx.litellm_proxymodeltable.update(
                    where={"model_id": "b"}, data={"model_name": "in-tx"}
                )

            async def failing_transaction() -> None:
                async with client.db.tx() as tx:
                    await tx.litellm_proxymodeltable.delete(where={"model_id": "b"})
                    raise RuntimeError("roll back")

            with pytest.raises(RuntimeError):
                await failing_transaction()
            kept = await table.find_unique(where={"model_id": "b"})
            assert kept is not None
            assert kept.model_name == "in-tx"

            async with client.db.batch_() as batch:
                batch.litellm_proxymodeltable.update(
                    where={"model_id": "b"}, data={"model_name": "batched"}
                )
                batch.litellm_proxymodeltable.delete(where={"model_id": "c"})
            rows = await client.db.query_raw(
                'SELECT model_id, model_name FROM "LiteLLM_ProxyModelTable" '
                "WHERE model_name LIKE $1 ORDER BY 1",
                "%a%",
            )
            assert rows == [
                {"model_id": "a", "model_name": "alpha2"},
                {"model_id": "b", "model_name": "batched"},
            ]

            with pytest.raises(UnsupportedPrismaQuery):
                await table.find_many(where={"model_name": {"search": "x"}})
            assert await table.delete_many(where={"model_id": {"in": ["a", "b"]}}) == 2
            assert await table.delete(where={"model_id": "a"}) is None
        finally:
            await client.disconnect()

    run(scenario())
