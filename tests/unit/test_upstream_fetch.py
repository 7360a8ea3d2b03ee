"""The pinned LiteMaaS source fetched for a clone
without ``../shared`` (a ``file://`` archive here)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from litemaas_hooks_sandbox import litemaas_backend, upstream


def _shared_files() -> dict[str, bytes]:
    tarball = litemaas_backend.upstream_dir() / litemaas_backend.TARBALL
    if not tarball.is_file():
        pytest.skip(
            f"{tarball} not here: the pinned files to build a test archive from are missing"
        )
    out: dict[str, bytes] = {}
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member) if member.isfile() else None
            if handle is not None:
                out[member.name.partition("/")[2]] = handle.read()
    return out


def _github_archive(path: Path, files: dict[str, bytes]) -> str:
    """An archive shaped like GitHub's: top folder
    ``litemaas-<commit>``, files the sandbox drops."""
    extra = {".gitignore": b"node_modules\n", "docs/architecture/x.md": b"not kept\n"}
    with tarfile.open(path, "w:gz") as tar:
        for name, data in {**files, **extra}.items():
            info = tarfile.TarInfo(f"litemaas-{upstream.PINNED_COMMIT}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path.as_uri()


def test_tree_digest_is_order_free_and_content_bound() -> None:
    files = [("b", b"2"), ("a", b"1")]
    assert upstream.tree_digest(files) == upstream.tree_digest(reversed(files))
    assert upstream.tree_digest(files) != upstream.tree_digest([("a", b"1"), ("b", b"3")])
    assert upstream.tree_digest(files) != upstream.tree_digest([("a", b"1"), ("c", b"2")])


def test_kept_paths() -> None:
    assert upstream.kept("backend/src/index.ts")
    assert upstream.kept("package.json")
    assert not upstream.kept("docs/architecture/x.md")
    assert not upstream.kept("backendx/a")


def test_the_shared_tarball_is_the_pinned_tree() -> None:
    assert upstream.tree_digest(_shared_files().items()) == upstream.TREE_SHA256


def test_fetch_checks_and_repacks(tmp_path: Path) -> None:
    files = _shared_files()
    url = _github_archive(tmp_path / "archive.tar.gz", files)
    folder = upstream.fetch_litemaas(tmp_path / "cache", url=url)
    with tarfile.open(folder / upstream.TARBALL) as tar:
        names = {m.name for m in tar.getmembers()}
        package = tar.extractfile(f"{upstream.TREE_NAME}/backend/package.json")
        assert package is not None
        assert package.read() == files["backend/package.json"]
    assert names == {f"{upstream.TREE_NAME}/{p}" for p in files}
    # a second call uses the cache (the archive may be gone)
    (tmp_path / "archive.tar.gz").unlink()
    assert upstream.fetch_litemaas(tmp_path / "cache", url=url) == folder


def test_fetch_refuses_a_tampered_archive(tmp_path: Path) -> None:
    files = _shared_files()
    files["backend/package.json"] += b" "
    url = _github_archive(tmp_path / "archive.tar.gz", files)
    with pytest.raises(upstream.UpstreamFetchError, match="does not match the pinned commit"):
        upstream.fetch_litemaas(tmp_path / "cache", url=url)
    assert not (tmp_path / "cache" / "upstream-fetched" / upstream.TARBALL).exists()


def test_fetch_offline_says_how_to_fix(tmp_path: Path) -> None:
    url = (tmp_path / "missing.tar.gz").as_uri()
    with pytest.raises(upstream.UpstreamFetchError, match="shared/upstream beside the repository"):
        upstream.fetch_litemaas(tmp_path / "cache", url=url)


def test_upstream_dir_fetches_without_shared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _github_archive(tmp_path / "archive.tar.gz", _shared_files())
    monkeypatch.setattr(litemaas_backend, "_repo_root", lambda: tmp_path / "a" / "clone")
    monkeypatch.setenv(litemaas_backend.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(upstream.URL_ENV, url)
    monkeypatch.delenv(litemaas_backend.UPSTREAM_DIR_ENV, raising=False)
    monkeypatch.setattr(litemaas_backend, "_fetch_problem", None)
    assert litemaas_backend.upstream_dir() == tmp_path / "cache" / "upstream-fetched"
