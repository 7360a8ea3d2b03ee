"""The documentation stays true: README.md and docs/*.md against the code and the file tree.

- docs/configuration.md's table equals settings.py, docs/commands.md's table equals ``--help``;
  a failure gives the row text ready to paste (fill in the meaning).
- docs/architecture.md names every module of both packages, and only modules that exist.
- README.md fits a screen: at most 150 lines before its first reference section.
- Every relative link in README.md and docs/*.md reaches a file, and its #anchor a heading there.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from litemaas_hooks import cli
from litemaas_hooks.settings import OTHER_VARIABLES, Settings

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
RUNTIME = ROOT / "src" / "litemaas_hooks"
SANDBOX = ROOT / "sandbox" / "src" / "litemaas_hooks_sandbox"

README_MAX_LINES = 150

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line outside fenced code blocks."""
    out: list[tuple[int, str]] = []
    in_fence = False
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            out.append((number, line))
    return out


def _headings(text: str) -> list[tuple[int, int, str]]:
    """(line number, level, title) of every Markdown heading outside code blocks."""
    out: list[tuple[int, int, str]] = []
    for number, line in _prose_lines(text):
        m = _HEADING.match(line)
        if m:
            out.append((number, len(m.group(1)), m.group(2)))
    return out


def _slug(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def _section_table(page: Path, heading: str) -> list[list[str]]:
    """The cells of the first table under the heading titled ``heading`` (header rows dropped)."""
    text = page.read_text(encoding="utf-8")
    name = page.relative_to(ROOT)
    starts = [(n, level) for n, level, title in _headings(text) if title == heading]
    assert starts, f"{name} has no heading '{heading}'"
    start, level = starts[0]
    rows: list[list[str]] = []
    for number, line in _prose_lines(text):
        if number <= start:
            continue
        m = _HEADING.match(line)
        if m and len(m.group(1)) <= level:
            break
        if line.startswith("|"):
            rows.append(
                [
                    c.strip().replace("\\|", "|")
                    for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))
                ]
            )
        elif rows:
            break
    assert len(rows) > 2, f"{name}, section '{heading}', has no table"
    return rows[2:]


def _plain(cell: str) -> str:
    return cell.replace("`", "").strip()


def test_configuration_table_matches_settings() -> None:
    rows = {
        _plain(r[0]): _plain(r[1]) for r in _section_table(DOCS / "configuration.md", "Settings")
    }
    expected = {info.alias: info for info in Settings.fields().values()}
    problems = []
    for alias, info in expected.items():
        default = info.default_text
        if alias not in rows:
            meaning = info.spec.description or "<what it does>"
            shown = default if default.startswith(("—", "`")) else f"`{default}`"
            problems.append(f"add the row:  | `{alias}` | {shown} | {meaning} |")
        elif rows[alias] != _plain(default):
            problems.append(
                f"row `{alias}`: the default column says {rows[alias]!r}, "
                f"settings.py says {_plain(default)!r}"
            )
    for alias, default in OTHER_VARIABLES.items():
        if alias not in rows:
            problems.append(f"add the row:  | `{alias}` | `{default}` | <what it does> |")
        elif rows[alias] != _plain(default):
            problems.append(
                f"row `{alias}`: the default column says {rows[alias]!r}, "
                f"settings.py says {default!r}"
            )
    for alias in rows.keys() - expected.keys() - OTHER_VARIABLES.keys():
        problems.append(
            f"row `{alias}` is no setting of settings.py (Settings or OTHER_VARIABLES): remove it"
        )
    assert not problems, "docs/configuration.md, section Settings:\n  " + "\n  ".join(problems)


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    for action in cli._parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("the CLI has no subcommands")


def _usage_cell(sub: argparse.ArgumentParser) -> str:
    usage = (
        " ".join(sub.format_usage().removeprefix("usage: ").split())
        .replace("[-h] ", "")
        .replace(" [-h]", "")
    )
    return "`" + usage.replace("|", "\\|") + "`"


def _words(sub: argparse.ArgumentParser, *, option_values: bool = False) -> set[str]:
    """Every long option and every positional's metavar of a subcommand (and with ``option_values``
    the metavars of options' values too, which a row may show but need not)."""
    out: set[str] = set()
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if action.option_strings:
            out.update(o for o in action.option_strings if o.startswith("--"))
            if option_values and action.nargs != 0:
                out.add(str(action.metavar or action.dest).upper())
        else:
            out.add(str(action.metavar or action.dest).upper())
    return out


def test_command_table_matches_help() -> None:
    rows: dict[str, str] = {}
    for cells in _section_table(DOCS / "commands.md", "Command line"):
        m = re.fullmatch(r"`litemaas-hooks ([a-z][a-z0-9-]*)(.*)`", cells[0])
        assert m, (
            f"docs/commands.md: the first cell {cells[0]!r} is not `litemaas-hooks COMMAND ...`"
        )
        rows[m.group(1)] = m.group(2)
    problems = []
    subs = _subcommands()
    for name, sub in subs.items():
        if name not in rows:
            problems.append(f"add the row:  | {_usage_cell(sub)} | <what it does> | <exit codes> |")
            continue
        written = set(re.findall(r"--[a-z][a-z0-9-]*", rows[name])) | set(
            re.findall(r"\b[A-Z][A-Z_]+\b", rows[name])
        )
        missing, extra = _words(sub) - written, written - _words(sub, option_values=True)
        if missing or extra:
            what = "; ".join(
                part
                for part in (
                    f"missing {', '.join(sorted(missing))}" if missing else "",
                    f"no such option {', '.join(sorted(extra))}" if extra else "",
                )
                if part
            )
            problems.append(f"row `{name}`: {what}; its first cell should read: {_usage_cell(sub)}")
    for name in rows.keys() - subs.keys():
        problems.append(f"row `{name}`: there is no such subcommand: remove it")
    assert not problems, "docs/commands.md, section Command line:\n  " + "\n  ".join(problems)


