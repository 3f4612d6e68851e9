"""The input validation table: every input, a valid value, and invalid values with the message each gets.

``python -m tests.inputs_table`` writes the table into README.md (between the ``inputs-table`` markers);
``tests/test_inputs_table.py`` runs every invalid value through the task (nothing is sent: each is refused
while the inputs are read) and checks the README section is exactly what this renders.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

CONN = "0f6e2f0c-1f6a-4c55-9a53-2c7f3b7f0a11"
ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- inputs-table: begin (python -m tests.inputs_table) -->", "<!-- inputs-table: end -->"

#: provider -> the endpoint auth parameters of a well-formed connection
CONNECTIONS = {
    "aws": ("awsConnection", "https://sts.amazonaws.com", {"roleArn": "arn:aws:iam::123456789012:role/ado-deploy"}),
    "azure": (
        "azureConnection",
        "https://management.azure.com/",
        {
            "serviceprincipalid": "9ca50492-ca75-4f20-a208-593d100b4a06",
            "tenantid": "61eab9ea-50e9-4858-83c1-fdab4833bfb4",
        },
    ),
    "gcp": (
        "gcpConnection",
        "https://sts.googleapis.com",
        {
            "workloadIdentityProvider": "projects/123456789012/locations/global/workloadIdentityPools/ado-pool/providers/ado-provider",
            "serviceAccount": "sa@proj-1.iam.gserviceaccount.com",
        },
    ),
    "vault": ("vaultConnection", "https://vault.example.com:8200", {"role": "ado"}),
}
CONNECTIONS["keyvault"] = CONNECTIONS["azure"]

#: (provider, input, a valid value, an invalid value, a fragment of the message the invalid value gets)
ROWS: list[tuple[str, str, str, str, str]] = [
    ("aws", "provider", "aws", "ftp", "must be one of aws, azure, keyvault, gcp, vault"),
    ("aws", "awsConnection", CONN, "not-a-guid", "must name"),
    ("aws", "awsRoleArn", "arn:aws:iam::123456789012:role/x", "role/x", "awsRoleArn"),
    ("aws", "awsRegion", "eu-west-1", "eu west 1", "awsRegion"),
    ("aws", "awsSessionName", "deploy-42", "a", "awsSessionName"),
    ("aws", "awsSessionDuration", "900", "60", "awsSessionDuration"),
    ("aws", "awsSessionDuration", "43200", "1h", "awsSessionDuration"),
    ("aws", "awsSessionPolicy", '{"Version": "2012-10-17", "Statement": []}', "{not json", "awsSessionPolicy"),
    (
        "aws",
        "awsManagedSessionPolicies",
        "arn:aws:iam::aws:policy/ReadOnlyAccess",
        "ReadOnlyAccess",
        "awsManagedSessionPolicies",
    ),
    ("aws", "awsAllowedAccountIds", "123456789012", "12345", "awsAllowedAccountIds"),
    ("aws", "publishOutputVariables", "true", "yes please", "publishOutputVariables"),
    ("aws", "timeoutSeconds", "120", "5", "timeoutSeconds"),
    ("aws", "timeoutSeconds", "3600", "two minutes", "timeoutSeconds"),
    ("azure", "azureScopes", "https://management.azure.com/.default", "not a scope", "azureScopes"),
    ("keyvault", "keyVault", "my-vault", "http://my-vault.example", "keyVault"),
    ("keyvault", "secretsFilter", "db-*, api-key", "bad name!", "secretsFilter"),
    ("keyvault", "keyVaultConcurrency", "16", "0", "keyVaultConcurrency"),
    ("keyvault", "secretsEnvironmentAliases", "false", "maybe", "secretsEnvironmentAliases"),
    ("keyvault", "multilineSecrets", "base64", "zip", "multilineSecrets"),
    ("keyvault", "failOnMissingSecrets", "names", "sometimes", "failOnMissingSecrets"),
    ("gcp", "gcpServiceAccount", "sa@proj-1.iam.gserviceaccount.com", "not-an-email", "gcpServiceAccount"),
    ("gcp", "gcpTokenLifetime", "3600", "10", "gcpTokenLifetime"),
    ("gcp", "gcpIamCredentialsUrl", "https://iamcredentials.googleapis.com", "ftp://x", "gcpIamCredentialsUrl"),
    ("vault", "vaultSecrets", "secret/data/app db_password | DB_PASSWORD", "just-a-path", "vaultSecrets"),
    ("vault", "vaultCaCertificate", "-----BEGIN CERTIFICATE-----…", "not a certificate", "vaultCaCertificate"),
]


def env_for(provider: str, name: str, value: str) -> dict[str, str]:
    """A task environment for ``provider`` with one input set; every request would go to the .invalid domain."""
    conn_input, url, params = CONNECTIONS[provider]
    env = {
        "INPUT_PROVIDER": provider,
        "INPUT_" + conn_input.upper(): CONN,
        f"ENDPOINT_URL_{CONN}": url,
        f"ENDPOINT_AUTH_SCHEME_{CONN}": "WorkloadIdentityFederation" if provider in ("azure", "keyvault") else "None",
        "SYSTEM_COLLECTIONURI": "https://dev.azure.invalid/fabrikam/",
        "SYSTEM_OIDCREQUESTURI": "https://dev.azure.invalid/fabrikam/p/_apis/distributedtask/hubs/build/plans/a/jobs/b/oidctoken",
        "ENDPOINT_URL_SYSTEMVSSCONNECTION": "https://dev.azure.invalid/fabrikam/",
        "ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN": "job-token",
        "INPUT_KEYVAULT": "my-vault" if provider == "keyvault" else "",
        "INPUT_VAULTSECRETS": "secret/data/app db_password | DB_PASSWORD" if provider == "vault" else "",
    }
    for key, param in params.items():
        env[f"ENDPOINT_AUTH_PARAMETER_{CONN}_{key.upper()}"] = param
    env["INPUT_" + name.upper()] = value
    return env


def render(messages: dict[tuple[str, str], str]) -> str:
    """The README table; ``messages`` maps (input, invalid value) to the message the task gave."""
    lines = [
        BEGIN,
        "| input | valid, e.g. | invalid | the task says (first sentence) |",
        "|---|---|---|---|",
    ]
    for _provider, name, valid, invalid, _fragment in ROWS:
        said = re.split(r"(?<=[.!?])\s", messages[(name, invalid)], maxsplit=1)[0].replace("|", "\\|")
        cells = [f"`{cell}`".replace("|", "\\|") for cell in (name, valid, invalid)]
        lines.append(f"| {' | '.join(cells)} | {said} |")
    lines.append(END)
    return "\n".join(lines)


def messages() -> dict[tuple[str, str], str]:
    """Run every invalid value through the task in-process; (input, value) -> its one error message."""
    import io

    from oidc_credentials import __main__ as entry

    from tests.harness import TaskRun

    found = {}
    for provider, name, _valid, invalid, _fragment in ROWS:
        out, err = io.StringIO(), io.StringIO()
        code = entry.main(env_for(provider, name, invalid), out, err)
        run = TaskRun.from_output(code, out.getvalue(), err.getvalue())
        found[(name, invalid)] = run.errors[0] if run.errors else "(accepted)"
    return found


def section(readme: str) -> str:
    start, end = readme.find(BEGIN), readme.find(END)
    return readme[start : end + len(END)] if start >= 0 and end > start else ""


def main() -> int:
    readme_path = ROOT / "README.md"
    readme = readme_path.read_text()
    table = render(messages())
    old = section(readme)
    if not old:
        sys.stderr.write("README.md has no inputs-table markers\n")
        return 1
    readme_path.write_text(readme.replace(old, table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
