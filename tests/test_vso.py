"""Logging commands: escaping, neutralising, and a round trip through azure-pipelines-task-lib's parser."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
from oidc_credentials.vso import (
    AgentOutput,
    NeutralisingStream,
    check_variable_name,
    escape_data,
    escape_property,
    format_command,
    neutralise,
)

from tests.harness import ROOT, parse_line

TASKLIB = ROOT / "node_modules" / "azure-pipelines-task-lib" / "taskcommand.js"

AWKWARD = [
    "plain",
    "semi;colon",
    "close]bracket",
    "per%cent",
    "%AZP25 already escaped-looking",
    "%3B %0A %0D %5D literal escapes",
    "line\nbreak",
    "carriage\rreturn",
    "crlf\r\nend",
    "unicode ✓ é 漢字",
    "=equals=in=value",
    "##vso[task.setvariable variable=X]nested",
    "tab\tseparated",
    "a" * 5000,
]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a;b", "a%3Bb"),
        ("a]b", "a%5Db"),
        ("50%", "50%AZP25"),
        ("%3B", "%AZP253B"),
        ("x\r\ny", "x%0D%0Ay"),
    ],
)
def test_escape_property(value: str, expected: str) -> None:
    assert escape_property(value) == expected


def test_escape_data_leaves_semicolons_and_brackets() -> None:
    assert escape_data("a;b]c%\n") == "a;b]c%AZP25%0A"


def test_format_command_drops_empty_properties() -> None:
    line = format_command("task.setvariable", {"variable": "X", "isoutput": None, "issecret": ""}, "v")
    assert line == "##vso[task.setvariable variable=X;]v"


@pytest.mark.parametrize("value", AWKWARD)
def test_agent_parser_round_trip(value: str) -> None:
    """Our mirror of the agent's parser gets back exactly what was emitted, in properties and data."""
    cmd = parse_line(format_command("task.setvariable", {"variable": value, "issecret": "true"}, value))
    assert cmd is not None
    assert cmd.area_event == "task.setvariable"
    assert cmd.properties["variable"] == value
    assert cmd.data == value


