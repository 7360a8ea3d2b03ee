"""``litemaas-hooks apply``: the guide's model files -> LiteLLM deployments, through LiteLLM's
management API.

Never LiteLLM's database: LiteLLM encrypts, routes and stores as it always does; the trigger and the
relay then bring each name into the backend. Pure parts (``desired``, ``plan``) take LiteLLM's
``/model/info`` entries and the parsed files; the I/O parts (``LiteLLMApi``, ``run_apply``) use
httpx.

- Every deployment ``apply`` creates carries ``model_info.litemaas_hooks`` (``MARKER``) and a
  model_id derived from its name (``deployment_id``): a second create of the same name - a re-run on
  a replica whose view is stale - is refused by LiteLLM's primary key instead of becoming a
  duplicate deployment. ``--prune`` deletes only marked deployments; one made in the Admin UI or API
  is never touched.
- Credentials by reference: LiteLLM's ``/model/info`` never shows ``api_key``, so the marker stores
  the reference text (``env:NAME``, ``file:/path``, ``os.environ/NAME``) and an HMAC-SHA256 of the
  value sent, keyed with the master key (16 hex digits): a changed key in the Secret is an update,
  an unchanged one is not, and the value itself is never stored, shown or logged.
- Updates are ``PATCH /model/{model_id}/update`` (LiteLLM 1.81 and 1.108: same model_id; it merges,
  so a field dropped from the file cannot be unset that way: the plan says so and leaves it).
- ``availability: unavailable`` -> ``POST /model/block`` (LiteLLM 1.108 has it; 1.81 has no
  ``blocked`` column: the plan says that the deployment keeps serving).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from litemaas_hooks.errors import ApplyError, LiteMaaSHooksError, describe
from litemaas_hooks.model_file import ModelSpec

MARKER = "litemaas_hooks"
MANAGED_BY = "litemaas-hooks apply"
_ID_NAMESPACE = uuid.UUID("6f1c1d0e-5a8e-4f57-9d55-2b7f3c1d9a10")
PARAM_FIELDS = ("model", "api_base", "api_version", "rpm", "tpm")
INFO_FIELDS = (
    "display_name",
    "description",
    "provider",
    "category",
    "supports_streaming",
    "max_tokens",
)
# the file's field -> where it goes (plan lines name both)
PLACEMENT = {
    "litellm_model": "litellm_params.model",
    "api_base": "litellm_params.api_base",
    "api_version": "litellm_params.api_version",
    "rpm": "litellm_params.rpm",
    "tpm": "litellm_params.tpm",
    "context_length": "model_info.max_tokens",
    "display_name": "model_info.display_name",
    "description": "model_info.description",
    "provider": "model_info.provider",
    "category": "model_info.category",
    "supports_streaming": "model_info.supports_streaming",
    "api_key": "litellm_params.api_key",
    "availability": "blocked",
}
_FILE_FIELD = {v.split(".", 1)[-1]: k for k, v in PLACEMENT.items()}
_FILE_FIELD["model"] = "litellm_model"
_FILE_FIELD["max_tokens"] = "context_length"

Action = Literal["create", "update", "unchanged", "delete", "error"]


def deployment_id(model_name: str) -> str:
    """The model_id ``apply`` gives a name's deployment (uuid5: a second create collides)."""
    return str(uuid.uuid5(_ID_NAMESPACE, "apply:" + model_name))


def key_fingerprint(value: str, master_key: str) -> str:
    """HMAC-SHA256 of the key sent to LiteLLM, keyed with the master key; 16 hex digits."""
    return hmac.new(
        master_key.encode(), b"litemaas-hooks api_key\0" + value.encode(), hashlib.sha256
    ).hexdigest()[:16]


@dataclass(frozen=True)
class Desired:
    """What LiteLLM should hold for one spec (``api_key`` only when the spec has one)."""

    spec: ModelSpec
    litellm_params: dict[str, Any]
    model_info: dict[str, Any]
    blocked: bool


