"""Every failure AwakNow reports, one class per kind.

Callers (pages, the CLI, callbacks) branch on the class, never on message text, and show
``str(exc)``: each message says what happened and what a person can do about it. No message
ever contains the Tavus API key or the callback secret.
"""

from __future__ import annotations

SHORTEN_LIMIT = 60


def shorten(value: object, limit: int = SHORTEN_LIMIT) -> str:
    """``repr`` of a value a person typed, cut to ``limit`` characters for a one-line message.

    Every message that echoes a user's id, URL or month goes through here, so a 10,000-character
    argument cannot turn one error line into a screenful.
    """
    text = value if isinstance(value, str) else str(value)
    shown = repr(text)
    if len(shown) <= limit:
        return shown
    return f"{shown[:limit]}…' ({len(text)} chars)"


class AwakNowError(Exception):
    """Base of every expected failure; anything else is a bug."""


class ConfigError(AwakNowError):
    """A setting is malformed (bad persona id, unknown fallback value, ...)."""


class DatabaseLockedError(AwakNowError):
    """Another process (usually the running app) holds the DuckDB file."""


class DatabaseFileError(AwakNowError):
    """The database file cannot be used: a bad path, not a DuckDB file, or a newer schema."""


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


class TavusForbiddenError(TavusError):
    """403: the key is valid but may not be used from here (e.g. restricted to other IPs)."""


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


class TavusEndNotConfirmedError(TavusError):
    """Tavus did not confirm that a conversation ended; it may still be running (and billing)."""


class TavusUnreachableError(TavusError):
    """No answer at all: DNS, connection refused, or a timeout.

    ``request_sent`` is False only when the request certainly never reached Tavus (no
    connection): then nothing was created. After a timeout Tavus may have acted on it.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: object = None,
        request_sent: bool = True,
    ) -> None:
        super().__init__(message, status=status, body=body)
        self.request_sent = request_sent


class TavusBadRequestError(TavusError):
    """Any other 4xx: the request itself was refused."""