def test_task_lib_parser_round_trip() -> None:
    """Every kind of command the writer produces parses back through task-lib's commandFromString."""
    out = io.StringIO()
    writer = AgentOutput(out, debug=True)
    for value in AWKWARD:
        writer.set_variable(value.strip().replace("\t", " ") or "x", value, secret=False, output=True, readonly=True)
        writer.command("task.logissue", {"type": "warning", "code": value.strip()}, value)
    writer.set_secret("s3cr3t;%]value")
    writer.warning("warned ##vso[task.complete result=Failed]")
    writer.error("failed: 100% sure; really]")
    writer.debug("debug line")
    writer.complete("Failed", "it failed\nhere")
    lines = out.getvalue().splitlines()
    script = (
        "const {commandFromString} = require(process.argv[1]);"
        "const lines = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "console.log(JSON.stringify(lines.map(l => { const c = commandFromString(l);"
        " return {command: c.command, properties: c.properties, message: c.message}; })));"
    )
    proc = subprocess.run(
        ["node", "-e", script, str(TASKLIB)], input=json.dumps(lines), capture_output=True, text=True, check=True
    )
    parsed = json.loads(proc.stdout)
    assert len(parsed) == len(lines)
    for line, theirs in zip(lines, parsed):
        ours = parse_line(line)
        assert ours is not None, line
        assert theirs["command"] == ours.area_event
        assert theirs["message"] == ours.data
        # task-lib trims each property; the agent does not. Compare what both keep.
        assert {k: v.strip() for k, v in theirs["properties"].items()} == {
            k: v.strip() for k, v in ours.properties.items()
        }
    # and the values are exactly what was written, not just self-consistent
    set_vars = [p for p in parsed if p["command"] == "task.setvariable"]
    assert [p["message"] for p in set_vars] == AWKWARD
    assert parsed[-1]["message"] == "it failed\nhere" and parsed[-1]["properties"] == {"result": "Failed"}


@pytest.mark.parametrize(
    "text",
    [
        "##vso[task.setvariable variable=PWNED]1",
        "prefix ##vso[task.complete result=Failed]x",
        "##VSO[task.setvariable variable=PWNED]1",
        "##\u200bvso[task.setvariable variable=PWNED]1",
        "#\u00ad#vso[task.setvariable variable=PWNED]1",
        "##\u2060vso\u200d[task.complete result=Failed]",
        "## vso[task.complete result=Failed]",
        "##[error]fake error line",
        "##\u0000vso[task.complete result=Failed]",
        "line one\n##vso[task.setvariable variable=PWNED]1",
        "##\u034fvso[task.complete result=Failed]",  # combining grapheme joiner
        "##v\ufe0fso[task.complete result=Failed]",  # variation selector
        "##vs\U000e0100o[task.complete result=Failed]",  # variation selector supplement
        "#\u0640#vso[task.complete result=Failed]",  # Arabic tatweel
        "##\u3164vso[task.complete result=Failed]",  # Hangul filler
        "##\u115fvso\u180b[task.complete result=Failed]",  # Hangul choseong filler, Mongolian FVS
        "##\U000e0041vso[task.complete result=Failed]",  # tag character
        "\uff03\uff03\uff56\uff53\uff4f\uff3btask.complete result=Failed]",  # full-width look-alikes
    ],
)
def test_neutralise_breaks_every_command(text: str) -> None:
    import unicodedata

    safe = neutralise(text)
    for line in safe.split("\n"):
        assert parse_line(line) is None
        # an oracle broader than the neutraliser's own view: compatibility forms, and every mark,
        # modifier letter, control, format and space character dropped
        folded = unicodedata.normalize("NFKC", line)
        squeezed = "".join(
            ch
            for ch in folded
            if unicodedata.category(ch) not in ("Cc", "Cf", "Mn", "Me", "Lm", "Lo", "Zl", "Zp", "Cn")
            and not ch.isspace()
        )
        assert "##vso[" not in squeezed.lower()
        assert "##[" not in squeezed


def test_neutralise_keeps_ordinary_text() -> None:
    text = "AADSTS700213: No matching federated identity record found for presented assertion subject 'sc://a/b/c'."
    assert neutralise(text) == text
    assert neutralise("issue #42 and C# code") == "issue #42 and C# code"


def test_output_redacts_registered_secrets_and_neutralises() -> None:
    out = io.StringIO()
    writer = AgentOutput(out)
    writer.set_secret("hunter2-secret")
    writer.info("the body said hunter2-secret ##vso[task.setvariable variable=X]y")
    writer.error("error with hunter2-secret")
    everything = out.getvalue().splitlines()
    assert everything[0] == "##vso[task.setsecret]hunter2-secret"
    lines = [line for line in everything if not line.startswith("##vso[task.setsecret]")]
    assert "hunter2-secret" not in "\n".join(lines)
    lines.insert(0, everything[0])
    assert parse_line(lines[1]) is None
    issue = parse_line(lines[2])
    assert issue is not None and issue.data == "error with ***"


def test_forms_a_tool_may_print_are_registered_when_they_differ() -> None:
    out = io.StringIO()
    writer = AgentOutput(out)
    secret = 'wJal/rXUt+nFEMI"K7\\MDENG/bPxRfiCY é'
    writer.set_secret(secret)
    writer.set_secret("plainjwt.header.sig")
    registered = [parse_line(line).data for line in out.getvalue().splitlines()]  # type: ignore[union-attr]
    expected = [
        secret,
        base64.b64encode(secret.encode()).decode().rstrip("="),
        base64.urlsafe_b64encode(secret.encode()).decode().rstrip("="),
        quote(secret, safe=""),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    ]
    assert registered[: len(set(expected))] == list(dict.fromkeys(expected))
    # a form equal to the value is not registered twice (URL-encoding and JSON leave this one as it is)
    assert registered[len(set(expected)) :] == [
        "plainjwt.header.sig",
        base64.b64encode(b"plainjwt.header.sig").decode().rstrip("="),
    ]
    writer.info(f"tool printed {json.dumps(secret)} and {base64.b64encode(secret.encode()).decode()}")
    assert out.getvalue().splitlines()[-1].rstrip("=") == 'tool printed "***" and ***'


def test_secret_registered_once() -> None:
    out = io.StringIO()
    writer = AgentOutput(out)
    writer.set_secret("abc123")
    writer.set_variable("A", "abc123", secret=True)
    assert out.getvalue().count("task.setsecret]abc123\n") == 1


def test_debug_lines_only_when_enabled() -> None:
    quiet, loud = io.StringIO(), io.StringIO()
    AgentOutput(quiet).debug("hidden")
    AgentOutput(loud, debug=True).debug("shown")
    assert quiet.getvalue() == ""
    assert loud.getvalue() == "##vso[task.debug]shown\n"


def test_neutralising_stream_handles_partial_lines() -> None:
    target = io.StringIO()
    writer = AgentOutput(io.StringIO())
    writer.set_secret("tok-123456")
    stream = NeutralisingStream(writer, target)
    stream.write('ERROR azure.identity: body {"x": "##v')
    stream.write('so[task.setvariable variable=Y]tok-123456"}\nsecond')
    stream.flush()
    lines = target.getvalue().splitlines()
    assert len(lines) == 2
    assert all(parse_line(line) is None for line in lines)
    assert "tok-123456" not in target.getvalue()
    assert lines[1] == "second"


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("AWS_ACCESS_KEY_ID", True),
        ("my.var", True),
        ("my-db-password", False),
        ("with space", False),
        ("secret_thing", False),
        ("ENDPOINT_X", False),
        ("Path.Thing", False),
        ("", False),
        ("NAME\n", False),  # found by tests/test_fuzz.py: "$" in a pattern also matches before a final newline
        ("my-db-password\n", False),
    ],
)
def test_check_variable_name(name: str, ok: bool) -> None:
    assert (check_variable_name(name) is None) is ok


def test_module_writes_nothing_but_through_the_writer() -> None:
    """Only vso.py (and the launcher's own last-resort lines) may write to the agent.

    The human CLI (cli.py, commands/) and the credential helpers (modes/helper.py) write plain text or
    JSON to their own caller, never in a task step, so they are the only other writers.
    """
    package = ROOT / "task" / "oidc_credentials"
    plain_text = {package / "cli.py", package / "modes" / "helper.py"}
    offenders = [
        str(path.relative_to(ROOT))
        for path in package.rglob("*.py")
        if path.name != "vso.py"
        and path not in plain_text
        and path.parent != package / "commands"
        and (re.search(r"\bprint\(", path.read_text()) or "sys.stdout.write" in path.read_text())
    ]
    assert offenders == []


def test_tasklib_is_installed() -> None:
    assert Path(TASKLIB).is_file(), "run `make setup` (npm ci) first"
