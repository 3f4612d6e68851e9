"""The one error hierarchy.

Every failure the task reports is a :class:`TaskError`. Its message is the paragraph the pipeline author
reads, so it says what went wrong and what to change. Two subclasses change behaviour:

- :class:`ConfigError`: the input, the connection or the agent environment is wrong, and the user fixes
  it there. A provider's ``configure`` raises only this and sends nothing; later phases raise it too when
  what a service returned clashes with the configuration (a secret name that cannot be a variable, an
  account not in the allowed list), after requests were sent. Which phase failed is in the run record
  (:class:`~oidc_credentials.emit.RunRecord`), not implied by the class.
- :class:`ExchangeError`: a remote service refused or failed; carries the service, status and code.

``TaskError.kind`` is read by the run record (``RunRecord.error_kind``).
"""

from __future__ import annotations


class TaskError(Exception):
    """A failure with a message fit for the pipeline log (already free of secrets)."""

    #: short label for the kind of failure, shown in the run summary
    kind = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(TaskError):
    """The user can fix this in the task inputs, the service connection or the pipeline.

    Raised by ``configure`` before anything is sent, or later when a result clashes with the configuration.
    """

    kind = "configuration"


class ExchangeError(TaskError):
    """A remote service answered with an error (or never answered)."""

    kind = "exchange"

    def __init__(
        self,
        message: str,
        *,
        service: str = "",
        status: int | None = None,
        code: str = "",
    ) -> None:
        super().__init__(message)
        #: which service refused ("Azure DevOps", "AWS STS", ...)
        self.service = service
        #: HTTP status, or None when no response arrived
        self.status = status
        #: the service's own error code (``AccessDenied``, ``AADSTS700213``, ...)
        self.code = code
