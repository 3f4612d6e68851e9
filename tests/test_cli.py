"""The human CLI: help, version, subcommands loaded only when they run, one-line errors, exit codes 0/1/2."""

from __future__ import annotations

import argparse
import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from oidc_credentials import __version__, cli
from oidc_credentials.errors import ConfigError

from tests.harness import ROOT

COMMANDS = ROOT / "task" / "oidc_credentials" / "commands"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_help_lists_every_subcommand_with_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "--help")
    assert code == 0 and err == ""
    assert out.startswith("usage: oidc-credentials")
    flat = " ".join(out.split())
    for name, module in cli.SUBCOMMANDS.items():
        assert name in out and " ".join(importlib.import_module(module).HELP.split()) in flat
    assert "##vso[" not in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "--version") == (0, f"oidc-credentials {__version__}\n", "")


def test_usage_errors_are_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["--bogus"], ["no-such-command"], ["providers", "--nope"]):
        code, out, err = run_cli(capsys, *argv)
        assert code == 2 and out == "", argv
        assert len(err.splitlines()) == 1 and err.startswith("oidc-credentials: error: "), (argv, err)


def test_a_task_error_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from oidc_credentials.commands import providers

    def refuse(args: argparse.Namespace) -> int:
        raise ConfigError("Input 'x' is wrong.\nFix it like this:\n  {json}")

    monkeypatch.setattr(providers, "run", refuse)
    code, out, err = run_cli(capsys, "providers")
    assert (code, out) == (1, "")
    assert err == "oidc-credentials: error: Input 'x' is wrong. Fix it like this: {json}\n"


def test_unexpected_errors_are_one_line_with_the_traceback_only_in_debug(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from oidc_credentials.commands import providers

    def crash(args: argparse.Namespace) -> int:
        raise KeyError("##vso[task.setvariable variable=X]1")

    monkeypatch.setattr(providers, "run", crash)
    code, out, err = run_cli(capsys, "providers")
    assert code == 1 and out == "" and len(err.splitlines()) == 1
    assert "unexpected KeyError" in err and "--debug" in err
    assert "##vso[" not in err and "Traceback" not in err
    code, out, err = run_cli(capsys, "--debug", "providers")
    assert code == 1 and out == "" and "Traceback" in err and "##vso[" not in err


def test_providers_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "providers")
    assert code == 0 and err == ""
    assert out.splitlines()[0].split() == ["aws", "AWS", "input", "'awsConnection'"]
    code, out, _ = run_cli(capsys, "providers", "--json")
    import json

    rows = json.loads(out)
    assert {"provider": "azure", "title": "Azure", "connectionInput": "azureConnection"} in rows


def test_the_plugin_contract() -> None:
    """commands/__init__.py is the one documented line; each registered module exists and keeps the contract."""
    assert (COMMANDS / "__init__.py").read_text() == (
        '"""Subcommands of the oidc-credentials CLI: one module each, with HELP, add_arguments(parser) and '
        'run(args) -> int."""\n'
    )
    for name, module in cli.SUBCOMMANDS.items():
        assert module == f"oidc_credentials.commands.{name}"
        assert (COMMANDS / f"{name}.py").is_file(), f"{name} is registered but has no module"
        loaded = importlib.import_module(module)
        assert isinstance(loaded.HELP, str) and loaded.HELP
        assert cli.help_of(module) == loaded.HELP
        assert callable(loaded.add_arguments) and callable(loaded.run)
        parser = argparse.ArgumentParser()
        loaded.add_arguments(parser)


def test_help_imports_no_subcommand_and_a_subcommand_only_itself() -> None:
    probe = (
        "import sys; from oidc_credentials import cli\n"
        "try:\n    cli.main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('oidc_credentials.commands.'))))\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('requests', 'azure', 'jwt'))))\n"
    )
    for argv, commands in ((["--help"], ""), (["providers", "--help"], "oidc_credentials.commands.providers")):
        proc = subprocess.run(
            [sys.executable, "-c", probe, *argv], capture_output=True, text=True, check=True, cwd=ROOT / "task"
        )
        loaded, heavy = proc.stdout.splitlines()[-2:]
        assert loaded == commands and heavy == "", argv


@pytest.mark.skipif(not (Path(sys.executable).parent / "oidc-credentials").exists(), reason="not pip-installed")
def test_the_installed_script_is_the_cli() -> None:
    script = shutil.which("oidc-credentials", path=str(Path(sys.executable).parent))
    assert script
    proc = subprocess.run([script, "--help"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: oidc-credentials") and "##vso" not in proc.stdout
