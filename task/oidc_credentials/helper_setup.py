"""What the task sets up for its credential helpers: the refresh inputs, the helper's folder, its config
file and the command line an SDK runs (quoted for POSIX shells and for Windows), and the lifetime check.

The task writes everything for a helper into one private folder of its own under
``Agent.TempDirectory`` (``oidc-credentials/<random id>/``, 0700): ``helper.json`` (what to exchange and
where; never a secret), ``cache.json`` (seeded with the credentials the task just obtained, so the first
call in a later step is already warm), the SDK's own config (the AWS profile) and, only when the input
``storeAccessToken`` is true, ``access-token``. The helpers add ``cache.lock``. The post-job step deletes
the folder. See :mod:`oidc_credentials.refresh` for the cache and :mod:`oidc_credentials.modes.helper` for
the helpers.

The job access token is read by default from the later step's ``SYSTEM_ACCESSTOKEN`` (mapped with
``env: { SYSTEM_ACCESSTOKEN: $(System.AccessToken) }``): it never touches the disk unless the user opts in.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .refresh import HELPER_CONFIG

FORMAT = 1
#: Azure DevOps stops accepting a job access token about this long after the job started
CEILING_HOURS = 24
ENTRY = Path(__file__).resolve().parent.parent / "entry.py"


@dataclass(frozen=True)
class RefreshSetup:
    """The refresh inputs, read once by ``configure``; ``folder`` is "" when refresh is off."""

    enabled: bool
    #: the helper's own folder (created when the files are written)
    folder: str = ""
    python: str = ""
    entry: str = ""
    #: the job access token, only when the user opted in to storing it
    access_token: str = field(default="", repr=False)
    #: seconds later steps need the credentials for (input requiredLifetimeMinutes; 0: not said)
    needed: int = 0
    #: why refresh is off although it was asked for ("" when it is on or was turned off)
    why_off: str = ""

    def path(self, name: str) -> str:
        return os.path.join(self.folder, name)


def read_setup(agent: Any) -> RefreshSetup:
    """The inputs ``refreshCredentials``, ``storeAccessToken`` and ``requiredLifetimeMinutes``; sends nothing."""
    from .state import FOLDER

    wanted = agent.bool_input("refreshCredentials", default=True)
    store = agent.bool_input("storeAccessToken")
    needed = agent.int_input("requiredLifetimeMinutes", default=0, low=0, high=7 * 24 * 60) * 60
    if store and not wanted:
        raise ConfigError(
            "Input 'storeAccessToken' only serves refreshing credentials: set 'refreshCredentials' to true as well, "
            "or leave 'storeAccessToken' false."
        )
    if not wanted:
        return RefreshSetup(enabled=False, needed=needed)
    temp = agent.variable("Agent.TempDirectory")
    why = ""
    if not temp:
        why = "Agent.TempDirectory is not set, so there is no private place for the helper's files"
    elif not ENTRY.is_file():
        why = f"the task's entry.py is not beside its package ({ENTRY}), so there is nothing for an SDK to run"
    if why:
        return RefreshSetup(enabled=False, needed=needed, why_off=why)
    token = ""
    if store:
        token = agent.access_token()
        if not token:
            raise ConfigError(
                "Input 'storeAccessToken' is true but no job access token reached the task. In a classic pipeline, "
                "enable 'Allow scripts to access the OAuth token' on the agent job."
            )
    return RefreshSetup(
        enabled=True,
        folder=os.path.join(temp, FOLDER, "helper-" + secrets.token_hex(8)),
        python=sys.executable,
        entry=str(ENTRY),
        access_token=token,
        needed=needed,
    )


def command_line(argv: list[str], *, windows: bool) -> str:
    """One command line that runs ``argv``, for SDKs that split it themselves or hand it to a shell.

    POSIX: each argument in single quotes (``shlex.split`` and ``sh -c`` read it back the same).
    Windows: each argument in double quotes (CommandLineToArgvW, botocore's splitter and ``cmd /C`` agree).
    """
    for arg in argv:
        if any(c in arg for c in "\r\n\0"):
            raise ConfigError(f"Cannot build a helper command line: an argument holds a line break ({arg!r}).")
    if not windows:
        return " ".join(shlex.quote(arg) for arg in argv)
    for arg in argv:
        if '"' in arg or "%" in arg:
            raise ConfigError(
                f"Cannot build a helper command line for Windows: the path {arg} holds '\"' or '%', which cmd.exe would "
                "change. Move the agent's work and temp folders to a path without them, or turn refresh off."
            )
    return " ".join(f'"{arg}"' for arg in argv)


def executable_command(argv: list[str], *, windows: bool) -> str:
    """A command line for google-auth's executable source, which older releases (and gcloud's bundled copy)
    split on white space and newer ones with ``shlex.split``: no argument may hold white space, a quote or
    a backslash, so Windows paths are written with ``/`` (which Windows accepts)."""
    parts = [arg.replace("\\", "/") if windows else arg for arg in argv]
    for arg in parts:
        if not arg or any(c.isspace() or c in "'\"\\" for c in arg):
            raise ConfigError(
                f"Cannot build the Google Cloud helper command: the path {arg!r} holds white space, a quote or a "
                "backslash, which google-auth cannot pass on. Move the agent's work and temp folders (or the Python "
                "interpreter) to a path without them, or turn refresh off."
            )
    return " ".join(parts)


def executable_source(setup: RefreshSetup, *, timeout_millis: int = 60000) -> dict[str, Any]:
    """An ``external_account`` credential source that runs the ``gcp`` helper (AIP-4117). Needs
    ``GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1`` in the consumer's environment."""
    from .refresh import GCP_OUTPUT

    argv = [setup.python, setup.entry, "helper", "gcp", setup.path(HELPER_CONFIG)]
    return {
        "executable": {
            "command": executable_command(argv, windows=os.name == "nt"),
            "timeout_millis": timeout_millis,
            "output_file": setup.path(GCP_OUTPUT),
        }
    }


