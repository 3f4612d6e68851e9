"""``oidc-credentials providers``: the providers this version supports and the input naming each connection."""

from __future__ import annotations

import argparse

HELP = "list the providers this version supports and the task input that names each one's service connection"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from ..errors import ConfigError
    from ..providers import PROVIDERS, load

    rows = []
    for name in PROVIDERS:
        try:
            provider = load(name)
        except ConfigError:
            continue  # registered, but this version does not carry it yet
        rows.append({"provider": name, "title": provider.TITLE, "connectionInput": provider.CONNECTION_INPUT})
    if args.json:
        sys.stdout.write(json.dumps(rows) + "\n")
    else:
        width = max((len(r["provider"]) for r in rows), default=8)
        for row in rows:
            sys.stdout.write(f"{row['provider']:<{width}}  {row['title']:<10}  input '{row['connectionInput']}'\n")
    return 0
