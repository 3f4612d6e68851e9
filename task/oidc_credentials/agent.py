"""The agent boundary, inward: inputs, endpoints and variables exactly as the agent passes them.

The Node handler puts everything in the task's environment (platform.md §4):

- ``INPUT_<NAME>``: each input, the name upper-cased with ``.`` and spaces turned into ``_``;
- ``<VAR_NAME>`` / ``SECRET_<VAR_NAME>``: public and secret variables, mangled the same way;
- ``ENDPOINT_URL_<id>``, ``ENDPOINT_AUTH_<id>`` (JSON), ``ENDPOINT_AUTH_SCHEME_<id>``,
  ``ENDPOINT_AUTH_PARAMETER_<id>_<KEY>``, ``ENDPOINT_DATA_<id>[_<KEY>]`` for each connection that an
  input references (``<id>`` is the lowercase GUID) and for ``SYSTEMVSSCONNECTION``.

This is the only module that reads ``os.environ``; everything else takes the typed values it returns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import ConfigError

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


def mangle(name: str) -> str:
    """The agent's ``ConvertToEnvVariableFormat``: dots and spaces to ``_``, upper case."""
    return name.replace(".", "_").replace(" ", "_").upper()


@dataclass(frozen=True)
class Endpoint:
    """A service connection as the agent hands it to the task."""

    id: str
    url: str
    scheme: str
    #: auth parameters, keys upper-cased (``TENANTID``, ``ROLEARN``, ...)
    params: Mapping[str, str] = field(default_factory=dict)
    #: endpoint data, keys upper-cased (``ENVIRONMENT``, ``SUBSCRIPTIONID``, ...)
    data: Mapping[str, str] = field(default_factory=dict)

    def param(self, key: str) -> str:
        return self.params.get(key.upper(), "").strip()

    def datum(self, key: str) -> str:
        return self.data.get(key.upper(), "").strip()


class AgentEnv:
    """Typed, read-only access to what the agent passed in the environment."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = dict(env)

    @property
    def raw(self) -> Mapping[str, str]:
        return self._env

    # -- inputs -------------------------------------------------------------------------------
    def input(self, name: str, *, required: bool = False, default: str = "") -> str:
        value = self._env.get("INPUT_" + mangle(name), "").strip()
        if not value:
            if required:
                raise ConfigError(f"Input '{name}' is required but empty. Set it in the task's inputs.")
            return default
        return value

    def bool_input(self, name: str, *, default: bool = False) -> bool:
        raw = self.input(name)
        if not raw:
            return default
        lowered = raw.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(f"Input '{name}' must be true or false, got '{raw}'.")

    def int_input(self, name: str, *, default: int, low: int, high: int) -> int:
        raw = self.input(name)
        if not raw:
            return default
        try:
            value = int(raw, 10)
        except ValueError as exc:
            raise ConfigError(f"Input '{name}' must be a whole number from {low} to {high}, got '{raw}'.") from exc
        if not low <= value <= high:
            raise ConfigError(f"Input '{name}' must be from {low} to {high}, got {value}.")
        return value

    def list_input(self, name: str) -> list[str]:
        """Comma- or newline-separated items, trimmed, empty ones dropped."""
        return [item.strip() for item in re.split(r"[,\n]", self.input(name)) if item.strip()]

    # -- variables ----------------------------------------------------------------------------
    def variable(self, name: str, default: str = "") -> str:
        key = mangle(name)
        return self._env.get(key) or self._env.get("SECRET_" + key) or default

    def task_variable(self, name: str) -> str:
        """A task variable this task instance set (``##vso[task.settaskvariable]``), in its pre/post-job step."""
        return self._env.get("VSTS_TASKVARIABLE_" + mangle(name), "")

    @property
    def debug(self) -> bool:
        return self.variable("System.Debug").strip().lower() == "true"

    # -- endpoints ----------------------------------------------------------------------------
    def connection_id(self, input_name: str, *, required: bool = True) -> str:
        """The GUID of the service connection an input references."""
        value = self.input(input_name, required=required)
        if not value:
            return ""
        if not GUID.match(value):
            raise ConfigError(
                f"Input '{input_name}' must name a service connection, which the agent passes to the task as "
                f"its GUID, but it holds '{value}'. Pick an existing connection of the right type for "
                f"'{input_name}' (YAML: the connection's name; the agent resolves it), check that the connection "
                "exists in this project and that this pipeline is authorised to use it."
            )
        return value.lower()

    def endpoint(self, endpoint_id: str, *, input_name: str = "") -> Endpoint:
        key = endpoint_id if endpoint_id == "SYSTEMVSSCONNECTION" else endpoint_id.lower()
        url = self._env.get(f"ENDPOINT_URL_{key}")
        auth_json = self._env.get(f"ENDPOINT_AUTH_{key}")
        scheme = self._env.get(f"ENDPOINT_AUTH_SCHEME_{key}", "")
        params: dict[str, str] = {}
        if auth_json:
            try:
                parsed = json.loads(auth_json)
                scheme = scheme or str(parsed.get("scheme") or "")
                params.update({str(k).upper(): str(v) for k, v in (parsed.get("parameters") or {}).items()})
            except (ValueError, AttributeError):
                pass
        prefix = f"ENDPOINT_AUTH_PARAMETER_{key}_"
        params.update({k[len(prefix) :].upper(): v for k, v in self._env.items() if k.startswith(prefix)})
        data: dict[str, str] = {}
        prefix = f"ENDPOINT_DATA_{key}_"
        data.update({k[len(prefix) :].upper(): v for k, v in self._env.items() if k.startswith(prefix)})
        if url is None and not params and not scheme:
            where = f" referenced by input '{input_name}'" if input_name else ""
            raise ConfigError(
                f"The agent passed no details for service connection {endpoint_id}{where}. "
                "The agent passes only connections that a task input references: check that the connection "
                "exists, that this pipeline is authorised to use it, and that the input names it."
            )
        return Endpoint(id=key, url=(url or "").strip(), scheme=scheme, params=params, data=data)

    def access_token(self) -> str:
        """The job access token: the SystemVssConnection endpoint, else the System.AccessToken variable."""
        token = self._env.get("ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN", "").strip()
        if not token:
            auth = self._env.get("ENDPOINT_AUTH_SYSTEMVSSCONNECTION")
            if auth:
                try:
                    token = str(json.loads(auth)["parameters"]["AccessToken"]).strip()
                except (ValueError, KeyError, TypeError):
                    token = ""
        return token or self.variable("System.AccessToken").strip()
