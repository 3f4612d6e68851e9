"""Run every flow against the local stand-ins and show what a pipeline log would show."""

from __future__ import annotations

import importlib
import logging
import sys
import time

from demo.stage import Stage

#: one module per flow, each with run(stage); they raise SystemExit when something is wrong
FLOWS = ["demo.aws", "demo.azure", "demo.keyvault", "demo.gcp", "demo.vault"]


def main() -> int:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    stage = Stage.start()
    started = time.monotonic()
    try:
        for name in FLOWS:
            importlib.import_module(name).run(stage)  # type: ignore[attr-defined]
    finally:
        stage.stop()
    print(f"\nDemo finished in {time.monotonic() - started:.1f} s: every flow behaved as shown above.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
