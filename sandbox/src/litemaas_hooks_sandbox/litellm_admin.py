"""Drive LiteLLM's real model-management endpoints in-process, against a real PostgreSQL database.

``LiteLLMAdmin`` calls the endpoint functions of
``litellm.proxy.management_endpoints.model_management_endpoints`` (``add_new_model``,
``patch_model``, ``update_model``, ``delete_model``, ``block_model``, ``unblock_model``) exactly as
FastAPI would after authenticating the master key: request bodies are validated into LiteLLM's own
request models from JSON, the caller is a ``PROXY_ADMIN`` ``UserAPIKeyAuth``, and
``litellm.proxy.proxy_server.prisma_client`` is the psycopg-backed
:class:`~litemaas_hooks_sandbox.prisma_standin.StandinPrismaClient`. Rows, ``litellm_params``
encryption and timestamps therefore come from LiteLLM's code (the installed version).

During each call (and only then) the proxy-server globals the endpoints read are set for this
instance and restored afterwards, so several instances against different databases can be used one
after another in one process (calls are serialised per event loop):

* ``prisma_client`` (the stand-in), ``master_key``, ``store_model_in_db=True``, a private
  ``general_settings`` dict (no alerting: no Slack), ``premium_user`` (default False: LiteLLM then
  refuses team models, as an unlicensed proxy does; ``open(..., premium_user=True)`` to create
  them), ``llm_router=None`` (this process serves no model), ``redis_usage_cache=None``
  (config-change publishing is a no-op), ``litellm.store_audit_logs=False``, and
  ``LITELLM_SALT_KEY`` set to ``salt_key`` or removed (LiteLLM then encrypts with the master key);
* side effects that need infrastructure this process does not run are made no-ops: the router reload
  after a write (``ProxyConfig.add_deployment``/``add_deployment_locked``), and, in LiteLLM versions
  that have it, the post-write check that this pod's router now serves the written model
  (``raise_if_reload_degraded_serving``; there is no router here). The DB write path is never
  touched.

``encrypted_row`` builds a table row with LiteLLM's own row builder (``add_model_to_db`` with
``should_create_model_in_db=False``; ``_add_model_to_db`` in 1.81) for bulk seeding.

Importing ``litellm.proxy.proxy_server`` takes ~12 s; it happens once, on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import warnings
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from importlib import metadata
from types import ModuleType, TracebackType
from typing import Any, Final, Self

from litemaas_hooks.errors import LiteMaaSHooksError
from litemaas_hooks_sandbox.prisma_standin import StandinPrismaClient

# LiteLLM fetches its model cost map from the internet at import unless told otherwise.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

__all__ = [
    "LiteLLMAdmin",
    "LiteLLMAdminError",
    "UnsupportedByLiteLLMVersion",
    "encrypted_row",
    "litellm_version",
]

_ENDPOINTS_MODULE: Final = "litellm.proxy.management_endpoints.model_management_endpoints"
_MISSING: Final = object()


class LiteLLMAdminError(LiteMaaSHooksError):
    """A LiteLLM endpoint refused the call (``status_code`` is its HTTP status, when it gave
    one)."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class UnsupportedByLiteLLMVersion(LiteLLMAdminError, NotImplementedError):
    """The installed LiteLLM has no such endpoint (e.g. ``/model/block`` before 1.8x)."""


def litellm_version() -> str:
    """The installed ``litellm`` version."""
    return metadata.version("litellm")


def _modules() -> tuple[ModuleType, ModuleType]:
    """``litellm.proxy.proxy_server`` and the model-management endpoints module (imported once)."""
    import importlib

    with _litellm_internals():
        proxy_server = importlib.import_module("litellm.proxy.proxy_server")
        endpoints = importlib.import_module(_ENDPOINTS_MODULE)
    return proxy_server, endpoints


