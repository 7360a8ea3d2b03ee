"""No test module imports another test module (docs/development.md, "Test layout").

Importing one runs its module-level code again under another name and couples two files' fixtures
and helpers; what two test modules share lives in ``tests/helpers.py``, the layer's
``conftest.py`` or a helper module beside them (``tests/integration/engine.py``,
``tests/deploy/render.py``). Checked from the source (``ast``): no test is imported to check it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]  # the repository
TESTS = ROOT / "tests"


def _module_name(path: Path, root: Path) -> str:
    return ".".join(path.relative_to(root).with_suffix("").parts)


def _is_test_module(name: str, root: Path) -> bool:
    """``name`` (dotted) is a ``test_*.py`` file under ``root`` (not a package or an attribute)."""
    *_, last = name.split(".")
    return last.startswith("test_") and (root / Path(*name.split("."))).with_suffix(".py").is_file()


def imported_test_modules(source: str, module: str, root: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every ``test_*`` module that ``source``, the module named ``module``
    under ``root``, imports: ``import a.test_b``, ``from a.test_b import x``, ``from a import
    test_b`` and their relative forms."""
    package = module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            stem = ".".join([*base, *(node.module or "").split(".")]).strip(".")
            candidates = [stem, *(f"{stem}.{alias.name}".strip(".") for alias in node.names)]
        else:
            continue
        found: set[str] = set()
        for name in candidates:
            parts = name.split(".")
            # `import a.test_b.c` and `from a.test_b import c` import a.test_b too
            prefixes = (".".join(parts[:depth]) for depth in range(1, len(parts) + 1))
            found.update(p for p in prefixes if _is_test_module(p, root))
        yield from ((node.lineno, name) for name in sorted(found))


def test_no_test_module_imports_another_test_module() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: imports {name}"
        for path in sorted(TESTS.rglob("*.py"))
        for line, name in imported_test_modules(path.read_text(), _module_name(path, ROOT), ROOT)
    ]
    assert not found, (
        "a test module imports another test module; move what they share to tests/helpers.py, "
        "the layer's conftest.py or a helper module beside them:\n" + "\n".join(found)
    )


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("import tests.area.test_a", ["tests.area.test_a"]),
        ("import tests.area.test_a as t", ["tests.area.test_a"]),
        ("from tests.area.test_a import x", ["tests.area.test_a"]),
        ("from tests.area import test_a", ["tests.area.test_a"]),
        ("from tests.area import helper, test_a as t", ["tests.area.test_a"]),
        ("from . import test_a", ["tests.area.test_a"]),
        ("from .test_a import x", ["tests.area.test_a"]),
        ("from ..area.test_a import x", ["tests.area.test_a"]),
        ("def f() -> None:\n    from tests.area.test_a import x", ["tests.area.test_a"]),
        ("from tests.area.helper import test_like_name", []),  # a name, not a module
        ("from tests.area import helper", []),
        ("import tests.area.helper", []),
        ("from tests.area.test_missing import x", []),  # no such file: not a test module of ours
        ("import pytest", []),
    ],
)
def test_the_check_finds_every_form_of_import(
    tmp_path: Path, source: str, found: list[str]
) -> None:
    area = tmp_path / "tests" / "area"
    area.mkdir(parents=True)
    for name in ("__init__.py", "test_a.py", "helper.py"):
        (area / name).write_text("")
    (tmp_path / "tests" / "__init__.py").write_text("")
    got = [name for _, name in imported_test_modules(source, "tests.area.test_b", tmp_path)]
    assert got == found
