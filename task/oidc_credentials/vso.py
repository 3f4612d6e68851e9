"""Logging commands out: the only module that writes to the agent.

The agent reads ``##vso[area.event k=v;k=v]data`` from stdout *and* stderr, anywhere in a line, and
unescapes ``%3B``, ``%0D``, ``%0A``, ``%5D`` and then ``%AZP25`` in both property values and data.
So every value we emit is escaped here (``%`` first), and every piece of text that did not come from
us (cloud error bodies, claims, names) is neutralised so it can never form a command.
"""

from __future__ import annotations

import io
import re
import threading
import unicodedata
from collections.abc import Iterable, Mapping
from typing import TextIO

COMMAND_PREFIX = "##vso["

#: Variable names the agent refuses or that would collide with what it passes to tasks.
_RESERVED_PREFIXES = ("endpoint", "input", "secret", "path", "securefile")
_VARIABLE_NAME = re.compile(r"^[A-Za-z0-9._]+$")
# setvariable also takes "-" (Key Vault secret names hold it; AzureKeyVault@2 sets such names): allowed on request.
_VERBATIM_NAME = re.compile(r"^[A-Za-z0-9._-]+$")

# The agent's culture-aware IndexOf skips characters that collate as nothing. So untrusted text is
# looked at with every such character dropped: controls and format characters (Cc, Cf, Zl, Zp), every
# Default_Ignorable_Code_Point (Unicode DerivedCoreProperties: soft hyphen, combining grapheme joiner,
# variation selectors, Hangul fillers, tags, ...) and the Arabic tatweel. Any "##vso[" or "##[" left
# (also in its NFKC compatibility form, for full-width look-alikes) is broken by turning its bracket into
# a parenthesis, so the agent neither runs nor formats it.
_COMMANDISH = re.compile(r"##(\s*vso)?\s*\[", re.IGNORECASE)
_DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x0640, 0x0640),  # tatweel: not default-ignorable, but collates as nothing
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)


def escape_property(value: str) -> str:
    """Escape a property value: ``%`` first, then CR, LF, ``]`` and ``;``."""
    return (
        value.replace("%", "%AZP25").replace("\r", "%0D").replace("\n", "%0A").replace("]", "%5D").replace(";", "%3B")
    )


def escape_data(value: str) -> str:
    """Escape command data: ``%`` first, then CR and LF."""
    return value.replace("%", "%AZP25").replace("\r", "%0D").replace("\n", "%0A")


def ignorable(ch: str) -> bool:
    """Whether a culture-aware search may skip ``ch`` (see above); tab and newline are kept."""
    if ch in "\n\t":
        return False
    if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
        return True
    code = ord(ch)
    return code >= 0x00AD and any(low <= code <= high for low, high in _DEFAULT_IGNORABLE)


def _drop_invisible(text: str) -> str:
    return "".join(ch for ch in text if not ignorable(ch))


def neutralise(text: str) -> str:
    """Make untrusted text safe to print: it can never form a logging or formatting command."""
    if text.isascii() and "#" not in text and text.isprintable():
        return text
    cleaned = _drop_invisible(text)
    if not cleaned.isascii():
        folded = _drop_invisible(unicodedata.normalize("NFKC", cleaned))
        if _COMMANDISH.search(folded):  # also when a plain command sits beside a full-width one
            cleaned = folded
    return _COMMANDISH.sub(lambda m: m.group(0)[:-1] + "(", cleaned)


def format_command(name: str, properties: Mapping[str, str | bool | None] | None = None, data: str = "") -> str:
    """Render one logging command; empty property values are left out, as task-lib does."""
    props = ""
    if properties:
        parts = []
        for key, value in properties.items():
            if value is None or value == "":
                continue
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            parts.append(f"{key}={escape_property(text)}")
        if parts:
            props = " " + ";".join(parts) + ";"
    return f"{COMMAND_PREFIX}{name}{props}]{escape_data(data)}"


def derived_forms(value: str) -> list[str]:
    """The forms other than itself a tool may print a secret in, when they differ from it: base64 (standard and
    URL-safe, without the padding, so a padded or unpadded print matches), URL-encoded and JSON-escaped.

    The agent's masker adds JSON and URI escapes of its own, but not base64; registering them all here also
    lets :meth:`AgentOutput.redact` catch them. A multi-line value is not registered whole (see secret_vars).
    """
    if not value or "\n" in value or "\r" in value:
        return []
    import base64
    import json
    from urllib.parse import quote

    raw = value.encode("utf-8")
    forms = [
        base64.b64encode(raw).decode("ascii").rstrip("="),
        base64.urlsafe_b64encode(raw).decode("ascii").rstrip("="),
        quote(value, safe=""),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
    ]
    return [f for i, f in enumerate(forms) if f != value and f not in forms[:i]]


