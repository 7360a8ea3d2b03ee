"""The model files of LiteMaaS's infrastructure guide (RHDP ``manage_models.yml`` format), parsed
and checked.

Pure: no network, no database. A file holds ``ocp4_workload_litemaas_models_list:`` (the guide's
``-e @my-model.yml`` files, whose other keys such as ``litellm_url`` are ignored: ``apply`` reads
``LITELLM_URL`` / ``LITELLM_MASTER_KEY``) or a bare list of entries. Each entry has the guide's
fields and defaults (``roles/ocp4_workload_litemaas_models`` of the rhpds.litemaas collection):

required ``model_name``, ``litellm_model``; optional ``api_base``, ``api_key``, ``api_version``
(omitted when absent, as the playbook does), ``display_name`` (``model_name``), ``description``
(``AI model``), ``provider`` (``openshift-ai``), ``category`` (``general``), ``context_length``,
``supports_streaming`` (``true``), ``availability`` (``available``), ``rpm``, ``tpm``.

Credentials by reference only: ``api_key: env:NAME`` (this process's environment), ``file:/path`` (a
mounted Secret) or ``os.environ/NAME`` (LiteLLM resolves it in its own environment). A literal key
is refused unless ``allow_inline_keys``; its value never appears in an error or a plan.

Every mistake is one line naming the file, the entry, the field and the fix; all of them are
reported at once (:class:`ModelFileError`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from litemaas_hooks.errors import LiteMaaSHooksError, ModelFileError

LIST_KEY = "ocp4_workload_litemaas_models_list"
# keys of the guide's variable files that apply does not need (it reads
# LITELLM_URL/LITELLM_MASTER_KEY)
IGNORED_TOP_KEYS = frozenset(
    {
        "litellm_url",
        "litellm_master_key",
        "ocp4_workload_litemaas_models_namespace",
        "ocp4_workload_litemaas_models_backend_enabled",
        "ocp4_workload_litemaas_models_sync_from_litellm",
        "ocp4_workload_litemaas_models_cleanup_orphaned",
        "ocp4_workload_litemaas_models_verify_ssl",
        "ocp4_workload_litemaas_models_api_timeout",
        "ocp4_workload_litemaas_models_retry_count",
        "ocp4_workload_litemaas_models_retry_delay",
    }
)
DEFAULTS: Mapping[str, Any] = {
    "description": "AI model",
    "provider": "openshift-ai",
    "category": "general",
    "supports_streaming": True,
    "availability": "available",
}
FIELDS = (
    "model_name",
    "litellm_model",
    "api_base",
    "api_key",
    "api_version",
    "display_name",
    "description",
    "provider",
    "category",
    "context_length",
    "supports_streaming",
    "availability",
    "rpm",
    "tpm",
)
AVAILABILITY = ("available", "unavailable")
MAX_NAME = 255  # backend models.id is varchar(255)

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CredentialKind = Literal["env", "file", "litellm_env", "inline"]
REFERENCE_HELP = (
    "use `api_key: env:NAME` (read from this command's environment), `api_key: "
    "file:/path/to/secret` "
    "(a mounted Secret) or `api_key: os.environ/NAME` (LiteLLM resolves it)"
)


@dataclass(frozen=True)
class Credential:
    """How an ``api_key`` is given. ``reference`` may be shown and stored: never a literal key."""

    kind: CredentialKind
    reference: str  # env:NAME, file:/path, os.environ/NAME, or "(inline key)"
    inline_value: str | None = None  # only for kind == "inline"

    def __repr__(self) -> str:  # never the value
        return f"Credential({self.kind!r}, {self.reference!r})"


@dataclass(frozen=True)
class ModelSpec:
    """One entry of a model file, defaults applied."""

    model_name: str
    litellm_model: str
    api_base: str | None
    api_key: Credential | None
    api_version: str | None
    display_name: str
    description: str
    provider: str
    category: str
    context_length: int | None
    supports_streaming: bool
    availability: str
    rpm: int | None
    tpm: int | None
    where: str  # "FILE, entry N"


def parse_credential(value: str) -> Credential:
    """``env:NAME`` / ``file:/path`` / ``os.environ/NAME`` / anything else = an inline key."""
    text = value.strip()
    if text.startswith("env:"):
        return Credential("env", "env:" + text[4:].strip())
    if text.startswith("file:"):
        return Credential("file", "file:" + text[5:].strip())
    if text.startswith("os.environ/"):
        return Credential("litellm_env", text)
    return Credential("inline", "(inline key)", inline_value=value)


def _credential_problem(cred: Credential) -> str | None:
    if cred.kind in ("env", "litellm_env"):
        name = (
            cred.reference.split(":", 1)[1]
            if cred.kind == "env"
            else cred.reference.split("/", 1)[1]
        )
        if not _ENV_NAME.fullmatch(name):
            return f"{cred.reference!r} does not name an environment variable: e.g. env:GRANITE_KEY"
    if cred.kind == "file" and not cred.reference[5:].startswith("/"):
        return f"{cred.reference!r} needs an absolute path: e.g. file:/run/secrets/models/granite"
    return None


def resolve_credential(
    cred: Credential,
    environ: Mapping[str, str],
    read_file: Callable[[str], str],
) -> str:
    """The value to send to LiteLLM: the key for env:/file:/inline, the reference for os.environ/
    (LiteLLM resolves it). LiteMaaSHooksError (naming the reference, never a value) when it cannot
    be read."""
    if cred.kind == "inline":
        assert cred.inline_value is not None
        return cred.inline_value
    if cred.kind == "litellm_env":
        return cred.reference
    if cred.kind == "env":
        name = cred.reference[4:]
        value = environ.get(name, "")
        if not value.strip():
            raise LiteMaaSHooksError(
                f"api_key {cred.reference}: the environment variable {name} is not set or empty; "
                "export it "
                "(e.g. from the model's Secret) before running apply"
            )
        return value.strip()
    path = cred.reference[5:]
    try:
        value = read_file(path)
    except OSError as exc:
        raise LiteMaaSHooksError(
            f"api_key {cred.reference}: cannot read the file ({type(exc).__name__}: "
            f"{exc.strerror or exc}); "
            "mount the Secret there or fix the path"
        ) from None
    if not value.strip():
        raise LiteMaaSHooksError(f"api_key {cred.reference}: the file is empty; put the key in it")
    return value.strip()


def entries_of(document: Any, filename: str) -> tuple[list[Any], list[str]]:
    """The list of entries of one parsed YAML document, and the problems of its top level."""
    if document is None:
        return [], [
            f"{filename}: the file is empty: give `{LIST_KEY}:` with a list of models, or a bare "
            "list"
        ]
    if isinstance(document, list):
        return document, []
    if isinstance(document, dict):
        if LIST_KEY not in document:
            return [], [
                f"{filename}: no `{LIST_KEY}:` key (found "
                f"{', '.join(sorted(map(str, document))) or 'nothing'}): "
                f"put the models under `{LIST_KEY}:`, or make the file a bare list"
            ]
        unknown = sorted(str(k) for k in document if k != LIST_KEY and k not in IGNORED_TOP_KEYS)
        problems = [
            f"{filename}: unknown top-level key `{k}`: remove it (only `{LIST_KEY}` and the "
            "guide's variables "
            "are read)"
            for k in unknown
        ]
        models = document[LIST_KEY]
        if models is None:
            return [], problems
        if not isinstance(models, list):
            return [], [
                *problems,
                f"{filename}: `{LIST_KEY}` is a {_kind(models)}, not a list of models",
            ]
        return models, problems
    return [], [
        f"{filename}: the file holds a {_kind(document)}: give `{LIST_KEY}:` with a list, or a "
        "bare list"
    ]


def _kind(value: Any) -> str:
    return {
        dict: "mapping",
        list: "list",
        str: "string",
        bool: "boolean",
        int: "number",
        float: "number",
    }.get(type(value), type(value).__name__)


def _int_field(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def parse_entry(
    entry: Any, where: str, *, allow_inline_keys: bool
) -> tuple[ModelSpec | None, list[str]]:
    """One entry -> a ModelSpec (or None) and its problems (each naming ``where`` and the field)."""
    if not isinstance(entry, dict):
        return None, [
            f"{where}: is a {_kind(entry)}, not a model (a mapping with model_name, "
            "litellm_model, ...)"
        ]
    name = entry.get("model_name")
    label = f"{where} ({name})" if isinstance(name, str) and name.strip() else where
    problems: list[str] = []

    def bad(field: str, text: str) -> None:
        problems.append(f"{label}: {field}: {text}")

    for key in entry:
        if key not in FIELDS:
            close = difflib.get_close_matches(str(key).replace("-", "_").lower(), FIELDS, n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            bad(str(key), f"unknown field; {hint}allowed: {', '.join(FIELDS)}")

    def text(field: str, *, required: bool = False, default: str | None = None) -> str | None:
        value = entry.get(field)
        if value is None:
            if required:
                bad(field, "missing (required): e.g. " + _EXAMPLES[field])
            return default
        if isinstance(value, bool | dict | list) or (isinstance(value, str) and not value.strip()):
            bad(field, f"must be a non-empty string, e.g. {_EXAMPLES.get(field, '...')}")
            return default
        return str(value).strip()

    model_name = text("model_name", required=True)
    if model_name is not None and len(model_name) > MAX_NAME:
        bad("model_name", f"is {len(model_name)} characters; the backend allows at most {MAX_NAME}")
    litellm_model = text("litellm_model", required=True)
    api_base = text("api_base")
    if api_base is not None and not api_base.startswith(("http://", "https://", "os.environ/")):
        bad("api_base", "must be an http(s) URL, e.g. " + _EXAMPLES["api_base"])
    api_version = text("api_version")
    credential: Credential | None = None
    raw_key = entry.get("api_key")
    if raw_key is not None:
        if not isinstance(raw_key, str) or not raw_key.strip():
            bad("api_key", f"must be a reference string: {REFERENCE_HELP}")
        else:
            credential = parse_credential(raw_key)
            problem = _credential_problem(credential)
            if problem:
                bad("api_key", problem)
            if credential.kind == "inline" and not allow_inline_keys:
                bad(
                    "api_key",
                    "a literal key is refused (it would live in the file and in your shell "
                    f"history): {REFERENCE_HELP}; or pass --allow-inline-keys",
                )
    display_name = text("display_name", default=model_name) or ""
    description = text("description", default=str(DEFAULTS["description"])) or ""
    provider = text("provider", default=str(DEFAULTS["provider"])) or ""
    category = text("category", default=str(DEFAULTS["category"])) or ""
    numbers: dict[str, int | None] = {}
    for field in ("context_length", "rpm", "tpm"):
        value = entry.get(field)
        if value is None:
            numbers[field] = None
            continue
        number = _int_field(value)
        if number is None or number <= 0:
            bad(field, f"must be a positive whole number (got {value!r}), e.g. {_EXAMPLES[field]}")
        numbers[field] = number
    streaming = entry.get("supports_streaming", DEFAULTS["supports_streaming"])
    if not isinstance(streaming, bool):
        bad("supports_streaming", f"must be true or false (got {streaming!r})")
        streaming = True
    availability = entry.get("availability", DEFAULTS["availability"])
    if availability not in AVAILABILITY:
        bad("availability", f"must be one of {', '.join(AVAILABILITY)} (got {availability!r})")
        availability = "available"
    if problems or model_name is None or litellm_model is None:
        return None, problems
    spec = ModelSpec(
        model_name=model_name,
        litellm_model=litellm_model,
        api_base=api_base,
        api_key=credential,
        api_version=api_version,
        display_name=display_name,
        description=description,
        provider=provider,
        category=category,
        context_length=numbers["context_length"],
        supports_streaming=streaming,
        availability=str(availability),
        rpm=numbers["rpm"],
        tpm=numbers["tpm"],
        where=where,
    )
    return spec, []


_EXAMPLES = {
    "model_name": "granite-8b-code-instruct-128k",
    "litellm_model": "openai/granite-3-2-8b-instruct",
    "api_base": "https://granite-model.apps.cluster.com/v1",
    "display_name": "Granite 8B Code Instruct",
    "description": "IBM Granite 8B Code Instruct model",
    "provider": "openshift-ai",
    "category": "code",
    "api_version": "2024-02-01",
    "context_length": "131072",
    "rpm": "120",
    "tpm": "100000",
}


def parse_documents(
    documents: Iterable[tuple[str, Any]], *, allow_inline_keys: bool = False
) -> list[ModelSpec]:
    """``(filename, parsed YAML)`` pairs -> every model in file order (ModelFileError: all)."""
    specs: list[ModelSpec] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for filename, document in documents:
        entries, top = entries_of(document, filename)
        problems += top
        for index, entry in enumerate(entries, start=1):
            where = f"{filename}: entry {index}"
            spec, entry_problems = parse_entry(entry, where, allow_inline_keys=allow_inline_keys)
            problems += entry_problems
            if spec is None:
                continue
            if spec.model_name in seen:
                problems.append(
                    f"{where} ({spec.model_name}): model_name: also defined at "
                    f"{seen[spec.model_name]}; "
                    "each model once (one deployment per name)"
                )
                continue
            seen[spec.model_name] = where
            specs.append(spec)
    if problems:
        raise ModelFileError(problems)
    return specs


def load_files(paths: Sequence[str], *, allow_inline_keys: bool = False) -> list[ModelSpec]:
    """Read and check the model files (YAML; JSON is YAML too)."""
    import yaml  # type: ignore[import-untyped,unused-ignore]

    documents: list[tuple[str, Any]] = []
    problems: list[str] = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as handle:
                documents.append((path, yaml.safe_load(handle)))
        except OSError as exc:
            problems.append(f"{path}: cannot read the file: {exc.strerror or exc}")
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            reason = getattr(exc, "problem", None) or type(exc).__name__
            problems.append(f"{path}: not valid YAML{at}: {reason}; fix the file's syntax")
    if problems:
        raise ModelFileError(problems)
    return parse_documents(documents, allow_inline_keys=allow_inline_keys)
