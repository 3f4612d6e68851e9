"""The run summary as a browser shows it: rendered by headless Chromium, readable (``make summary-screenshot``).

Skips, visibly, where Chromium is not installed; ``make summary-screenshot`` installs it (Debian package
``chromium``) and runs this test, then refreshes the README's pictures in docs/.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from oidc_credentials import summary

from tests import summary_screenshot


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.skipif(not summary_screenshot.chromium(), reason="Chromium is not installed: run make summary-screenshot")
def test_summary_renders_in_a_browser(tmp_path: Path) -> None:
    made = summary_screenshot.render_all(tmp_path)
    assert [p.name for p in made] == ["summary-success.png", "summary-failure.png"]
    for png in made:
        width, height = png_size(png)
        assert (width, height) in ((1000, 470), (1000, 700))
        assert png.stat().st_size > 20_000, "an almost empty picture: the page did not render"
    page = summary_screenshot.html(summary.render(summary_screenshot.failure_record()), "t")
    assert "<h4>What went wrong</h4>" in page and "<table>" in page and "<pre><code" in page


def test_the_page_is_built_from_the_rendered_markdown() -> None:
    text = "### Title\n\n| Provider | aws |\n|---|---|\n| Identity | x |\n"
    page = summary_screenshot.html(text, "t")
    assert "<h3>Title</h3>" in page and "<th>Provider</th>" in page and "<td>Identity</td>" in page
