"""``oidc-credentials connection create <aws|gcp|vault>``: create the service connection, print its trust."""

from __future__ import annotations

import argparse
import re
from typing import Any

HELP = "create an AWS, GCP or Vault service connection in a project and print its cloud-side trust"

DESCRIPTION = """\
Creates the service connection (this extension's connection type, no secret stored) in an Azure DevOps
project through the azure-devops SDK, optionally lets chosen pipelines use it (never all pipelines), and
prints the cloud-side trust that matches its token: one command from nothing to a working set-up.

Credentials: AZURE_DEVOPS_EXT_PAT (or AZURE_DEVOPS_PAT), a personal access token with Service Connections
(Read, query & manage) and Project and Team (Read); or AZURE_DEVOPS_TOKEN, an Entra access token."""

CLOUD_HELP = {
    "aws": "an AWS (OIDC) connection: --role-arn; prints the IAM provider and role trust",
    "gcp": "a Google Cloud (OIDC) connection: --workload-identity-provider; prints pool, provider and binding",
    "vault": "a HashiCorp Vault (OIDC) connection: --vault-addr and --role; prints the JWT auth config and role",
}
ROLE_ARN = re.compile(r"arn:(aws[a-z-]*):iam::(\d{12}):role/(?:[\w+=,.@-]+/)*([\w+=,.@-]+)")
PROVIDER = re.compile(
    r"(?://iam\.googleapis\.com/)?projects/(\d+)/locations/global/workloadIdentityPools/([a-z0-9-]+)/providers/([a-z0-9-]+)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .trust import add_cloud_arguments

    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a connection and print its trust", description=DESCRIPTION)
    create.formatter_class = argparse.RawDescriptionHelpFormatter
    clouds = create.add_subparsers(dest="cloud", metavar="CLOUD", required=True)
    for cloud, text in CLOUD_HELP.items():
        sub = clouds.add_parser(cloud, help=text, description=f"{text}.\n\n{DESCRIPTION}")
        sub.formatter_class = argparse.RawDescriptionHelpFormatter
        where = sub.add_argument_group("the connection")
        where.add_argument(
            "--org", required=True, metavar="URL", help="organisation URL, e.g. https://dev.azure.com/fabrikam"
        )
        where.add_argument("--project", required=True, help="project to create it in")
        where.add_argument("--name", required=True, help="connection name (it is part of the token's subject)")
        where.add_argument("--description", default="", help="connection description")
        where.add_argument(
            "--authorize-pipeline",
            type=int,
            action="append",
            default=[],
            metavar="ID",
            help="let this pipeline (definition id) use the connection; repeat for several",
        )
        if cloud == "aws":
            where.add_argument(
                "--role-arn", required=True, help="the IAM role to assume (its account and name shape the trust)"
            )
            where.add_argument("--region", default="", help="region for the regional STS endpoint")
            where.add_argument("--url", default="https://sts.amazonaws.com", help="STS endpoint")
        elif cloud == "gcp":
            where.add_argument(
                "--workload-identity-provider",
                required=True,
                help="projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>",
            )
            where.add_argument("--service-account", required=True, help="e-mail of the service account to impersonate")
            where.add_argument("--url", default="https://sts.googleapis.com", help="STS endpoint")
        else:
            where.add_argument("--vault-addr", required=True, help="Vault address, as in VAULT_ADDR")
            where.add_argument("--role", required=True, help="JWT auth role name")
            where.add_argument("--mount", default="jwt", help="JWT auth mount path")
            where.add_argument("--namespace", default="", help="Vault namespace (Enterprise)")
        add_cloud_arguments(sub, cloud, from_connection=True)


def _connection(args: argparse.Namespace) -> tuple[str, str, dict[str, str]]:
    """(type, url, authorization parameters) of the new connection, checked like the connection form does."""
    from ..ado_admin import CONNECTION_TYPES
    from ..errors import ConfigError

    if args.cloud == "aws":
        match = ROLE_ARN.fullmatch(args.role_arn)
        if not match:
            raise ConfigError(
                f"--role-arn {args.role_arn}: give an IAM role ARN like arn:aws:iam::123456789012:role/deploy."
            )
        args.partition, args.account_id, args.role_name = match[1], match[2], match[3]
        if args.region and not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d{1,2}", args.region):
            raise ConfigError(f"--region {args.region}: give a region code like eu-west-1.")
        params = {"roleArn": args.role_arn, **({"region": args.region} if args.region else {})}
        return CONNECTION_TYPES["aws"], args.url, params
    if args.cloud == "gcp":
        match = PROVIDER.fullmatch(args.workload_identity_provider)
        if not match:
            raise ConfigError(
                f"--workload-identity-provider {args.workload_identity_provider}: give "
                "projects/<project number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>."
            )
        args.project_number, args.pool, args.provider = match[1], match[2], match[3]
        params = {
            "workloadIdentityProvider": match[0].removeprefix("//iam.googleapis.com/"),
            "serviceAccount": args.service_account,
        }
        return CONNECTION_TYPES["gcp"], args.url, params
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", args.vault_addr):
        raise ConfigError(
            f"--vault-addr {args.vault_addr}: give the Vault address, e.g. https://vault.example.com:8200."
        )
    if not re.fullmatch(r"[\w.@-]+", args.role):
        raise ConfigError(f"--role {args.role}: a role name is letters, digits and _.@-")
    params = {"role": args.role, "mountPath": args.mount, **({"namespace": args.namespace} if args.namespace else {})}
    return CONNECTION_TYPES["vault"], args.vault_addr, params


def run(args: argparse.Namespace) -> int:
    from .. import trust
    from ..ado_admin import AdoAdmin
    from .trust import render, say, write

    type_, url, parameters = _connection(args)
    admin = AdoAdmin(args.org)
    _project_id, project = admin.project(args.project)
    # the trust is rendered (and checked) before anything is created: a refused trust leaves nothing behind
    planned: Any = trust.complete(
        trust.facts_from_flags(org_id=admin.org_id, org_name=admin.org_name, project=project, connection=args.name)
    )
    render(args.cloud, planned, args)
    endpoint = admin.create_endpoint(
        project, name=args.name, type=type_, url=url, parameters=parameters, description=args.description
    )
    say(f"created the service connection {endpoint.name!r} (id {endpoint.id}, type {endpoint.type}) in {project!r}")
    if args.authorize_pipeline:
        admin.authorize(project, endpoint.id, args.authorize_pipeline)
        say("pipelines allowed to use it: " + ", ".join(map(str, args.authorize_pipeline)))
    else:
        say("no pipeline may use it yet: authorise each on its first run, or rerun with --authorize-pipeline")
    facts = trust.facts_from_endpoint(endpoint, org_id=admin.org_id, org_name=admin.org_name, project=project)
    facts = trust.complete(facts)
    say(f"its token: issuer {facts.issuer}, subject {facts.subject}; the trust follows")
    write(render(args.cloud, facts, args), args.out)
    return 0
