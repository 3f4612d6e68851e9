"""The audit record: one JSON document per run, for an auditor to keep (schema: ``audit.schema.json``).

It holds the facts of the run summary plus what an audit needs to tie the run to the clouds' own logs:
the SHA-256 of each OIDC token used (never a token), the pipeline run's ids, every HTTP request sent
(service, method, URL without its query, status, duration) and the correlation values sent to the clouds
(a user agent carrying the run id, the AWS role session name, Google's ``X-Goog-Request-Reason``).
Never a secret value: every string passes through the agent output's redaction before it is written.

The schema is versioned (:data:`SCHEMA_VERSION`): fields are only added within a version; a removal or a
change of meaning raises it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .http import RequestEvent
from .text import iso_utc

if TYPE_CHECKING:
    from .agent import AgentEnv
    from .emit import RunRecord
    from .oidc import Claims

SCHEMA_VERSION = 1
SCHEMA_ID = "https://oidc-credentials.invalid/audit/v1.json"

#: variable -> key in ``pipeline``: the run's ids as the agent passes them
PIPELINE_VARIABLES = {
    "System.CollectionUri": "organization_url",
    "System.CollectionId": "organization_id",
    "System.TeamProject": "project",
    "System.TeamProjectId": "project_id",
    "System.DefinitionId": "definition_id",
    "Build.DefinitionName": "definition_name",
    "Build.BuildId": "build_id",
    "Build.BuildNumber": "build_number",
    "Release.ReleaseId": "release_id",
    "System.StageName": "stage",
    "System.StageAttempt": "stage_attempt",
    "System.JobId": "job_id",
    "System.JobDisplayName": "job",
    "System.JobAttempt": "job_attempt",
    "System.PlanId": "plan_id",
    "Build.Reason": "reason",
    "Build.RequestedFor": "requested_for",
    "Build.Repository.Name": "repository",
    "Build.SourceBranch": "source_branch",
    "Build.SourceVersion": "source_version",
    "Agent.Name": "agent",
}

_UA_SAFE = re.compile(r"[^A-Za-z0-9._/-]")


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def pipeline_ids(agent: AgentEnv) -> dict[str, str]:
    return {key: value for name, key in PIPELINE_VARIABLES.items() if (value := agent.variable(name))}


def run_id(agent: AgentEnv) -> str:
    """``<organisation>/<build or release id>/<job attempt>``: short enough for a user agent."""
    collection = agent.variable("System.CollectionUri")
    parts = urlsplit(collection)
    org = parts.path.strip("/").split("/")[0] if parts.hostname == "dev.azure.com" else (parts.hostname or "")
    org = org.split(".")[0] if org.endswith(".visualstudio.com") else org
    run = agent.variable("Build.BuildId") or agent.variable("Release.ReleaseId") or "run"
    attempt = agent.variable("System.JobAttempt") or "1"
    return _UA_SAFE.sub("-", f"{org or 'ado'}/{run}/{attempt}")


def request_reason(agent: AgentEnv) -> str:
    """Google's ``X-Goog-Request-Reason``: who asks and for which run (printable ASCII, at most 200 chars)."""
    ids = pipeline_ids(agent)
    text = (
        f"Azure Pipelines {ids.get('organization_url', '')} project {ids.get('project', ids.get('project_id', ''))} "
        f"definition {ids.get('definition_name', ids.get('definition_id', ''))} build {ids.get('build_id', '')} "
        f"job attempt {ids.get('job_attempt', '1')}"
    )
    return re.sub(r"[^ -~]", "?", " ".join(text.split()))[:200]


