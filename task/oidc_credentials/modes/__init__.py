"""The ways the package runs, one boundary each, and the table the launcher's mode argument picks from.

- ``task`` (:mod:`.task`): the pipeline task; ``##vso`` logging commands out.
- ``post`` (:mod:`.post`): the task's post-job step; ``##vso`` out.
- ``helper`` (:mod:`.helper`): credential helpers that SDKs run in later steps; JSON in the calling SDK's
  format on stdout, one plain line on stderr on failure, never ``##vso``.

The human CLI is :mod:`oidc_credentials.cli`. ``task/launcher.js`` and ``task/entry.py`` pass the mode as
their first argument (none: ``task``); :func:`run` dispatches it.
"""

from __future__ import annotations

import importlib

#: mode -> module with ``launch(argv) -> int``
MODES: dict[str, str] = {
    "task": "oidc_credentials.modes.task",
    "post": "oidc_credentials.modes.post",
    "helper": "oidc_credentials.modes.helper",
}
DEFAULT = "task"


def run(argv: list[str]) -> int:
    """Run the mode ``argv[0]`` names (``task`` when argv is empty) with the rest of argv."""
    mode = argv[0] if argv else DEFAULT
    module = MODES.get(mode)
    if module is None:
        # Only the launcher calls this, with a mode of its own: an unknown one is a packaging bug.
        raise SystemExit(f"oidc-credentials: error: unknown mode '{mode}' (expected one of {', '.join(MODES)})")
    code: int = importlib.import_module(module).launch(argv[1:])
    return code
