"""azure-pipelines-task-lib's own command parser, many lines per node call, and a hostile-text oracle.

``tasklib_parse(lines)`` runs task-lib's ``commandFromString`` on every line that holds ``##vso[`` (the
agent's test, as ``tests.harness.parse_line`` makes it) and returns, per line, ``None`` for a plain log
line, ``{"command", "properties", "message"}`` for a command, or ``{"error": ...}`` when task-lib throws.
"""

from __future__ import annotations

import json
import subprocess
import unicodedata
from typing import Any

from tests.harness import ROOT

TASKLIB = ROOT / "node_modules" / "azure-pipelines-task-lib" / "taskcommand.js"

_SCRIPT = (
    "const {commandFromString} = require(process.argv[1]);"
    "const lines = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
    "process.stdout.write(JSON.stringify(lines.map(l => { if (l.indexOf('##vso[') < 0) return null;"
    " try { const c = commandFromString(l.substring(l.indexOf('##vso[')));"
    " return {command: c.command, properties: c.properties, message: c.message}; }"
    " catch (e) { return {error: String(e.message)}; } })));"
)

#: what JavaScript's String.prototype.trim() removes (WhiteSpace and LineTerminator), which task-lib applies to
#: every property; Python's str.strip() removes a different set
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"


def js_trim(text: str) -> str:
    return text.strip(_JS_SPACE)


def tasklib_parse(lines: list[str]) -> list[dict[str, Any] | None]:
    proc = subprocess.run(
        ["node", "-e", _SCRIPT, str(TASKLIB)],
        input=json.dumps(lines),
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
        timeout=120,
    )
    parsed: list[dict[str, Any] | None] = json.loads(proc.stdout)
    assert len(parsed) == len(lines)
    return parsed


def looks_like_command(line: str) -> bool:
    """An oracle broader than the neutraliser's own view: compatibility forms, and every mark, modifier
    letter, control, format, unassigned and space character dropped, then ``##vso[`` or ``##[`` searched."""
    folded = unicodedata.normalize("NFKC", line)
    squeezed = "".join(
        ch
        for ch in folded
        if unicodedata.category(ch) not in ("Cc", "Cf", "Mn", "Me", "Lm", "Lo", "Zl", "Zp", "Cn", "Co", "Cs")
        and not ch.isspace()
    )
    return "##vso[" in squeezed.lower() or "##[" in squeezed