@contextlib.contextmanager
def _litellm_internals() -> Iterator[None]:
    """While LiteLLM's code runs: its lazily built pydantic schemas warn about LiteLLM's own types
    (e.g. ``ReadOnly`` TypedDict items); those warnings are not the caller's to handle (pytest turns
    them into errors, and which call builds a schema first depends on test order)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"pydantic(\.|$)")
        yield


def _admin_auth(master_key: str | None, user_id: str) -> Any:
    """What LiteLLM's auth hands an endpoint for a request made with the master key."""
    import litellm.constants
    from litellm.proxy._types import LitellmUserRoles, UserAPIKeyAuth

    alias = getattr(litellm.constants, "LITELLM_PROXY_MASTER_KEY_ALIAS", None)
    with _litellm_internals():
        return UserAPIKeyAuth(
            api_key=alias if alias is not None else master_key,
            user_id=user_id,
            user_role=LitellmUserRoles.PROXY_ADMIN,
        )


def _as_json(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body as it arrives over HTTP (JSON types only)."""
    loaded: dict[str, Any] = json.loads(json.dumps(body))
    return loaded


def _request(model: Any, body: Mapping[str, Any]) -> Any:
    """LiteLLM's request model validated from the JSON body, as FastAPI does."""
    with _litellm_internals():
        return model.model_validate(_as_json(body))


def _http_request(method: str, path: str) -> Any:
    from starlette.requests import Request

    return Request(
        scope={"type": "http", "method": method, "path": path, "headers": [], "query_string": b""}
    )


def _complete_kwargs(
    fn: Callable[..., Any], kwargs: dict[str, Any], method: str, path: str
) -> dict[str, Any]:
    """Fill what FastAPI would inject: the request object, and ``None`` for absent headers."""
    from fastapi import params as fastapi_params
    from starlette.requests import Request

    completed = dict(kwargs)
    for name, parameter in inspect.signature(fn).parameters.items():
        if name in completed:
            continue
        if parameter.annotation in (Request, "Request") or name in ("http_request", "request"):
            completed[name] = _http_request(method, path)
        elif isinstance(parameter.default, fastapi_params.Param | fastapi_params.Depends):
            completed[name] = None
    return completed


def _error_from(exc: BaseException, route: str) -> LiteLLMAdminError | None:
    from fastapi import HTTPException
    from litellm.proxy._types import ProxyException

    if isinstance(exc, ProxyException):
        try:
            status = int(exc.code)
        except (TypeError, ValueError):
            status = None
        return LiteLLMAdminError(
            f"LiteLLM {route} failed ({status}): {exc.message}", status_code=status
        )
    if isinstance(exc, HTTPException):
        return LiteLLMAdminError(
            f"LiteLLM {route} failed ({exc.status_code}): {exc.detail}", status_code=exc.status_code
        )
    return None


_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _call_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _locks.get(loop)
    if lock is None:
        lock = _locks[loop] = asyncio.Lock()
    return lock


async def _no_reload(*args: Any, **kwargs: Any) -> Any:
    """Stands in for the router reload a model write triggers (there is no router in this
    process)."""
    try:
        from litellm.proxy._types import ReconcileOutcome
    except ImportError:  # LiteLLM < 1.8x: add_deployment returns nothing
        return None
    return ReconcileOutcome(still_desired=None, live_after=None)


def _no_serving_check(*args: Any, **kwargs: Any) -> None:
    """Stands in for "is the written model live in this pod's router" (no router in this
    process)."""
    return None


class LiteLLMAdmin:
    """Async facade over LiteLLM's real model-management endpoints (see the module docstring).

    ``await LiteLLMAdmin.open(dsn, master_key=...)``, or ``async with await
    LiteLLMAdmin.open(...)``.
    """

    def __init__(
        self,
        client: StandinPrismaClient,
        *,
        master_key: str,
        salt_key: str | None,
        user_id: str,
        premium_user: bool = False,
    ) -> None:
        self._client = client
        self._premium_user = premium_user
        self._master_key = master_key
        self._salt_key = salt_key
        self._user_id = user_id
        self._general_settings: dict[str, Any] = {}
        self._proxy_server, self._endpoints = _modules()
        self._admin = _admin_auth(master_key, user_id)
        self._closed = False

    @classmethod
    async def open(
        cls,
        litellm_dsn: str,
        *,
        master_key: str,
        salt_key: str | None = None,
        user_id: str | None = None,
        premium_user: bool = False,
    ) -> Self:
        """Connect to a database that has LiteLLM's schema; import LiteLLM's proxy (slow, once).

        ``user_id`` is the admin recorded in ``created_by``/``updated_by`` (default: LiteLLM's proxy
        admin name, what a master-key request records). ``premium_user=True`` plays a licensed proxy
        (needed for team models, ``model_info.team_id``); enterprise audit logging stays off either
        way.
        """
        if not isinstance(master_key, str) or not master_key:
            raise LiteLLMAdminError(
                "master_key must be a non-empty string (the proxy's LITELLM_MASTER_KEY)"
            )
        proxy_server, _ = _modules()
        client = await StandinPrismaClient.connect(
            litellm_dsn, proxy_logging_obj=getattr(proxy_server, "proxy_logging_obj", None)
        )
        admin_name = user_id or str(
            getattr(proxy_server, "litellm_proxy_admin_name", "default_user_id")
        )
        return cls(
            client,
            master_key=master_key,
            salt_key=salt_key,
            user_id=admin_name,
            premium_user=premium_user,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def litellm_version(self) -> str:
        return litellm_version()

    @property
    def supports_block(self) -> bool:
        """Whether the installed LiteLLM has ``/model/block`` and ``/model/unblock``."""
        return hasattr(self._endpoints, "block_model") and hasattr(self._endpoints, "unblock_model")

    @property
    def prisma_client(self) -> StandinPrismaClient:
        """The stand-in this instance hands LiteLLM (``.db.<model>`` reads the database like
        Prisma)."""
        return self._client

    # ---- endpoints ----

    async def add_model(
        self,
        model_name: str,
        litellm_params: Mapping[str, Any],
        model_info: Mapping[str, Any] | None = None,
    ) -> str:
        """``POST /model/new``; returns the new row's ``model_id``."""
        from litellm.types.router import Deployment

        body: dict[str, Any] = {"model_name": model_name, "litellm_params": dict(litellm_params)}
        if model_info is not None:
            body["model_info"] = dict(model_info)
        deployment = _request(Deployment, body)
        requested_id = str(deployment.model_info.id)
        result = await self._call(
            "add_new_model",
            "POST",
            "/model/new",
            model_params=deployment,
            user_api_key_dict=self._admin,
        )
        model_id = getattr(result, "model_id", None)
        if model_id is None and isinstance(result, Mapping):
            model_id = result.get("model_id")
        return str(model_id or requested_id)

    async def patch_model(
        self,
        model_id: str,
        *,
        model_name: str | None = None,
        litellm_params: Mapping[str, Any] | None = None,
        model_info: Mapping[str, Any] | None = None,
    ) -> None:
        """``PATCH /model/{model_id}/update`` (the Admin UI's edit; may rename)."""
        from litellm.types.router import updateDeployment

        body: dict[str, Any] = {}
        if model_name is not None:
            body["model_name"] = model_name
        if litellm_params is not None:
            body["litellm_params"] = dict(litellm_params)
        if model_info is not None:
            body["model_info"] = dict(model_info)
        patch = _request(updateDeployment, body)
        await self._call(
            "patch_model",
            "PATCH",
            f"/model/{model_id}/update",
            model_id=model_id,
            patch_data=patch,
            user_api_key_dict=self._admin,
        )

    async def update_model(
        self,
        model_id: str,
        *,
        model_name: str | None = None,
        litellm_params: Mapping[str, Any] | None = None,
        model_info: Mapping[str, Any] | None = None,
    ) -> None:
        """``POST /model/update``: ``litellm_params`` merged into the stored ones (what else is
        honoured, e.g. a rename, depends on the LiteLLM version)."""
        from litellm.types.router import updateDeployment

        body: dict[str, Any] = {
            "litellm_params": dict(litellm_params or {}),
            "model_info": {**dict(model_info or {}), "id": model_id},
        }
        if model_name is not None:
            body["model_name"] = model_name
        params = _request(updateDeployment, body)
        await self._call(
            "update_model",
            "POST",
            "/model/update",
            model_params=params,
            user_api_key_dict=self._admin,
        )

    async def delete_model(self, model_id: str) -> None:
        """``POST /model/delete``."""
        from litellm.proxy._types import ModelInfoDelete

        await self._call(
            "delete_model",
            "POST",
            "/model/delete",
            model_info=_request(ModelInfoDelete, {"id": model_id}),
            user_api_key_dict=self._admin,
        )

    async def block(self, model_id: str) -> None:
        """``POST /model/block`` (UnsupportedByLiteLLMVersion where LiteLLM has no such
        endpoint)."""
        await self._blocked("block_model", "/model/block", model_id)

    async def unblock(self, model_id: str) -> None:
        """``POST /model/unblock`` (UnsupportedByLiteLLMVersion where LiteLLM has no such
        endpoint)."""
        await self._blocked("unblock_model", "/model/unblock", model_id)

    async def get_row(self, model_id: str) -> dict[str, Any] | None:
        """The stored row as Prisma returns it to LiteLLM (``litellm_params`` still encrypted)."""
        record = await self._client.db.litellm_proxymodeltable.find_unique(
            where={"model_id": model_id}
        )
        return None if record is None else record.model_dump()

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await asyncio.sleep(0)  # let audit-log tasks the endpoints started finish first
            await self._client.disconnect()

    # ---- plumbing ----

    async def _blocked(self, endpoint: str, path: str, model_id: str) -> None:
        if not self.supports_block:
            raise UnsupportedByLiteLLMVersion(
                f"LiteLLM {self.litellm_version} has no {path} endpoint (it arrived in a later "
                "release)"
            )
        from litellm.proxy._types import BlockModelRequest

        await self._call(
            endpoint,
            "POST",
            path,
            data=_request(BlockModelRequest, {"model_id": model_id}),
            user_api_key_dict=self._admin,
        )

    async def _call(self, endpoint: str, method: str, path: str, **kwargs: Any) -> Any:
        if self._closed:
            raise LiteLLMAdminError("this LiteLLMAdmin is closed")
        fn = getattr(self._endpoints, endpoint, None)
        if fn is None:
            raise UnsupportedByLiteLLMVersion(
                f"LiteLLM {self.litellm_version} has no {endpoint} endpoint"
            )
        arguments = _complete_kwargs(fn, kwargs, method, path)
        async with self._active():
            try:
                with _litellm_internals():
                    call: Coroutine[Any, Any, Any] = fn(**arguments)
                    result = await call
            except Exception as exc:
                error = _error_from(exc, f"{method} {path}")
                if error is None:
                    raise
                raise error from exc
            # fire-and-forget tasks (audit log) run while the globals are ours
            await asyncio.sleep(0)
        return result

    @contextlib.asynccontextmanager
    async def _active(self) -> AsyncIterator[None]:
        async with _call_lock():
            undo = self._install()
            try:
                yield
            finally:
                for restore in reversed(undo):
                    restore()

    def _install(self) -> list[Callable[[], None]]:
        import litellm

        undo: list[Callable[[], None]] = []

        def set_attr(
            target: object, name: str, *, value: object, only_if_present: bool = False
        ) -> None:
            previous = (
                target.__dict__.get(name, _MISSING)
                if not isinstance(target, ModuleType)
                else getattr(target, name, _MISSING)
            )
            if only_if_present and not hasattr(target, name):
                return
            setattr(target, name, value)

            def restore() -> None:
                if previous is _MISSING:
                    with contextlib.suppress(AttributeError):
                        delattr(target, name)
                else:
                    setattr(target, name, previous)

            undo.append(restore)

        ps = self._proxy_server
        set_attr(ps, "prisma_client", value=self._client)
        set_attr(ps, "master_key", value=self._master_key)
        set_attr(ps, "store_model_in_db", value=True)
        set_attr(ps, "general_settings", value=self._general_settings)
        set_attr(ps, "premium_user", value=self._premium_user)
        set_attr(ps, "llm_router", value=None)
        set_attr(ps, "redis_usage_cache", value=None, only_if_present=True)
        set_attr(litellm, "store_audit_logs", value=False, only_if_present=True)
        proxy_config = getattr(ps, "proxy_config", None)
        if proxy_config is not None:
            for method in ("add_deployment", "add_deployment_locked"):
                if hasattr(proxy_config, method):
                    set_attr(proxy_config, method, value=_no_reload)
        set_attr(
            self._endpoints,
            "raise_if_reload_degraded_serving",
            value=_no_serving_check,
            only_if_present=True,
        )

        previous_salt = os.environ.get("LITELLM_SALT_KEY")
        if self._salt_key is None:
            os.environ.pop("LITELLM_SALT_KEY", None)
        else:
            os.environ["LITELLM_SALT_KEY"] = self._salt_key

        def restore_salt() -> None:
            if previous_salt is None:
                os.environ.pop("LITELLM_SALT_KEY", None)
            else:
                os.environ["LITELLM_SALT_KEY"] = previous_salt

        undo.append(restore_salt)
        return undo


def encrypted_row(
    model_name: str,
    litellm_params: Mapping[str, Any],
    model_info: Mapping[str, Any] | None = None,
    *,
    key: str,
    created_by: str | None = None,
) -> dict[str, Any]:
    """A ``LiteLLM_ProxyModelTable`` row built by LiteLLM's own row builder, without a database.

    Every string value of ``litellm_params`` is encrypted with ``key`` (the salt key, else the
    master key) exactly as ``/model/new`` does; ``model_id`` is ``model_info["id"]`` or a fresh
    uuid. Returns the column values (``litellm_params``/``model_info`` as dicts; no timestamps: the
    table defaults them).
    """
    proxy_server, endpoints = _modules()
    from litellm.types.router import Deployment

    body: dict[str, Any] = {"model_name": model_name, "litellm_params": dict(litellm_params)}
    if model_info is not None:
        body["model_info"] = dict(model_info)
    deployment = _request(Deployment, body)
    builder = getattr(endpoints, "add_model_to_db", None) or endpoints._add_model_to_db
    admin_name = created_by or str(
        getattr(proxy_server, "litellm_proxy_admin_name", "default_user_id")
    )
    coroutine = builder(
        model_params=deployment,
        user_api_key_dict=_admin_auth(None, admin_name),
        prisma_client=None,
        new_encryption_key=key,
        should_create_model_in_db=False,
    )
    with _litellm_internals():
        row = _run_without_io(coroutine)
    data: dict[str, Any] = row.model_dump() if hasattr(row, "model_dump") else dict(row)
    for column in ("litellm_params", "model_info"):
        if isinstance(data.get(column), str):
            data[column] = json.loads(data[column])
    return {k: v for k, v in data.items() if not (k in ("created_at", "updated_at") and v is None)}


def _run_without_io(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never awaits I/O (LiteLLM's row builder with no DB write) to
    completion."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    coroutine.close()
    raise LiteLLMAdminError(
        "LiteLLM's row builder tried to await I/O; it cannot run without a database"
    )
