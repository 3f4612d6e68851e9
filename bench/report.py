"""bench/results.json as the Markdown table the README's Performance section holds.

``python -m bench.report`` prints it; ``python -m bench.report --readme`` writes it into README.md
between the ``<!-- bench:table -->`` markers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.suite import RESULTS


def _n(value: float | None, unit: str = "") -> str:
    if value is None:
        return "–"
    return (f"{value:.0f}" if abs(value) >= 10 else f"{value:.1f}") + unit


def _target(c: dict[str, Any]) -> str:
    if c["target"] is None:
        return "–"
    if c["target_on"] == "ratio":
        return f"≤ {c['target']:g}×"
    if c["target_on"] == "extra":
        return f"extra ≤ {c['target']:g} ms"
    return f"≤ {c['target']:g} {c['unit']}"


def _verdict(c: dict[str, Any]) -> str:
    if c["error"]:
        return "**could not run**"
    if c["met"] is None:
        return "–"
    if c["met"]:
        return "met"
    if c["target_on"] == "ratio":
        return f"**missed** ({c['ratio']:.2f}×)"
    if c["target_on"] == "extra":
        return f"**missed** (+{c['median'] - c['baseline']:.0f} ms)"
    return f"**missed** (+{c['median'] - c['target']:.0f} {c['unit']})"


def markdown(body: dict[str, Any]) -> str:
    unit_of = {"ms": " ms"}
    lines = [
        "| case | median | min–max | runs | baseline | ratio | target | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in body["cases"]:
        u = unit_of.get(c["unit"], f" {c['unit']}")
        base = f"{_n(c['baseline'], ' ms')} ({c['baseline_name']})" if c["baseline"] is not None else "–"
        ratio = f"{c['ratio']:.3g}×" if c["ratio"] is not None else "–"
        spread = f"{_n(c['min'])}–{_n(c['max'])}" if c["min"] is not None and c["runs"] else "–"
        lines.append(
            f"| {c['case']} | {_n(c['median'], u)} | {spread} | {c['runs'] or '–'} | {base} | {ratio} | "
            f"{_target(c)} | {_verdict(c)} |"
        )
    m = body["machine"]
    lines.append("")
    lines.append(
        f"Measured {m['when_utc']} UTC on {m['cores']} cores, CPython {m['python']}, load average at the end "
        f"{m['loadavg_at_end'][0]:.1f}."
    )
    return "\n".join(lines)


START, END = "<!-- bench:table -->", "<!-- /bench:table -->"


def main(argv: list[str]) -> int:
    paths = [a for a in argv if not a.startswith("--")]
    text = markdown(json.loads((Path(paths[0]) if paths else RESULTS).read_text()))
    if "--readme" not in argv:
        print(text)
        return 0
    readme = RESULTS.parent.parent / "README.md"
    body = readme.read_text(encoding="utf-8")
    head, _, rest = body.partition(START)
    _, found, tail = rest.partition(END)
    if not found:
        print(f"README.md has no {START} … {END} markers", file=sys.stderr)
        return 1
    readme.write_text(f"{head}{START}\n{text}\n{END}{tail}", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