def desired(spec: ModelSpec, key_value: str | None, master_key: str) -> Desired:
    """The deployment body for one spec; ``key_value``: the resolved api_key (None: none)."""
    params: dict[str, Any] = {"model": spec.litellm_model}
    for name in ("api_base", "api_version", "rpm", "tpm"):
        value = getattr(spec, name)
        if value is not None:
            params[name] = value
    marker: dict[str, Any] = {"managed_by": MANAGED_BY}
    if spec.api_key is not None and key_value is not None:
        params["api_key"] = key_value
        marker["api_key_ref"] = spec.api_key.reference
        marker["api_key_hmac"] = key_fingerprint(key_value, master_key)
    info: dict[str, Any] = {
        "display_name": spec.display_name,
        "description": spec.description,
        "provider": spec.provider,
        "category": spec.category,
        "supports_streaming": spec.supports_streaming,
    }
    if spec.context_length is not None:
        info["max_tokens"] = spec.context_length
    info[MARKER] = marker
    return Desired(spec, params, info, blocked=spec.availability == "unavailable")


@dataclass(frozen=True)
class Current:
    """One deployment as LiteLLM's ``GET /model/info`` shows it (no api_key there)."""

    model_id: str
    model_name: str
    litellm_params: Mapping[str, Any]
    model_info: Mapping[str, Any]

    @property
    def managed(self) -> bool:
        marker = self.model_info.get(MARKER)
        return (
            bool(self.model_info.get("db_model", True))
            and isinstance(marker, dict)
            and (marker.get("managed_by") == MANAGED_BY)
        )

    @property
    def db_model(self) -> bool:
        return bool(self.model_info.get("db_model", True))

    @property
    def blocked(self) -> bool:
        return bool(self.model_info.get("blocked", False))


def current_from_model_info(data: Sequence[Mapping[str, Any]]) -> list[Current]:
    """``/model/info``'s ``data`` -> deployments (entries without an id are skipped)."""
    out: list[Current] = []
    for entry in data:
        info = entry.get("model_info") or {}
        model_id = info.get("id")
        name = entry.get("model_name")
        if not isinstance(model_id, str) or not isinstance(name, str):
            continue
        out.append(Current(model_id, name, dict(entry.get("litellm_params") or {}), dict(info)))
    return out


@dataclass
class Step:
    """What apply does (or would do) for one model name."""

    action: Action
    model_name: str
    model_id: str | None = None
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # file field -> (old, new)
    body: dict[str, Any] = field(
        default_factory=dict
    )  # request body (create/update); holds the key
    block: bool | None = None  # True: block, False: unblock, None: leave
    notes: list[str] = field(default_factory=list)
    message: str | None = None  # error text

    @property
    def writes(self) -> bool:
        return self.action in ("create", "update", "delete") or self.block is not None


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return sum(1 for s in self.steps if s.writes)

    @property
    def errors(self) -> int:
        return sum(1 for s in self.steps if s.action == "error")


def _shown(value: Any) -> str:
    if value is None:
        return "(unset)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def plan(
    wanted: Sequence[Desired],
    current: Sequence[Current],
    *,
    prune: bool = False,
    adopt: bool = False,
    can_block: bool = True,
) -> Plan:
    """Desired vs LiteLLM's deployments -> one step per name (pure)."""
    by_name: dict[str, list[Current]] = {}
    for dep in current:
        by_name.setdefault(dep.model_name, []).append(dep)
    result = Plan()
    names = set()
    for want in wanted:
        name = want.spec.model_name
        names.add(name)
        deps = by_name.get(name, [])
        ours = [d for d in deps if d.managed]
        others = [d for d in deps if not d.managed]
        if not ours and others:
            db_others = [d for d in others if d.db_model]
            if adopt and len(db_others) == 1 and len(others) == 1:
                ours = db_others
            else:
                ids = ", ".join(d.model_id for d in others)
                where = "config.yaml" if not db_others else "the Admin UI or the API"
                fix = (
                    "delete it there, give the model another name in the file, or take it over "
                    "with --adopt"
                    if db_others and len(others) == 1
                    else "remove the other deployments there or rename the model in the file"
                )
                result.steps.append(
                    Step(
                        "error",
                        name,
                        message=f"LiteLLM already has {len(others)} deployment(s) of this name "
                        f"made outside apply (in {where}; id {ids}): not touched; {fix}",
                    )
                )
                continue
        if not ours:
            body = {
                "model_name": name,
                "litellm_params": dict(want.litellm_params),
                "model_info": {"id": deployment_id(name), **want.model_info},
            }
            step = Step(
                "create", name, deployment_id(name), body=body, block=True if want.blocked else None
            )
            _block_note(step, want, can_block=can_block)
            result.steps.append(step)
            continue
        keep, extra = ours[0], ours[1:]
        step = _update_step(want, keep, others)
        _block_state(step, want, keep, can_block=can_block)
        result.steps.append(step)
        for dup in extra:
            result.steps.append(
                Step(
                    "delete",
                    name,
                    dup.model_id,
                    notes=["a second deployment made by apply: one per name"],
                )
            )
    if prune:
        for name in sorted(set(by_name) - names):
            for dep in by_name[name]:
                if dep.managed:
                    result.steps.append(
                        Step(
                            "delete", name, dep.model_id, notes=["no longer in the files (--prune)"]
                        )
                    )
    return result