class AuditTrail:
    """Collects tokens and requests into a :class:`RunRecord` while the run goes (an ``http`` observer)."""

    def __init__(self, record: RunRecord, agent: AgentEnv, version: str) -> None:
        self.record = record
        self.user_agent = f"OidcCredentials/{version} (azure-pipelines; run {run_id(agent)})"
        self.reason = request_reason(agent)
        self._lock = threading.Lock()
        self._pending: list[str] = []
        record.pipeline = pipeline_ids(agent)
        record.correlation = {"user_agent": self.user_agent, "gcp_request_reason": self.reason}

    # -- the Http observer --------------------------------------------------------------------------------------
    def headers_for(self, url: str, service: str) -> Mapping[str, str]:
        headers = {"User-Agent": self.user_agent}
        host = (urlsplit(url).hostname or "").lower()
        if service.startswith("Google") or host == "googleapis.com" or host.endswith(".googleapis.com"):
            headers["X-Goog-Request-Reason"] = self.reason  # shows in Cloud Audit Logs (requestMetadata)
        return headers

    def on_request(self, event: RequestEvent) -> None:
        with self._lock:
            self.record.requests.append(
                {
                    "service": event.service,
                    "method": event.method,
                    "url": event.url,
                    "status": event.status,
                    "duration_ms": round(event.duration * 1000, 1),
                    "attempt": event.attempt,
                }
            )

    # -- tokens -------------------------------------------------------------------------------------------------
    def on_token(self, token: str) -> None:
        """Called with each OIDC token as it arrives: only its hash is kept."""
        with self._lock:
            self._pending.append(token_sha256(token))

    def on_claims(self, claims: Claims) -> None:
        with self._lock:
            digest = self._pending.pop(0) if self._pending else ""
            self.record.tokens.append(
                {
                    "sha256": digest,
                    "iss": claims.iss,
                    "sub": claims.sub,
                    "aud": claims.aud,
                    "jti": claims.jti,
                    "iat": iso_utc(claims.iat) if claims.iat else "",
                    "exp": iso_utc(claims.exp) if claims.exp else "",
                }
            )


def document(record: RunRecord, redact: Callable[[str], str]) -> dict[str, Any]:
    """The audit record of a run, every string redacted."""
    doc: dict[str, Any] = {
        "$schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "task_version": record.version,
        "run_uid": record.run_uid,
        "started": iso_utc(record.started),
        "outcome": "succeeded" if record.succeeded else "failed",
        "provider": record.provider,
        "connection_id": record.connection_id,
        "pipeline": dict(record.pipeline),
        "identity": record.identity,
        "expires": record.expires,
        "tokens": [dict(t) for t in record.tokens],
        "secret_names": list(record.secret_names),
        "variable_names": list(record.variable_names),
        "output_variables": record.output_variables,
        "files": list(record.files),
        "requests": [dict(r) for r in record.requests],
        "timings": dict(record.timings),
        "correlation": dict(record.correlation),
        "notices": list(record.notices),
        "error": None
        if record.succeeded
        else {
            "phase": record.failed_phase,
            "kind": record.error_kind,
            "service": record.error_service,
            "code": record.error_code,
            "status": record.error_status,
            "retryable": record.retryable,
            "message": record.explanation,
            "fix": record.fix,
        },
    }
    redacted: dict[str, Any] = _redacted(doc, redact)
    return redacted


def _redacted(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(k)): _redacted(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v, redact) for v in value]
    return value


def write(doc: dict[str, Any], folder: str, provider: str) -> str:
    """Write the record to a new private file in ``folder``; returns its path."""
    from .files import write_private

    name = f"oidc-credentials-audit-{re.sub(r'[^a-z0-9]', '', provider) or 'run'}-{uuid.uuid4().hex[:12]}.json"
    path = os.path.join(folder, name)
    write_private(path, json.dumps(doc, indent=2, sort_keys=False) + "\n", root=folder)
    return path


def schema() -> dict[str, Any]:
    """The JSON Schema of the record (package data beside this module)."""
    with open(os.path.join(os.path.dirname(__file__), "audit.schema.json"), encoding="utf-8") as handle:
        loaded: dict[str, Any] = json.load(handle)
    return loaded
