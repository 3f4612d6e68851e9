"""Azure DevOps REST stand-in for the CLI's administration calls, errors included.

Serves one organisation the way the ``azure-devops`` SDK reaches it: ``OPTIONS {org}/_apis`` (resource
locations), ``_apis/ResourceAreas``, ``_apis/ConnectionData`` (``instanceId`` = the organisation id), core
``_apis/projects/{id}``, service endpoints (``{project}/_apis/serviceendpoint/endpoints`` list by names or
ids, ``_apis/serviceendpoint/endpoints`` create), pipeline permissions
(``{project}/_apis/pipelines/pipelinePermissions/{type}/{id}`` GET and PATCH) and checks
(``{project}/_apis/pipelines/checks/configurations?resourceType=&resourceId=``). Shapes follow the REST
reference (api-version 7.1); errors are the VSS JSON the service sends (401 TF400813, 404 TF200016, 400 a
missing api-version or a bad body). tests/test_connection_standin.py checks it with the SDK's own clients.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.standins.ado import AzureDevOps

#: location id -> (area, resource name, route template, resource version)
LOCATIONS: dict[str, tuple[str, str, str, int]] = {
    "00d9565f-ed9c-4a06-9a50-00e7896ccab4": ("Location", "ConnectionData", "_apis/{resource}", 1),
    "e81700f7-3be2-46de-8624-2eb35882fcaa": ("Location", "ResourceAreas", "_apis/{resource}/{areaId}", 1),
    "603fe2ac-9723-48b9-88ad-09305aa6c6e1": ("core", "projects", "_apis/{resource}/{*projectId}", 4),
    "e85f1c62-adfc-4b74-b618-11a150fb195e": (
        "serviceendpoint",
        "endpoints",
        "{project}/_apis/{area}/{resource}/{endpointId}",
        4,
    ),
    "14e48fdc-2c8b-41ce-a0c3-e26f6cc55bd0": ("serviceendpoint", "endpoints", "_apis/{area}/{resource}/{endpointId}", 4),
    "b5b9a4a4-e6cd-4096-853c-ab7d8b0c4eb2": (
        "pipelinePermissions",
        "pipelinePermissions",
        "{project}/_apis/pipelines/{resource}/{resourceType}/{resourceId}",
        1,
    ),
    "86c8381e-5aee-4cde-8ae4-25c0c7f5eaea": (
        "PipelinesChecks",
        "configurations",
        "{project}/_apis/pipelines/checks/{resource}/{id}",
        1,
    ),
}
#: resource areas the SDK looks up before it builds a client (id -> name)
AREAS = {
    "79134c72-4a58-4b42-976c-04e7115f32bf": "core",
    "1814ab31-2f4f-4a9f-8761-f4d77dc5a5d7": "serviceendpoint",
    "a81a0441-de52-4000-aa15-ff0e07bfbbaa": "pipelinePermissions",
    "4a933897-0488-45af-bd82-6fd3ad33f46a": "PipelinesChecks",
}
APPROVAL = {"id": "8c6f20a7-a545-4486-9777-f762fafe0d4d", "name": "Approval"}
#: connection types the organisation knows (ours come with the extension)
KNOWN_TYPES = {"OidcCredentialsAws", "OidcCredentialsGcp", "OidcCredentialsVault", "azurerm", "generic"}
USER = {"displayName": "Admin", "id": "6e9e8ab4-08a3-4a8c-9ba1-d7b3b67b2b66", "uniqueName": "admin@fabrikam.example"}


@dataclass
class Organisation:
    """The WSGI app. ``base_url`` must be set to the server's URL before the SDK is pointed at it."""

    name: str = "fabrikam"
    pat: str = "ado-pat-0123456789abcdef"
    bearer: str = ""
    org_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    base_url: str = ""
    projects: dict[str, str] = field(default_factory=dict)  # id -> name
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> endpoint JSON
    endpoint_projects: dict[str, str] = field(default_factory=dict)  # endpoint id -> project id
    permissions: dict[str, dict[str, Any]] = field(default_factory=dict)  # endpoint id -> permissions JSON
    checks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- set-up ----------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"{self.base_url}/{self.name}"

    def add_project(self, name: str) -> str:
        project_id = str(uuid.uuid4())
        self.projects[project_id] = name
        return project_id

    def add_endpoint(
        self,
        project: str,
        name: str,
        *,
        type: str = "azurerm",
        scheme: str = "WorkloadIdentityFederation",
        parameters: dict[str, str] | None = None,
        url: str = "https://management.azure.com/",
        ready: bool = True,
        all_pipelines: bool = False,
        pipelines: tuple[int, ...] = (),
        approvals: int = 0,
    ) -> dict[str, Any]:
        project_id = self._project_id(project) or self.add_project(project)
        endpoint = self._endpoint_json(
            str(uuid.uuid4()), name, type, url, scheme, parameters or {}, project_id, ready=ready
        )
        self.endpoints[endpoint["id"]] = endpoint
        self.endpoint_projects[endpoint["id"]] = project_id
        self.set_permissions(endpoint["id"], all_pipelines=all_pipelines, pipelines=pipelines)
        self.checks[endpoint["id"]] = [self._check(endpoint) for _ in range(approvals)]
        return endpoint

    def set_permissions(self, endpoint_id: str, *, all_pipelines: bool, pipelines: tuple[int, ...] = ()) -> None:
        body: dict[str, Any] = {
            "resource": {"type": "endpoint", "id": endpoint_id},
            "pipelines": [self._permission(i) for i in pipelines],
        }
        if all_pipelines:
            body["allPipelines"] = {"authorized": True, "authorizedBy": USER, "authorizedOn": "2026-01-05T10:00:00Z"}
        self.permissions[endpoint_id] = body

    # -- shapes -----------------------------------------------------------------------------------------
    @staticmethod
    def _permission(pipeline_id: int) -> dict[str, Any]:
        return {"id": pipeline_id, "authorized": True, "authorizedBy": USER, "authorizedOn": "2026-01-05T10:00:00Z"}

    def _check(self, endpoint: dict[str, Any]) -> dict[str, Any]:
        number = sum(len(v) for v in self.checks.values()) + 1
        return {
            "settings": {"approvers": [USER], "executionOrder": "anyOrder", "minRequiredApprovers": 1},
            "timeout": 43200,
            "type": APPROVAL,
            "resource": {"type": "endpoint", "id": endpoint["id"], "name": endpoint["name"]},
            "id": number,
            "version": 1,
            "url": f"{self.url}/_apis/pipelines/checks/configurations/{number}",
            "createdBy": USER,
            "createdOn": "2026-01-05T10:00:00Z",
            "modifiedBy": USER,
            "modifiedOn": "2026-01-05T10:00:00Z",
        }

    def _endpoint_json(
        self,
        endpoint_id: str,
        name: str,
        type: str,
        url: str,
        scheme: str,
        parameters: dict[str, str],
        project_id: str,
        *,
        ready: bool = True,
        description: str = "",
    ) -> dict[str, Any]:
        return {
            "data": {},
            "id": endpoint_id,
            "name": name,
            "type": type,
            "url": url,
            "createdBy": USER,
            "description": description,
            "authorization": {"parameters": dict(parameters), "scheme": scheme},
            "isShared": False,
            "isReady": ready,
            "owner": "Library",
            "serviceEndpointProjectReferences": [
                {
                    "projectReference": {"id": project_id, "name": self.projects[project_id]},
                    "name": name,
                    "description": description,
                }
            ],
        }

    def _project_id(self, key: str) -> str | None:
        for project_id, name in self.projects.items():
            if key.lower() in (project_id.lower(), name.lower()):
                return project_id
        return None

    # -- the service --------------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        body = request.get_data(as_text=True)
        with self._lock:
            self.requests.append(
                {"method": request.method, "path": request.path, "args": dict(request.args), "body": body}
            )
            response = self._route(request, body)
        return response(environ, start_response)

    @staticmethod
    def _json(status: int, body: Any) -> Response:
        return Response(json.dumps(body), status, content_type="application/json; charset=utf-8")

    #: the VSS error body the service sends (shared with the OIDC stand-in)
    _error = staticmethod(AzureDevOps._vss_error)

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                _user, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return False
            return secret == self.pat
        return bool(self.bearer) and header == f"Bearer {self.bearer}"

    def _route(self, request: Request, body: str) -> Response:
        prefix = f"/{self.name}/".lower()
        path = request.path
        if not path.lower().startswith(prefix) and path.lower() != prefix.rstrip("/"):
            return self._error(404, f"The resource cannot be found: {path}", "ResourceNotFoundException")
        if not self._authorised(request):  # a bad or expired PAT: 401, no body (the SDK suppresses the redirect)
            return Response(
                "",
                401,
                {
                    "WWW-Authenticate": 'Bearer authorization_uri=https://login.microsoftonline.com/common, Basic realm="https://dev.azure.com/"'
                },
            )
        rest = path[len(prefix) :]
        if request.method == "OPTIONS" and rest.strip("/").lower() == "_apis":
            return self._json(200, {"count": len(LOCATIONS), "value": self._locations()})
        version = request.args.get("api-version") or _accept_version(request.headers.get("Accept", ""))
        if not version:
            return self._error(
                400,
                f"No api-version was supplied for the {request.method} request. An api-version must be supplied "
                'either as part of the Accept header (e.g. "application/json; api-version=1.0") or as a query parameter.',
                "VssVersionNotSpecifiedException",
            )
        segments = [s for s in rest.split("/") if s]
        lower = [s.lower() for s in segments]
        if lower == ["_apis", "resourceareas"]:
            areas = [{"id": i, "name": n, "locationUrl": self.url + "/"} for i, n in AREAS.items()]
            return self._json(200, {"count": len(areas), "value": areas})
        if lower == ["_apis", "connectiondata"]:
            return self._json(
                200,
                {
                    "authenticatedUser": {"id": USER["id"], "providerDisplayName": USER["displayName"]},
                    "authorizedUser": {"id": USER["id"], "providerDisplayName": USER["displayName"]},
                    "instanceId": self.org_id,
                    "deploymentId": str(uuid.UUID(int=1)),
                    "deploymentType": "hosted",
                    "locationServiceData": {"serviceOwner": "00025394-6065-48ca-87d9-7f5672854ef7"},
                },
            )
        if len(lower) == 3 and lower[:2] == ["_apis", "projects"] and request.method == "GET":
            project_id = self._project_id(_unquote(segments[2]))
            if project_id is None:
                return self._error(
                    404,
                    f"TF200016: The following project does not exist: {_unquote(segments[2])}. Verify that the name "
                    "of the project is correct and that the project exists on the specified Azure DevOps Server.",
                    "ProjectDoesNotExistWithNameException",
                )
            return self._json(200, self._project(project_id))
        if lower == ["_apis", "serviceendpoint", "endpoints"] and request.method == "POST":
            return self._create(body)
        if len(lower) >= 4 and lower[1:4] == ["_apis", "serviceendpoint", "endpoints"] and request.method == "GET":
            return self._list(_unquote(segments[0]), request)
        if len(lower) == 6 and lower[1:4] == ["_apis", "pipelines", "pipelinepermissions"]:
            return self._permissions(_unquote(segments[0]), segments[4], segments[5], request, body)
        if lower[1:5] == ["_apis", "pipelines", "checks", "configurations"] and request.method == "GET":
            return self._checks(_unquote(segments[0]), request)
        return self._error(404, f"The resource cannot be found: {path}", "ResourceNotFoundException")

    def _locations(self) -> list[dict[str, Any]]:
        return [
            {
                "id": location_id,
                "area": area,
                "resourceName": resource,
                "routeTemplate": template,
                "resourceVersion": resource_version,
                "minVersion": "1.0",
                "maxVersion": "7.2",
                "releasedVersion": "7.1",
            }
            for location_id, (area, resource, template, resource_version) in LOCATIONS.items()
        ]

    def _project(self, project_id: str) -> dict[str, Any]:
        return {
            "id": project_id,
            "name": self.projects[project_id],
            "url": f"{self.url}/_apis/projects/{project_id}",
            "state": "wellFormed",
            "revision": 11,
            "visibility": "private",
            "lastUpdateTime": "2026-01-05T10:00:00Z",
        }

    def _list(self, project: str, request: Request) -> Response:
        project_id = self._project_id(project)
        if project_id is None:
            return self._error(
                404,
                f"TF200016: The following project does not exist: {project}.",
                "ProjectDoesNotExistWithNameException",
            )
        names = {n.strip().lower() for n in request.args.get("endpointNames", "").split(",") if n.strip()}
        ids = {i.strip().lower() for i in request.args.get("endpointIds", "").split(",") if i.strip()}
        wanted_type = request.args.get("type", "").lower()
        include_failed = request.args.get("includeFailed", "").lower() == "true"
        found = [
            e
            for e in self.endpoints.values()
            if self.endpoint_projects[e["id"]] == project_id
            and (not names or e["name"].lower() in names)
            and (not ids or e["id"] in ids)
            and (not wanted_type or e["type"].lower() == wanted_type)
            and (include_failed or e["isReady"])
        ]
        return self._json(200, {"count": len(found), "value": found})

    def _create(self, body: str) -> Response:
        try:
            data = json.loads(body)
        except ValueError:
            return self._error(400, "Value cannot be null.\r\nParameter name: endpoint", "ArgumentNullException")
        for key in ("name", "type", "url"):
            if not data.get(key):
                return self._error(
                    400,
                    f"Value cannot be null.\r\nParameter name: endpoint.{key.capitalize()}",
                    "ArgumentNullException",
                )
        if data["type"] not in KNOWN_TYPES:
            return self._error(
                400,
                f"Service connection type {data['type']} is not supported. Install the extension that contributes it.",
                "ServiceEndpointTypeNotSupportedException",
            )
        scheme = (data.get("authorization") or {}).get("scheme")
        if not scheme:
            return self._error(
                400, "Value cannot be null.\r\nParameter name: endpoint.Authorization", "ArgumentNullException"
            )
        references = data.get("serviceEndpointProjectReferences") or []
        project_id = self._project_id(
            str(((references[0] if references else {}).get("projectReference") or {}).get("id", ""))
        )
        if project_id is None:
            return self._error(
                400,
                "Value cannot be null.\r\nParameter name: serviceEndpointProjectReferences",
                "ArgumentNullException",
            )
        for existing in self.endpoints.values():
            if (
                self.endpoint_projects[existing["id"]] == project_id
                and existing["name"].lower() == data["name"].lower()
            ):
                return self._error(
                    409,
                    f"A service connection with name {data['name']} already exists in the project.",
                    "DuplicateServiceConnectionException",
                )
        endpoint = self._endpoint_json(
            str(uuid.uuid4()),
            data["name"],
            data["type"],
            data["url"],
            scheme,
            {str(k): str(v) for k, v in ((data.get("authorization") or {}).get("parameters") or {}).items()},
            project_id,
            description=str(data.get("description") or ""),
        )
        self.endpoints[endpoint["id"]] = endpoint
        self.endpoint_projects[endpoint["id"]] = project_id
        self.set_permissions(endpoint["id"], all_pipelines=False)
        self.checks[endpoint["id"]] = []
        return self._json(200, endpoint)

    def _permissions(self, project: str, resource_type: str, resource_id: str, request: Request, body: str) -> Response:
        if self._project_id(project) is None:
            return self._error(
                404,
                f"TF200016: The following project does not exist: {project}.",
                "ProjectDoesNotExistWithNameException",
            )
        if resource_type.lower() != "endpoint" or resource_id.lower() not in self.endpoints:
            return self._error(
                404, f"Resource {resource_type} with id {resource_id} does not exist.", "ResourceNotFoundException"
            )
        current = self.permissions[resource_id.lower()]
        if request.method == "GET":
            return self._json(200, current)
        if request.method != "PATCH":
            return self._error(
                405, f"The requested resource does not support http method '{request.method}'.", "HttpMethodNotAllowed"
            )
        try:
            change = json.loads(body)
        except ValueError:
            return self._error(
                400, "Value cannot be null.\r\nParameter name: resourceAuthorization", "ArgumentNullException"
            )
        by_id = {p["id"]: p for p in current["pipelines"]}
        for item in change.get("pipelines") or []:
            if not isinstance(item.get("id"), int):
                return self._error(400, "Pipeline id must be an integer.", "ArgumentException")
            if item.get("authorized"):
                by_id[item["id"]] = self._permission(item["id"])
            else:
                by_id.pop(item["id"], None)
        current["pipelines"] = list(by_id.values())
        if "allPipelines" in change and change["allPipelines"] is not None:
            if change["allPipelines"].get("authorized"):
                current["allPipelines"] = {
                    "authorized": True,
                    "authorizedBy": USER,
                    "authorizedOn": "2026-01-05T10:00:00Z",
                }
            else:
                current.pop("allPipelines", None)
        return self._json(200, current)

    def _checks(self, project: str, request: Request) -> Response:
        if self._project_id(project) is None:
            return self._error(
                404,
                f"TF200016: The following project does not exist: {project}.",
                "ProjectDoesNotExistWithNameException",
            )
        resource_type = request.args.get("resourceType", "")
        resource_id = request.args.get("resourceId", "").lower()
        if not resource_type or not resource_id:
            return self._error(400, "Both resourceType and resourceId must be provided.", "ArgumentException")
        found = self.checks.get(resource_id, []) if resource_type.lower() == "endpoint" else []
        return self._json(200, {"count": len(found), "value": found})


def _accept_version(accept: str) -> str:
    match = re.search(r"api-version=([\w.-]+)", accept)
    return match[1] if match else ""


def _unquote(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text)