def check_variable_name(name: str, *, allow_dash: bool = False) -> str | None:
    """Return why the agent would refuse this variable name, or None when it is fine.

    ``allow_dash`` admits ``-`` for names taken verbatim from a cloud (Key Vault secret names).
    """
    if not name or not (_VERBATIM_NAME if allow_dash else _VARIABLE_NAME).fullmatch(name):  # "$" admits a final \n
        return "a variable name may hold only letters, digits, '.' and '_'" + (" and '-'" if allow_dash else "")
    if name.lower().startswith(_RESERVED_PREFIXES):
        return "names starting with endpoint, input, secret, path or securefile are reserved by the agent"
    return None


class AgentOutput:
    """Writes logging commands and log lines, redacting every secret it has registered."""

    def __init__(self, stream: TextIO, *, debug: bool = False) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._secrets: list[str] = []
        self._registered: set[str] = set()
        self.debug_enabled = debug

    # -- plumbing ---------------------------------------------------------------------------
    def _write(self, line: str) -> None:
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()

    def redact(self, text: str) -> str:
        """Replace every registered secret in text (longest first) with ``***``."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def safe(self, text: str) -> str:
        """Redacted and neutralised: what any free text goes through before it is printed.

        Redacted again after neutralising: dropping an invisible character can join a secret echoed with one inside.
        """
        return self.redact(neutralise(self.redact(text)))

    def command(self, name: str, properties: Mapping[str, str | bool | None] | None = None, data: str = "") -> None:
        self._write(format_command(name, properties, data))

    # -- secrets and variables --------------------------------------------------------------
    def set_secret(self, value: str) -> None:
        """Register a value and the forms a tool may print it in with the agent's masker (once each), before
        anything could print them."""
        for form in (value, *derived_forms(value)):
            if not form or form in self._registered:
                continue
            self._registered.add(form)
            self.hide(form)
            self.command("task.setsecret", None, form)

    def hide(self, value: str) -> None:
        """Redact a value the agent already masks (the job access token) from our own output, without a command."""
        if value and value not in self._secrets:
            self._secrets.append(value)
            self._secrets.sort(key=len, reverse=True)

    def set_variable(
        self,
        name: str,
        value: str,
        *,
        secret: bool = False,
        output: bool = False,
        readonly: bool = False,
    ) -> None:
        if secret:
            self.set_secret(value)
        self.command(
            "task.setvariable",
            {
                "variable": name,
                "issecret": "true" if secret else "false",
                "isoutput": "true" if output else None,
                "isreadonly": "true" if readonly else None,
            },
            value,
        )

    # -- attachments and artifacts (paths of files the task wrote) ---------------------------
    def upload_summary(self, path: str) -> None:
        """Show a Markdown file in the run's Extensions tab."""
        self.command("task.uploadsummary", None, path)

    def upload_artifact(self, path: str, name: str) -> None:
        """Publish a file as the pipeline artifact ``name`` (in a container folder of the same name)."""
        self.command("artifact.upload", {"containerfolder": name, "artifactname": name}, path)

    # -- log lines --------------------------------------------------------------------------
    def info(self, text: str = "") -> None:
        for line in self.safe(text).split("\n"):
            self._write(line)

    def lines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.info(line)

    def debug(self, text: str) -> None:
        if self.debug_enabled:
            self.command("task.debug", None, self.safe(text))

    def warning(self, text: str) -> None:
        self.command("task.logissue", {"type": "warning"}, self.safe(text))

    def error(self, text: str) -> None:
        self.command("task.logissue", {"type": "error"}, self.safe(text))

    def complete(self, result: str, message: str = "") -> None:
        self.command("task.complete", {"result": result}, self.safe(message))


class NeutralisingStream(io.TextIOBase):
    """A text stream for third-party output: each line is redacted and neutralised, then passed on.

    Installed as ``sys.stderr`` so that whatever a library logs (azure-identity logs Entra's error
    body as it came) cannot reach the agent as a command.
    """

    def __init__(self, output: AgentOutput, target: TextIO) -> None:
        super().__init__()
        self._output = output
        self._target = target
        self._pending = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            *complete, self._pending = self._pending.split("\n")
            for line in complete:
                self._target.write(self._output.safe(line) + "\n")
            if complete:
                self._target.flush()
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                self._target.write(self._output.safe(self._pending) + "\n")
                self._pending = ""
            self._target.flush()
