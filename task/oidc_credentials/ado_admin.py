"""Azure DevOps administration for the CLI, through the ``azure-devops`` SDK: the organisation, its service
connections, their pipeline permissions and checks. Never imported by the task.

Credentials come from the environment: ``AZURE_DEVOPS_EXT_PAT`` (as the az devops extension reads it) or
``AZURE_DEVOPS_PAT``, a personal access token with "Service Connections (Read, query & manage)" and
"Project and Team (Read)"; or ``AZURE_DEVOPS_TOKEN``, a Microsoft Entra access token for Azure DevOps
(``az account get-access-token --resource 499b84ac-1321-427f-aa17-267ca6975798``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError, ExchangeError

SERVICE = "Azure DevOps"
PAT_VARIABLES = ("AZURE_DEVOPS_EXT_PAT", "AZURE_DEVOPS_PAT")
TOKEN_VARIABLE = "AZURE_DEVOPS_TOKEN"  # noqa: S105 - the name of a variable, not a secret
#: seconds for each request
TIMEOUT = 30
#: the check types of the checks REST API, by id (lower case)
APPROVAL_CHECK = "8c6f20a7-a545-4486-9777-f762fafe0d4d"
#: our extension's connection types, by cloud
CONNECTION_TYPES = {"aws": "OidcCredentialsAws", "gcp": "OidcCredentialsGcp", "vault": "OidcCredentialsVault"}


@dataclass(frozen=True)
class Endpoint:
    """A service connection, as far as trust and access go."""

    id: str
    name: str
    type: str
    url: str = ""
    scheme: str = ""
    parameters: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, str] = field(default_factory=dict)
    is_ready: bool = True
    is_shared: bool = False

    @property
    def issuer(self) -> str:
        return str(self.parameters.get("workloadIdentityFederationIssuer") or "")

    @property
    def subject(self) -> str:
        return str(self.parameters.get("workloadIdentityFederationSubject") or "")

    @property
    def issuer_type(self) -> str:
        return str(self.parameters.get("workloadIdentityFederationIssuerType") or "")

    @property
    def tenant_id(self) -> str:
        return str(self.parameters.get("tenantid") or "")

    @property
    def app_id(self) -> str:
        return str(self.parameters.get("serviceprincipalid") or "")

    @property
    def uses_federation(self) -> bool:
        return self.scheme == "WorkloadIdentityFederation" or self.type in CONNECTION_TYPES.values()


@dataclass(frozen=True)
class Access:
    """Who may use a connection: every pipeline, or these pipeline ids; and its checks' type names."""

    all_pipelines: bool
    pipelines: tuple[int, ...]
    checks: tuple[str, ...]


