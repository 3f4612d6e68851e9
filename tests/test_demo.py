"""`make demo` (python -m demo) leaves nothing behind in the temp directory: not when it finishes, not when
it is interrupted with Ctrl-C (SIGINT) or stopped (SIGTERM) halfway."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness import ROOT


def _demo(tmp: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, TMPDIR=str(tmp), PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "demo"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the signal goes to the demo only, like Ctrl-C to its process group
    )


def test_a_finished_demo_leaves_no_temp_folder(tmp_path: Path) -> None:
    proc = _demo(tmp_path)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "Demo finished" in out
    assert list(tmp_path.iterdir()) == [], out


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_demo_leaves_no_temp_folder(tmp_path: Path, signum: int) -> None:
    proc = _demo(tmp_path)
    assert proc.stdout is not None
    # Wait until the demo is inside its first flow: the temp folder with the CA exists and a task has run.
    lines = []
    deadline = time.monotonic() + 240
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("=== ") or time.monotonic() > deadline:
            break
    folders = [p.name for p in tmp_path.iterdir()]
    assert any(name.startswith("oidc-demo-") for name in folders), "".join(lines)
    assert any((tmp_path / name / "ca").exists() for name in folders)
    os.killpg(proc.pid, signum)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, out  # 130 for Ctrl-C, 143 for SIGTERM
    assert "Traceback" not in out
    assert list(tmp_path.iterdir()) == [], "".join(lines) + out
