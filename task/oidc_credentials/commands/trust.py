"""``oidc-credentials trust <aws|azure|gcp|vault>``: write the cloud-side trust for one service connection."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any

HELP = "write the cloud-side trust (AWS, Azure, GCP, Vault) for one service connection"

DESCRIPTION = """\
Renders the exact cloud-side configuration that trusts one Azure DevOps service connection's OIDC token:
issuer, audience and the connection's exact subject (never a wildcard).

Facts come from, in order of preference: --token-file (a saved token, decoded), the organisation
(--org, --project, --connection; credentials from AZURE_DEVOPS_EXT_PAT or AZURE_DEVOPS_TOKEN), or flags
(--org-id, --org-name, --project, --connection, or --issuer and --subject)."""

CLOUD_HELP = {
    "aws": "IAM OIDC provider and role trust policy (json: the policy; cloudformation; terraform)",
    "azure": "Entra federated identity credential (json, or the az command), either issuer",
    "gcp": "workload identity pool, OIDC provider and service-account binding (gcloud or terraform)",
    "vault": "Vault/OpenBao JWT auth config and role (cli, json API bodies, or terraform)",
}


def add_fact_arguments(parser: argparse.ArgumentParser, *, organisation: bool = True) -> None:
    """The three sources of facts: a token, the organisation, flags."""
    group = parser.add_argument_group("facts (a token beats the organisation, which beats flags)")
    group.add_argument("--token-file", metavar="PATH", help='a saved OIDC token (the JWT or {"oidcToken": ...})')
    if organisation:
        group.add_argument(
            "--org",
            metavar="URL",
            default=os.environ.get("AZURE_DEVOPS_ORG_URL", ""),
            help="organisation URL, e.g. https://dev.azure.com/fabrikam (default: $AZURE_DEVOPS_ORG_URL)",
        )
    group.add_argument("--project", default="", help="Azure DevOps project name")
    group.add_argument("--connection", default="", help="service connection name")
    group.add_argument("--org-id", default="", help="organisation id (the issuer's last segment)")
    group.add_argument("--org-name", default="", help="organisation name (in the sc:// subject)")
    group.add_argument("--connection-id", default="", help="service connection id (Entra issuer subjects)")
    group.add_argument("--tenant-id", default="", help="Entra tenant id (Entra issuer)")
    group.add_argument("--issuer", default="", help="token issuer URL")
    group.add_argument("--subject", default="", help="token subject, exactly (no wildcards)")
    group.add_argument("--audience", default="", help="token audience (default api://AzureADTokenExchange)")


def gather(args: argparse.Namespace, *, warn: Any = None) -> Any:
    """The facts of one connection from the sources given; conflicts between them are warned about."""
    from .. import trust

    sources = []
    if getattr(args, "token_file", None):
        sources.append(trust.facts_from_token(args.token_file))
    if getattr(args, "org", ""):
        sources.append(organisation_facts(args))
    sources.append(
        trust.facts_from_flags(
            issuer=args.issuer,
            subject=args.subject,
            audience=args.audience,
            org_id=args.org_id,
            org_name=args.org_name,
            project=args.project,
            connection=args.connection,
        )
    )
    if args.connection_id or args.tenant_id:
        sources[-1] = dataclasses.replace(sources[-1], connection_id=args.connection_id, tenant_id=args.tenant_id)
    facts = sources[0]
    for other in sources[1:]:
        if warn is not None:
            for name in ("issuer", "subject"):
                mine, theirs = getattr(facts, name), getattr(other, name)
                if mine and theirs and mine != theirs:
                    warn(
                        f"the {facts.sources.get(name, '')} and the {other.sources.get(name, '')} disagree: "
                        + trust.difference(name, mine, theirs)
                        + f"; using the {facts.sources.get(name, '')}"
                    )
        facts = facts.merged(other)
    return trust.complete(facts)


def organisation_facts(args: argparse.Namespace) -> Any:
    from .. import trust
    from ..ado_admin import AdoAdmin
    from ..errors import ConfigError

    missing = trust.missing_flags(("--project", args.project), ("--connection", args.connection))
    if missing:
        raise ConfigError(f"missing {' and '.join(missing)}: --org reads one connection of one project.")
    admin = AdoAdmin(args.org)
    _project_id, project = admin.project(args.project)
    endpoint = admin.endpoint(project, args.connection)
    return trust.facts_from_endpoint(endpoint, org_id=admin.org_id, org_name=admin.org_name, project=project)


def add_cloud_arguments(parser: argparse.ArgumentParser, cloud: str, *, from_connection: bool = False) -> None:
    """Options of one cloud's trust; ``from_connection``: the values a new connection already gives are optional."""
    from ..trust import FORMATS

    parser.add_argument("--format", choices=FORMATS[cloud], default=FORMATS[cloud][0], help="output form")
    parser.add_argument("--out", metavar="PATH", help="write to this file instead of standard output")
    if cloud == "aws":
        if not from_connection:
            parser.add_argument("--account-id", default="", help="12-digit AWS account id (needed by --format json)")
            parser.add_argument("--role-name", default="", help="IAM role name (default: ado-<connection>)")
        parser.add_argument("--partition", default="aws", help="AWS partition (aws, aws-us-gov, aws-cn)")
        parser.add_argument("--max-session-duration", type=int, default=3600, help="role's maximum session, seconds")
        parser.add_argument(
            "--provider-exists", action="store_true", help="the account already has this issuer's OIDC provider"
        )
    elif cloud == "azure":
        parser.add_argument("--app-id", default="", help="application (client) id of the Entra app (--format az)")
        parser.add_argument("--identity", default="", help="user-assigned managed identity name, instead of --app-id")
        parser.add_argument("--resource-group", default="", help="resource group of --identity")
        parser.add_argument("--name", default="", help="federated credential name (default: ado-<connection>)")
        parser.add_argument(
            "--dual-issuer",
            action="store_true",
            help="also trust the Microsoft Entra issuer, for converting the connection before "
            "the Azure DevOps issuer retires on 2027-07-01",
        )
    elif cloud == "gcp":
        if not from_connection:
            parser.add_argument("--project-number", default="", help="Google Cloud project number (required)")
            parser.add_argument("--pool", default="azure-devops", help="workload identity pool id")
            parser.add_argument("--provider", default="", help="pool provider id (default: ado-<connection>)")
            parser.add_argument("--service-account", default="", help="e-mail of the service account (required)")
        parser.add_argument("--project-id", default="", help="Google Cloud project id (default: the number)")
        parser.add_argument("--existing-pool", action="store_true", help="the pool exists: create only the provider")
    elif cloud == "vault":
        if not from_connection:
            parser.add_argument("--role", default="", help="JWT auth role name (default: ado-<connection>)")
            parser.add_argument("--mount", default="jwt", help="JWT auth mount path")
        parser.add_argument("--policy", action="append", default=[], help="Vault policy for the token (repeat)")
        parser.add_argument("--ttl", default="15m", help="token TTL (default 15m)")
        parser.add_argument("--max-ttl", default="1h", help="token maximum TTL (default 1h)")
        parser.add_argument("--jwks-url", default="", help="signing keys URL (default: the issuer's)")
        parser.add_argument(
            "--discovery", action="store_true", help="use oidc_discovery_url=<issuer> instead of jwks_url"
        )
        parser.add_argument("--existing-mount", action="store_true", help="the JWT mount exists: do not enable it")


