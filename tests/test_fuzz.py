"""Generated hostile input at volume: every line the task prints parses, with azure-pipelines-task-lib's own
parser and the agent's rules, to exactly the commands meant with exactly the values meant, or is refused.

``make test`` runs a bounded number of examples; ``make soak`` (marker ``soak``, profile ``soak``) many more.
"""

from __future__ import annotations

import io
import os
import re
import sys
import unicodedata
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from oidc_credentials import secret_vars
from oidc_credentials.emit import check
from oidc_credentials.errors import ConfigError
from oidc_credentials.providers import Outcome, Variable
from oidc_credentials.vso import AgentOutput, check_variable_name, format_command, neutralise

from tests.harness import parse_line
from tests.tasklib import js_trim, looks_like_command, tasklib_parse

# shrinking a failure of very long hostile text takes minutes: the failing example is reported as found
_FAST = [Phase.explicit, Phase.reuse, Phase.generate]
settings.register_profile(
    "default",
    max_examples=20,
    deadline=None,
    phases=_FAST,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "soak",
    max_examples=1000,
    deadline=None,
    phases=_FAST,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("soak" if os.environ.get("OIDC_CREDENTIALS_SOAK") else "default")
pytestmark = pytest.mark.soak

#: every Unicode character that is a control, format, line/paragraph separator, combining mark or
#: default-ignorable (the characters a culture-aware search may skip), computed from this Python's Unicode
INVISIBLE = [
    chr(c)
    for c in range(0x110000)
    if not (0xD800 <= c <= 0xDFFF)
    and (
        unicodedata.category(chr(c)) in ("Cc", "Cf", "Zl", "Zp", "Mn", "Me")
        or 0x115F <= c <= 0x1160
        or c in (0x3164, 0xFFA0, 0x0640, 0x17B4, 0x17B5)
        or 0xE0000 <= c <= 0xE0FFF
    )
]
NEWLINES = ["\n", "\r", "\r\n", "\n\r", "\u0085", "\u2028", "\u2029", "\v", "\f", "\x1c", "\x1d", "\x1e"]
FRAGMENTS = [
    "##vso[",
    "##VSO[",
    "##[",
    "##[error]",
    "##[group]",
    "##vso[task.setvariable variable=PWNED;issecret=false]1",
    "##vso[task.complete result=Failed]",
    "##vso[task.prependpath]/evil",
    "%",
    "%AZP25",
    "%AZP25AZP25",
    "%0A",
    "%0D",
    "%3B",
    "%5D",
    "%25",
    ";",
    "]",
    "[",
    "=",
    "#",
    "##",
    "vso",
    " ",
    "\t",
    "\uff03\uff03\uff56\uff53\uff4f\uff3b",  # full-width ##vso[
    "\ufe5f\ufe5fvso[",  # small number sign
    "$(System.AccessToken)",
]

_piece = st.one_of(
    st.sampled_from(FRAGMENTS),
    st.sampled_from(NEWLINES),
    st.sampled_from(INVISIBLE),
    st.text(max_size=4),
)
#: hostile text: fragments, newlines of every kind, invisible characters and anything else, sometimes very long
hostile = st.one_of(
    st.lists(_piece, max_size=24).map("".join),
    st.tuples(st.lists(_piece, min_size=1, max_size=6).map("".join), st.integers(50, 1200)).map(lambda t: t[0] * t[1]),
)

#: counted across the run for the README's figures (tests/test_fuzz.py reports them with -s)
TRIED = {"values": 0, "lines": 0}


def _agent_command(line: str):  # type: ignore[no-untyped-def]
    cmd = parse_line(line)
    assert cmd is not None, line
    return cmd


@given(st.lists(st.tuples(hostile, hostile), min_size=1, max_size=40))
def test_every_property_and_data_value_arrives_exactly(pairs: list[tuple[str, str]]) -> None:
    """Property values and data of every command come back, through both parsers, exactly as meant."""
    lines = []
    for prop, data in pairs:
        lines.append(format_command("task.setvariable", {"variable": prop, "issecret": "true"}, data))
        lines.append(format_command("task.logissue", {"type": "warning", "code": prop}, data))
    parsed = tasklib_parse(lines)
    TRIED["values"] += 2 * len(pairs)
    TRIED["lines"] += len(lines)
    for line, (prop, data), theirs in zip(lines, [p for p in pairs for _ in range(2)], parsed):
        assert "\n" not in line and "\r" not in line
        ours = _agent_command(line)
        assert ours.data == data  # the agent: exact
        # the agent drops a property whose value is empty; otherwise exact
        key = "variable" if ours.area_event == "task.setvariable" else "code"
        assert ours.properties.get(key, "") == prop
        assert theirs is not None and "error" not in theirs, (line, theirs)
        assert theirs["command"] == ours.area_event
        assert theirs["message"] == data
        # task-lib trims each property (JavaScript's trim) and skips an empty one
        assert js_trim(theirs["properties"].get(key, "")) == js_trim(prop)


@given(st.lists(hostile, min_size=1, max_size=20), st.booleans())
def test_log_text_never_forms_a_command(texts: list[str], debug: bool) -> None:
    """Untrusted text through every writer: each command is the one meant, every other line is inert."""
    out = io.StringIO()
    writer = AgentOutput(out, debug=debug)
    meant: list[tuple[str, str]] = []
    for text in texts:
        writer.info(text)
        writer.warning(text)
        writer.error(text)
        writer.debug(text)
        meant += [("task.logissue", writer.safe(text)), ("task.logissue", writer.safe(text))]
        if debug:
            meant.append(("task.debug", writer.safe(text)))
    writer.complete("Failed", texts[0])
    meant.append(("task.complete", writer.safe(texts[0])))
    lines = out.getvalue().split("\n")[:-1]
    parsed = tasklib_parse(lines)
    TRIED["values"] += len(texts)
    TRIED["lines"] += len(lines)
    commands = []
    for line, theirs in zip(lines, parsed):
        ours = parse_line(line)
        if ours is None:
            assert theirs is None and not looks_like_command(line), line
            continue
        assert line.startswith("##vso["), line
        assert theirs is not None and theirs["message"] == ours.data
        commands.append((ours.area_event, ours.data))
        # a message the agent shows, line by line, cannot format the log
        assert not any(looks_like_command(part) for part in re.split(r"[\r\n]", ours.data)), ours.data
    assert commands == meant


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=8, max_size=20), hostile, st.data())
def test_a_registered_secret_never_prints_even_split_by_invisible_characters(
    secret: str, around: str, data: st.DataObject
) -> None:
    """A secret echoed by a hostile service with invisible characters inside still comes out masked."""
    cut = data.draw(st.integers(1, len(secret) - 1))
    hidden = data.draw(st.sampled_from(INVISIBLE).filter(lambda ch: ch not in "\n\t"))
    out = io.StringIO()
    writer = AgentOutput(out)
    writer.set_secret(secret)
    echoed = f"{around}{secret[:cut]}{hidden}{secret[cut:]}{around}"
    writer.info(echoed)
    writer.error(echoed)
    printed = out.getvalue().split("\n", 1)[1]
    assert secret not in printed
    assert secret not in neutralise(writer.safe(echoed))


