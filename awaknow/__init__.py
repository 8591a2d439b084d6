"""AwakNow: run and measure Tavus AI video conversations.

The package is usable without Streamlit: ``open_service()`` gives scripts and tests the same
service the pages use.
"""

from awaknow.errors import (
    AwakNowError,
    ConfigError,
    DatabaseFileError,
    DatabaseLockedError,
    NotFoundError,
    ParallelSessionError,
    TavusAuthError,
    TavusBadRequestError,
    TavusConcurrencyError,
    TavusCreditsError,
    TavusEndNotConfirmedError,
    TavusError,
    TavusForbiddenError,
    TavusNotFoundError,
    TavusRateLimitError,
    TavusServerError,
    TavusUnreachableError,
    UsageLimitError,
    ValidationError,
    shorten,
)
from awaknow.service import AwakNowService, EndedSession, StartedSession, open_service

__all__ = [
    "AwakNowError",
    "AwakNowService",
    "ConfigError",
    "DatabaseFileError",
    "DatabaseLockedError",
    "EndedSession",
    "NotFoundError",
    "ParallelSessionError",
    "StartedSession",
    "TavusAuthError",
    "TavusBadRequestError",
    "TavusConcurrencyError",
    "TavusCreditsError",
    "TavusEndNotConfirmedError",
    "TavusError",
    "TavusForbiddenError",
    "TavusNotFoundError",
    "TavusRateLimitError",
    "TavusServerError",
    "TavusUnreachableError",
    "UsageLimitError",
    "ValidationError",
    "open_service",
    "shorten",
]
