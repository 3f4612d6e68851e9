"""The launcher's Python discovery, with fake interpreters on PATH.

Each fake is a shell script that logs how it was called and then behaves like one kind of interpreter:
a good one (reports itself to the agent), one older than 3.9 (exit 87, what entry.py does there),
Windows' Microsoft Store alias stub (exit 9009), or one that crashes. ``run(env, platform)`` is the
launcher's own export, so the Windows search order (``py -3`` last) is exercised on this machine too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import LAUNCHER, ROOT, TaskRun, find_pythons

ENTRY = str(ROOT / "task" / "entry.py")

BEHAVIOUR = {
    "good": 'echo "##vso[task.setvariable variable=CHOSEN]${0##*/} $*"; exit 0',
    "old": "exit 87",
    "store": (
        'echo "Python was not found; run without arguments to install from the Microsoft Store, or disable this '
        'shortcut from Settings > Apps > Advanced app settings > App execution aliases."; exit 9009'
    ),
    "crash": "exit 3",
}


class Fakes:
    def __init__(self, root: Path) -> None:
        self.bin = root / "fake bin"  # a space, as in C:\Program Files
        self.bin.mkdir()
        self.log = root / "calls.log"

    def add(self, name: str, kind: str, where: Path | None = None) -> Path:
        path = (where or self.bin) / name
        log = 'echo "${0##*/} $*" >> "' + str(self.log) + '"'
        path.write_text(f"#!/bin/sh\n{log}\n{BEHAVIOUR[kind]}\n")
        path.chmod(0o755)
        return path

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def fakes(tmp_path: Path) -> Fakes:
    return Fakes(tmp_path)


#: Windows exit codes are 32-bit, POSIX ones 8-bit: on this machine the Store stub's 9009 arrives as
#: 9009 & 0xff = 49. For the "win32" runs, node's spawnSync is wrapped (before the launcher loads) to
#: give the status back its Windows value, so the launcher sees what it would see on Windows.
WINDOWS_STATUS = """
const cp = require('child_process');
const real = cp.spawnSync;
cp.spawnSync = function () {
  const result = real.apply(this, arguments);
  if (result.status === (9009 & 0xff)) result.status = 9009;
  return result;
};
"""


def launch(env: dict[str, str], platform: str) -> TaskRun:
    """The launcher's run() with this environment and platform, in a node process of its own."""
    script = f"require({json.dumps(str(LAUNCHER))}).run(process.env, {json.dumps(platform)})"
    if platform == "win32":
        script = WINDOWS_STATUS + script
    node = shutil.which("node")
    assert node, "node is needed for the launcher tests"
    proc = subprocess.run([node, "-e", script], env=env, capture_output=True, text=True, timeout=30, check=False)
    return TaskRun.from_output(proc.returncode, proc.stdout, proc.stderr)


def env_with(fakes: Fakes, **extra: str) -> dict[str, str]:
    env = {"PATH": str(fakes.bin), "HOME": str(fakes.bin.parent)}
    env.update(extra)
    return env


def test_none_on_path(fakes: Fakes) -> None:
    run = launch(env_with(fakes), "linux")
    assert run.returncode == 0 and run.failed and len(run.errors) == 1
    assert "found none: tried python3 (not found), python (not found)." in run.errors[0]
    assert "UsePythonVersion@0" in run.errors[0] and "OIDC_CREDENTIALS_PYTHON" in run.errors[0]
    assert "py -3" not in run.errors[0]  # not a Windows agent


def test_none_on_path_windows_also_tries_py(fakes: Fakes) -> None:
    run = launch(env_with(fakes), "win32")
    assert run.failed
    assert "tried python3 (not found), python (not found), py -3 (not found)." in run.errors[0]


def test_python3_is_preferred(fakes: Fakes) -> None:
    fakes.add("python3", "good")
    fakes.add("python", "good")
    run = launch(env_with(fakes), "linux")
    assert not run.failed and run.variables["CHOSEN"] == f"python3 {ENTRY}"
    assert fakes.calls() == [f"python3 {ENTRY}"]


def test_python_only(fakes: Fakes) -> None:
    fakes.add("python", "good")
    run = launch(env_with(fakes), "linux")
    assert not run.failed and run.variables["CHOSEN"] == f"python {ENTRY}"
    assert fakes.calls() == [f"python {ENTRY}"]


def test_too_old_python3_falls_through_to_python(fakes: Fakes) -> None:
    fakes.add("python3", "old")
    fakes.add("python", "good")
    run = launch(env_with(fakes), "linux")
    assert not run.failed and run.variables["CHOSEN"] == f"python {ENTRY}"
    assert fakes.calls() == [f"python3 {ENTRY}", f"python {ENTRY}"]


def test_all_too_old(fakes: Fakes) -> None:
    fakes.add("python3", "old")
    fakes.add("python", "old")
    run = launch(env_with(fakes), "linux")
    assert run.failed and len(run.errors) == 1
    assert "tried python3 (older than 3.9), python (older than 3.9)." in run.errors[0]