def _block_note(step: Step, want: Desired, *, can_block: bool) -> None:
    if want.blocked and not can_block:
        step.block = None
        step.notes.append(
            "availability: unavailable cannot be applied: this LiteLLM has no /model/block "
            "(1.81 has no blocked deployments); the deployment serves requests. Hide the model "
            "in LiteMaaS's admin UI, or leave it out of the file"
        )


def _block_state(step: Step, want: Desired, dep: Current, *, can_block: bool) -> None:
    if want.blocked != dep.blocked:
        step.block = want.blocked
        step.changes["availability"] = (
            "unavailable" if dep.blocked else "available",
            "unavailable" if want.blocked else "available",
        )
        if step.action == "unchanged":
            step.action = "update"
    _block_note(step, want, can_block=can_block)
    if want.blocked and not can_block and "availability" in step.changes:
        del step.changes["availability"]
        if not step.body:
            step.action = "unchanged"


def _update_step(want: Desired, dep: Current, others: Sequence[Current]) -> Step:
    name = want.spec.model_name
    step = Step("unchanged", name, dep.model_id)
    params: dict[str, Any] = {}
    for key in PARAM_FIELDS:
        new = want.litellm_params.get(key)
        old = dep.litellm_params.get(key)
        if new is None:
            if old is not None:
                step.notes.append(
                    f"{_FILE_FIELD[key]} is {_shown(old)} in LiteLLM but not in the file: left "
                    "as it is (LiteLLM's update merges parameters; clear it in the Admin UI)"
                )
            continue
        if new != old:
            step.changes[_FILE_FIELD[key]] = (old, new)
            params[key] = new
    found = dep.model_info.get(MARKER)
    old_marker: Mapping[str, Any] = found if isinstance(found, dict) else {}
    new_marker = want.model_info[MARKER]
    if want.litellm_params.get("api_key") is not None and (
        old_marker.get("api_key_ref") != new_marker.get("api_key_ref")
        or old_marker.get("api_key_hmac") != new_marker.get("api_key_hmac")
    ):
        params["api_key"] = want.litellm_params["api_key"]
        old_ref = old_marker.get("api_key_ref")
        new_ref = new_marker.get("api_key_ref")
        step.changes["api_key"] = (
            old_ref,
            new_ref if old_ref != new_ref else f"{new_ref} (new value)",
        )
    if want.litellm_params.get("api_key") is None and old_marker.get("api_key_ref"):
        step.notes.append(
            "api_key is no longer in the file: LiteLLM keeps the key it has (LiteLLM's update "
            "merges parameters; change it in the Admin UI)"
        )
    if others:
        ids = ", ".join(d.model_id for d in others)
        step.notes.append(
            f"{len(others)} more deployment(s) of this name made outside apply ({ids}): left alone "
            "(LiteLLM balances requests between them)"
        )
    info_changed = old_marker != new_marker
    for key in INFO_FIELDS:
        new = want.model_info.get(key)
        old = dep.model_info.get(key)
        if new is None:
            continue
        if new != old:
            step.changes[_FILE_FIELD[key]] = (old, new)
            info_changed = True
    if not step.changes and not info_changed:
        return step
    step.action = "update"
    body: dict[str, Any] = {
        "model_name": name,
        "model_info": {"id": dep.model_id, **want.model_info},
    }
    if params:
        body["litellm_params"] = params
    step.body = body
    if not dep.managed:
        step.notes.append("taken over (--adopt): marked as managed by apply from now on")
        step.changes.setdefault("managed", (False, True))
    return step


