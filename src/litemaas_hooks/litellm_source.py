"""Read LiteLLM's truth: every deployment of the requested model names, decrypted and enriched.

DB deployments come from ``public."LiteLLM_ProxyModelTable"``; config-file deployments (never in the
table) come from a callable, which inside the proxy reads the router.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads

from litemaas_hooks import litellm_adapter, litellm_crypto, memo_share, sql
from litemaas_hooks.errors import DecryptError, MappingError, UnsafeObjectError, describe
from litemaas_hooks.mapping import BLANK_CHARS, Deployment, check_model_name, is_blank_name
from litemaas_hooks.redaction import (
    ENV_PREFIX,
    ENV_RESOLVED_FIELDS,
    credential_values,
    env_name_resolvable,
    env_reference_value,
    is_secret_key,
)

# the proxy's config-file models (its router), and the key LiteLLM decrypts with: both asked late
ConfigModels = Callable[[], Iterable[Mapping[str, Any]]]
KeyFunc = Callable[[], str | None]
# at most this long building deployments between two turns of the event loop (a few rows when
# LiteLLM answers a model never seen, ~2 ms each on 1.108; hundreds from the memo)
YIELD_AFTER_SECONDS = 0.005


@dataclass
class Truth:
    """What LiteLLM holds for a set of names."""

    deployments: dict[str, list[Deployment]] = field(default_factory=dict)
    # name -> error text (a deployment of that name could not be read); the name is then not
    # touched. Deployments without a name belong to no name: ``nameless_deployments`` reports those.
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Unreadable:
    """A JSON column value the decoder refused (e.g. nested deeper than it goes): that row's
    error."""

    reason: str


def _safe_loads(data: str | bytes) -> Any:
    """The connection's JSON loading, but a value it cannot read becomes ``Unreadable`` (one row's
    problem) instead of failing the fetch of every row."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(data)  # integers beyond 64 bits, which orjson refuses
    except (ValueError, RecursionError) as exc:
        return Unreadable(f"{type(exc).__name__}: {str(exc)[:200]}")


def _json_object(value: Any, what: str, model_id: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Unreadable):
        raise MappingError(
            f"{what} of deployment {model_id} cannot be read ({value.reason}); "
            "rewrite it in LiteLLM"
        )
    if isinstance(value, str):  # some writers store a JSON document as a JSON string
        try:
            value = json.loads(value)
        except ValueError:
            raise MappingError(f"{what} of deployment {model_id} is not valid JSON") from None
    if not isinstance(value, dict):
        kind = type(value).__name__
        raise MappingError(f"{what} of deployment {model_id} is a {kind}, not a JSON object")
    return value


def _resolve_env(params: dict[str, Any]) -> dict[str, Any]:
    """Resolve ``os.environ/NAME`` as LiteLLM's router does when it loads a deployment, but only in
    the
    routing fields and for the variable names on the allow-list (``redaction.env_reference_value``):
    ``os.environ/SLACK_WEBHOOK_URL`` or ``os.environ/LITELLM_LICENSE`` stay the reference text."""
    changes = {}
    for name in ENV_RESOLVED_FIELDS:
        value = params.get(name)
        if isinstance(value, str) and value.startswith(ENV_PREFIX):
            resolved = env_reference_value(value, os.environ, field=name)
            if resolved != value:
                changes[name] = resolved
    return {**params, **changes} if changes else params


def _credentials(params: Mapping[str, Any], key: str | None) -> frozenset[str]:
    """The plaintext of the row's own credentials, to be masked by value (then dropped with the
    row)."""
    if key is None:
        return credential_values(params, lambda value: None)
    return credential_values(params, lambda value: litellm_crypto.decrypt(value, key))


def build_deployment(row: Mapping[str, Any], key: str | None) -> Deployment:
    """One table row -> a decrypted, enriched Deployment (DecryptError / MappingError if
    impossible)."""
    model_id = str(row["model_id"])
    params = _json_object(row.get("litellm_params"), "litellm_params", model_id)
    info = _json_object(row.get("model_info"), "model_info", model_id)
    plain = _resolve_env(litellm_adapter.decrypt_params(params, key, model_id=model_id))
    secrets = _credentials(params, key)
    blocked = bool(row.get("blocked"))
    # what the proxy's GET /model/info shows for this deployment (the backend's sync reads that)
    view = litellm_adapter.proxy_view_parts(plain, info, model_id=model_id, blocked=blocked)
    return Deployment(
        model_id=model_id,
        model_name=str(row["model_name"]),
        litellm_params=view.litellm_params,
        model_info=view.model_info,
        info_parts=(view.shared_info, view.own_info),
        updated_at=row.get("updated_at"),
        created_at=row.get("created_at"),
        blocked=blocked,
        source="db",
        secrets=secrets,
    )


