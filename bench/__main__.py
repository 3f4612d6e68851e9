"""Run every benchmark and print its figures. `make bench`; `python -m bench aws` runs one."""

from __future__ import annotations

import importlib
import logging
import sys

#: one module per benchmark, each with main() -> None printing its figures and targets
BENCHES = {
    "aws": "bench.aws",
    "azure": "bench.azure",
    "keyvault": "bench.keyvault",
    "firstrun": "bench.firstrun",
    "verify": "bench.verify",
}


def main(argv: list[str]) -> int:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    chosen = argv or list(BENCHES)
    for name in chosen:
        print(f"## {name}")
        importlib.import_module(BENCHES[name]).main()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
