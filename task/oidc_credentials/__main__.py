"""``python -m oidc_credentials``: the task mode (what the pipeline step runs); see :mod:`.modes.task`.

The human CLI is ``oidc-credentials`` (:mod:`.cli`); the launcher picks other modes through :mod:`.modes`.
"""

from __future__ import annotations

import sys

from .emit import RunRecord, check, emit
from .modes.task import FAILED, OK, main, run

__all__ = ["FAILED", "OK", "RunRecord", "check", "emit", "main", "run"]

if __name__ == "__main__":
    sys.exit(main())