def org_name_of(url: str) -> str:
    """``fabrikam`` from https://dev.azure.com/fabrikam/ or https://fabrikam.visualstudio.com/."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host.endswith(".visualstudio.com"):
        return host.split(".", 1)[0]
    segments = [s for s in parts.path.split("/") if s]
    if not segments:
        raise ConfigError(f"--org {url}: give the organisation URL, e.g. https://dev.azure.com/<organisation>.")
    return segments[-1]


def credentials_from(env: Mapping[str, str]) -> Any:
    from msrest.authentication import BasicAuthentication, BasicTokenAuthentication

    for name in PAT_VARIABLES:
        if env.get(name):
            return BasicAuthentication("", env[name])
    if env.get(TOKEN_VARIABLE):
        return BasicTokenAuthentication({"access_token": env[TOKEN_VARIABLE]})
    raise ConfigError(
        f"no Azure DevOps credentials: set {PAT_VARIABLES[0]} to a personal access token (Service Connections: "
        f"read, query & manage; Project and Team: read) or {TOKEN_VARIABLE} to an Entra access token for Azure DevOps."
    )


class AdoAdmin:
    """One organisation, read and changed through the SDK's clients (v7.1)."""

    def __init__(self, org_url: str, env: Mapping[str, str] | None = None) -> None:
        from azure.devops.connection import Connection

        parsed = urlsplit(org_url)
        if parsed.scheme not in ("https", "http") or not parsed.hostname:
            raise ConfigError(f"--org {org_url}: give the organisation URL, e.g. https://dev.azure.com/<organisation>.")
        self.url = org_url.rstrip("/")
        self.org_name = org_name_of(org_url)
        self._connection = Connection(base_url=self.url, creds=credentials_from(os.environ if env is None else env))
        self._clients: dict[str, Any] = {}
        self._org_id = ""

    # -- plumbing ----------------------------------------------------------------------------------
    def _client(self, name: str) -> Any:
        if name not in self._clients:
            factory = self._connection.clients_v7_1
            getter = {
                "location": factory.get_location_client,
                "core": factory.get_core_client,
                "endpoints": factory.get_service_endpoint_client,
                "permissions": factory.get_pipeline_permissions_client,
                "checks": factory.get_pipelines_checks_client,
            }[name]
            client = self._call(getter, "reach the organisation")
            client.config.connection.timeout = TIMEOUT
            client.config.retry_policy.retries = 2
            self._clients[name] = client
        return self._clients[name]

    def _call(self, fn: Any, what: str, *args: Any, **kwargs: Any) -> Any:
        import requests
        from azure.devops.exceptions import AzureDevOpsAuthenticationError, AzureDevOpsServiceError
        from msrest.exceptions import AuthenticationError, ClientRequestError

        try:
            return fn(*args, **kwargs)
        except (AzureDevOpsAuthenticationError, AuthenticationError) as exc:
            raise ConfigError(
                f"{SERVICE} refused the credentials to {what} at {self.url}: check that the token in "
                f"{' or '.join((*PAT_VARIABLES, TOKEN_VARIABLE))} is valid for this organisation and has the scopes."
            ) from exc
        except AzureDevOpsServiceError as exc:
            if "TF400813" in str(exc):
                raise ConfigError(
                    f"{SERVICE} refused the credentials to {what}: the token's user has no access to this; grant it, "
                    "or use a token with the scopes named in --help."
                ) from exc
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ExchangeError(f"{SERVICE} could not {what}: {message}", service=SERVICE) from exc
        except (ClientRequestError, requests.RequestException) as exc:
            cause: BaseException | None = exc
            while cause is not None and not isinstance(cause, requests.RequestException):
                cause = cause.__cause__ or cause.__context__
            if isinstance(cause, requests.Timeout):
                detail = f"no answer within {TIMEOUT} s"
            elif isinstance(cause, requests.ConnectionError):
                detail = "cannot connect (check the URL, the network and any proxy: HTTPS_PROXY)"
            else:
                detail = (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)[:300]
            raise ExchangeError(f"{SERVICE} could not {what} at {self.url}: {detail}", service=SERVICE) from exc
        except Exception as exc:  # the SDK raises its own request errors (AzureDevOpsClientRequestError)
            if type(exc).__module__.startswith(("azure.devops", "msrest")):
                detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise ExchangeError(f"{SERVICE} could not {what}: {detail[:300]}", service=SERVICE) from exc
            raise

    # -- reads ---------------------------------------------------------------------------------------
    @property
    def org_id(self) -> str:
        """The organisation's id (the Azure DevOps issuer's last segment), from its connection data."""
        if not self._org_id:
            data = self._call(self._client("location").get_connection_data, "read the organisation's id")
            self._org_id = str(data.instance_id or "")
            if not self._org_id:
                raise ExchangeError(f"{SERVICE} did not return the organisation's id (instanceId).", service=SERVICE)
        return self._org_id

    def project(self, name: str) -> tuple[str, str]:
        """(id, name as Azure DevOps spells it) of a project given by name or id."""
        found = self._call(self._client("core").get_project, f"find the project {name!r}", name)
        if found is None:
            raise ConfigError(f"--project {name}: no such project in {self.url}.")
        return str(found.id), str(found.name)

    def endpoints(self, project: str) -> list[Endpoint]:
        found = self._call(
            self._client("endpoints").get_service_endpoints,
            f"list the service connections of {project!r}",
            project,
            include_failed=True,
        )
        return [_endpoint(e) for e in found or []]

    def endpoint(self, project: str, name: str) -> Endpoint:
        found = self._call(
            self._client("endpoints").get_service_endpoints_by_names,
            f"read the service connection {name!r}",
            project,
            [name],
            include_failed=True,
        )
        for item in found or []:
            if str(item.name).lower() == name.lower():
                return _endpoint(item)
        raise ConfigError(f"--connection {name}: no service connection of that name in the project {project!r}.")

    def access(self, project: str, endpoint_id: str) -> Access:
        permissions = self._call(
            self._client("permissions").get_pipeline_permissions_for_resource,
            "read the connection's pipeline permissions",
            project,
            "endpoint",
            endpoint_id,
        )
        everyone = bool(permissions and permissions.all_pipelines and permissions.all_pipelines.authorized)
        pipelines = tuple(
            int(p.id) for p in (permissions.pipelines or []) if permissions and p.authorized and p.id is not None
        )
        checks = self._call(
            self._client("checks").get_check_configurations_on_resource,
            "read the connection's approvals and checks",
            project,
            "endpoint",
            endpoint_id,
        )
        names = tuple(
            str((c.type.name if c.type else "") or "check")
            for c in checks or []
            if not getattr(c, "is_disabled", False)
        )
        return Access(everyone, pipelines, names)

    # -- changes -------------------------------------------------------------------------------------
    def create_endpoint(
        self,
        project: str,
        *,
        name: str,
        type: str,
        url: str,
        parameters: Mapping[str, str],
        description: str = "",
    ) -> Endpoint:
        from azure.devops.v7_1.service_endpoint.models import (
            EndpointAuthorization,
            ProjectReference,
            ServiceEndpoint,
            ServiceEndpointProjectReference,
        )

        project_id, project_name = self.project(project)
        body = ServiceEndpoint(
            name=name,
            type=type,
            url=url,
            owner="library",
            description=description,
            is_shared=False,
            authorization=EndpointAuthorization(scheme="None", parameters=dict(parameters)),
            data={},
            service_endpoint_project_references=[
                ServiceEndpointProjectReference(
                    name=name,
                    description=description,
                    project_reference=ProjectReference(id=project_id, name=project_name),
                )
            ],
        )
        created = self._call(
            self._client("endpoints").create_service_endpoint, f"create the service connection {name!r}", body
        )
        return _endpoint(created)

    def authorize(self, project: str, endpoint_id: str, pipeline_ids: list[int]) -> None:
        """Let these pipelines use the connection (and only them: never all pipelines)."""
        from azure.devops.v7_1.pipeline_permissions.models import (
            PipelinePermission,
            Resource,
            ResourcePipelinePermissions,
        )

        body = ResourcePipelinePermissions(
            resource=Resource(id=endpoint_id, type="endpoint"),
            pipelines=[PipelinePermission(id=i, authorized=True) for i in pipeline_ids],
        )
        self._call(
            self._client("permissions").update_pipeline_permisions_for_resource,
            "authorise the pipelines for the connection",
            body,
            project,
            "endpoint",
            endpoint_id,
        )


def _endpoint(model: Any) -> Endpoint:
    auth = model.authorization
    return Endpoint(
        id=str(model.id or ""),
        name=str(model.name or ""),
        type=str(model.type or ""),
        url=str(model.url or ""),
        scheme=str(auth.scheme or "") if auth else "",
        parameters={str(k): str(v) for k, v in ((auth.parameters or {}) if auth else {}).items()},
        data={str(k): str(v) for k, v in (model.data or {}).items()},
        is_ready=model.is_ready is not False,
        is_shared=bool(model.is_shared),
    )
