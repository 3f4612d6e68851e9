"""Run every flow against the local stand-ins and show what a pipeline log would show."""

from __future__ import annotations

import importlib
import logging
import signal
import sys
import time
from types import FrameType

from demo.stage import Stage

#: one module per flow, each with run(stage); they raise SystemExit when something is wrong
FLOWS = ["demo.aws", "demo.azure", "demo.keyvault", "demo.gcp", "demo.vault"]


def _terminated(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # Ctrl-C raises KeyboardInterrupt and a kill raises SystemExit: either way the finally below
    # removes the demo's temp folder (its CA key and certificates) before the process ends.
    signal.signal(signal.SIGTERM, _terminated)
    started = time.monotonic()
    stage: Stage | None = None
    try:
        stage = Stage.start()
        for name in FLOWS:
            importlib.import_module(name).run(stage)  # type: ignore[attr-defined]
    except KeyboardInterrupt:
        print("\nDemo interrupted: stopping its servers and removing its temp folder.", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        if stage is not None:
            stage.stop()
    print(f"\nDemo finished in {time.monotonic() - started:.1f} s: every flow behaved as shown above.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