# -- the plan as text
# -------------------------------------------------------------------------------

# LiteMaaS v0.4.0's own sync (backend/src/services/model-sync.service.ts, insertModel/updateModel)
# writes these backend columns itself, whatever model_info holds: said in the plan for each model
# that sets them.
BACKEND_OWN = {
    "display_name": "the backend's `name` is model_name (LiteMaaS v0.4.0's sync sets name = "
    "model_name)",
    "provider": "the backend's `provider` comes from litellm_model's prefix (LiteMaaS v0.4.0's "
    "sync: "
    "custom_llm_provider || prefix before '/')",
    "category": "the backend's `category` is 'Language Model' (LiteMaaS v0.4.0's sync sets it)",
    "supports_streaming": "the backend's `supports_streaming` is true (LiteMaaS v0.4.0's sync "
    "sets it)",
    "description": "the backend's `description` is set when its row is created and then kept "
    "(LiteMaaS "
    "v0.4.0's sync never overwrites a description): change it in LiteMaaS afterwards",
}


def field_notes(spec: ModelSpec, *, creating: bool) -> list[str]:
    """Per field: where it goes, and whether LiteMaaS's own sync keeps it in the backend."""
    provider_prefix = (
        spec.litellm_model.split("/", 1)[0] if "/" in spec.litellm_model else "unknown"
    )
    out = []
    if spec.context_length is not None:
        out.append(
            f"context_length {spec.context_length} -> model_info.max_tokens (the backend's "
            "context_length and "
            "max_tokens: both syncs read it)"
        )
    if spec.display_name != spec.model_name:
        out.append(
            f"display_name {spec.display_name!r} -> model_info.display_name; "
            f"{BACKEND_OWN['display_name']}"
        )
    if spec.provider != provider_prefix:
        out.append(
            f"provider {spec.provider!r} -> model_info.provider; {BACKEND_OWN['provider']}: "
            f"{provider_prefix!r}"
        )
    if spec.category != "Language Model":
        out.append(f"category {spec.category!r} -> model_info.category; {BACKEND_OWN['category']}")
    if not spec.supports_streaming:
        out.append(
            "supports_streaming false -> model_info.supports_streaming; "
            f"{BACKEND_OWN['supports_streaming']}"
        )
    if creating:
        out.append(
            f"description {spec.description!r} -> model_info.description (the backend's "
            "description "
            "when its row is created)"
        )
    else:
        out.append(f"description -> model_info.description; {BACKEND_OWN['description']}")
    for name in ("rpm", "tpm"):
        value = getattr(spec, name)
        if value is not None:
            out.append(f"{name} {value} -> litellm_params.{name} (the backend's {name})")
    return out


def plan_lines(result: Plan, specs: Mapping[str, ModelSpec], *, verbose: bool = True) -> list[str]:
    """The plan, one block per model name (values of api_key are never in a step's text)."""
    marks = {"create": "+", "update": "~", "delete": "-", "error": "!", "unchanged": "="}
    lines: list[str] = []
    for step in result.steps:
        head = f"{marks[step.action]} {step.action:<9} {step.model_name}"
        if step.model_id and step.action != "error":
            head += f"  (model_id {step.model_id})"
        if step.action == "error":
            head += f"  ({step.message})"
        if step.action == "unchanged" and not step.notes:
            lines.append(head)
            continue
        lines.append(head)
        for key, (old, new) in sorted(step.changes.items()):
            where = PLACEMENT.get(key, key)
            lines.append(f"    {key}: {_shown(old)} -> {_shown(new)}  ({where})")
        spec = specs.get(step.model_name)
        if step.action == "create" and spec is not None:
            ref = spec.api_key.reference if spec.api_key is not None else "none"
            lines.append(
                f"    litellm_model {spec.litellm_model!r}, api_base {_shown(spec.api_base)}, "
                f"api_key {ref}"
            )
        if verbose and spec is not None and step.action in ("create", "update"):
            changed = set(step.changes)
            for note in field_notes(spec, creating=step.action == "create"):
                if step.action == "create" or note.split(" ", 1)[0] in changed:
                    lines.append(f"    note: {note}")
        lines.extend(f"    note: {n}" for n in step.notes)
    return lines


