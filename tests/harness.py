"""Run the task as the agent does, and read its output as the agent does.

``AgentJob`` builds the environment the Node handler gives a task (platform.md §4) and runs
``node task/launcher.js``. ``parse_line`` mirrors the agent's ``Command.TryParse`` and unescaping:
``##vso[`` anywhere in a line, the first ``]`` after it ends the properties, properties split on ``;``
and their first ``=``, and ``%3B %0D %0A %5D`` then ``%AZP25`` decoded in values and data.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = ROOT / "task" / "launcher.js"


def _schemas() -> Path:
    """The JSON schemas of task.json and of pipelines: shared/schemas beside the repository (or beside
    the repository this one was cloned from), unless OIDC_CREDENTIALS_SCHEMAS names the folder."""
    if os.environ.get("OIDC_CREDENTIALS_SCHEMAS"):
        return Path(os.environ["OIDC_CREDENTIALS_SCHEMAS"])
    here = ROOT.parent / "shared" / "schemas"
    if here.is_dir():
        return here
    origin = subprocess.run(
        ["git", "-C", str(ROOT), "remote", "get-url", "origin"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if origin and Path(origin).is_dir():
        cloned_from = Path(origin).resolve().parent / "shared" / "schemas"
        if cloned_from.is_dir():
            return cloned_from
    return here


SCHEMAS = _schemas()


def _version_of(python: str) -> str:
    """``major.minor`` of an interpreter, "" when it does not run."""
    try:
        proc = subprocess.run(
            [python, "-c", "import sys; sys.stdout.write('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


@functools.cache
def find_python(version: str) -> str:
    """An interpreter of CPython ``major.minor`` on this machine, "" when there is none.

    Looked for, in order: ``OIDC_CREDENTIALS_PYTHONS`` (interpreter paths, separated by os.pathsep), pyenv's
    versions folder (``$PYENV_ROOT`` or ``~/.pyenv``), uv's managed Pythons, then ``python<version>`` on PATH.
    Each candidate is run once to confirm its version, so a pyenv shim for an absent version is skipped.
    """
    candidates = [p for p in os.environ.get("OIDC_CREDENTIALS_PYTHONS", "").split(os.pathsep) if p]
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    candidates += [str(p) for p in sorted(pyenv.glob(f"{version}.*/bin/python{version}"), reverse=True)]
    uv = Path(os.environ.get("UV_PYTHON_INSTALL_DIR") or Path.home() / ".local" / "share" / "uv" / "python")
    candidates += [str(p) for p in sorted(uv.glob(f"cpython-{version}.*/bin/python{version}"), reverse=True)]
    on_path = shutil.which(f"python{version}")
    candidates += [on_path] if on_path else []
    return next((c for c in candidates if _version_of(c) == version), "")


def find_pythons(*versions: str) -> list[str]:
    """One interpreter of each version that this machine has (see :func:`find_python`)."""
    return [found for found in (find_python(v) for v in versions) if found]


def unescape(value: str) -> str:
    return (
        value.replace("%3B", ";").replace("%0D", "\r").replace("%0A", "\n").replace("%5D", "]").replace("%AZP25", "%")
    )


@dataclass
class Command:
    area_event: str
    properties: dict[str, str]
    data: str


def parse_line(line: str) -> Command | None:
    start = line.find("##vso[")
    if start < 0:
        return None
    end = line.find("]", start)
    if end < 0:
        return None
    head = line[start + len("##vso[") : end]
    name, _, props_text = head.partition(" ")
    if len(name.split(".")) != 2:
        return None
    props: dict[str, str] = {}
    for item in props_text.split(";"):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not value:
            continue
        props[key.lower()] = unescape(value)
    return Command(name.lower(), props, unescape(line[end + 1 :]))


@dataclass
class TaskRun:
    """What the agent would make of a run: variables, secrets, issues, result and the visible log."""

    returncode: int
    stdout: str
    stderr: str
    variables: dict[str, str] = field(default_factory=dict)
    secret_names: set[str] = field(default_factory=set)
    output_variables: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    result: str = "Succeeded"
    completions: list[tuple[str, str]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    unknown_commands: list[str] = field(default_factory=list)
    #: task variables (``task.settaskvariable``): what the agent hands this task's post-job step
    task_variables: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_output(cls, returncode: int, stdout: str, stderr: str) -> TaskRun:
        run = cls(returncode, stdout, stderr)
        for line in stdout.splitlines() + stderr.splitlines():
            run._feed(line)
        return run

    def _mask(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def _feed(self, line: str) -> None:
        cmd = parse_line(line)
        if cmd is None:
            self.log.append(self._mask(line))
            return
        if cmd.area_event == "task.setsecret":
            if cmd.data and cmd.data not in self.secrets:
                self.secrets.append(cmd.data)
        elif cmd.area_event == "task.setvariable":
            name = cmd.properties.get("variable", "")
            secret = cmd.properties.get("issecret", "").lower() == "true"
            if secret and cmd.data not in self.secrets:
                self.secrets.append(cmd.data)
            if secret:
                self.secret_names.add(name)
            if cmd.properties.get("isoutput", "").lower() == "true":
                self.output_variables[name] = cmd.data
            else:
                self.variables[name] = cmd.data
        elif cmd.area_event in ("task.logissue", "task.issue"):
            kind = cmd.properties.get("type", "")
            (self.errors if kind == "error" else self.warnings).append(cmd.data)
            self.log.append(f"##[{kind}]" + self._mask(cmd.data))
        elif cmd.area_event == "task.complete":
            result = cmd.properties.get("result", "")
            self.completions.append((result, cmd.data))
            if result == "Failed" or (result == "SucceededWithIssues" and self.result == "Succeeded"):
                self.result = result
        elif cmd.area_event == "task.settaskvariable":
            self.task_variables[cmd.properties.get("variable", "")] = cmd.data
        elif cmd.area_event == "task.debug":
            self.log.append("##[debug]" + self._mask(cmd.data))
        elif cmd.area_event in ("task.uploadsummary", "task.prependpath", "task.setprogress", "artifact.upload"):
            pass
        else:
            self.unknown_commands.append(line)

    @property
    def failed(self) -> bool:
        return self.result == "Failed"

    @property
    def text(self) -> str:
        return "\n".join(self.log)


def unregistered_secret_lines(stdout: str, values: list[str]) -> list[str]:
    """Lines that contain one of ``values`` before (or without) a command registering it."""
    registered: set[str] = set()
    bad = []
    for line in stdout.splitlines():
        cmd = parse_line(line)
        if cmd and cmd.area_event == "task.setsecret":
            registered.add(cmd.data)
            continue
        if cmd and cmd.area_event == "task.setvariable" and cmd.properties.get("issecret") == "true":
            registered.add(cmd.data)
            continue
        bad.extend(line for v in values if v and v in line and v not in registered)
    return bad


class AgentJob:
    """The environment of one job step, as the agent builds it."""

    def __init__(
        self,
        *,
        collection_uri: str,
        oidc_request_uri: str,
        access_token: str,
        project_id: str = "",
        temp: Path | None = None,
    ) -> None:
        self.env: dict[str, str] = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", ""),
            "SYSTEM_COLLECTIONURI": collection_uri,
            "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI": collection_uri,
            "SYSTEM_OIDCREQUESTURI": oidc_request_uri,
            "SYSTEM_TEAMPROJECTID": project_id,
            "SYSTEM_HOSTTYPE": "build",
            "SYSTEM_JOBATTEMPT": "1",
            "BUILD_BUILDID": "4242",
            "ENDPOINT_URL_SYSTEMVSSCONNECTION": collection_uri,
            "ENDPOINT_AUTH_SCHEME_SYSTEMVSSCONNECTION": "OAuth",
            "ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN": access_token,
            "OIDC_CREDENTIALS_PYTHON": sys.executable,
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        if temp is not None:
            self.env["AGENT_TEMPDIRECTORY"] = str(temp)
        for key in ("SYSTEMROOT", "TEMP", "TMP", "LANG", "LC_ALL"):
            if key in os.environ:
                self.env[key] = os.environ[key]

    def inputs(self, **values: str) -> AgentJob:
        for name, value in values.items():
            self.env["INPUT_" + name.upper()] = value
        return self

    def endpoint(
        self, endpoint_id: str, *, url: str, scheme: str, params: dict[str, str], data: dict[str, str] | None = None
    ) -> AgentJob:
        import json

        key = endpoint_id.lower()
        self.env[f"ENDPOINT_URL_{key}"] = url
        self.env[f"ENDPOINT_AUTH_SCHEME_{key}"] = scheme
        self.env[f"ENDPOINT_AUTH_{key}"] = json.dumps({"parameters": params, "scheme": scheme})
        for name, value in params.items():
            self.env[f"ENDPOINT_AUTH_PARAMETER_{key}_{name.upper()}"] = value
        if data:
            self.env[f"ENDPOINT_DATA_{key}"] = json.dumps(data)
            for name, value in data.items():
                self.env[f"ENDPOINT_DATA_{key}_{name.upper()}"] = value
        return self

    def variables(self, **values: str) -> AgentJob:
        self.env.update(values)
        return self

    def run(self, *, timeout: float = 60, extra: dict[str, Any] | None = None, cwd: Path | None = None) -> TaskRun:
        env = dict(self.env, **(extra or {}))
        proc = subprocess.run(
            ["node", str(LAUNCHER)], env=env, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd
        )
        return TaskRun.from_output(proc.returncode, proc.stdout, proc.stderr)


def caller_arn(run: TaskRun, sts_url: str) -> str:
    """A later step: who AWS says the emitted credentials are (boto3 GetCallerIdentity)."""
    import boto3

    session = boto3.Session(
        aws_access_key_id=run.variables["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=run.variables["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=run.variables["AWS_SESSION_TOKEN"],
        region_name=run.variables.get("AWS_REGION") or "us-east-1",
    )
    arn: str = session.client("sts", endpoint_url=sts_url).get_caller_identity()["Arn"]
    return arn


def files_left(temp: Path) -> list[Path]:
    """Files under ``temp`` apart from the run's summary and audit record, which every run leaves for the
    agent to upload (they hold no secret: tests/test_run_records.py proves it)."""
    records = re.compile(r"oidc-credentials-audit-[a-z0-9]+-[0-9a-f]{12}\.json|OidcCredentials [^/]*\.md")
    return sorted(p for p in temp.rglob("*") if p.is_file() and not records.fullmatch(p.name))
