"""The three escapers (vso.py in the task, entry.py and launcher.js before it) against one golden table.

Each row: the raw text, then what each escaper must write. ``data`` is command data (vso.escape_data and
the launcher's escapeData, which must agree), ``line`` is entry.py's one-line form for its last-resort
error (line breaks become spaces and no ``##`` is left), ``property`` a property value. The agent's own
unescaping (tests.harness.unescape) must give the raw text back from ``data`` and ``property``.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
from types import ModuleType

import pytest
from oidc_credentials.vso import escape_data, escape_property

from tests.harness import LAUNCHER, ROOT, parse_line, unescape

#: raw, data, line (entry.py), property
GOLDEN: list[tuple[str, str, str, str]] = [
    ("plain text", "plain text", "plain text", "plain text"),
    ("100% sure", "100%AZP25 sure", "100%AZP25 sure", "100%AZP25 sure"),
    ("%AZP25", "%AZP25AZP25", "%AZP25AZP25", "%AZP25AZP25"),
    ("%0A is not a newline", "%AZP250A is not a newline", "%AZP250A is not a newline", "%AZP250A is not a newline"),
    ("two\nlines", "two%0Alines", "two lines", "two%0Alines"),
    ("crlf\r\nend", "crlf%0D%0Aend", "crlf  end", "crlf%0D%0Aend"),
    ("a;b]c", "a;b]c", "a;b]c", "a%3Bb%5Dc"),
    (
        "##vso[task.complete result=Succeeded]x",
        "##vso[task.complete result=Succeeded]x",
        "#vso[task.complete result=Succeeded]x",
        "##vso[task.complete result=Succeeded%5Dx",
    ),
    ("é ✓ 中", "é ✓ 中", "é ✓ 中", "é ✓ 中"),
    ("", "", "", ""),
]


def load_entry() -> ModuleType:
    spec = importlib.util.spec_from_file_location("oidc_entry_for_tests", ROOT / "task" / "entry.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("raw", "data", "line", "prop"), GOLDEN)
def test_vso_escapers(raw: str, data: str, line: str, prop: str) -> None:
    assert escape_data(raw) == data
    assert escape_property(raw) == prop
    assert unescape(data) == raw and unescape(prop) == raw


@pytest.mark.parametrize(("raw", "data", "line", "prop"), GOLDEN)
def test_entry_escaper(raw: str, data: str, line: str, prop: str) -> None:
    escaped = load_entry().escape(raw)
    assert escaped == line
    assert "\n" not in escaped and "\r" not in escaped and "##" not in escaped
    command = parse_line("##vso[task.logissue type=error]" + escaped)
    assert command is not None and command.data == unescape(line)


def test_launcher_escaper_matches_the_table() -> None:
    script = (
        f"const l = require({json.dumps(str(LAUNCHER))});"
        f"console.log(JSON.stringify({json.dumps([row[0] for row in GOLDEN])}.map(l.escapeData)))"
    )
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True, encoding="utf-8").stdout
    assert json.loads(out) == [row[1] for row in GOLDEN]