def summary(result: Plan, *, dry_run: bool) -> str:
    counts = {
        a: sum(1 for s in result.steps if s.action == a)
        for a in ("create", "update", "delete", "unchanged")
    }
    verb = "would " if dry_run else ""
    done = {"create": "created", "update": "updated", "delete": "deleted"}
    parts = [f"{verb}{'create' if dry_run else done['create']} {counts['create']}"]
    parts.append(f"{verb}{'update' if dry_run else done['update']} {counts['update']}")
    parts.append(f"{verb}{'delete' if dry_run else done['delete']} {counts['delete']}")
    parts.append(f"unchanged {counts['unchanged']}")
    parts.append(f"errors {result.errors}")
    return ("dry run: " if dry_run else "apply: ") + ", ".join(parts)


# -- LiteLLM's management API
# -----------------------------------------------------------------------

URL_HINT = (
    "LITELLM_URL is not set: set it to LiteLLM's URL, as the guide's Step 1 finds it: "
    "LITELLM_URL=$(oc get route litemaas -n litemaas -o jsonpath='https://{.spec.host}')"
)
KEY_HINT = (
    "LITELLM_MASTER_KEY is not set: set it to LiteLLM's master key, as the guide's Step 1 reads "
    "it: "
    "oc get secret litellm-secret -n litemaas -o jsonpath='{.data.LITELLM_MASTER_KEY}' | base64 -d"
)
_ROUTE = "oc get route litemaas -n litemaas -o jsonpath='https://{.spec.host}'"