def helper_command(setup: RefreshSetup, provider: str) -> str:
    """The command an SDK runs: this Python, the task's entry.py, ``helper <provider> <its config file>``."""
    argv = [setup.python, setup.entry, "helper", provider, setup.path(HELPER_CONFIG)]
    return command_line(argv, windows=os.name == "nt")


#: the agent variables the helper needs to ask for an OIDC token (see oidc.request_url)
AGENT_VARIABLES = (
    "SYSTEM_COLLECTIONURI",
    "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI",
    "SYSTEM_OIDCREQUESTURI",
    "SYSTEM_TEAMPROJECTID",
    "SYSTEM_HOSTTYPE",
    "SYSTEM_PLANID",
    "SYSTEM_JOBID",
    "ENDPOINT_URL_SYSTEMVSSCONNECTION",  # the origin the job access token may go to
)


def helper_config(provider: str, agent: Any, connection_id: str, settings: Mapping[str, Any]) -> str:
    """``helper.json``: where to ask for the OIDC token and what to exchange it for. Never a secret."""
    env = {name: agent.raw[name] for name in AGENT_VARIABLES if agent.raw.get(name)}
    return json.dumps(
        {
            "format": FORMAT,
            "provider": provider,
            "connection_id": connection_id,
            "agent": env,
            "settings": dict(settings),
        },
        indent=2,
        sort_keys=True,
    )


def lifetime_warning(setup: RefreshSetup, seconds: float, what: str, *, refreshing: bool) -> str:
    """The warning the lifetime check gives now, before anything expires ("" when all is well)."""
    if not setup.needed:
        return ""
    if refreshing:
        if setup.needed > CEILING_HOURS * 3600:
            return (
                f"Input 'requiredLifetimeMinutes' asks for {setup.needed // 60} min, but Azure DevOps stops accepting "
                f"the job access token about {CEILING_HOURS} hours after the job starts, and with it every refresh. "
                "Split the work into jobs that each finish within that."
            )
        return ""
    if seconds >= setup.needed:
        return ""
    return (
        f"{what} expire in {round(seconds / 60)} min, but input 'requiredLifetimeMinutes' says later steps need them for "
        f"{setup.needed // 60} min, and refresh is off, so they will expire before the job ends. Turn "
        "'refreshCredentials' on (later steps then get fresh credentials by themselves), or request a longer duration."
    )
