"""Providers: one module per cloud, each with the same names (the :class:`Provider` contract).

A provider module defines:

- ``TITLE`` (for the log) and ``CONNECTION_INPUT`` (the task input holding its service connection);
- ``configure(agent, endpoint) -> <Its>Config``: parse and validate every input into the provider's own
  frozen config dataclass; raises ConfigError and sends nothing;
- ``exchange(config, tokens, ctx) -> Outcome``: talk to the cloud and map the result to an
  :class:`Outcome`; returns data, prints nothing but progress through ``ctx``.

Inside, a provider is two layers: a typed wire client that knows nothing of pipelines (AWS:
``assume_role(config, token, http) -> AwsCredentials``; Azure: ``exchange_tokens(...) -> [AccessToken]``),
which helpers and the CLI reuse, and a small mapping from its result to an ``Outcome`` (``to_outcome``).

Optional post-job hook. A provider that must undo something after the job (revoke a token, ...) puts
JSON-able facts, never a secret, in ``Outcome.post``; the task records them in the post-job state file
(:mod:`oidc_credentials.state`) and the post-job step (:mod:`oidc_credentials.modes.post`) loads that
provider and calls::

    def post(data: dict[str, Any], ctx: Context) -> None

``data`` is exactly what ``Outcome.post`` held; ``ctx`` is a :class:`Context` for the post-job step
(its ``http``, ``log``, ``warn``, ``agent``). It raises TaskError to fail the post-job step.

Modules are imported only when chosen, so one provider's heavy dependencies never slow another down.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

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
    #: facts for this provider's post-job ``post(data, ctx)`` hook (JSON-able, no secrets); empty: no hook
    post: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    """What a provider may use besides its config: HTTP, progress lines, the clock, the agent env."""

    agent: AgentEnv
    http: Http
    log: Callable[[str], None]
    warn: Callable[[str], None]
    clock: Callable[[], float] = time.time


ConfigT = TypeVar("ConfigT")


class Provider(Protocol[ConfigT]):
    """What a provider module is; ``ConfigT`` is its own frozen config dataclass."""

    TITLE: str
    CONNECTION_INPUT: str

    def configure(self, agent: AgentEnv, endpoint: Endpoint) -> ConfigT: ...

    def exchange(self, config: ConfigT, tokens: TokenSource, ctx: Context) -> Outcome: ...


if TYPE_CHECKING:  # mypy proves each provider module keeps the contract with its own config type
    from . import aws as _aws
    from . import azure as _azure
    from . import gcp as _gcp
    from . import keyvault as _keyvault
    from . import vault as _vault

    _CHECKED: tuple[
        Provider[_aws.AwsConfig],
        Provider[_azure.AzureConfig],
        Provider[_keyvault.KeyVaultConfig],
        Provider[_gcp.GcpConfig],
        Provider[_vault.VaultConfig],
    ] = (_aws, _azure, _keyvault, _gcp, _vault)


def load(name: str) -> Provider[Any]:
    """The provider module for a ``provider`` input value."""
    module = PROVIDERS.get(name.strip().lower())
    if module is None:
        raise ConfigError(f"Input 'provider' must be one of {', '.join(PROVIDERS)}, got '{name}'.")
    try:
        loaded: Provider[Any] = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            raise ConfigError(f"Provider '{name}' is not available in this version of the task yet.") from exc
        raise
    return loaded