def _answer_text(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return str(response.text)[:300]
    if isinstance(body, dict):
        err = body.get("error", body.get("detail", body))
        if isinstance(err, dict):
            err = err.get("message", err.get("error", err))
        return str(err)[:300]
    return str(body)[:300]


class LiteLLMApi:
    """The few management endpoints apply uses, on LiteLLM 1.81 and 1.108 alike (master key)."""

    def __init__(
        self,
        base_url: str,
        master_key: str,
        *,
        secrets: Sequence[str] = (),
        timeout: float = 60.0,
        **kwargs: Any,
    ) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self._secrets = [master_key, *secrets]
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {master_key}"},
            timeout=timeout,
            **kwargs,
        )

    async def __aenter__(self) -> LiteLLMApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    def _scrub(self, text: str) -> str:
        from litemaas_hooks.redaction import mask_values

        return mask_values(text, [s for s in self._secrets if s])

    async def _call(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApplyError(
                f"cannot reach LiteLLM at {self.base_url} (LITELLM_URL) for {what}: "
                f"{self._scrub(describe(exc))}; is LITELLM_URL right? "
                f"({_ROUTE})"
            ) from None
        if response.status_code in (401, 403):
            raise ApplyError(
                f"LiteLLM at {self.base_url} refused the master key ({response.status_code}) for "
                f"{what}: "
                "check LITELLM_MASTER_KEY (secret litellm-secret, key LITELLM_MASTER_KEY on RHDP)"
            )
        return response

    async def deployments(self) -> list[Current]:
        response = await self._call("GET", "/model/info", "reading its models (GET /model/info)")
        if response.status_code != 200:
            raise ApplyError(
                f"LiteLLM at {self.base_url}: GET /model/info answered {response.status_code}: "
                f"{self._scrub(_answer_text(response))}; is LITELLM_URL the proxy (not the Admin "
                "UI route)?"
            )
        data = response.json().get("data") or []
        return current_from_model_info(data)

    async def can_block(self) -> bool | None:
        """Whether this LiteLLM has ``/model/block`` (its OpenAPI document); None when unknown."""
        response = await self._call("GET", "/openapi.json", "reading its OpenAPI document")
        if response.status_code != 200:
            return None
        try:
            return "/model/block" in (response.json().get("paths") or {})
        except ValueError:
            return None

    def _refused(self, what: str, response: Any) -> ApplyError:
        return ApplyError(
            f"LiteLLM refused {what}: {response.status_code} {self._scrub(_answer_text(response))}"
        )

    async def create(self, body: Mapping[str, Any]) -> str:
        what = f"POST /model/new of {body['model_name']}"
        response = await self._call("POST", "/model/new", what, json=body)
        if response.status_code != 200:
            raise self._refused(what, response)
        answer = response.json()
        return str(answer.get("model_id") or body["model_info"]["id"])

    async def update(self, model_id: str, body: Mapping[str, Any]) -> None:
        what = f"PATCH /model/{model_id}/update of {body['model_name']}"
        response = await self._call("PATCH", f"/model/{model_id}/update", what, json=body)
        if response.status_code != 200:
            raise self._refused(what, response)

    async def delete(self, model_id: str, name: str) -> None:
        what = f"POST /model/delete of {name} ({model_id})"
        response = await self._call("POST", "/model/delete", what, json={"id": model_id})
        if response.status_code != 200:
            raise self._refused(what, response)

    async def set_blocked(self, model_id: str, name: str, *, blocked: bool) -> bool:
        """False when this LiteLLM has no such endpoint (404/405)."""
        path = "/model/block" if blocked else "/model/unblock"
        what = f"POST {path} of {name} ({model_id})"
        response = await self._call("POST", path, what, json={"model_id": model_id})
        if response.status_code in (404, 405):
            return False
        if response.status_code != 200:
            raise self._refused(what, response)
        return True


# -- the whole command
# ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """A backend row as it should be after apply (None: not checked)."""

    model_id: str
    litellm_model_id: str | None = None
    availability: str | None = None
    context_length: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    api_base: str | None = None
    gone: bool = False  # pruned: row absent or unavailable

    def problems(self, row: Mapping[str, Any] | None) -> list[str]:
        if row is None:
            return [] if self.gone else ["no row yet"]
        if self.gone:
            return (
                []
                if row.get("availability") == "unavailable"
                else [f"availability {row.get('availability')!r}"]
            )
        out = []
        for key in ("litellm_model_id", "availability", "context_length", "rpm", "tpm", "api_base"):
            want = getattr(self, key)
            if want is not None and row.get(key) != want:
                out.append(f"{key} {row.get(key)!r} (want {want!r})")
        return out


def expectations(
    result: Plan, wanted: Mapping[str, Desired], *, blocks_applied: bool
) -> list[Expected]:
    out: list[Expected] = []
    for step in result.steps:
        want = wanted.get(step.model_name)
        if step.action == "delete" and want is None:
            out.append(Expected(step.model_name, gone=True))
        elif step.action in ("create", "update", "unchanged") and want is not None:
            spec = want.spec
            base = (
                spec.api_base
                if spec.api_base and not spec.api_base.startswith("os.environ/")
                else None
            )
            out.append(
                Expected(
                    spec.model_name,
                    litellm_model_id=step.model_id,
                    availability="unavailable" if want.blocked and blocks_applied else "available",
                    context_length=spec.context_length,
                    rpm=spec.rpm,
                    tpm=spec.tpm,
                    api_base=base,
                )
            )
    return out


def row_line(row: Mapping[str, Any]) -> str:
    parts = [
        f"{row['id']}",
        f"{row.get('availability')}",
        f"name {row.get('name')!r}",
        f"provider {row.get('provider')!r}",
        f"context_length {row.get('context_length')}",
        f"rpm {row.get('rpm')}",
        f"tpm {row.get('tpm')}",
        f"litellm_model_id {row.get('litellm_model_id')}",
        f"description {_shown(row.get('description'))}",
    ]
    return "  ".join(parts)


async def verify_backend(
    conn: Any, wanted: Sequence[Expected], *, wait_seconds: float, out: Any
) -> list[str]:
    """Wait (bounded) until the backend rows are as expected; print them; the problems left."""
    import asyncio
    import time

    from psycopg.rows import dict_row

    from litemaas_hooks import sql

    ids = sorted({e.model_id for e in wanted})
    started = time.monotonic()
    rows: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    await conn.execute(sql.query("backend", "read_only_session"))
    while True:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql.query("backend", "show_models"), {"ids": ids})
            rows = {str(r["id"]): r for r in await cur.fetchall()}
        problems = [
            f"{e.model_id}: {', '.join(p)}"
            for e in wanted
            if (p := e.problems(rows.get(e.model_id)))
        ]
        took = time.monotonic() - started
        if not problems or took >= wait_seconds:
            break
        await asyncio.sleep(
            0.2
        )  # polling a condition with a deadline (the relay applies the change)
    state = "as expected" if not problems else f"NOT as expected after {wait_seconds:g}s"
    print(f"backend rows ({state}, {took:.1f}s):", file=out)
    for model_id in ids:
        row = rows.get(model_id)
        print("  " + (row_line(row) if row is not None else f"{model_id}  (no row)"), file=out)
    return problems


