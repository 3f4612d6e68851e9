"""``oidc-credentials doctor``: per service connection, what will break and the fix."""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HELP = "check an organisation's service connections: what will break, and the fix"

DESCRIPTION = """\
Reads the service connections of the given projects through the azure-devops SDK and says, per
connection, what will break and how to fix it:
  - the Azure DevOps issuer still in use by an Azure connection (it retires on 2027-07-01);
  - a connection that is not ready (disabled, or its set-up failed);
  - a connection open to all pipelines, or without approvals and checks (the token names the
    connection, not the pipeline, so that is where access is controlled);
  - a subject longer than Google's 127 bytes (google.subject);
  - an Entra app near its limit of 20 federated credentials;
  - with --token-file: a token that the connection (renamed?) or a saved cloud-side trust (--trust)
    would not match.

Exit status: 0 nothing will break, 3 something will (listed), 1 the check itself failed.
Credentials: AZURE_DEVOPS_EXT_PAT (or AZURE_DEVOPS_PAT), or AZURE_DEVOPS_TOKEN."""

FOUND_PROBLEMS = 3
#: warn when an Entra app has this many federated credentials (the limit is 20)
NEAR_FIC_LIMIT = 16


@dataclass(frozen=True)
class Finding:
    level: str  # "problem" (will break) or "warning"
    text: str
    fix: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--org",
        metavar="URL",
        default=os.environ.get("AZURE_DEVOPS_ORG_URL", ""),
        help="organisation URL, e.g. https://dev.azure.com/fabrikam (default: $AZURE_DEVOPS_ORG_URL)",
    )
    parser.add_argument("--project", action="append", default=[], required=True, help="project to check (repeat)")
    parser.add_argument("--connection", action="append", default=[], help="check only this connection (repeat)")
    parser.add_argument("--token-file", metavar="PATH", help="a saved token of one connection, to check against it")
    parser.add_argument(
        "--trust",
        metavar="PATH",
        action="append",
        default=[],
        help="a saved cloud-side trust (IAM trust policy, Entra credentials, Vault role, GCP provider JSON) "
        "to check the --token-file against; repeat",
    )
    parser.add_argument(
        "--federated-credentials",
        metavar="APP_ID=PATH",
        action="append",
        default=[],
        help="an Entra app's credentials as `az ad app federated-credential list --id APP_ID` prints them; repeat",
    )


def _credential_counts(pairs: list[str]) -> dict[str, int]:
    from ..errors import ConfigError

    counts = {}
    for pair in pairs:
        app_id, sep, path = pair.partition("=")
        if not sep or not app_id or not path:
            raise ConfigError(f"--federated-credentials {pair}: give APP_ID=PATH.")
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--federated-credentials {pair}: cannot read a JSON list from {path} ({exc}).") from exc
        items = data.get("value", []) if isinstance(data, dict) else data
        counts[app_id.lower()] = len(items) if isinstance(items, list) else 0
    return counts


def check(
    endpoint: Any, access: Any, facts: Any, *, apps: Counter[str], credentials: dict[str, int], org_url: str = ""
) -> list[Finding]:
    """What will break for one connection, from what Azure DevOps says of it."""
    import shlex

    from .. import trust

    found: list[Finding] = []
    azure = endpoint.type.lower() == "azurerm"
    if not endpoint.is_ready:
        found.append(
            Finding(
                "problem",
                "the connection is not ready (disabled, or its set-up failed): pipelines that use it fail",
                "open Project settings > Service connections > this connection, fix or re-enable it, then Verify",
            )
        )
    # the retirement covers Azure public cloud only (sovereign clouds keep the Azure DevOps issuer)
    public_cloud = str(endpoint.data.get("environment") or "AzureCloud").lower() == "azurecloud"
    if azure and public_cloud and endpoint.uses_federation and facts.issuer_kind == "azuredevops":
        found.append(
            Finding(
                "warning",
                f"uses the Azure DevOps issuer, which Azure stops accepting on {trust.ADO_ISSUER_RETIREMENT}",
                "add the Entra-issuer credential first (oidc-credentials trust azure --org "
                f"{shlex.quote(org_url or '<organisation URL>')} --project {shlex.quote(facts.project)} --connection "
                f"{shlex.quote(endpoint.name)} --dual-issuer --format az --app-id {endpoint.app_id or '<app id>'}), "
                "then convert the connection to the Entra issuer",
            )
        )
    if access.all_pipelines:
        found.append(
            Finding(
                "warning",
                "open to all pipelines: the token names the connection, not the pipeline, so any pipeline of the "
                "project gets these credentials",
                "turn off 'Grant access permission to all pipelines' and authorise the pipelines that deploy",
            )
        )
    if not access.checks:
        found.append(
            Finding(
                "warning",
                "no approvals or checks: nothing stands between a pipeline run and the cloud",
                "add Approvals and a Branch control check to the connection (Approvals and checks)",
            )
        )
    if endpoint.type == "OidcCredentialsGcp" and len(facts.subject.encode()) > trust.GCP_SUBJECT_LIMIT:
        found.append(
            Finding(
                "problem",
                f"the subject is {len(facts.subject.encode())} bytes; Google keeps at most "
                f"{trust.GCP_SUBJECT_LIMIT} in google.subject, so a mapping of assertion.sub fails",
                "map a shorter part of it: oidc-credentials trust gcp renders that mapping",
            )
        )
    if azure and endpoint.app_id:
        have = credentials.get(endpoint.app_id.lower())
        count = have if have is not None else apps[endpoint.app_id.lower()]
        basis = "federated credentials" if have is not None else "connections of this organisation federate with it"
        if count >= trust.ENTRA_FIC_LIMIT:
            found.append(
                Finding(
                    "problem",
                    f"the Entra app {endpoint.app_id} is at its limit: {count} {basis} (at most {trust.ENTRA_FIC_LIMIT})",
                    "use another app (or a managed identity) for new connections; remove unused credentials",
                )
            )
        elif count >= NEAR_FIC_LIMIT:
            found.append(
                Finding(
                    "warning",
                    f"the Entra app {endpoint.app_id} is near its limit: {count} {basis} (at most {trust.ENTRA_FIC_LIMIT})",
                    "plan another app (or a managed identity) for the next connections",
                )
            )
    return found


