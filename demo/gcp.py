"""Google Cloud: STS exchange and impersonation at the GCP stand-in, then google-auth in a later step."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from demo.stage import Stage, show
from tests.harness import AgentJob
from tests.standins.gcp import Google
from tests.standins.server import Server

SA = "deployer@payments-prod.iam.gserviceaccount.com"
LATER = (
    "import google.auth, google.auth.transport.requests as r\n"
    "creds, project = google.auth.default(scopes=['https://www.googleapis.com/auth/cloud-platform'])\n"
    "creds.refresh(r.Request())\n"
    "print(project, creds.service_account_email)\n"
)


def run(stage: Stage) -> None:
    google = Google()
    server = Server(google, ca=stage.ca)
    stage.servers.append(server)
    conn = stage.ado.add_connection("gcp-prod")
    provider = google.add_provider(issuer=stage.ado.issuer, keys=stage.ado.public_pem)
    google.add_service_account(SA, members=[provider.principal(stage.ado.subject(conn))])

    def job(connection_id: str) -> AgentJob:
        j = stage.job().inputs(provider="gcp", gcpConnection=connection_id, gcpIamCredentialsUrl=server.url)
        return j.endpoint(
            connection_id,
            url=server.url,
            scheme="None",
            params={"workloadIdentityProvider": provider.name, "serviceAccount": SA},
        )

    result = job(conn.id).run()
    show("Google Cloud: OidcCredentials@1 (provider: gcp)", result)
    if result.failed:
        raise SystemExit("the Google Cloud flow failed")
    env = {k: v for k, v in result.variables.items() if k not in result.secret_names}
    env.update({"PATH": os.environ["PATH"], "REQUESTS_CA_BUNDLE": stage.ca.bundle})
    done = subprocess.run([sys.executable, "-c", LATER], env=env, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise SystemExit(f"the later step failed: {done.stderr[-500:]}")
    print(f"  later step: google-auth with GOOGLE_APPLICATION_CREDENTIALS -> {done.stdout.strip()}")
    with open(result.variables["GOOGLE_APPLICATION_CREDENTIALS"], encoding="utf-8") as file:
        creds = json.load(file)
    print(f"  credentials file: type {creds['type']}, audience {creds['audience']}")

    other = stage.ado.add_connection("gcp-unbound")  # its subject holds no workloadIdentityUser binding
    failed = job(other.id).run()
    show("Google Cloud: a subject the service account does not trust (expected to fail)", failed)
    if not failed.failed:
        raise SystemExit("the failing flow did not fail")
