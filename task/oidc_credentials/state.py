"""The post-job state: what the task leaves for its post-job step to undo. Never a secret.

The task writes ``state.json`` into a folder of its own under ``Agent.TempDirectory``
(``oidc-credentials/<random id>/``, one per task instance) and hands the file's path to its post-job
step as the task variable ``OIDC_CREDENTIALS_STATE`` (``##vso[task.settaskvariable]``; the agent gives it
back to the same task instance's pre- and post-job steps only, as ``VSTS_TASKVARIABLE_OIDC_CREDENTIALS_STATE``).

The file (format 1)::

    {"format": 1, "files": ["<path the task wrote>", ...], "post": {"<provider>": {<its post data>}}}

``files`` are deleted by the post-job step; for each provider in ``post`` it calls that provider's
``post(data, ctx)`` hook (see :mod:`oidc_credentials.providers`).
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

from .errors import TaskError
from .files import write_private

FORMAT = 1
#: the task variable carrying the state file's path from the task to its post-job step
TASK_VARIABLE = "OIDC_CREDENTIALS_STATE"
FOLDER = "oidc-credentials"


@dataclass
class PostState:
    files: list[str] = field(default_factory=list)
    #: provider name -> the data its post(data, ctx) hook receives
    post: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.files or self.post)

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "files": self.files, "post": self.post}, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str) -> PostState:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise TaskError(f"The post-job state file {where} is not JSON: {exc}.") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise TaskError(f"The post-job state file {where} is not format {FORMAT} of this task's state.")
        files = data.get("files") or []
        post = data.get("post") or {}
        if not (isinstance(files, list) and all(isinstance(f, str) for f in files)):
            raise TaskError(f"The post-job state file {where} has a malformed 'files' list.")
        if not (isinstance(post, dict) and all(isinstance(v, dict) for v in post.values())):
            raise TaskError(f"The post-job state file {where} has a malformed 'post' object.")
        return cls(files=list(files), post={str(k): v for k, v in post.items()})


def new_state_path(temp_directory: str) -> str:
    """A fresh per-task-instance state file path under the agent's temp directory."""
    return os.path.join(temp_directory, FOLDER, uuid.uuid4().hex, "state.json")


def save(state: PostState, path: str, root: str = "") -> None:
    """Write the state (0600, inside ``root`` when given: Agent.TempDirectory)."""
    write_private(path, state.to_json(), root=root)


def load(path: str) -> PostState:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise TaskError(f"Could not read the post-job state file {path}: {exc.strerror or exc}.") from exc
    return PostState.from_json(text, path)