def render(cloud: str, facts: Any, args: argparse.Namespace) -> str:
    from .. import trust

    if cloud == "aws":
        return trust.render_aws(
            facts,
            args.format,
            account_id=args.account_id,
            partition=args.partition,
            role_name=args.role_name,
            max_session=args.max_session_duration,
            provider_exists=args.provider_exists,
        )
    if cloud == "azure":
        return trust.render_azure(
            facts,
            args.format,
            app_id=args.app_id,
            name=args.name,
            dual_issuer=args.dual_issuer,
            identity=args.identity,
            resource_group=args.resource_group,
        )
    if cloud == "gcp":
        return trust.render_gcp(
            facts,
            args.format,
            project_number=args.project_number,
            project_id=args.project_id,
            service_account=args.service_account,
            pool=args.pool,
            provider=args.provider,
            create_pool=not args.existing_pool,
        )
    return trust.render_vault(
        facts,
        args.format,
        role=args.role,
        policies=args.policy,
        mount=args.mount,
        ttl=args.ttl,
        max_ttl=args.max_ttl,
        jwks_url=args.jwks_url,
        discovery=args.discovery,
        enable_mount=not args.existing_mount,
    )


def say(text: str) -> None:
    """A message for the person at the terminal (stderr), never a logging command."""
    from ..vso import neutralise

    print(f"oidc-credentials: {neutralise(text)}", file=sys.stderr)


def write(text: str, out: str | None) -> None:
    """The rendered trust: exactly into --out, or to standard output (where it can never form a ##vso command)."""
    from ..errors import ConfigError
    from ..vso import neutralise

    if out:
        try:
            with open(out, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            raise ConfigError(f"--out {out}: cannot write it ({exc.strerror or exc}).") from exc
        say(f"wrote {out}")
        return
    safe = "\n".join(neutralise(line) for line in text.split("\n"))
    if safe != text:
        say(
            "standard output had text that reads as an Azure Pipelines command; it is neutralised, use --out for the exact file"
        )
    sys.stdout.write(safe)
    sys.stdout.flush()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    clouds = parser.add_subparsers(dest="cloud", metavar="CLOUD", required=True)
    for cloud, text in CLOUD_HELP.items():
        sub = clouds.add_parser(cloud, help=text, description=f"{text}.\n\n{DESCRIPTION}")
        sub.formatter_class = argparse.RawDescriptionHelpFormatter
        add_cloud_arguments(sub, cloud)
        add_fact_arguments(sub)


def run(args: argparse.Namespace) -> int:
    facts = gather(args, warn=lambda text: say(f"warning: {text}"))
    text = render(args.cloud, facts, args)
    say(f"trust for subject {facts.subject} (issuer {facts.issuer}; from the {facts.sources.get('subject', 'flags')})")
    write(text, args.out)
    return 0