#: the agent's own variables (platform.md §5.4), as environment names, and the reserved prefixes
AGENT_VARIABLES = [
    "Agent.TempDirectory",
    "Agent.ProxyUrl",
    "Agent.ToolsDirectory",
    "Build.SourcesDirectory",
    "Build.SourceBranch",
    "System.AccessToken",
    "System.Debug",
    "System.TeamProject",
    "System.OidcRequestUri",
    "Release.ReleaseId",
    "Pipeline.Workspace",
    "Task.DisplayName",
    "Common.TestResultsDirectory",
    "TF_BUILD",
]
RESERVED = ("ENDPOINT", "INPUT", "SECRET", "PATH", "SECUREFILE")
name_text = st.one_of(
    hostile,
    st.text(alphabet="abcXYZ019._- ", max_size=30),
    st.sampled_from(AGENT_VARIABLES + [p.lower() + "_x" for p in RESERVED]).flatmap(
        lambda n: st.sampled_from([n, n.upper(), n.lower(), n.replace(".", "-"), n.replace(".", "_"), n + "x"])
    ),
)


def _env(name: str) -> str:
    return re.sub(r"[.\- ]", "_", name).upper()


@given(st.lists(name_text, min_size=1, max_size=30))
def test_variable_names_are_refused_before_anything_is_emitted(names: list[str]) -> None:
    """A name the agent would reject is refused with a clear message before anything is written."""
    for name in names:
        outcome = Outcome(variables=[Variable(name, "v", secret=True)])
        try:
            check(outcome)
        except ConfigError as exc:
            assert f"Cannot set variable '{name}'" in exc.message
            assert check_variable_name(name) is not None
            continue
        assert re.fullmatch(r"[A-Za-z0-9._]+", name), name
        assert not _env(name).startswith(RESERVED)
    TRIED["values"] += len(names)


@given(st.lists(st.tuples(name_text, hostile), min_size=1, max_size=30, unique_by=lambda p: p[0].lower()))
def test_vault_names_never_shadow_the_agents_variables(pairs: list[tuple[str, str]]) -> None:
    """Secret names from a vault: each becomes a variable the agent accepts and does not own, or is refused."""
    warnings: list[str] = []
    policy = secret_vars.Policy(prefix="KEYVAULT", aliases=True, multiline="base64")
    try:
        planned = secret_vars.plan(pairs, policy, warn=warnings.append)
    except ConfigError as exc:
        assert "would both set variable" in exc.message  # two names the agent cannot tell apart
        return
    produced = [v.name for v in planned.variables]
    for name in produced:
        key = _env(name)
        assert re.fullmatch(r"[A-Za-z0-9._-]+", name), name
        assert not key.startswith(RESERVED), name
        assert key not in {_env(v) for v in AGENT_VARIABLES}, name
        assert not key.startswith(("SYSTEM_", "AGENT_", "BUILD_", "RELEASE_", "PIPELINE_", "TASK_")), name
    refused = {name for name, _ in planned.refused}
    assert refused == {n for n, _ in pairs} - {v.name for v in planned.variables if v.verbatim}
    if refused:
        assert warnings and all(name in warnings[0] for name in refused)
    # and the commands that set them parse to exactly those names and values
    out = io.StringIO()
    writer = AgentOutput(out)
    for var in planned.variables:
        writer.set_variable(var.name, var.value, secret=var.secret)
    lines = out.getvalue().split("\n")[:-1]
    parsed = [parse_line(line) for line in lines]
    got = {c.properties["variable"]: c.data for c in parsed if c and c.area_event == "task.setvariable"}
    assert got == {v.name: v.value for v in planned.variables}
    TRIED["values"] += len(pairs)


@pytest.fixture(scope="module", autouse=True)
def _report_figures() -> Iterator[None]:
    yield
    sys.__stdout__.write(f"\nfuzz figures: {TRIED['values']} generated values, {TRIED['lines']} printed lines parsed\n")
