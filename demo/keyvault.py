"""Key Vault: secrets read with the pipeline's federated identity; then what a missing role looks like."""

from __future__ import annotations

from demo.azure import start_entra
from demo.stage import Stage, show
from tests.standins.keyvault import KeyVault
from tests.standins.server import Server

SECRETS = {
    "db-password": "s3cr3t;%value]",
    "api-key": "ak_live_0123456789",
    "tls-cert": "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----",
}


def run(stage: Stage) -> None:
    world = start_entra(stage)
    vault = KeyVault(world.entra, world.tenant.tenant_id, authority=world.url)
    for name, value in SECRETS.items():
        vault.add(name, value)
    vault.add("old-password", "retired", enabled=False)
    server = Server(vault, ca=stage.ca)
    stage.servers.append(server)
    vault.base_url = server.url

    def job(**inputs: str) -> object:
        return world.endpoint(
            stage.job().inputs(provider="keyvault", azureConnection=world.connection_id, keyVault=server.url, **inputs)
        )

    denied = job().run()  # type: ignore[attr-defined]
    show("Key Vault: the app holds no role on the vault yet (expected to fail)", denied)
    if not denied.failed or 'az role assignment create --role "Key Vault Secrets User"' not in denied.errors[0]:
        raise SystemExit("the RBAC failure was not explained")

    vault.grant(world.app.client_id)
    result = job(secretsEnvironmentAliases="true", multilineSecrets="file").run()  # type: ignore[attr-defined]
    show("Key Vault: OidcCredentials@1 (provider: keyvault, aliases, multi-line values to files)", result)
    if result.failed:
        raise SystemExit("the Key Vault flow failed")
    for name in ("db-password", "api-key"):
        if result.variables.get(name) != SECRETS[name]:
            raise SystemExit(f"the later step did not get {name}")
    with open(result.variables["KEYVAULT_FILE_TLS_CERT"], encoding="utf-8") as handle:
        if handle.read() != SECRETS["tls-cert"]:
            raise SystemExit("the certificate file does not hold the secret")
    print(
        "  later step: $(db-password), $(DB_PASSWORD), $(api-key) and the file at $(KEYVAULT_FILE_TLS_CERT) hold the vault's values"
    )