def token_findings(token: Any, facts: Any, expectations: list[Any]) -> list[Finding]:
    """A saved token against the connection as Azure DevOps names it, and against each saved trust."""
    from .. import trust

    found = []
    for name in ("issuer", "subject"):
        line = trust.difference(name, getattr(token, name), getattr(facts, name))
        if line:
            found.append(
                Finding(
                    "problem",
                    f"the token does not belong to this connection as it is named now: {line}",
                    "a renamed organisation, project or connection changes the subject: save a fresh token, "
                    "then rewrite the trust (oidc-credentials trust ...)",
                )
            )
    for expectation in expectations:
        lines = trust.mismatches(token, expectation)
        for line in lines:
            found.append(
                Finding(
                    "problem",
                    f"{expectation.label} would refuse the token: {line}",
                    "rewrite that trust from the token: oidc-credentials trust <cloud> --token-file ...",
                )
            )
    return found


def run(args: argparse.Namespace) -> int:
    from .. import trust
    from ..ado_admin import AdoAdmin
    from ..errors import ConfigError
    from ..vso import neutralise

    if not args.org:
        raise ConfigError("missing --org: the organisation URL, e.g. https://dev.azure.com/fabrikam.")
    if args.trust and not args.token_file:
        raise ConfigError("missing --token-file: --trust is checked against a saved token.")
    token = trust.facts_from_token(args.token_file) if args.token_file else None
    expectations = [e for path in args.trust for e in trust.expectations_from(path)]
    credentials = _credential_counts(args.federated_credentials)
    admin = AdoAdmin(args.org)
    wanted = {c.lower() for c in args.connection}
    checked: list[tuple[str, Any, Any, Any]] = []
    for name in args.project:
        _project_id, project = admin.project(name)
        for endpoint in admin.endpoints(project):
            if wanted and endpoint.name.lower() not in wanted:
                continue
            facts = trust.facts_from_endpoint(endpoint, org_id=admin.org_id, org_name=admin.org_name, project=project)
            checked.append((project, endpoint, facts, admin.access(project, endpoint.id)))
    missing = wanted - {e.name.lower() for _p, e, _f, _a in checked}
    if missing:
        raise ConfigError(f"--connection {', '.join(sorted(missing))}: no such connection in the projects given.")
    apps = Counter(e.app_id.lower() for _p, e, _f, _a in checked if e.type.lower() == "azurerm" and e.app_id)
    token_owner = None
    if token is not None:
        token_owner = next(
            (e.id for _p, e, f, _a in checked if (e.id == token.connection_id) or (f.subject == token.subject)), None
        )
        if token_owner is None and len(checked) == 1:
            token_owner = checked[0][1].id
    problems = 0
    lines = []
    for project, endpoint, facts, access in checked:
        found = check(endpoint, access, facts, apps=apps, credentials=credentials, org_url=admin.url)
        if token is not None and endpoint.id == token_owner:
            found += token_findings(token, facts, expectations)
        problems += sum(1 for f in found if f.level == "problem")
        lines.append(f"{project}/{endpoint.name} ({endpoint.type}, {endpoint.id})")
        lines.append(f"  token: issuer {facts.issuer}, subject {facts.subject}")
        for finding in found:
            lines.append(f"  {finding.level.upper()}: {finding.text}")
            lines.append(f"    fix: {finding.fix}")
        if not found:
            lines.append("  ok")
    if token is not None and token_owner is None:
        problems += 1
        lines.append(
            f"PROBLEM: the token (subject {token.subject}) belongs to none of the connections checked: "
            "renamed, deleted, or in another project"
        )
    lines.append(
        f"{len(checked)} connection(s) checked: "
        + (f"{problems} problem(s) will break deployments" if problems else "nothing will break")
    )
    print("\n".join(neutralise(line) for line in lines))
    return FOUND_PROBLEMS if problems else 0