async def run_apply(
    specs: Sequence[ModelSpec],
    *,
    litellm_url: str,
    master_key: str,
    backend: Any | None,
    dry_run: bool = False,
    prune: bool = False,
    adopt: bool = False,
    wait_seconds: float = 30.0,
    environ: Mapping[str, str] | None = None,
    out: Any = None,
    **client_kwargs: Any,
) -> int:
    """Plan, print, apply, verify. Exit: 0 nothing to do / applied, 2 dry run with changes, 1 error.

    ``backend``: an open connection to the backend database (verification), or None (not verified).
    """
    import os
    import sys

    from litemaas_hooks.model_file import resolve_credential

    out = out or sys.stdout
    env = os.environ if environ is None else environ

    def read_file(path: str) -> str:
        with open(path, encoding="utf-8") as handle:
            return handle.read()

    wanted: list[Desired] = []
    key_values: list[str] = []
    problems: list[str] = []
    for spec in specs:
        value = None
        if spec.api_key is not None:
            try:
                value = resolve_credential(spec.api_key, env, read_file)
            except LiteMaaSHooksError as exc:
                problems.append(f"{spec.where} ({spec.model_name}): {exc}")
                continue
            if spec.api_key.kind != "litellm_env":
                key_values.append(value)
        wanted.append(desired(spec, value, master_key))
    if problems:
        raise LiteMaaSHooksError(
            "\n".join(problems) if len(problems) == 1 else "\n".join(["credentials:", *problems])
        )
    by_name = {w.spec.model_name: w for w in wanted}
    async with LiteLLMApi(litellm_url, master_key, secrets=key_values, **client_kwargs) as api:
        current = await api.deployments()
        can_block = await api.can_block()
        result = plan(wanted, current, prune=prune, adopt=adopt, can_block=can_block is not False)
        specs_by_name = {s.model_name: s for s in specs}
        for line in plan_lines(result, specs_by_name):
            print(line, file=out)
        if dry_run:
            print(summary(result, dry_run=True), file=out)
            if result.errors:
                return 1
            return 2 if result.changes else 0
        blocks_applied = can_block is not False
        for step in result.steps:
            try:
                if step.action == "create":
                    step.model_id = await api.create(step.body)
                elif step.action == "update" and step.body:
                    assert step.model_id is not None
                    await api.update(step.model_id, step.body)
                elif step.action == "delete":
                    assert step.model_id is not None
                    await api.delete(step.model_id, step.model_name)
                if (
                    step.block is not None
                    and step.model_id is not None
                    and not await api.set_blocked(
                        step.model_id, step.model_name, blocked=step.block
                    )
                ):
                    blocks_applied = False
                    print(
                        f"! {step.model_name}: availability {'un' if step.block else ''}available "
                        "not applied: "
                        "this LiteLLM has no /model/block (1.81); the deployment serves requests",
                        file=out,
                    )
            except ApplyError as exc:
                step.action, step.message = "error", str(exc)
                print(f"! error     {step.model_name}  ({exc})", file=out)
    code = 1 if result.errors else 0
    if backend is None:
        print(
            "not verified in the backend: LITEMAAS_DATABASE_URL is not set (set it to wait for "
            "and see the rows; "
            "`litemaas-hooks show NAME` shows both sides)",
            file=out,
        )
    else:
        expected = expectations(result, by_name, blocks_applied=blocks_applied)
        if expected:
            late = await verify_backend(backend, expected, wait_seconds=wait_seconds, out=out)
            for line in late:
                print(f"! backend   {line}", file=out)
            if late:
                print(
                    "  the backend has not caught up: is a relay running (the LiteLLM plugin or "
                    "`litemaas-hooks relay`)? `litemaas-hooks status` says; `litemaas-hooks show "
                    "NAME` "
                    "shows both sides",
                    file=out,
                )
                code = 1
    print(summary(result, dry_run=False), file=out)
    return code