def _doc_pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def test_the_shim_line_count_in_the_docs_is_true() -> None:
    from litemaas_hooks.shim import SHIM_SOURCE

    claims = [
        (page.relative_to(ROOT), int(n))
        for page in _doc_pages()
        for n in re.findall(r"`litemaas_hooks.py` \((\d+) lines", page.read_text(encoding="utf-8"))
    ]
    assert claims, (
        "no page says how long the shim is any more (keep this test in step with the docs)"
    )
    wrong = [f"{page} says {n} lines" for page, n in claims if n != len(SHIM_SOURCE.splitlines())]
    assert not wrong, f"the shim has {len(SHIM_SOURCE.splitlines())} lines: " + "; ".join(wrong)


def _module_map(heading: str) -> set[str]:
    """The first column of the module table under ``heading`` in docs/architecture.md."""
    return {_plain(cells[0]) for cells in _section_table(DOCS / "architecture.md", heading)}


@pytest.mark.parametrize(
    ("package", "heading"),
    [(RUNTIME, "`src/litemaas_hooks/`"), (SANDBOX, "`sandbox/src/litemaas_hooks_sandbox/`")],
    ids=["runtime", "sandbox"],
)
def test_the_architecture_page_names_every_module_and_no_other(package: Path, heading: str) -> None:
    named = _module_map(heading)
    modules = {path.name for path in package.glob("*.py")}
    folders = {entry for entry in named if entry.endswith("/")}
    problems = [
        f"add a row for `{name}`: it exists but the page does not name it"
        for name in modules - named
    ]
    problems += [f"remove the row `{name}`: no such module" for name in named - modules - folders]
    problems += [
        f"remove the row `{name}`: no such folder"
        for name in folders
        if not (package / name).is_dir()
    ]
    problems += [
        f"row `{name}` is neither a module nor a folder/"
        for name in named
        if not name.endswith((".py", "/"))
    ]
    assert not problems, f"docs/architecture.md, section {heading}:\n  " + "\n  ".join(
        sorted(problems)
    )


def test_the_architecture_page_names_every_sql_folder() -> None:
    named = _module_map("`src/litemaas_hooks/`")
    folders = {
        f"sql/{p.name}/"
        for p in (RUNTIME / "sql").iterdir()
        if p.is_dir() and p.name != "__pycache__"
    }
    assert folders <= named, f"docs/architecture.md: add rows for {sorted(folders - named)}"


def test_readme_fits_a_screen_before_its_reference() -> None:
    """At most 150 lines before the first ``## Reference…`` heading, if any, else in all."""
    text = README.read_text(encoding="utf-8")
    references = [
        n
        for n, level, title in _headings(text)
        if level == 2 and title.lower().startswith("reference")
    ]
    before = references[0] - 1 if references else len(text.splitlines())
    assert before <= README_MAX_LINES, (
        f"README.md has {before} lines before its reference part (at most {README_MAX_LINES}): "
        "move the detail to a page in docs/ and link it"
    )


def _links(page: Path) -> list[tuple[int, str]]:
    """(line number, target) of every Markdown link outside code blocks and code spans."""
    out: list[tuple[int, str]] = []
    for number, line in _prose_lines(page.read_text(encoding="utf-8")):
        out.extend((number, target) for target in _LINK.findall(re.sub(r"`[^`]*`", "", line)))
    return out


def test_every_relative_link_in_the_docs_resolves() -> None:
    problems = []
    checked = 0
    for page in _doc_pages():
        for number, target in _links(page):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue  # an absolute URL (https:, mailto:): not ours to check offline
            checked += 1
            where = f"{page.relative_to(ROOT)}:{number}"
            path_part, _, anchor = target.partition("#")
            file = (page.parent / path_part).resolve() if path_part else page
            relative = file.relative_to(ROOT).as_posix() if file.is_relative_to(ROOT) else str(file)
            if not file.exists():
                problems.append(f"{where}: {target} -> {relative} does not exist")
                continue
            if anchor and file.suffix == ".md":
                slugs = {
                    _slug(title) for _, _, title in _headings(file.read_text(encoding="utf-8"))
                }
                if anchor not in slugs:
                    problems.append(
                        f"{where}: {target} -> {relative} has no heading with anchor #{anchor}"
                    )
    assert checked, "no relative link found: the link check is looking in the wrong place"
    assert not problems, "broken links:\n  " + "\n  ".join(problems)


def test_metrics_table_matches_metrics_py() -> None:
    from prometheus_client.metrics import MetricWrapperBase

    from litemaas_hooks import metrics

    series: dict[str, set[str]] = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            (described,) = value.describe()
            suffix = "_total" if described.type == "counter" else ""
            series[described.name + suffix] = set(value._labelnames)
    rows = {
        _plain(cells[0]): {
            label.split("=")[0].strip() for label in re.findall(r"`([^`]+)`", cells[1])
        }
        for cells in _section_table(DOCS / "deploy.md", "Probes and metrics")
    }
    problems = [f"add the row for `{name}`" for name in series.keys() - rows.keys()]
    problems += [
        f"remove the row `{name}`: metrics.py has no such series"
        for name in rows.keys() - series.keys()
    ]
    problems += [
        f"row `{name}`: labels {sorted(rows[name])}, metrics.py has {sorted(labels)}"
        for name, labels in series.items()
        if name in rows and rows[name] != labels
    ]
    assert series, "metrics.py defines no series: the check is looking in the wrong place"
    assert not problems, "docs/deploy.md, section Probes and metrics:\n  " + "\n  ".join(problems)