def test_windows_store_stubs_then_py_launcher(fakes: Fakes) -> None:
    fakes.add("python3", "store")
    fakes.add("python", "store")
    fakes.add("py", "good")
    run = launch(env_with(fakes), "win32")
    assert not run.failed, run.errors
    assert run.variables["CHOSEN"] == f"py -3 {ENTRY}"
    assert fakes.calls() == [f"python3 {ENTRY}", f"python {ENTRY}", f"py -3 {ENTRY}"]


def test_windows_store_stubs_only(fakes: Fakes) -> None:
    fakes.add("python3", "store")
    fakes.add("python", "store")
    run = launch(env_with(fakes), "win32")
    assert run.failed and len(run.errors) == 1
    assert "python3 (a Microsoft Store alias, not an installed Python)" in run.errors[0]
    assert "py -3 (not found)" in run.errors[0]


def test_py_launcher_is_windows_only(fakes: Fakes) -> None:
    fakes.add("py", "good")
    run = launch(env_with(fakes), "linux")
    assert run.failed and fakes.calls() == []


def test_oidc_credentials_python_wins(fakes: Fakes, tmp_path: Path) -> None:
    fakes.add("python3", "good")
    elsewhere = tmp_path / "Python 3.12"
    elsewhere.mkdir()
    chosen = fakes.add("python3.12", "good", where=elsewhere)
    run = launch(env_with(fakes, OIDC_CREDENTIALS_PYTHON=f"  {chosen} "), "win32")
    assert not run.failed and run.variables["CHOSEN"] == f"python3.12 {ENTRY}"
    assert fakes.calls() == [f"python3.12 {ENTRY}"]


def test_oidc_credentials_python_missing_is_not_replaced(fakes: Fakes, tmp_path: Path) -> None:
    fakes.add("python3", "good")
    missing = tmp_path / "no" / "python"
    run = launch(env_with(fakes, OIDC_CREDENTIALS_PYTHON=str(missing)), "linux")
    assert run.failed and len(run.errors) == 1
    assert f"tried OIDC_CREDENTIALS_PYTHON={missing} (not found)." in run.errors[0]
    assert fakes.calls() == []


def test_oidc_credentials_python_too_old(fakes: Fakes, tmp_path: Path) -> None:
    fakes.add("python3", "good")
    old = fakes.add("python3.8", "old", where=tmp_path)
    run = launch(env_with(fakes, OIDC_CREDENTIALS_PYTHON=str(old)), "linux")
    assert run.failed and f"tried OIDC_CREDENTIALS_PYTHON={old} (older than 3.9)." in run.errors[0]


def test_blank_oidc_credentials_python_is_ignored(fakes: Fakes) -> None:
    fakes.add("python3", "good")
    run = launch(env_with(fakes, OIDC_CREDENTIALS_PYTHON="   "), "linux")
    assert not run.failed and run.variables["CHOSEN"] == f"python3 {ENTRY}"


def test_crash_is_reported_not_retried(fakes: Fakes) -> None:
    fakes.add("python3", "crash")
    fakes.add("python", "good")
    run = launch(env_with(fakes), "linux")
    assert run.failed and "Python (python3) stopped unexpectedly with exit code 3." in run.errors[0]
    assert fakes.calls() == [f"python3 {ENTRY}"]


OLD_PYTHONS = find_pythons("3.5", "3.6", "3.7", "3.8")


@pytest.mark.skipif(not OLD_PYTHONS, reason="no Python 3.5-3.8 found (set OIDC_CREDENTIALS_PYTHONS to some)")
def test_real_old_interpreter_then_real_new_one(fakes: Fakes) -> None:
    """The real entry.py: a real 3.8 exits 87 and the launcher moves on to a real current Python."""
    os.symlink(OLD_PYTHONS[-1], fakes.bin / "python3")
    os.symlink(sys.executable, fakes.bin / "python")
    run = launch(env_with(fakes), "linux")
    # The current Python ran the task; with no inputs it reports the missing provider itself.
    assert run.returncode == 0 and run.failed and len(run.errors) == 1
    assert "provider" in run.errors[0] and "Python 3.9" not in run.errors[0]


def test_exports() -> None:
    """candidates() is what the Windows/Linux order above relies on."""
    script = (
        f"const l = require({json.dumps(str(LAUNCHER))});"
        "console.log(JSON.stringify([l.candidates({}, 'win32'), l.candidates({}, 'darwin'),"
        " l.candidates({OIDC_CREDENTIALS_PYTHON: 'C:/Py/python.exe'}, 'win32'), l.TOO_OLD]))"
    )
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True).stdout
    win, mac, chosen, too_old = json.loads(out)
    assert [c[0] for c in win] == ["python3", "python", "py"] and win[2][1] == ["-3"]
    assert [c[0] for c in mac] == ["python3", "python"]
    assert chosen == [["C:/Py/python.exe", [], "OIDC_CREDENTIALS_PYTHON=C:/Py/python.exe"]]
    assert too_old == 87
