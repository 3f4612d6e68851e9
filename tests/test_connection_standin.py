"""Fidelity of the Azure DevOps REST stand-in, checked with the azure-devops SDK's own clients."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

os.environ.setdefault("AZURE_DEVOPS_CACHE_DIR", tempfile.mkdtemp(prefix="ado-sdk-cache-"))

from tests.standins.ado_rest import Organisation
from tests.standins.server import Server


@pytest.fixture
def org() -> Iterator[Organisation]:
    app = Organisation()
    with Server(app) as server:
        app.base_url = server.url
        yield app


def connection(org: Organisation, pat: str | None = None):  # type: ignore[no-untyped-def]
    from azure.devops.connection import Connection
    from msrest.authentication import BasicAuthentication

    return Connection(base_url=org.url, creds=BasicAuthentication("", pat or org.pat))


def test_connection_data_and_project(org: Organisation) -> None:
    project_id = org.add_project("Payments")
    conn = connection(org)
    data = conn.clients_v7_1.get_location_client().get_connection_data()
    assert data.instance_id == org.org_id
    project = conn.clients_v7_1.get_core_client().get_project("payments")
    assert (project.id, project.name) == (project_id, "Payments")
    from azure.devops.exceptions import AzureDevOpsServiceError

    with pytest.raises(AzureDevOpsServiceError, match="TF200016"):
        conn.clients_v7_1.get_core_client().get_project("Nope")


def test_endpoints_permissions_and_checks_round_trip(org: Organisation) -> None:
    from azure.devops.v7_1.pipeline_permissions.models import PipelinePermission, Resource, ResourcePipelinePermissions
    from azure.devops.v7_1.service_endpoint.models import (
        EndpointAuthorization,
        ProjectReference,
        ServiceEndpoint,
        ServiceEndpointProjectReference,
    )

    project_id = org.add_project("Payments")
    arm = org.add_endpoint(
        "Payments",
        "prod-arm",
        parameters={"workloadIdentityFederationIssuer": "https://vstoken.dev.azure.com/x"},
        all_pipelines=True,
        approvals=1,
    )
    org.add_endpoint("Payments", "broken", ready=False)
    conn = connection(org)
    endpoints = conn.clients_v7_1.get_service_endpoint_client()
    by_name = endpoints.get_service_endpoints_by_names("Payments", ["prod-arm"])
    assert [e.id for e in by_name] == [arm["id"]]
    assert by_name[0].authorization.parameters["workloadIdentityFederationIssuer"] == "https://vstoken.dev.azure.com/x"
    assert [e.name for e in endpoints.get_service_endpoints("Payments")] == ["prod-arm"]
    assert len(endpoints.get_service_endpoints("Payments", include_failed=True)) == 2
    created = endpoints.create_service_endpoint(
        ServiceEndpoint(
            name="aws-prod",
            type="OidcCredentialsAws",
            url="https://sts.amazonaws.com",
            owner="library",
            authorization=EndpointAuthorization(
                scheme="None", parameters={"roleArn": "arn:aws:iam::123456789012:role/x"}
            ),
            service_endpoint_project_references=[
                ServiceEndpointProjectReference(name="aws-prod", project_reference=ProjectReference(id=project_id))
            ],
        )
    )
    assert created.id in org.endpoints and created.authorization.parameters["roleArn"].endswith(":role/x")
    from azure.devops.exceptions import AzureDevOpsServiceError

    def endpoint(name: str, type_: str) -> ServiceEndpoint:
        return ServiceEndpoint(
            name=name,
            type=type_,
            url="https://sts.amazonaws.com",
            authorization=EndpointAuthorization(scheme="None"),
            service_endpoint_project_references=[
                ServiceEndpointProjectReference(name=name, project_reference=ProjectReference(id=project_id))
            ],
        )

    with pytest.raises(AzureDevOpsServiceError, match="already exists"):
        endpoints.create_service_endpoint(endpoint("AWS-PROD", "OidcCredentialsAws"))
    with pytest.raises(AzureDevOpsServiceError, match="not supported"):
        endpoints.create_service_endpoint(endpoint("x", "NoSuchType"))
    with pytest.raises(AzureDevOpsServiceError, match="Parameter name: endpoint.Name"):
        endpoints.create_service_endpoint(endpoint("", "OidcCredentialsAws"))
    permissions = conn.clients_v7_1.get_pipeline_permissions_client()
    before = permissions.get_pipeline_permissions_for_resource("Payments", "endpoint", created.id)
    assert before.all_pipelines is None and before.pipelines == []
    permissions.update_pipeline_permisions_for_resource(
        ResourcePipelinePermissions(
            resource=Resource(id=created.id, type="endpoint"), pipelines=[PipelinePermission(id=7, authorized=True)]
        ),
        "Payments",
        "endpoint",
        created.id,
    )
    after = permissions.get_pipeline_permissions_for_resource("Payments", "endpoint", created.id)
    assert [(p.id, p.authorized) for p in after.pipelines] == [(7, True)] and after.all_pipelines is None
    everyone = permissions.get_pipeline_permissions_for_resource("Payments", "endpoint", arm["id"])
    assert everyone.all_pipelines.authorized is True
    checks = conn.clients_v7_1.get_pipelines_checks_client()
    found = checks.get_check_configurations_on_resource("Payments", "endpoint", arm["id"])
    assert [c.type.name for c in found] == ["Approval"] and found[0].resource.id == arm["id"]
    assert checks.get_check_configurations_on_resource("Payments", "endpoint", created.id) == []


def test_bad_credentials_are_an_authentication_error(org: Organisation) -> None:
    from azure.devops.exceptions import AzureDevOpsAuthenticationError

    org.add_project("Payments")
    with pytest.raises(AzureDevOpsAuthenticationError):
        connection(org, pat="wrong").clients_v7_1.get_location_client().get_connection_data()
