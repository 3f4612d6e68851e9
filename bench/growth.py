"""How cost grows: Key Vault at 10, 100 and 1,000 secrets; 1, 10 and 50 AWS task runs at once.

Key Vault: the whole task through the launcher, same stand-in knobs as the 200-secret case (20 ms per
request, 7 secrets per page), a vault per size. Parallel runs: N launchers started together against the
same Azure DevOps and STS stand-ins (as N jobs on one self-hosted machine would), timed until the last
one exits; every run must succeed. Each series gets a row with its least-squares slope: the cost of one
more secret, one more job. Sizes are interleaved run by run.
"""

from __future__ import annotations

import subprocess
import time

from bench.aws import aws_job, start_sts
from bench.keyvault import start_vault, vault_job
from bench.suite import Case, RunFailed, interleaved, runs_default, slope, timed_run
from demo.azure import start_entra
from demo.stage import Stage
from tests.harness import LAUNCHER

SECRET_COUNTS = (10, 100, 1000)
PARALLEL = (1, 10, 50)


def _series_cases(
    series: str, per: str, x_label: str, xs: tuple[int, ...], times: dict[str, list[float]]
) -> list[Case]:
    cases = [
        Case(
            f"{series}: {x} {per}{'s' if x != 1 else ''}",
            times[str(x)],
            series=series,
            x=x,
            target_on="none",
            detail={"per": per, "x_label": x_label},
        )
        for x in xs
    ]
    k, b = slope([(float(c.x or 0), c.median or 0.0) for c in cases])
    rate = Case(
        f"{series}: cost per added {per} (least-squares slope)",
        derived=(k, k, k),
        unit=f"ms/{per}",
        target_on="none",
        series=series,
        note=f"fit: {b:.0f} ms + {k:.2f} ms x {per}s",
    )
    return [*cases, rate]


def keyvault_growth(runs: int) -> list[Case]:
    stage = Stage.start()
    try:
        world = start_entra(stage)
        subjects = {}
        for count in SECRET_COUNTS:
            _vault, url = start_vault(stage, world, count)
            env = dict(vault_job(stage, world, url).env)
            expect = f"bench-secret-{count - 1:04d}"
            subjects[str(count)] = lambda env=env, expect=expect: timed_run(
                ["node", str(LAUNCHER)], env, expect=expect
            )[0]
        times = interleaved(runs, warmup=False, **subjects)
    finally:
        stage.stop()
    return _series_cases("keyvault growth", "secret", "secrets in the vault", SECRET_COUNTS, times)


def parallel_growth(runs: int) -> list[Case]:
    stage = Stage.start()
    try:
        sts = start_sts(stage)
        env = dict(aws_job(stage, sts, "aws-parallel").env)

        def together(n: int) -> float:
            start = time.perf_counter()
            procs = [
                subprocess.Popen(
                    ["node", str(LAUNCHER)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                )
                for _ in range(n)
            ]
            outs = [p.communicate(timeout=300) for p in procs]
            elapsed = time.perf_counter() - start
            bad = [o for p, o in zip(procs, outs) if p.returncode != 0 or "AWS_SESSION_TOKEN" not in o[0]]
            if bad:
                raise RunFailed(
                    f"{len(bad)} of {n} parallel task runs failed: {bad[0][0][-800:]!r} {bad[0][1][-800:]!r}"
                )
            return elapsed

        together(1)  # warm
        times = interleaved(runs, warmup=False, **{str(n): (lambda n=n: together(n)) for n in PARALLEL})
    finally:
        stage.stop()
    return _series_cases("parallel AWS task runs", "job", "task runs started together", PARALLEL, times)


def run() -> list[Case]:
    runs = runs_default(3)
    return keyvault_growth(runs) + parallel_growth(runs)
