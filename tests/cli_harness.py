"""Run one CLI subcommand module in-process as the oidc-credentials dispatcher does: parse, run, map errors."""

from __future__ import annotations

import argparse
import contextlib
import io
from dataclasses import dataclass
from types import ModuleType

from oidc_credentials.errors import TaskError


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_command(module: ModuleType, argv: list[str], prog: str = "oidc-credentials") -> Result:
    parser = argparse.ArgumentParser(prog=prog)
    module.add_arguments(parser)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            args = parser.parse_args(argv)
            code = module.run(args)
        except TaskError as exc:
            print(f"oidc-credentials: error: {exc}", file=err)
            code = 1
        except SystemExit as exc:
            code = int(exc.code or 0)
    return Result(code, out.getvalue(), err.getvalue())
