"""Run every benchmark, print one table, write bench/results.json and bench/results.png.

`make bench` runs them all; `python -m bench aws keyvault` runs some (BENCH_RUNS=3 for a quick look;
a partial run writes its results beside the record, to bench/results-partial.*). A case that cannot
run is a row marked FAILED TO RUN and a non-zero exit: nothing is skipped silently.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import sys
import time
import traceback
import types

from bench.suite import CHART, RESULTS, Case, machine, table, write_json

#: one module per area, each with run() -> list[Case] (or main() printing its figures: see _run_module)
BENCHES = {
    "aws": "bench.aws",
    "azure": "bench.azure",
    "keyvault": "bench.keyvault",
    "startup": "bench.startup",
    "helper": "bench.helper",
    "firstrun": "bench.firstrun",
    "growth": "bench.growth",
    "verify": "bench.verify",
}


def _run_module(name: str, module: types.ModuleType) -> list[Case]:
    """run() -> cases; a module that only has main() (it prints its own figures) is run and recorded as one
    row without a target, its output kept in results.json, until it returns cases of its own."""
    if hasattr(module, "run"):
        cases: list[Case] = module.run()
        return cases
    out = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out):
        module.main()
    print(out.getvalue(), end="")
    return [
        Case(
            f"{name}: printed figures (see results.json detail.output)",
            [time.perf_counter() - start],
            target_on="none",
            note="a main()-only module: its figures are not in the table yet",
            detail={"output": out.getvalue().splitlines()},
        )
    ]


def main(argv: list[str]) -> int:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    unknown = [name for name in argv if name not in BENCHES]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHES)}", file=sys.stderr)
        return 2
    chosen = argv or list(BENCHES)
    cases: list[Case] = []
    for name in chosen:
        start = time.perf_counter()
        print(f"## {name} ...", flush=True)
        cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        try:
            got = _run_module(name, importlib.import_module(BENCHES[name]))
        except Exception as exc:  # a case that cannot run is a failed row, never a silent skip
            traceback.print_exc()
            got = [Case(f"{name}: could not run", error=f"{type(exc).__name__}: {exc}")]
        finally:
            if cores is not None:  # a module may pin itself to one core; the next one gets them all back
                os.sched_setaffinity(0, cores)
        cases.extend(got)
        print(f"   {len(got)} case(s) in {time.perf_counter() - start:.0f} s", flush=True)
    results, chart = RESULTS, CHART
    if argv:
        results = RESULTS.with_name("results-partial.json")
        chart = CHART.with_name("results-partial.png")
    print()
    print(table(cases))
    m = machine()
    print(f"\nmachine: {m['cores']} cores, Python {m['python']}, load average {m['loadavg_at_end']}")
    write_json(cases, results)
    from bench.chart import draw

    draw(cases, chart, subtitle=f"{m['when_utc']} UTC, {m['cores']} cores, Python {m['python']}")
    print(f"wrote {results.relative_to(results.parent.parent)} and {chart.relative_to(chart.parent.parent)}")
    failed = [c for c in cases if c.error]
    if failed:
        print(f"\nFAILED TO RUN ({len(failed)}):", file=sys.stderr)
        for c in failed:
            print(f"  - {c.case}: {c.error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
