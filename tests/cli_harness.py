"""Run one CLI subcommand in-process through the real dispatcher (``oidc_credentials.cli.main``)."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from types import ModuleType

from oidc_credentials import cli


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_command(module: ModuleType, argv: list[str]) -> Result:
    """``oidc-credentials <module's subcommand> <argv>``: exit code, stdout and stderr."""
    name = module.__name__.rsplit(".", 1)[-1]
    assert cli.SUBCOMMANDS.get(name) == module.__name__, f"{name} is not registered in cli.SUBCOMMANDS"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([name, *argv])
    return Result(code, out.getvalue(), err.getvalue())
