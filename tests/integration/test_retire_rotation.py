"""LiteLLM's own master-key rotation with a relay running costs no user anything (issue 17).

LiteLLM 1.81.0 (what LiteMaaS runs) rotates the master key through ``POST /key/regenerate`` with
the master key: ``_rotate_master_key`` deletes every row of ``LiteLLM_ProxyModelTable``
(``delete_many``) and re-creates them re-encrypted (``create_many``): two commits. Here its real
endpoint function runs in-process on the Prisma stand-in; the test widens the gap between the two
commits until the relay has seen every name gone (a condition, not a sleep), which is the worst
case the issue measured.
"""

from __future__ import annotations

import importlib
import secrets
from typing import Any

import psycopg
import pytest

from litemaas_hooks_sandbox import litellm_admin as admin_mod
from litemaas_hooks_sandbox.litellm_admin import LiteLLMAdmin
from litemaas_hooks_sandbox.prisma_standin import TableActions
from tests.helpers import (
    all_are,
    cascades,
    eventually,
    install,
    make_settings,
    outbox_empty,
    pending,
    running,
    subscribe,
    user_state,
)

pytestmark = pytest.mark.anyio

MODELS = 30
PARAMS = {
    "model": "openai/granite-3-8b-instruct",
    "api_base": "http://vllm.models.svc:8000/v1",
    "api_key": "sk-x",
}


def _rotation_endpoint() -> Any:
    kme = importlib.import_module("litellm.proxy.management_endpoints.key_management_endpoints")
    rotate = getattr(kme, "_rotate_master_key", None)
    if rotate is None or "delete_many" not in _source(rotate):
        pytest.skip(
            f"LiteLLM {admin_mod.litellm_version()} does not rotate by delete_many + create_many"
        )
    return kme.regenerate_key_fn


def _source(fn: Any) -> str:
    import inspect

    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        return ""


async def test_master_key_rotation_with_30_subscribed_models_loses_nothing(
    litellm_dsn: str, backend_dsn: str, master_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    regenerate = _rotation_endpoint()
    from litellm.proxy._types import RegenerateKeyRequest

    await install(litellm_dsn, backend_dsn)
    new_key = "sk-" + secrets.token_hex(32)
    current = [master_key]  # the proxy's key: the new one once LiteLLM re-encrypted with it
    # production defaults: grace 300 s, mass-retire guard 50 % / 3 models
    settings = make_settings(
        litellm_dsn, backend_dsn, master_key, retire_grace_seconds=300.0, retire_guard_min_models=3
    )
    names = [f"model-{i:02d}" for i in range(MODELS)]
    seen_gone: list[dict[str, bool]] = []

    async with (
        await LiteLLMAdmin.open(litellm_dsn, master_key=master_key) as admin,
        running(settings, key=lambda: current[0]),
        await psycopg.AsyncConnection.connect(litellm_dsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(backend_dsn, autocommit=True) as bc,
    ):
        for name in names:
            await admin.add_model(name, PARAMS, {"description": name})
        await eventually(
            lambda: all_are(bc, names, "available"), deadline_seconds=60, what="30 models synced"
        )
        await subscribe(bc, names)
        assert await user_state(bc) == (MODELS, MODELS, MODELS)

        original = TableActions.delete_many

        async def delete_many_then_wait(self: TableActions, where: Any = None) -> int:
            count = await original(self, where)
            if "proxymodeltable" in repr(self).lower():
                # the gap between LiteLLM's two commits: as long as the relay needs to see all gone
                await eventually(
                    lambda: all_are(bc, names, "unavailable"), deadline_seconds=60, what="gap"
                )
                seen_gone.append(await pending(bc))
                current[0] = new_key  # the proxy runs with the new key from here on
            return count

        original_create_many = TableActions.create_many

        async def create_many_without_nulls(self: TableActions, data: Any, **kwargs: Any) -> int:
            # LiteLLM hands create_many the rows' model_dump(), created_at/updated_at None
            # included; the stand-in would write NULL where the column's default (now()) belongs
            rows = [{k: v for k, v in item.items() if v is not None} for item in data]
            return await original_create_many(self, rows, **kwargs)

        monkeypatch.setattr(TableActions, "delete_many", delete_many_then_wait)
        monkeypatch.setattr(TableActions, "create_many", create_many_without_nulls)
        kwargs = admin_mod._complete_kwargs(
            regenerate,
            {
                "key": master_key,
                "data": RegenerateKeyRequest(key=master_key, new_master_key=new_key),
                "user_api_key_dict": admin._admin,
            },
            "POST",
            "/key/regenerate",
        )
        async with admin._active():
            with admin_mod._litellm_internals():
                await regenerate(**kwargs)

        assert seen_gone, "the rotation never deleted LiteLLM's model rows"
        assert seen_gone[0] == dict.fromkeys(names, True)  # all 30 gone at once: held by the guard
        await eventually(
            lambda: all_are(bc, names, "available"), deadline_seconds=60, what="back after rotation"
        )
        await eventually(lambda: outbox_empty(lc), deadline_seconds=30)
        assert await pending(bc) == {}
        assert await user_state(bc) == (MODELS, MODELS, MODELS)  # 0 subscriptions or keys lost
        assert await cascades(bc) == 0
