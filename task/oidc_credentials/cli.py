"""The human CLI, ``oidc-credentials``: plain text for people, exit codes for scripts. Never ``##vso``.

Subcommands live in :mod:`oidc_credentials.commands`, one module each, registered in :data:`SUBCOMMANDS`.
A subcommand module exposes ``HELP: str`` (a string literal: ``--help`` reads it from the source without
importing the module), ``add_arguments(parser: argparse.ArgumentParser) -> None`` and
``run(args: argparse.Namespace) -> int``, and keeps heavy imports inside its functions. Only the module
of the subcommand that runs is imported.

Exit codes: 0 done; 1 failed (a :class:`~oidc_credentials.errors.TaskError`, or our bug); 2 usage error.
Every error is one line on stderr, ``oidc-credentials: error: ...``; ``--debug`` adds the traceback of an
unexpected one.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import sys
import traceback
from typing import NoReturn

from . import __version__
from .errors import TaskError
from .vso import neutralise

PROG = "oidc-credentials"
OK, FAILED, USAGE = 0, 1, 2

#: subcommand -> its module; one line each
SUBCOMMANDS: dict[str, str] = {
    "providers": "oidc_credentials.commands.providers",
    "verify": "oidc_credentials.commands.verify",
    "trust": "oidc_credentials.commands.trust",
    "connection": "oidc_credentials.commands.connection",
    "doctor": "oidc_credentials.commands.doctor",
    "errors": "oidc_credentials.commands.errors",
}


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's one-line usage errors (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, _line(f"{PROG}: error: {message} (see {self.prog} --help)") + "\n")


def _line(text: str) -> str:
    return neutralise(" ".join(text.split()))


def help_of(module: str) -> str:
    """A subcommand's ``HELP``, read from its source when it is a literal (no import), else imported."""
    spec = importlib.util.find_spec(module)
    loader = getattr(spec, "loader", None) if spec else None
    source = loader.get_source(module) if loader is not None and hasattr(loader, "get_source") else None
    if source:
        for node in ast.parse(source).body:
            target: ast.expr | None = node.target if isinstance(node, ast.AnnAssign) else None
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
            value = getattr(node, "value", None)
            if isinstance(target, ast.Name) and target.id == "HELP" and isinstance(value, ast.Constant):
                return str(value.value)
    return str(importlib.import_module(module).HELP)


def _chosen(argv: list[str]) -> str:
    """The subcommand argv names (its first word that is one), before parsing."""
    return next((word for word in argv if word in SUBCOMMANDS), "")


def build_parser(chosen: str = "") -> argparse.ArgumentParser:
    """The parser, with the arguments of ``chosen`` only (importing its module)."""
    parser = _Parser(
        prog=PROG,
        description="Trade an Azure Pipelines OIDC token for short-lived cloud credentials, and set up the trust.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    commands = parser.add_subparsers(dest="command", metavar="<command>", title="commands")
    for name, module in SUBCOMMANDS.items():
        text = help_of(module)
        sub = commands.add_parser(name, help=text, description=text)
        if name == chosen:
            importlib.import_module(module).add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args_list = sys.argv[1:] if argv is None else list(argv)
    try:
        chosen = _chosen(args_list)
        args = build_parser(chosen).parse_args(args_list)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else USAGE
    if not args.command:
        sys.stderr.write(f"{PROG}: error: a command is required (see {PROG} --help)\n")
        return USAGE
    try:
        code: int = importlib.import_module(SUBCOMMANDS[args.command]).run(args)
        return code
    except TaskError as exc:
        sys.stderr.write(_line(f"{PROG}: error: {exc.message}") + "\n")
        if args.debug:
            sys.stderr.write(neutralise(traceback.format_exc()))
        return FAILED
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: error: interrupted\n")
        return FAILED
    except Exception as exc:  # our bug: one line, the traceback only when asked for
        sys.stderr.write(
            _line(
                f"{PROG}: error: unexpected {type(exc).__name__}: {exc} (run with --debug for details and report this)"
            )
            + "\n"
        )
        if args.debug:
            sys.stderr.write(neutralise(traceback.format_exc()))
        return FAILED


if __name__ == "__main__":
    sys.exit(main())
