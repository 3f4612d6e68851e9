"""The benchmark framework: cases, interleaved measurement, the table, bench/results.json and the chart.

A case is one figure with its baseline measured in the same run: the subject and the baseline alternate
run by run (``interleaved``), so drift on a shared machine hits both alike. Its target applies to one of:

- ``ratio``: subject median / baseline median (lower is better),
- ``median``: the subject's median in milliseconds,
- ``extra``: subject median minus baseline median, in milliseconds.

Growth series (Key Vault secrets, parallel jobs) are cases sharing a ``series`` with an ``x`` each, plus a
row holding the least-squares slope (the cost of one more secret or one more job).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
CHART = HERE / "results.png"


def runs_default(default: int) -> int:
    """BENCH_RUNS overrides every case's run count (small while developing, the defaults for the record)."""
    return int(os.environ.get("BENCH_RUNS", str(default)))


@dataclass
class Case:
    case: str
    samples: list[float] = field(default_factory=list)  # seconds
    baseline_name: str = ""
    baseline_samples: list[float] = field(default_factory=list)
    target: float | None = None
    target_on: str = "ratio"  # ratio | median | extra | none
    unit: str = "ms"
    series: str = ""
    x: float | None = None
    note: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    #: a derived figure (a slope or a formula) instead of samples: (median, min, max) in ms
    derived: tuple[float, float, float] | None = None
    derived_baseline: float | None = None
    #: how many runs a derived figure came from
    derived_runs: int | None = None

    @property
    def runs(self) -> int:
        return self.derived_runs if self.derived_runs is not None else len(self.samples)

    # -- figures, in milliseconds ------------------------------------------------------------------
    @property
    def median(self) -> float | None:
        if self.derived:
            return self.derived[0]
        return statistics.median(self.samples) * 1000 if self.samples else None

    @property
    def min(self) -> float | None:
        if self.derived:
            return self.derived[1]
        return min(self.samples) * 1000 if self.samples else None

    @property
    def max(self) -> float | None:
        if self.derived:
            return self.derived[2]
        return max(self.samples) * 1000 if self.samples else None

    @property
    def baseline(self) -> float | None:
        if self.derived_baseline is not None:
            return self.derived_baseline
        return statistics.median(self.baseline_samples) * 1000 if self.baseline_samples else None

    @property
    def ratio(self) -> float | None:
        if self.median is None or not self.baseline:
            return None
        return self.median / self.baseline

    @property
    def measured(self) -> float | None:
        """The figure the target applies to."""
        if self.target_on == "ratio":
            return self.ratio
        if self.target_on == "median":
            return self.median
        if self.target_on == "extra" and self.median is not None and self.baseline is not None:
            return self.median - self.baseline
        return None

    @property
    def met(self) -> bool | None:
        if self.error:
            return False
        if self.target is None:
            return None
        measured = self.measured
        return measured is not None and measured <= self.target

    def record(self) -> dict[str, Any]:
        def r(value: float | None, digits: int = 1) -> float | None:
            return None if value is None else round(value, digits)

        return {
            "case": self.case,
            "median": r(self.median),
            "min": r(self.min),
            "max": r(self.max),
            "runs": self.runs,
            "baseline": r(self.baseline),
            "baseline_name": self.baseline_name,
            "ratio": r(self.ratio, 3),
            "target": self.target,
            "target_on": self.target_on,
            "met": self.met,
            "unit": self.unit,
            "series": self.series or None,
            "x": self.x,
            "note": self.note,
            "error": self.error,
            "detail": self.detail,
        }


class RunFailed(RuntimeError):
    """A run of a case went wrong: the suite fails loudly instead of timing a failure."""


def interleaved(runs: int, warmup: bool = True, **subjects: Callable[[], float]) -> dict[str, list[float]]:
    """Time each callable ``runs`` times, alternating them run by run (after one untimed warm-up each)."""
    if warmup:
        for fn in subjects.values():
            fn()
    out: dict[str, list[float]] = {name: [] for name in subjects}
    for _ in range(runs):
        for name, fn in subjects.items():
            out[name].append(fn())
    return out


def timed_run(
    argv: list[str], env: Mapping[str, str], *, expect: str = "", timeout: float = 120
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Wall time of one process; a non-zero exit, a failed task or a missing ``expect`` text raises RunFailed."""
    start = time.perf_counter()
    proc = subprocess.run(argv, env=dict(env), capture_output=True, text=True, timeout=timeout, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or "result=Failed" in proc.stdout or (expect and expect not in proc.stdout):
        raise RunFailed(
            f"{' '.join(argv[:3])}… exited {proc.returncode}: {proc.stdout[-1500:]!r} {proc.stderr[-1500:]!r}"
        )
    return elapsed, proc


def slope(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares (slope, intercept) of y over x."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    k = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    return k, my - k * mx


def machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": sys.platform,
        "loadavg_at_end": [round(x, 2) for x in load],
        "when_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }


# -- output ----------------------------------------------------------------------------------------------
def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "x":
        return f"{value:.3f}x" if value < 1 else f"{value:.2f}x"
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.1f}"


def target_text(case: Case) -> str:
    if case.target is None:
        return "-"
    if case.target_on == "ratio":
        return f"<= {case.target:g}x"
    if case.target_on == "extra":
        return f"extra <= {case.target:g} ms"
    return f"<= {case.target:g} {case.unit}"


def table(cases: list[Case]) -> str:
    head = ("case", "median", "min", "max", "runs", "baseline", "ratio", "target", "met")
    rows = [head]
    for c in cases:
        met = "FAILED TO RUN" if c.error else {True: "yes", False: "NO", None: "-"}[c.met]
        unit = "" if c.unit == "ms" else f" {c.unit}"
        rows.append(
            (
                c.case,
                _fmt(c.median) + unit,
                _fmt(c.min) + (unit if c.min is not None else ""),
                _fmt(c.max) + (unit if c.max is not None else ""),
                str(c.runs) if c.runs else "-",
                _fmt(c.baseline),
                _fmt(c.ratio, "x"),
                target_text(c),
                met,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [cell.rjust(widths[i]) for i, cell in enumerate(row) if i]
        lines.append("  ".join(cells))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(cases: list[Case], path: Path = RESULTS) -> None:
    body = {"machine": machine(), "unit": "ms (wall time)", "cases": [c.record() for c in cases]}
    path.write_text(json.dumps(body, indent=2) + "\n")
