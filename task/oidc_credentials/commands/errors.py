"""``oidc-credentials errors``: the error catalogue: what a refusal code means, whether a retry helps, the fix."""

from __future__ import annotations

import argparse

HELP = "explain a refusal code (AADSTS700213, AccessDenied, TF400813, ...) or list every code the task knows"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("code", nargs="?", default="", help="a code to explain; without it, every code is listed")
    parser.add_argument("--markdown", action="store_true", help="print the catalogue as the README's Markdown")
    parser.add_argument("--write-readme", metavar="PATH", default="", help="regenerate the catalogue section of PATH")


def run(args: argparse.Namespace) -> int:
    import sys

    from .. import catalogue
    from ..errors import ConfigError

    if args.write_readme:
        with open(args.write_readme, encoding="utf-8") as handle:
            text = handle.read()
        if catalogue.BEGIN not in text or catalogue.END not in text:
            raise ConfigError(f"{args.write_readme} has no catalogue section ({catalogue.BEGIN} ... {catalogue.END}).")
        with open(args.write_readme, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(catalogue.replace_section(text))
        return 0
    if args.markdown:
        sys.stdout.write(catalogue.markdown())
        return 0
    wanted = args.code.strip().lower()
    entries = [e for e in catalogue.ENTRIES if not wanted or e.code.lower() == wanted]
    if not entries:
        raise ConfigError(f"No service answers with code '{args.code}' in this version's catalogue.")
    for entry in entries:
        retry = "retried" if entry.retry else "not retried"
        sys.stdout.write(f"{entry.service} {entry.code} ({retry}): {entry.meaning}\n  Fix: {entry.fix}\n")
    return 0
