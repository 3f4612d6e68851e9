"""The run summary: Markdown the agent shows in the run's Extensions tab (``##vso[task.uploadsummary]``).

Rendered from ``templates/summary.md.j2`` with jinja2 (imported only here, after the credentials are set)
from the :class:`~oidc_credentials.emit.RunRecord`: provider, identity, expiry, the token's ``iss``,
``sub`` and ``jti``, secret *names*, timings and, on failure, the explanation and the catalogue's fix.
Every value is Markdown-escaped, and the whole text goes through the agent output's redaction.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from .emit import RunRecord

TITLES = {"aws": "AWS", "azure": "Azure", "keyvault": "Key Vault", "gcp": "Google Cloud", "vault": "HashiCorp Vault"}

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def md(value: object) -> str:
    """Plain text for a Markdown table cell or paragraph: specials escaped, one line."""
    text = " ".join(str(value).split())
    return _MD_SPECIAL.sub(r"\\\1", text)


def code(value: object) -> str:
    """Inline code that survives any backticks in the value; an en dash when empty."""
    text = " ".join(str(value).split()).replace("|", "¦")
    if not text:
        return "–"
    ticks = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def trusted(value: object) -> str:
    """Our own text (a catalogue fix): its `inline code` kept as code, everything else escaped like :func:`md`."""
    parts = re.split(r"`([^`]+)`", " ".join(str(value).split()))
    return "".join(code(part) if index % 2 else _MD_SPECIAL.sub(r"\\\1", part) for index, part in enumerate(parts))


def fence(value: object) -> str:
    """A fenced block longer than any backtick run inside it."""
    text = str(value).rstrip("\n")
    ticks = "`" * max(3, max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    return f"{ticks}text\n{text}\n{ticks}"


def names(values: list[str]) -> str:
    return ", ".join(code(v) for v in values) if values else "–"


def context(record: RunRecord) -> dict[str, Any]:
    timings = " · ".join(f"{md(name)} {seconds:.3f} s" for name, seconds in record.timings.items())
    return {
        **record.to_dict(),
        "ok": record.succeeded,
        "provider_title": TITLES.get(record.provider, record.provider or "(no provider)"),
        "timings": timings or "–",
    }


def render(record: RunRecord) -> str:
    import jinja2  # lazy: only the summary needs it

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("oidc_credentials", "templates"),
        autoescape=False,  # noqa: S701 - Markdown, not HTML: values are escaped by the md/code/fence filters
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters.update(md=md, code=code, fence=fence, names=names, trusted=trusted)
    text = env.get_template("summary.md.j2").render(context(record))
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def write(record: RunRecord, folder: str, redact: Callable[[str], str]) -> str:
    """Render, redact and write the summary to a new file in ``folder``; returns its path.

    The file name is the summary's title in the Extensions tab.
    """
    from .files import write_private

    title = TITLES.get(record.provider, "run")
    path = os.path.join(folder, f"oidc-credentials-{record.run_uid[:12]}", f"OidcCredentials {title}.md")
    write_private(path, redact(render(record)), root=folder)
    return path
