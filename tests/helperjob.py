"""A job whose task set up the refreshing AWS profile, and the later steps that use it.

The task runs through the real launcher against the Azure DevOps and STS stand-ins; a later step is a
fresh process with only what the agent would give it: the plain variables the task set (the profile's
``AWS_CONFIG_FILE``/``AWS_PROFILE``/``AWS_SDK_LOAD_CONFIG``), the mapped ``SYSTEM_ACCESSTOKEN``, the CA the
stand-ins use, and a workspace as its working directory.
"""

from __future__ import annotations

import configparser
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.harness import ROOT, AgentJob, TaskRun
from tests.standins.ado import AzureDevOps
from tests.standins.sts import Sts

ROLE = "arn:aws:iam::123456789012:role/ado-deploy"
ROLE_SESSION = "arn:aws:sts::123456789012:assumed-role/ado-deploy/ado-4242-1"
POST_JS = ROOT / "task" / "post.js"
STATE_ENV = "VSTS_TASKVARIABLE_OIDC_CREDENTIALS_STATE"


@dataclass
class AwsHelperJob:
    ado: AzureDevOps
    sts: Sts
    sts_url: str
    job: AgentJob
    ca_bundle: str
    workspace: Path
    temp: Path
    run: TaskRun | None = None
    #: the profile's credential_process, once read (it outlives the file, as in an SDK that read its config)
    command: str = ""

    def start(self, **inputs: str) -> TaskRun:
        """Run the task (refresh on unless the inputs say otherwise); the run must succeed."""
        conn = self.ado.add_connection("aws-prod")
        self.job.inputs(provider="aws", awsConnection=conn.id, awsSessionDuration="900", **inputs)
        self.job.endpoint(conn.id, url=self.sts_url, scheme="None", params={"roleArn": ROLE})
        self.job.env["BUILD_SOURCESDIRECTORY"] = str(self.workspace)
        self.job.env["SYSTEM_DEFAULTWORKINGDIRECTORY"] = str(self.workspace)
        self.run = self.job.run(cwd=self.workspace)
        assert self.run.returncode == 0 and not self.run.failed, self.run.stdout + self.run.stderr
        return self.run

    @property
    def variables(self) -> dict[str, str]:
        assert self.run is not None
        return self.run.variables

    def step_env(self, *, access_token: bool = True, **extra: str) -> dict[str, str]:
        """A later step's environment: the task's plain variables, the env: mapping, nothing secret else."""
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(self.temp.parent / "home"),
            "REQUESTS_CA_BUNDLE": self.ca_bundle,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        assert self.run is not None
        env.update({k: v for k, v in self.run.variables.items() if k not in self.run.secret_names})
        if access_token:
            env["SYSTEM_ACCESSTOKEN"] = self.ado.access_token
        env.update(extra)
        return env

    @property
    def credential_process(self) -> str:
        if not self.command:
            parser = configparser.RawConfigParser()
            parser.read(self.variables["AWS_CONFIG_FILE"])
            self.command = parser.get("profile " + self.variables["AWS_PROFILE"], "credential_process")
        return self.command

    @property
    def helper_config(self) -> Path:
        return Path(shlex.split(self.credential_process)[-1])

    @property
    def folder(self) -> Path:
        return self.helper_config.parent

    def helper(self, env: dict[str, str] | None = None, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        """Run the helper exactly as botocore does: the profile's command line, split by shlex."""
        return subprocess.run(
            shlex.split(self.credential_process),
            env=env if env is not None else self.step_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.workspace,
        )

    def post(self) -> TaskRun:
        """The post-job step through task/post.js, as the agent runs it."""
        assert self.run is not None
        env = {
            "PATH": os.environ["PATH"],
            "AGENT_TEMPDIRECTORY": str(self.temp),
            STATE_ENV: self.run.task_variables["OIDC_CREDENTIALS_STATE"],
            "OIDC_CREDENTIALS_PYTHON": sys.executable,
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        proc = subprocess.run(
            ["node", str(POST_JS)], env=env, capture_output=True, text=True, timeout=60, check=False, cwd=self.workspace
        )
        return TaskRun.from_output(proc.returncode, proc.stdout, proc.stderr)

    def secrets(self) -> list[str]:
        """Every secret value of the job so far: credentials issued, OIDC tokens, the access token."""
        assert self.run is not None
        issued = [token for token, _exp, _arn in self.sts.issued.values()]
        return [*self.run.secrets, *issued, *self.ado.issued, self.ado.access_token]


def tree(path: Path) -> list[str]:
    """Every entry under ``path``, relative, sorted (empty when nothing is left)."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


#: what the task leaves for the agent to upload (the run summary and the audit record): never a secret
REPORT_PREFIX = "oidc-credentials-"


def leftovers(temp: Path, secrets: list[str]) -> list[str]:
    """What is left in Agent.TempDirectory besides the run summary and audit record, which hold no secret."""
    reports = [p for p in temp.rglob("*") if p.relative_to(temp).parts[0].startswith(REPORT_PREFIX) and p.is_file()]
    for report in reports:
        text = report.read_text(errors="replace")
        assert not [s for s in secrets if s and s in text], f"a secret in {report}"
    return [p for p in tree(temp) if not p.startswith(REPORT_PREFIX)]
