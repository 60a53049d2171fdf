"""Errors of spaces-scheduler.

The tree, so a reader gets the map at once:

    SchedulerError                 base of everything we raise on purpose
    ├── ConfigError                a wrong config file (exit 2); lists every problem
    ├── CredentialsError           no token, a rejected token, or a Space the token
    │                              may not manage, found before acting (exit 2)
    ├── StoreError                 the state store cannot be opened or written
    └── HubError                   the Hub answered with an error, or not at all
        ├── TransientHubError      worth retrying: timeouts, connection errors, 5xx
        │   └── RateLimitedError   429; `retry_after` says how long the Hub asked for
        └── PermanentHubError      retrying cannot help: 400, 401, 403, 404, 409, ...
            └── NotFoundError      the repository does not exist or is not visible

Hub errors are made in one place, `spaces_scheduler.hub`, from huggingface_hub's own
exceptions. Their messages never contain the token.
"""

from __future__ import annotations


class SchedulerError(Exception):
    """Base of every error spaces-scheduler raises on purpose."""


class ConfigError(SchedulerError):
    """The config file is invalid; `problems` lists every one-line message."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class CredentialsError(SchedulerError):
    """The token is missing or refused, or may not manage a Space."""


class StoreError(SchedulerError):
    """The state store cannot be opened, migrated or written."""


class HubError(SchedulerError):
    """The Hub answered with an error, or did not answer.

    `status` is the HTTP status (None when no answer came) and `request_id` the
    Hub's request id when it sent one, for support tickets.
    """

    transient = False
    # The request left but no answer came back: the Hub may have applied it.
    maybe_applied = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        self.status = status
        self.request_id = request_id
        super().__init__(message)


class TransientHubError(HubError):
    """A timeout, a connection error or a 5xx: the same call may succeed later."""

    transient = True


class RateLimitedError(TransientHubError):
    """A 429; `retry_after` is the wait in seconds the Hub asked for, if any."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = 429,
        request_id: str | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, status=status, request_id=request_id)


class PermanentHubError(HubError):
    """A 400, 401, 403, 404, 409 or similar: retrying the same call cannot help."""


class NotFoundError(PermanentHubError):
    """The repository does not exist, or the token may not see it."""
