"""The composition root: the one exception boundary, stderr neutralising, no half-set state."""

from __future__ import annotations

import io

import pytest
from oidc_credentials import __main__ as entry
from oidc_credentials.providers import PROVIDERS

from tests.fake_provider import fake_env
from tests.harness import TaskRun


@pytest.fixture(autouse=True)
def fake_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PROVIDERS, "fake", "tests.fake_provider")


def run(mode: str, **extra: str) -> TaskRun:
    env = fake_env(mode, **extra)
    out, err = io.StringIO(), io.StringIO()
    code = entry.main(env, out, err)
    return TaskRun.from_output(code, out.getvalue(), err.getvalue())


def test_success_sets_variables() -> None:
    result = run("ok")
    assert result.returncode == 0 and not result.failed
    assert result.variables == {"FAKE_SECRET": "s3cr3t-value", "FAKE_PLAIN": "plain"}
    assert result.secret_names == {"FAKE_SECRET"}
    assert "Fake identity: fake-identity" in result.text


def test_library_logs_and_warnings_are_neutralised() -> None:
    result = run("hostile-log")
    assert not result.failed
    assert "PWNED" not in result.variables
    assert result.completions == []
    assert "Entra said" in result.stderr and "from a warning" in result.stderr
    assert "##vso[" not in result.stderr


def test_unexpected_error_has_no_traceback() -> None:
    result = run("crash")
    assert result.returncode == entry.FAILED and result.failed
    assert result.errors == ["Unexpected KeyError: 'boom'. Set System.Debug to true for details and report this."]
    assert "Traceback" not in result.stdout + result.stderr


def test_unexpected_error_traceback_with_debug() -> None:
    result = run("crash", SYSTEM_DEBUG="true")
    assert result.failed
    assert any("Traceback" in line and "KeyError" in line for line in result.log if line.startswith("##[debug]"))


@pytest.mark.parametrize(
    ("mode", "fragment"), [("multiline", "'SECOND' spans several lines"), ("bad-name", "'my-db-password'")]
)
def test_nothing_is_set_unless_everything_can_be(mode: str, fragment: str) -> None:
    result = run(mode)
    assert result.failed and fragment in result.errors[0]
    assert result.variables == {}
    assert "task.setvariable" not in result.stdout


def test_files_are_written_all_or_none(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    result = run("files-fail", AGENT_TEMPDIRECTORY=str(tmp_path))
    assert result.failed and "symbolic link" in result.errors[0]
    assert result.variables == {}
    assert not (tmp_path / "ok" / "one").exists()
    assert list((tmp_path / "elsewhere").iterdir()) == []
