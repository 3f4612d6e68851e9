"""Secrets to pipeline variables: the one policy every secret source (Key Vault, Vault, ...) follows.

Whoever can write a secret into a vault chooses its *name*, so a name from a vault is untrusted text:

- **Protected names.** No variable derived from a secret name (the name itself, its environment alias)
  may land in the agent's namespaces (``System.``, ``Agent.``, ``Build.``, ``Release.``, ``Pipeline.``,
  ``Environment.``, ``Resources.``, ``Task.``, ``Common.``, ``TF_BUILD``) or start with a reserved
  prefix (``endpoint``, ``input``, ``secret``, ``path``, ``securefile``). Names are compared the way the
  agent compares them: case-insensitively, with ``.``, ``-`` and spaces the same as ``_``. Such a
  secret is skipped with a warning, or fails the task when it was asked for by name.
- **Plain variables.** The only plain (non-secret) variables named from vault content are the paths of
  multi-line secrets written to files, and they live under the source's own prefix
  (``KEYVAULT_FILE_<ALIAS>``), so no name a tool reads (``SSL_CERT_FILE``, ``PIP_CONFIG_FILE``, ...)
  can be chosen from a vault.
- **Multi-line values** (the agent refuses them as secret variables): ``fail``, ``base64`` (the
  variable holds the base64 of the value) or ``file`` (a private file, its path in the plain variable).
- **Registration** (:func:`registrable`): the whole value (a secret variable's value is registered by
  the agent itself), its base64 form when one is set, and each line of a multi-line value, except
  fragments under :data:`MIN_REGISTERED` characters or without a letter or digit: masking ``{`` or a
  space would blank it out of every later log line of the job.

API: :func:`plan` turns ``(name, value)`` pairs into :class:`Planned` variables, files and secrets;
:func:`protected` and :func:`env_alias` answer for one name; :func:`env_hint` is the ``env:`` block the
log shows. A secret source uses it like this (Key Vault does)::

    policy = secret_vars.Policy(prefix="VAULT", aliases=..., multiline=..., folder=<private dir>)
    planned = secret_vars.plan(pairs, policy, requested=<names asked for>, warn=ctx.warn)
    return Outcome(variables=planned.variables, secrets=planned.secrets, files=planned.files, notes=planned.notes)
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .errors import ConfigError
from .providers import File, Variable
from .text import env_name
from .vso import check_variable_name

#: the agent's own namespaces (compared after :func:`agent_key`)
AGENT_NAMESPACES = ("system_", "agent_", "build_", "release_", "pipeline_", "environment_", "resources_", "task_")
AGENT_NAMESPACES_EXTRA = ("common_",)
#: names the agent sets without a namespace
AGENT_NAMES = ("tf_build",)
#: prefixes the agent reserves for what it passes to tasks
RESERVED_PREFIXES = ("endpoint", "input", "secret", "path", "securefile")
#: registered fragments shorter than this are skipped (see module docstring)
MIN_REGISTERED = 4
MULTILINE_CHOICES = ("fail", "base64", "file")


def agent_key(name: str) -> str:
    """A name as the agent compares it: lower case, ``.``, ``-`` and spaces as ``_``."""
    return re.sub(r"[.\- ]", "_", name).lower()


def env_alias(name: str) -> str:
    """The environment-safe alias of a secret name: ``my-db-password`` -> ``MY_DB_PASSWORD``."""
    return env_name(name)


def protected(name: str) -> str:
    """Why a variable named from vault content may not be called ``name`` ("" when it may)."""
    key = agent_key(name)
    if key.startswith(AGENT_NAMESPACES + AGENT_NAMESPACES_EXTRA) or key in AGENT_NAMES:
        return "it would shadow a variable of the agent's namespaces (System., Agent., Build., ...)"
    if key.startswith(RESERVED_PREFIXES):
        return "names starting with endpoint, input, secret, path or securefile are reserved by the agent"
    syntax = check_variable_name(name, allow_dash=True)
    return syntax or ""


def registrable(value: str, *derived: str) -> list[str]:
    """What to register with the masker for a secret value: the value, derived forms, and each line that matters."""
    out: list[str] = []
    multiline = "\n" in value or "\r" in value
    lines = [line.strip() for line in value.replace("\r", "\n").split("\n")] if multiline else []
    # A whole multi-line value is not registered: the agent masks line by line, so it could never match.
    for item in ([] if multiline else [value]) + [*derived, *lines]:
        if _worth_masking(item) and item not in out:
            out.append(item)
    return out


def _worth_masking(text: str) -> bool:
    stripped = text.strip()
    return len(stripped) >= MIN_REGISTERED and any(ch.isalnum() for ch in stripped)


@dataclass(frozen=True)
class Policy:
    """How one secret source turns secrets into variables."""

    #: the source's own prefix for plain variables named from content (``KEYVAULT`` -> ``KEYVAULT_FILE_<ALIAS>``)
    prefix: str
    aliases: bool = False
    multiline: str = "fail"
    #: the private folder for ``file`` (created only when a file is written)
    folder: str = ""
    #: what the source calls the input that selects secrets, for messages
    filter_input: str = "secretsFilter"


@dataclass
class Planned:
    variables: list[Variable] = field(default_factory=list)
    #: private files to write before any variable is set
    files: list[File] = field(default_factory=list)
    #: values to register with the masker first
    secrets: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: (name, why) of secrets not set
    refused: list[tuple[str, str]] = field(default_factory=list)


def file_variable(policy: Policy, name: str) -> str:
    return f"{policy.prefix}_FILE_{env_alias(name).lstrip('_')}"


def plan(
    secrets: Iterable[tuple[str, str]],
    policy: Policy,
    *,
    requested: Iterable[str] = (),
    warn: Callable[[str], None] = lambda _m: None,
) -> Planned:
    """Variables, files and registrations for ``(name, value)`` pairs; raises ConfigError for a requested name refused."""
    wanted = {n.lower() for n in requested}
    result = Planned()
    items = sorted(secrets, key=lambda item: item[0].lower())
    for name, _value in items:
        why = protected(name)
        if not why and policy.aliases:
            alias_why = protected(env_alias(name))
            why = f"its alias {env_alias(name)}: {alias_why}" if alias_why else ""
        if why:
            result.refused.append((name, why))
    refused = {name for name, _ in result.refused}
    asked = [(name, why) for name, why in result.refused if name.lower() in wanted]
    if asked:
        raise ConfigError(
            f"Secret(s) {', '.join(name for name, _ in asked)} cannot become pipeline variables: "
            + "; ".join(f"{name}: {why}" for name, why in asked)
            + ". A name from a vault must not choose a variable of the agent or a reserved name: rename the secret "
            "in the vault."
        )
    if result.refused:
        warn(
            "Not set, because a variable named from the vault may not shadow the agent's or use a reserved name: "
            + ", ".join(f"{name} ({why})" for name, why in result.refused)
        )
    usable = [(n, v) for n, v in items if n not in refused]
    multiline = [n for n, v in usable if "\n" in v or "\r" in v]
    if multiline and policy.multiline == "fail":
        raise ConfigError(
            f"Secret(s) {', '.join(multiline)} hold several lines, which the agent refuses as secret variables. Set "
            "input 'multilineSecrets' to base64 (the variable holds the value base64-encoded) or file (the value goes "
            f"to a private file in Agent.TempDirectory, its path in {policy.prefix}_FILE_<NAME>), or select other "
            "secrets."
        )
    seen: dict[str, str] = {}
    for name, value in usable:
        names = [name]
        alias = env_alias(name)
        with_alias = policy.aliases and alias.upper() != name.upper()
        if name in multiline and policy.multiline == "file":
            names = [file_variable(policy, name)]
        elif with_alias:
            names.append(alias)
        for produced in names:
            other = seen.setdefault(agent_key(produced), name)
            if other != name:
                raise ConfigError(
                    f"Secrets '{other}' and '{name}' would both set variable '{produced}' (the agent does not tell "
                    f"'.', '-', '_' or letter case apart). Select only one of them in input '{policy.filter_input}'."
                )
        if name in multiline:
            encoded = base64.b64encode(value.encode("utf-8")).decode("ascii")
            result.secrets += registrable(value, encoded)
            if policy.multiline == "base64":
                result.variables.append(Variable(name, encoded, secret=True, verbatim=True))
                if with_alias:
                    result.variables.append(Variable(alias, encoded, secret=True))
                result.notes.append(f"{name}: several lines, set base64-encoded")
            else:
                path = os.path.join(policy.folder, env_alias(name).lstrip("_") or "secret")
                result.files.append(File(path, value))
                variable = file_variable(policy, name)
                result.variables.append(Variable(variable, path))
                result.notes.append(f"{name}: several lines, written to {path} ($({variable}))")
            continue
        result.secrets += [s for s in registrable(value) if s != value]
        result.variables.append(Variable(name, value, secret=True, verbatim=True))
        if with_alias:
            result.variables.append(Variable(alias, value, secret=True))
    return result


def env_hint(names: Iterable[str]) -> str:
    """A YAML ``env:`` block mapping every secret variable, one key each, valid to paste under a script step."""
    lines: list[str] = []
    keys: set[str] = set()
    for name in names:
        key = env_alias(name)
        if key in keys:
            continue
        keys.add(key)
        lines.append(f"  {key}: $({name})")
    return "env:\n" + "\n".join(lines)
