"""bench/results.png: one panel per case (its figure against its target), one per growth series."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

from bench.suite import CHART, Case, slope, target_text

GOOD, BAD, NEUTRAL, BASE = "#2e7d32", "#c62828", "#1565c0", "#9e9e9e"


def _panels(cases: list[Case]) -> list[list[Case]]:
    """Single cases one per panel; the points of a growth series (and its slope row) share one."""
    panels: list[list[Case]] = []
    series: dict[str, list[Case]] = {}
    for case in cases:
        if case.series:
            if case.series not in series:
                series[case.series] = []
                panels.append(series[case.series])
            series[case.series].append(case)
        else:
            panels.append([case])
    return panels


def _title(text: str) -> str:
    return "\n".join(textwrap.wrap(text, 44))


def _single(ax: Any, case: Case) -> None:
    ax.set_title(_title(case.case), fontsize=8)
    if case.error:
        ax.text(
            0.5,
            0.5,
            "FAILED TO RUN\n" + "\n".join(textwrap.wrap(case.error, 48)[:6]),
            ha="center",
            va="center",
            color=BAD,
            fontsize=7,
            transform=ax.transAxes,
        )
        ax.set_xticks([]), ax.set_yticks([])
        return
    colour = NEUTRAL if case.met is None else (GOOD if case.met else BAD)
    if case.target_on == "ratio" and case.ratio is not None:
        ax.barh([0], [case.ratio], color=colour, height=0.5)
        ax.axvline(1.0, color=BASE, lw=1, ls=":")
        label = f"{case.ratio:.3g}x of {case.baseline_name or 'baseline'}"
        limit = max(case.ratio, case.target or 0, 1.0) * 1.25
        ax.set_xlabel("ratio to baseline (lower is better)", fontsize=7)
        value = case.ratio
    else:
        value = case.measured if case.target_on == "extra" else case.median
        value = value or 0.0
        bars = [value]
        names = ["extra" if case.target_on == "extra" else "median"]
        if case.baseline is not None and case.target_on != "extra":
            bars.append(case.baseline)
            names.append(case.baseline_name or "baseline")
        ax.barh(range(len(bars)), bars, color=[colour] + [BASE] * (len(bars) - 1), height=0.5)
        ax.set_yticks(range(len(bars)), ["\n".join(textwrap.wrap(n, 18)) for n in names], fontsize=6)
        label = f"{value:.0f} {case.unit}"
        limit = max([*bars, case.target or 0]) * 1.3 or 1.0
        ax.set_xlabel(case.unit + (" (first run minus second run)" if case.target_on == "extra" else ""), fontsize=7)
    if case.target is not None:
        ax.axvline(case.target, color=BAD, lw=1.5, ls="--", label=f"target {target_text(case)}")
        ax.legend(fontsize=6, loc="lower right")
    ax.set_xlim(0, limit)
    ax.text(value, 0, " " + label, va="center", fontsize=7)
    if case.target_on == "ratio":
        ax.set_yticks([])
    ax.tick_params(labelsize=6)


def _series(ax: Any, cases: list[Case]) -> None:
    points = [c for c in cases if c.x is not None and c.median is not None]
    failed = [c for c in cases if c.error]
    ax.set_title(_title(cases[0].series), fontsize=8)
    if failed or len(points) < 2:
        why = failed[0].error if failed else "too few points"
        ax.text(
            0.5,
            0.5,
            "FAILED TO RUN\n" + "\n".join(textwrap.wrap(why, 48)[:6]),
            ha="center",
            va="center",
            color=BAD,
            fontsize=7,
            transform=ax.transAxes,
        )
        return
    xs = [c.x for c in points]
    ys = [c.median for c in points]
    ax.plot(xs, ys, "o-", color=NEUTRAL)
    k, b = slope([(float(x), float(y)) for x, y in zip(xs, ys)])
    ax.plot([min(xs), max(xs)], [b + k * min(xs), b + k * max(xs)], ls="--", color=BASE, lw=1)
    ax.set_xlabel(points[0].detail.get("x_label", "x"), fontsize=7)
    ax.set_ylabel("ms (median wall time)", fontsize=7)
    per = points[0].detail.get("per", "unit")
    ax.text(0.03, 0.92, f"+{k:.1f} ms per added {per}", transform=ax.transAxes, fontsize=7)
    for x, y in zip(xs, ys):
        ax.annotate(f"{y:.0f}", (x, y), textcoords="offset points", xytext=(0, 5), fontsize=6, ha="center")
    ax.tick_params(labelsize=6)


def draw(cases: list[Case], path: Path = CHART, subtitle: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _panels(cases)
    cols = 3
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 4.2, rows * 2.3), squeeze=False)
    for ax, group in zip(axes.flat, panels):
        if group[0].series:
            _series(ax, group)
        else:
            _single(ax, group[0])
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(
        "OidcCredentials benchmarks (green: target met, red: missed or failed, blue: no target)"
        + (f"\n{subtitle}" if subtitle else ""),
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
