"""The pinned LiteMaaS source for a clone without ``../shared``: fetched once, checked, cached.

The sandbox runs the real LiteMaaS backend from ``litemaas-v0.4.0.tar.gz``. Beside the repository
(``shared/upstream``) it is read as it is. A clone without that folder fetches the pinned commit's
archive instead (:data:`DEFAULT_URL`, GitHub's archive of commit cc33b44 = v0.4.0;
``LITEMAAS_HOOKS_UPSTREAM_URL`` overrides, ``file://`` included), keeps the files the sandbox uses
(:data:`KEPT`), checks them against :data:`TREE_SHA256` and repacks them as
``litemaas-v0.4.0.tar.gz`` in the cache, so every reader of the tarball works unchanged.

The check is over the files' contents, not the archive's bytes: GitHub's gzip output is not promised
to stay byte-identical, while the commit's files are. A mismatch leaves nothing in the cache.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from litemaas_hooks.errors import LiteMaaSHooksError

__all__ = [
    "DEFAULT_URL",
    "PINNED_COMMIT",
    "TREE_SHA256",
    "URL_ENV",
    "UpstreamFetchError",
    "fetch_litemaas",
    "tree_digest",
]

PINNED_COMMIT = "cc33b44868f95511bb4208914e6ee026d52049d3"  # tag v0.4.0
DEFAULT_URL = f"https://github.com/rh-aiservices-bu/litemaas/archive/{PINNED_COMMIT}.tar.gz"
URL_ENV = "LITEMAAS_HOOKS_UPSTREAM_URL"
TREE_NAME = "litemaas-v0.4.0"
TARBALL = f"{TREE_NAME}.tar.gz"
# The files of shared/upstream's tarball: the backend, its workspace root, the deployments, three
# docs.
KEPT = (
    "CHANGELOG.md",
    "LICENSE",
    "README.md",
    "package-lock.json",
    "package.json",
    "tsconfig.base.json",
    "backend/",
    "deployment/",
    "docs/api/",
    "docs/deployment/",
    "docs/development/",
)
# tree_digest of those 313 files at PINNED_COMMIT (equal to shared/upstream's tarball, file by
# file).
TREE_SHA256 = "e186759e68f04c106b396b69f0e78eb8902d332cd810baf75b970e9b1d79df03"
_FETCH_TIMEOUT_SECONDS = 30.0


class UpstreamFetchError(LiteMaaSHooksError):
    """The pinned LiteMaaS source could not be fetched or did not match its checksum."""


def kept(path: str) -> bool:
    """Whether a path inside the tree (``backend/src/x.ts``) is one the sandbox keeps."""
    return any(path == k or (k.endswith("/") and path.startswith(k)) for k in KEPT)


def tree_digest(files: Iterable[tuple[str, bytes]]) -> str:
    """SHA-256 over ``"<sha256 of content>  <path>\\n"`` lines sorted by path."""
    digest = hashlib.sha256()
    for path, data in sorted(files):
        digest.update(f"{hashlib.sha256(data).hexdigest()}  {path}\n".encode())
    return digest.hexdigest()


def _read_archive(data: bytes) -> dict[str, bytes]:
    """The kept files of a GitHub-style archive (one top folder, whatever its name)."""
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            path = member.name.partition("/")[2]
            if not member.isfile() or not path or not kept(path):
                continue
            handle = tar.extractfile(member)
            if handle is not None:
                out[path] = handle.read()
    return out


def _download(url: str) -> bytes:
    if not url.startswith(("https://", "file://")):
        raise UpstreamFetchError(f"{URL_ENV}={url!r}: only https:// and file:// URLs are fetched")
    try:
        with urllib.request.urlopen(url, timeout=_FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310
            data: bytes = response.read()
    except OSError as exc:
        raise UpstreamFetchError(
            f"cannot fetch the pinned LiteMaaS source from {url}: {exc} (offline? put "
            f"{TARBALL} in shared/upstream beside the repository, or set {URL_ENV})"
        ) from exc
    return data


def _write_tarball(files: dict[str, bytes], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.NamedTemporaryFile(dir=target.parent, prefix=".fetch-", delete=False) as tmp,
        tarfile.open(fileobj=tmp, mode="w:gz") as tar,
    ):
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(f"{TREE_NAME}/{path}")
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp.name, target)


def fetch_litemaas(cache: Path, *, url: str | None = None) -> Path:
    """The folder holding a checked ``litemaas-v0.4.0.tar.gz`` (``<cache>/upstream-fetched``),
    fetching and checking it on first use; :class:`UpstreamFetchError` on any failure."""
    folder = cache / "upstream-fetched"
    if (folder / TARBALL).is_file():
        return folder
    url = url or os.environ.get(URL_ENV) or DEFAULT_URL
    try:
        files = _read_archive(_download(url))
    except tarfile.TarError as exc:
        raise UpstreamFetchError(f"{url} is not a readable .tar.gz archive: {exc}") from exc
    got = tree_digest(files.items())
    if got != TREE_SHA256:
        shutil.rmtree(folder, ignore_errors=True)
        raise UpstreamFetchError(
            f"the LiteMaaS source from {url} does not match the pinned commit {PINNED_COMMIT[:7]} "
            f"(content SHA-256 {got}, expected {TREE_SHA256}, {len(files)} files): refusing to use "
            "it"
        )
    _write_tarball(files, folder / TARBALL)
    return folder
