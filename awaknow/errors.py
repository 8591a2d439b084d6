"""Every failure AwakNow reports, one class per kind.

Callers (pages, the CLI, callbacks) branch on the class, never on message text, and show
``str(exc)``: each message says what happened and what a person can do about it. No message
ever contains the Tavus API key or the callback secret.
"""

from __future__ import annotations


class AwakNowError(Exception):
    """Base of every expected failure; anything else is a bug."""


class ConfigError(AwakNowError):
    """A setting is malformed (bad persona id, unknown fallback value, ...)."""


class DatabaseLockedError(AwakNowError):
    """Another process (usually the running app) holds the DuckDB file."""


class NotFoundError(AwakNowError):
    """A user, plan or session named by the caller does not exist."""


class ValidationError(AwakNowError):
    """Input from a person (CLI argument, form field) is not acceptable."""


class AccessDeniedError(AwakNowError):
    """The signed-in person's role does not allow this page or action."""


class ParallelSessionError(AwakNowError):
    """The user already has an active session; only one may run at a time."""


class UsageLimitError(AwakNowError):
    """The user's plan forbids this session (minutes, daily solo sessions, group sessions)."""


class TavusError(AwakNowError):
    """A call to Tavus failed. ``status`` is the HTTP status (None when no response came)."""

    def __init__(self, message: str, *, status: int | None = None, body: object = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class TavusAuthError(TavusError):
    """401: the API key is wrong, revoked or missing."""


class TavusNotFoundError(TavusError):
    """400 "Invalid ..._id" or 404: the persona, replica or conversation id is unknown."""


class TavusCreditsError(TavusError):
    """402: the Tavus account is out of conversational credits."""


class TavusConcurrencyError(TavusError):
    """400 "maximum concurrent conversations": every concurrency slot of the plan is in use."""


class TavusRateLimitError(TavusError):
    """429: too many requests in a short time."""


class TavusServerError(TavusError):
    """5xx: trouble on Tavus's side."""


class TavusUnreachableError(TavusError):
    """No answer at all: DNS, connection refused, or a timeout."""


class TavusBadRequestError(TavusError):
    """Any other 4xx: the request itself was refused."""
