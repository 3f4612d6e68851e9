"""task/entry.py parses on old interpreters and tells the launcher to try the next one (exit 87)."""

from __future__ import annotations

import subprocess

import pytest

from tests.harness import ROOT, find_pythons

OLD = find_pythons("2.7", "3.5", "3.6", "3.7", "3.8")


@pytest.mark.skipif(not OLD, reason="no Python 2.7 or 3.5-3.8 found (set OIDC_CREDENTIALS_PYTHONS to some)")
@pytest.mark.parametrize("python", OLD)
def test_old_interpreter_exits_87_quietly(python: str) -> None:
    proc = subprocess.run([python, str(ROOT / "task" / "entry.py")], capture_output=True, text=True, check=False)
    assert proc.returncode == 87
    assert proc.stdout == "" and proc.stderr == ""


def test_missing_dependencies_fail_with_one_clear_line(tmp_path, ado, job, moto_url) -> None:  # type: ignore[no-untyped-def]
    """An interpreter without the runtime packages gets a task failure, not an ImportError traceback."""
    import sys

    from tests.test_aws_e2e import aws_job

    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    run = aws_job(job, ado, moto_url).run(extra={"OIDC_CREDENTIALS_PYTHON": str(python)})
    assert run.returncode == 0 and run.failed and len(run.errors) == 1
    assert "Traceback" not in run.stdout + run.stderr
    assert run.errors[0].startswith("OidcCredentials could not load its Python dependency 'requests'")
    assert str(python) in run.errors[0]
    assert f'{python} -m pip install "requests>=2.31"' in run.errors[0]  # an instruction that works
    assert run.variables == {}
