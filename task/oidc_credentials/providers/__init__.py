"""Providers: one module per cloud, each with the same three names.

A provider module defines ``TITLE`` (for the log), ``CONNECTION_INPUT`` (the task input holding its
service connection), ``configure(agent, endpoint) -> config`` (parse and validate every input; raises
ConfigError, sends nothing) and ``exchange(config, tokens, ctx) -> Outcome`` (talk to the cloud; returns
data, prints nothing but progress through ``ctx``). Modules are imported only when chosen, so one
provider's heavy dependencies never slow another down.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..agent import AgentEnv, Endpoint
from ..errors import ConfigError
from ..http import Http
from ..oidc import TokenSource

#: provider name (the ``provider`` input) -> module; one line per cloud
PROVIDERS: dict[str, str] = {
    "aws": "oidc_credentials.providers.aws",
    "azure": "oidc_credentials.providers.azure",
    "keyvault": "oidc_credentials.providers.keyvault",
    "gcp": "oidc_credentials.providers.gcp",
    "vault": "oidc_credentials.providers.vault",
}


@dataclass(frozen=True)
class Variable:
    """One pipeline variable to set."""

    name: str
    value: str
    secret: bool = False
    #: the name is a cloud's own (a Key Vault secret name) and may hold "-", which setvariable accepts
    verbatim: bool = False


@dataclass(frozen=True)
class File:
    """A private file to write (mode 0600, never through a symlink) before any variable is set."""

    path: str
    content: str


@dataclass
class Outcome:
    """What an exchange produced: variables to set and facts for the log."""

    variables: list[Variable] = field(default_factory=list)
    #: who the credentials act as (role ARN, app id, ...)
    identity: str = ""
    #: when they expire, ISO 8601, or "" when they do not
    expires: str = ""
    notes: list[str] = field(default_factory=list)
    #: further values to register as secrets first (each line of a multi-line secret, ...)
    secrets: list[str] = field(default_factory=list)
    files: list[File] = field(default_factory=list)


@dataclass
class Context:
    """What a provider may use besides its config: HTTP, progress lines, the clock, the agent env."""

    agent: AgentEnv
    http: Http
    log: Callable[[str], None]
    warn: Callable[[str], None]
    clock: Callable[[], float] = time.time


class Provider(Protocol):
    TITLE: str
    CONNECTION_INPUT: str

    def configure(self, agent: AgentEnv, endpoint: Endpoint) -> Any: ...

    def exchange(self, config: Any, tokens: TokenSource, ctx: Context) -> Outcome: ...


def load(name: str) -> Provider:
    """The provider module for a ``provider`` input value."""
    module = PROVIDERS.get(name.strip().lower())
    if module is None:
        raise ConfigError(f"Input 'provider' must be one of {', '.join(PROVIDERS)}, got '{name}'.")
    try:
        loaded: Provider = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            raise ConfigError(f"Provider '{name}' is not available in this version of the task yet.") from None
        raise
    return loaded
