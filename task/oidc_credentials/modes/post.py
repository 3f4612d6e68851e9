"""The post-job mode: undo what the task left behind, from the state it recorded (:mod:`..state`).

The agent runs it after every step of the job (``postjobexecution`` in task.json -> ``task/post.js``),
for each instance of this task that ran. It deletes every file the task wrote, then calls the
``post(data, ctx)`` hook of each provider that recorded post data, and removes the state itself. A task
that wrote nothing recorded nothing, and this step says so and succeeds. ``##vso`` out, like the task.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Mapping
from typing import TextIO

from .. import __version__
from ..agent import AgentEnv
from ..errors import TaskError
from ..files import inside
from ..providers import Context, load
from ..state import FOLDER, TASK_VARIABLE, PostState
from ..state import load as load_state
from ..vso import AgentOutput
from .boundary import run_in_agent


def _state_path(agent: AgentEnv) -> str:
    """The state file the task recorded, refused unless it lies in this job's own state folder."""
    path = agent.task_variable(TASK_VARIABLE)
    if not path:
        return ""
    temp = agent.variable("Agent.TempDirectory")
    root = os.path.realpath(os.path.join(temp, FOLDER)) if temp else ""
    real = os.path.realpath(path)
    if not root or os.path.commonpath([root, real]) != root or os.path.basename(real) != "state.json":
        raise TaskError(
            f"The post-job state path {path} is not a state file under Agent.TempDirectory/{FOLDER}; nothing was "
            "cleaned up."
        )
    return real


def remove_files(state: PostState, out: AgentOutput, temp: str = "") -> int:
    """Delete each file the task wrote (a missing one is already gone); returns how many were deleted.

    Only inside ``temp`` (Agent.TempDirectory) when given, where the task writes: a path elsewhere in the
    state is left alone with a warning.
    """
    removed = 0
    for path in state.files:
        if temp and not inside(path, temp):
            out.warning(f"Not deleting {path}: it is outside Agent.TempDirectory, where the task writes its files.")
            continue
        try:
            os.remove(path)
            removed += 1
        except FileNotFoundError:
            out.debug(f"Already gone: {path}")
        except OSError as exc:
            raise TaskError(f"Could not delete {path}, which the task wrote: {exc.strerror or exc}.") from exc
    return removed


def remove_folders(state: PostState, path: str, temp: str) -> None:
    """Delete the folders the task's files are in (with what helpers added there: caches, locks), then the
    state folder, then ``Agent.TempDirectory/oidc-credentials`` once no other task instance uses it."""
    root = os.path.realpath(os.path.join(temp, FOLDER)) if temp else ""
    folders = {os.path.dirname(os.path.realpath(f)) for f in state.files} | {os.path.dirname(path)}
    for folder in sorted(folders):
        # only a folder of our own, strictly inside the root, never through a symbolic link
        if root and os.path.commonpath([root, folder]) == root and folder != root and not os.path.islink(folder):
            shutil.rmtree(folder, ignore_errors=True)
    if root:
        with contextlib.suppress(OSError):
            os.rmdir(root)  # only when empty: another instance's post-job step may still come


def run(agent: AgentEnv, out: AgentOutput) -> None:
    path = _state_path(agent)
    if not path:
        out.info("OidcCredentials post-job: the task recorded nothing to clean up.")
        return
    state = load_state(path)
    removed = remove_files(state, out, agent.variable("Agent.TempDirectory"))
    out.info(f"OidcCredentials post-job: deleted {removed} file(s) the task wrote.")
    if state.post:
        from ..http import Http
        from .task import task_deadline

        http = Http(agent.raw, log=out.info, user_agent=f"OidcCredentials/{__version__}", deadline=task_deadline(agent))
        try:
            ctx = Context(agent=agent, http=http, log=out.info, warn=out.warning)
            for name, data in state.post.items():
                hook = getattr(load(name), "post", None)
                if hook is None:
                    out.warning(f"Provider '{name}' recorded post-job data but has no post-job step; skipped.")
                    continue
                hook(data, ctx)
        finally:
            http.close()
    remove_folders(state, path, agent.variable("Agent.TempDirectory"))


def main(env: Mapping[str, str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    return run_in_agent(run, env, stdout, stderr)


def launch(argv: list[str]) -> int:
    """The launcher's entry (``task/post.js``)."""
    return main()
