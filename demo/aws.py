"""AWS: assume a role in moto with the stand-in's token, then use the credentials in a later step."""

from __future__ import annotations

from demo.stage import Stage, show
from tests.harness import caller_arn

ROLE = "arn:aws:iam::123456789012:role/ado-deploy"


def run(stage: Stage) -> None:
    moto = stage.start_moto()
    conn = stage.ado.add_connection("aws-prod")
    job = stage.job().inputs(provider="aws", awsConnection=conn.id, awsRegion="eu-west-1", awsSessionDuration="900")
    job.endpoint(conn.id, url=moto, scheme="None", params={"roleArn": ROLE})
    result = job.run()
    show("AWS: OidcCredentials@1 (provider: aws)", result)
    if result.failed:
        raise SystemExit("the AWS flow failed")

    arn = caller_arn(result, moto)
    print(f"  later step: aws sts get-caller-identity -> {arn}")
    if ":assumed-role/ado-deploy/" not in arn:
        raise SystemExit(f"the later step ran as {arn}, not as the assumed role")

    denied = stage.ado.add_connection("aws-unreferenced", referenced=False)
    job = stage.job().inputs(provider="aws", awsConnection=denied.id)
    job.endpoint(denied.id, url=moto, scheme="None", params={"roleArn": ROLE})
    failed = job.run()
    show("AWS: a connection the stage does not reference (expected to fail)", failed)
    if not failed.failed:
        raise SystemExit("the failing flow did not fail")
