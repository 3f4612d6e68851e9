"""AWS: the whole task through the launcher vs ``aws sts assume-role-with-web-identity`` (AWS CLI v1).

Both talk HTTPS to the same STS server (moto's, served over TLS by the local CA) through the same
CONNECT proxy (bench/proxy.py), as on an agent behind an enterprise proxy, and the proxy's tunnel count
proves they did. The task does everything (OIDC token request to Azure DevOps, the exchange, the
variables); the CLI gets a fresh OIDC token handed to it, untimed. Target (issue #15): <= 0.5x.

A second case keeps the direct figures (no proxy, ``bench/measure.py``): launcher start to the last
variable (< 400 ms) and the Python side's peak RSS (< 80 MB).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.proxy import ConnectProxy
from bench.suite import Case, RunFailed, interleaved, runs_default, timed_run
from demo.stage import Stage
from tests.harness import LAUNCHER, ROOT, AgentJob
from tests.standins.server import Server

ROLE = "arn:aws:iam::123456789012:role/ado-deploy"
MEASURE = Path(__file__).with_name("measure.py")
AWS_CLI = Path(sys.executable).with_name("aws")


def start_sts(stage: Stage) -> str:
    """moto's STS (the real parser and serialiser) over HTTPS on 127.0.0.1, trusted through the stage's CA."""
    from moto.server import DomainDispatcherApplication, create_backend_app

    server = Server(DomainDispatcherApplication(create_backend_app), ca=stage.ca)
    stage.servers.append(server)
    return server.url


def aws_job(stage: Stage, sts_url: str, name: str = "aws-bench") -> AgentJob:
    conn = stage.ado.add_connection(name)
    job = stage.job().inputs(provider="aws", awsConnection=conn.id, awsRegion="eu-west-1")
    job.endpoint(conn.id, url=sts_url, scheme="None", params={"roleArn": ROLE})
    job.conn = conn  # type: ignore[attr-defined]
    return job


def measure(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(MEASURE), *argv], env=env, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(proc.stdout)
    if result["failed"] or result["exit"] != 0 or not result["last_variable"]:
        raise RunFailed(f"AWS task run failed: {result}")
    return result


def run() -> list[Case]:
    runs = runs_default(9)
    if not AWS_CLI.exists():
        raise RunFailed(
            f"the AWS CLI baseline is missing ({AWS_CLI}): `make setup` installs it (awscli, a dev dependency)"
        )
    stage = Stage.start()
    proxy = ConnectProxy()
    try:
        sts = start_sts(stage)
        job = aws_job(stage, sts)
        conn = job.conn  # type: ignore[attr-defined]
        direct_env = dict(job.env)
        env = {k: v for k, v in job.env.items() if k.upper() != "NO_PROXY"}
        env["HTTPS_PROXY"] = proxy.url
        home = stage.workdir / "cli-home"
        home.mkdir()
        cli_env = {
            "PATH": env["PATH"],
            "HOME": str(home),
            "HTTPS_PROXY": proxy.url,
            "AWS_CA_BUNDLE": stage.ca.bundle,
            "AWS_CONFIG_FILE": str(home / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_PAGER": "",
        }
        task = ["node", str(LAUNCHER)]

        def ours() -> float:
            return timed_run(task, env, expect="AWS_SESSION_TOKEN")[0]

        def cli() -> float:
            token = stage.ado.token_for(conn)  # a fresh OIDC token, handed over untimed
            argv = [str(AWS_CLI), "sts", "assume-role-with-web-identity", "--role-arn", ROLE]
            argv += ["--role-session-name", "bench", "--web-identity-token", token, "--endpoint-url", sts]
            argv += ["--region", "eu-west-1", "--output", "json"]
            return timed_run(argv, cli_env, expect="SessionToken")[0]

        before = proxy.tunnels
        times = interleaved(runs, task=ours, cli=cli)
        tunnels = proxy.tunnels - before
        # the task opens one tunnel to Azure DevOps and one to STS per run, the CLI one to STS
        if tunnels < 3 * (runs + 1):
            raise RunFailed(f"only {tunnels} proxy tunnels for {runs + 1} runs of each: a client bypassed the proxy")

        measure(task, direct_env)  # warm
        direct = [measure(task, direct_env) for _ in range(max(3, runs // 3))]
        python = [measure([sys.executable, str(ROOT / "task" / "entry.py")], direct_env) for _ in range(3)]
    finally:
        proxy.stop()
        stage.stop()
    via_proxy = Case(
        "aws: whole task vs `aws sts assume-role-with-web-identity`, same STS, same HTTPS proxy",
        times["task"],
        "AWS CLI v1",
        times["cli"],
        target=0.5,
        detail={"proxy_tunnels": tunnels},
    )
    rss = statistics.median(r["maxrss_kib"] for r in python) / 1024
    no_proxy = Case(
        "aws: whole task, no proxy, launcher start -> last variable",
        [r["last_variable"] for r in direct],
        target=400,
        target_on="median",
        detail={"exit_ms": [round(r["total"] * 1000, 1) for r in direct]},
    )
    memory = Case(
        "aws: peak RSS of the Python side (MB)",
        derived=(rss, min(r["maxrss_kib"] for r in python) / 1024, max(r["maxrss_kib"] for r in python) / 1024),
        target=80,
        target_on="median",
        unit="MB",
        derived_runs=len(python),
    )
    return [via_proxy, no_proxy, memory]
