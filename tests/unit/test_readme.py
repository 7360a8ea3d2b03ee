"""README's configuration table matches settings.py, and its command table matches ``--help``.

When a setting or a subcommand/option is added, the failure says which row to add or change, with the
row text ready to paste (fill in the meaning).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from litemaas_hooks import cli
from litemaas_hooks.settings import OTHER_VARIABLES, Settings

README = Path(__file__).parents[2] / "README.md"


def _section_table(heading: str) -> list[list[str]]:
    """The cells of the first table under ``## heading`` (header and separator rows dropped)."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"README.md has no section '## {heading}'"
    rows: list[list[str]] = []
    in_table = False
    for line in match.group(1).splitlines():
        if line.startswith("|"):
            in_table = True
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
            rows.append(cells)
        elif in_table:
            break
    assert len(rows) > 2, f"README.md section '## {heading}' has no table"
    return rows[2:]


def _plain(cell: str) -> str:
    return cell.replace("`", "").strip()


def test_configuration_table_matches_settings() -> None:
    rows = {_plain(r[0]): _plain(r[1]) for r in _section_table("Configuration")}
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
                f"row `{alias}`: the default column says {rows[alias]!r}, settings.py says {_plain(default)!r}"
            )
    for alias, default in OTHER_VARIABLES.items():
        if alias not in rows:
            problems.append(f"add the row:  | `{alias}` | `{default}` | <what it does> |")
        elif rows[alias] != _plain(default):
            problems.append(f"row `{alias}`: the default column says {rows[alias]!r}, settings.py says {default!r}")
    for alias in rows.keys() - expected.keys() - OTHER_VARIABLES.keys():
        problems.append(f"row `{alias}` is no setting of settings.py (Settings or OTHER_VARIABLES): remove it")
    assert not problems, "README.md, section Configuration:\n  " + "\n  ".join(problems)


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    for action in cli._parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("the CLI has no subcommands")


def _usage_cell(sub: argparse.ArgumentParser) -> str:
    usage = " ".join(sub.format_usage().removeprefix("usage: ").split()).replace("[-h] ", "").replace(" [-h]", "")
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
    for cells in _section_table("Command line"):
        m = re.fullmatch(r"`litemaas-hooks ([a-z][a-z0-9-]*)(.*)`", cells[0])
        assert m, f"README.md, section Command line: the first cell {cells[0]!r} is not `litemaas-hooks COMMAND ...`"
        rows[m.group(1)] = m.group(2)
    problems = []
    subs = _subcommands()
    for name, sub in subs.items():
        if name not in rows:
            problems.append(f"add the row:  | {_usage_cell(sub)} | <what it does> | <exit codes> |")
            continue
        written = set(re.findall(r"--[a-z][a-z0-9-]*", rows[name])) | set(re.findall(r"\b[A-Z][A-Z_]+\b", rows[name]))
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
    assert not problems, "README.md, section Command line:\n  " + "\n  ".join(problems)


def test_the_shim_line_count_in_readme_is_true() -> None:
    from litemaas_hooks.shim import SHIM_SOURCE

    m = re.search(r"`litemaas_hooks.py` \((\d+) lines", README.read_text(encoding="utf-8"))
    assert m, "README.md no longer says how long the shim is (keep this test in step with it)"
    assert int(m.group(1)) == len(SHIM_SOURCE.splitlines())