def _unresolve_env(params: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Config-file deployments come from the router, which resolved every ``os.environ/NAME``
    already:
    a top-level value equal to an environment variable's value that the allow-list would not have
    resolved in that field goes back to the reference text (``os.environ/SLACK_WEBHOOK_URL``)."""
    by_value: dict[str, list[str]] = {}
    for env_name, env_value in environ.items():
        if len(env_value) >= 8:
            by_value.setdefault(env_value, []).append(env_name)
    out = dict(params)
    for name, value in params.items():
        if is_secret_key(str(name)) or not isinstance(value, str) or value not in by_value:
            continue
        names = sorted(by_value[value])
        if not any(env_name_resolvable(str(name), n) for n in names):
            out[name] = ENV_PREFIX + names[0]
    return out


def config_deployment(item: Mapping[str, Any]) -> Deployment:
    params = _unresolve_env(dict(item.get("litellm_params") or {}), os.environ)
    info = dict(item.get("model_info") or {})
    return Deployment(
        model_id=str(info.get("id") or item.get("model_name")),
        model_name=str(item.get("model_name")),
        litellm_params={k: v for k, v in params.items() if not is_secret_key(str(k))},
        model_info=litellm_adapter.enrich_model_info(params, info),
        source="config",
        secrets=_credentials(params, None),
    )


def _add(truth: Truth, name: str, build: Callable[[], Deployment]) -> None:
    try:
        check_model_name(name)
        dep = build()
    except (DecryptError, MappingError) as exc:
        _error(truth, name, str(exc))
        return
    except Exception as exc:  # any other value problem is this name's error too, never the batch's
        _error(truth, name, f"deployment cannot be read: {describe(exc)[:300]}")
        return
    truth.deployments.setdefault(name, []).append(dep)


def _error(truth: Truth, name: str, message: str) -> None:
    prev = truth.errors.get(name)
    truth.errors[name] = message if prev is None else f"{prev}; {message}"


# The built-in types (pg_catalog oids, fixed) LiteLLM's schema gives the columns we read; a foreign
# type (the table owner's enum, domain, ...) would bring casts and operators that owner defines.
COLUMN_TYPES: dict[str, frozenset[int]] = {
    "model_id": frozenset({25, 1043}),  # text, varchar
    "model_name": frozenset({25, 1043}),
    "litellm_params": frozenset({3802, 114}),  # jsonb, json
    "model_info": frozenset({3802, 114}),
    "created_at": frozenset({1114, 1184}),  # timestamp, timestamptz
    "updated_at": frozenset({1114, 1184}),
    "blocked": frozenset({16}),  # boolean
}


def column_problem(columns: Iterable[tuple[str, int, str]]) -> str | None:
    """One line when a column we read has a type other than LiteLLM's built-in one, else None."""
    bad = [
        f"{name} is {shown}"
        for name, type_oid, shown in sorted(columns)
        if name in COLUMN_TYPES and type_oid not in COLUMN_TYPES[name]
    ]
    if not bad:
        return None
    return (
        'LiteLLM\'s table public."LiteLLM_ProxyModelTable" has columns of types LiteLLM does not '
        "use (" + "; ".join(bad) + "): litemaas-hooks refuses to read it, because casts and "
        "operators of such a type are code of the role that defined it and would run with this "
        "session's privileges; restore LiteLLM's types (ALTER TABLE ... ALTER COLUMN ... TYPE "
        "boolean/text/jsonb/timestamp) or check who changed them"
    )


async def has_blocked_column(conn: psycopg.AsyncConnection[Any]) -> bool:
    """Whether LiteLLM's table has ``blocked`` (>= 1.108); raises UnsafeObjectError when a column
    we read
    has a foreign type (checked before every read of the table)."""
    cur = await conn.execute(sql.query("litellm", "model_table_columns"))
    columns = [(str(n), int(t), str(f)) for n, t, f in await cur.fetchall()]
    problem = column_problem(columns)
    if problem is not None:
        raise UnsafeObjectError(problem)
    return any(name == "blocked" for name, _, _ in columns)


async def nameless_deployments(
    conn: psycopg.AsyncConnection[Any], *, checked: bool = False
) -> list[str]:
    """Deployments whose model_name is missing or blank (they cannot be synced; reported as errors).
    ``checked``: the caller checked the column types on this connection for its pass."""
    if not checked:
        await has_blocked_column(conn)
    cur = await conn.execute(sql.query("litellm", "nameless_deployments"), {"blank": BLANK_CHARS})
    return [str(row[0]) for row in await cur.fetchall()]


async def deployment_ids(
    conn: psycopg.AsyncConnection[Any], *, checked: bool = False
) -> dict[str, list[str]]:
    """Every named deployment's key, by name: one scan of LiteLLM's table (a full reconcile's first
    pass; each chunk then reads its rows by key with ``rows_by_ids``, linear in the model count).
    Checks the column types first (``has_blocked_column``) unless ``checked``: the caller did, on
    this connection, for its pass (a full reconcile, as the relay does per session)."""
    if not checked:  # the column types first: no foreign cast/operator in the read
        await has_blocked_column(conn)
    cur = await conn.execute(sql.query("litellm", "deployment_ids"), {"blank": BLANK_CHARS})
    out: dict[str, list[str]] = {}
    for model_id, name in await cur.fetchall():
        out.setdefault(str(name), []).append(str(model_id))
    return out


async def rows_by_ids(
    conn: psycopg.AsyncConnection[Any],
    ids: Collection[str],
    names: Collection[str],
    *,
    blocked_column: bool,
) -> list[dict[str, Any]]:
    """The table rows of ``ids`` still named one of ``names`` (an index scan by primary key)."""
    variant = "" if blocked_column else "_without_blocked"
    async with conn.cursor(row_factory=dict_row) as cur:
        set_json_loads(_safe_loads, cur)
        await cur.execute(
            sql.query("litellm", "deployments_by_id" + variant),
            {"ids": sorted(ids), "names": sorted(names)},
        )
        return await cur.fetchall()


safe_json_loads = _safe_loads
"""The JSON loader for reads of LiteLLM's table (an unreadable value is that row's error)."""


async def read_truth(
    conn: psycopg.AsyncConnection[Any],
    names: Collection[str] | None,
    *,
    key: str | None,
    config_models: ConfigModels | None = None,
    rows: Sequence[Mapping[str, Any]] | None = None,
    share: bool = True,
) -> Truth:
    """Every deployment of ``names`` (all names when None), from the table and the config models.

    ``rows``: the table's rows of ``names``, already read (the relay reads them with its claim, in
    the same round trip); the table is then not read again. ``share=False``: the answers LiteLLM
    gave for models never seen are written to the disk memo and shared later by the caller
    (``litellm_adapter.save_memo``, ``memo_share.push``), off the change's path."""
    truth = Truth()
    await memo_share.pull(conn, key)  # LiteLLM's answers other processes learnt (once per process)
    if rows is None:
        # LiteLLM 1.81: no blocked column; a column of a foreign type: refused (UnsafeObjectError)
        variant = "" if await has_blocked_column(conn) else "_without_blocked"
        async with conn.cursor(row_factory=dict_row) as cur:
            set_json_loads(_safe_loads, cur)  # one unreadable JSON value must not fail every fetch
            if names is None:
                await cur.execute(sql.query("litellm", "deployments_all" + variant))
            else:
                by_name = sql.query("litellm", "deployments_by_name" + variant)
                await cur.execute(by_name, {"names": sorted(names)})
            rows = await cur.fetchall()
    turn = time.perf_counter()
    for row in rows:
        if time.perf_counter() - turn >= YIELD_AFTER_SECONDS:
            # building is CPU work (decryption, LiteLLM's answers): let the event loop serve the
            # rest (a chunk being written meanwhile, the proxy's requests) between slices of it
            await asyncio.sleep(0)
            turn = time.perf_counter()
        name = row.get("model_name")
        if not isinstance(name, str) or is_blank_name(name):
            continue  # a blank name is no name (nameless_deployments reports it, by the same rule)
        _add(truth, name, functools.partial(build_deployment, row, key))
    if config_models is not None:
        wanted = None if names is None else set(names)
        for item in config_models():
            name = item.get("model_name")
            if not isinstance(name, str) or (wanted is not None and name not in wanted):
                continue
            _add(truth, name, functools.partial(config_deployment, item))
    if share:
        litellm_adapter.save_memo()
        await memo_share.push(conn, key)
    return truth
