"""Run one command and report its wall time, the time of its last ``setvariable`` line, and peak RSS.

Run as its own small process (``python bench/measure.py <argv...>``): on Linux a child's peak RSS
starts from its parent's at fork, so measuring from the large benchmark process would report that.
Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    last_variable = 0.0
    failed = ""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("##vso[task.setvariable"):
            last_variable = time.perf_counter() - start
        if line.startswith("##vso[task.complete result=Failed"):
            failed = line.strip()
    _pid, status, usage = os.wait4(proc.pid, 0)
    total = time.perf_counter() - start
    print(
        json.dumps(
            {
                "last_variable": last_variable,
                "total": total,
                "maxrss_kib": usage.ru_maxrss,
                "exit": os.waitstatus_to_exitcode(status),
                "failed": failed,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
