"""The output policy, in one place: check an Outcome whole, then register secrets, write files, set variables.

Nothing is emitted unless everything can be (no half-set state): every variable name and value is
checked first, secrets are registered before anything could print them, files are written all or none,
and only then are variables set. Every file written is recorded for the post-job step, and
:class:`RunRecord` collects the structured facts of a run (provider, identity, expiry, token claims,
timings, secret *names*) for the run summary and audit record to render.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, ExchangeError, TaskError
from .files import write_private
from .secret_vars import env_hint
from .vso import check_variable_name

if TYPE_CHECKING:
    from .oidc import Claims
    from .providers import Outcome
    from .vso import AgentOutput


@dataclass
class RunRecord:
    """The facts of one task run, never a secret value: what the summary and audit record render."""

    version: str = ""
    #: this run's own id (the audit record's and the summary's file names carry it)
    run_uid: str = field(default_factory=lambda: uuid.uuid4().hex)
    provider: str = ""
    connection_id: str = ""
    #: who the credentials act as, and until when (ISO 8601 UTC, "" when they do not expire)
    identity: str = ""
    expires: str = ""
    #: the OIDC token's issuer, subject and token id (the first token requested)
    token_iss: str = ""
    token_sub: str = ""
    token_jti: str = ""
    #: names only: the values never enter the record
    secret_names: list[str] = field(default_factory=list)
    variable_names: list[str] = field(default_factory=list)
    output_variables: bool = False
    files: list[str] = field(default_factory=list)
    #: phase name -> seconds it took ("configure", "exchange", "emit"), in the order they ran
    timings: dict[str, float] = field(default_factory=dict)
    #: the phase that was running when the run failed ("" when it succeeded)
    failed_phase: str = ""
    #: ``TaskError.kind`` of the failure ("configuration", "exchange", ...; "unexpected" for our bugs)
    error_kind: str = ""
    #: the first line of the error message (already free of secrets)
    error: str = ""
    #: the whole error message, and what the error catalogue says of it (service, code, retry, fix)
    explanation: str = ""
    error_service: str = ""
    error_code: str = ""
    error_status: int | None = None
    retryable: bool | None = None
    fix: str = ""
    #: warnings worth keeping with the run (issuer retirement, ...)
    notices: list[str] = field(default_factory=list)
    #: each OIDC token used: its SHA-256 (never the token) and identifying claims, in the order requested
    tokens: list[dict[str, Any]] = field(default_factory=list)
    #: each HTTP request sent: service, method, url (no query), status, duration, attempt
    requests: list[dict[str, Any]] = field(default_factory=list)
    #: the pipeline run's ids (organisation, project, definition, build, job attempt, ...)
    pipeline: dict[str, str] = field(default_factory=dict)
    #: what ties the cloud's own logs to this run (user agent, AWS session name, GCP request reason)
    correlation: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    @property
    def succeeded(self) -> bool:
        return not self.error_kind

    def note_claims(self, claims: Claims) -> None:
        """Record the first token's identifying claims (later tokens of the same run share iss and sub)."""
        if not self.token_iss:
            self.token_iss, self.token_sub, self.token_jti = claims.iss, claims.sub, claims.jti

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a phase; when it raises, remember that the run failed there."""
        began = time.monotonic()
        try:
            yield
        except BaseException:
            self.failed_phase = self.failed_phase or name
            raise
        finally:
            self.timings[name] = round(time.monotonic() - began, 3)

    def fail(self, exc: BaseException) -> None:
        """Record a failure: its kind (``TaskError.kind``, or "unexpected") and the first line of its message."""
        if self.error_kind:
            return
        if isinstance(exc, TaskError):
            self.error_kind, message = exc.kind, exc.message
        else:
            self.error_kind, message = "unexpected", f"{type(exc).__name__}: {exc}"
        self.error = message.split("\n", 1)[0]
        self.explanation = message
        if isinstance(exc, ExchangeError):
            from .catalogue import find, service_name

            self.error_service, self.error_code, self.error_status = exc.service, exc.code, exc.status
            entry = find(exc.service, exc.code, message)
            if entry is not None:
                self.error_service = service_name(exc.service) or exc.service
                self.error_code, self.retryable, self.fix = entry.code, entry.retry, entry.fix

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check(outcome: Outcome) -> None:
    """Refuse the whole outcome before anything is emitted: no half-set state."""
    seen: set[str] = set()
    for var in outcome.variables:
        why = check_variable_name(var.name, allow_dash=var.verbatim)
        if why:
            raise ConfigError(f"Cannot set variable '{var.name}': {why}.")
        if var.name.upper() in seen:
            raise ConfigError(f"Two values were produced for variable '{var.name}'.")
        seen.add(var.name.upper())
        if var.secret and ("\n" in var.value or "\r" in var.value):
            raise ConfigError(
                f"The value for secret variable '{var.name}' spans several lines, which the agent refuses."
            )


def write_files(outcome: Outcome, root: str = "") -> list[str]:
    """Write every file of the outcome (inside ``root`` when given), or none: on a failure the ones already
    written are removed."""
    written: list[str] = []
    try:
        for file in outcome.files:
            write_private(file.path, file.content, root=root)
            written.append(file.path)
    except TaskError:
        _remove(written)  # all files or none, like the variables
        raise
    return written


def _remove(paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            os.remove(path)


def emit(
    outcome: Outcome,
    out: AgentOutput,
    *,
    publish_outputs: bool,
    record: RunRecord | None = None,
    keep: Callable[[list[str]], None] | None = None,
    root: str = "",
) -> list[str]:
    """Emit an outcome whole; returns the files written (also added to ``record``).

    ``keep(written)`` runs after the files are written and before any variable is set (the task saves the
    post-job state there); when it fails, the files are removed again and nothing is set. ``root``: the folder
    every file must lie in (``Agent.TempDirectory``).
    """
    check(outcome)
    for var in outcome.variables:
        if var.secret:
            out.set_secret(var.value)
    for value in outcome.secrets:
        out.set_secret(value)
    written = write_files(outcome, root)
    if keep is not None:
        try:
            keep(written)
        except BaseException:
            _remove(written)
            raise
    if record is not None:
        record.files += written
    for var in outcome.variables:
        out.set_variable(var.name, var.value, secret=var.secret)
        if publish_outputs:
            out.set_variable(var.name, var.value, secret=var.secret, output=True)
    secret = [v.name for v in outcome.variables if v.secret]
    plain = [v.name for v in outcome.variables if not v.secret]
    if record is not None:
        record.secret_names += secret
        record.variable_names += plain
        record.output_variables = publish_outputs
        record.identity, record.expires = outcome.identity, outcome.expires
    if secret:
        out.info("Secret variables: " + ", ".join(secret))
    if plain:
        out.info("Variables: " + ", ".join(plain))
    if secret:
        out.info("Secret variables reach a later script only when mapped; paste under the script step:")
        out.info(env_hint(secret))
    if publish_outputs:
        out.info("Also published as output variables: reference them as <step name>.<NAME> from later jobs.")
    return written
