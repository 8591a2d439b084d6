"""Logging set-up: the guide's "debug mode" is this log, never the browser console.

Secrets are scrubbed by a filter on the handler rather than at each call site, so a secret that
slips into an f-string, an exception or a response body still never reaches the output.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from typing import IO

LOGGER_NAME = "awaknow"
MASK = "***"

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_TOKEN_PARAM = re.compile(r"(?i)\b(token|api[_-]?key|x-api-key)=([^&\s\"']+)")


def register_secret(value: str | None) -> None:
    """Remember a value that must never be printed (Tavus key, callback secret)."""
    if value and len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Mask registered secrets and ``token=``/``api_key=`` query values in ``text``."""
    with _secrets_lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        text = text.replace(secret, MASK)
    return _TOKEN_PARAM.sub(lambda m: f"{m.group(1)}={MASK}", text)


def error_line(exc: BaseException) -> str:
    """The first line of an error's message, secrets masked: what a page or a check shows."""
    lines = [line.strip() for line in redact(str(exc)).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


class _RedactingFilter(logging.Filter):
    """Masks secrets in a record, keeping its shape where it can.

    Arguments are masked one by one because some formatters unpack ``record.args`` (uvicorn's
    access log: client, method, path with query, version, status). Only when a secret would
    still show in the formatted message (split across the format string and an argument) is
    the record flattened to its masked text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_masked(arg) for arg in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {key: _masked(value) for key, value in record.args.items()}
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def _masked(value: object) -> object:
    """Numbers stay numbers (``%d`` still formats them); everything else is masked text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(value if isinstance(value, str) else str(value))


def protect_logger(name: str) -> None:
    """Mask secrets in whatever another library logs on ``name`` (idempotent).

    For loggers whose handlers AwakNow does not own, such as the ASGI server's request log.
    """
    logger = logging.getLogger(name)
    if not any(isinstance(f, _RedactingFilter) for f in logger.filters):
        logger.addFilter(_RedactingFilter())


def configure_logging(
    level: str | int = "WARNING", stream: IO[str] | None = None
) -> logging.Logger:
    """Attach one redacting handler to the ``awaknow`` logger (idempotent).

    ``stream`` (default stderr) replaces the current handler, so tests can read what an
    operator would see.
    """
    logger = logging.getLogger(LOGGER_NAME)
    if isinstance(level, str):
        resolved = logging.getLevelName(level.strip().upper() or "WARNING")
        level = resolved if isinstance(resolved, int) else logging.WARNING
    logger.setLevel(level)
    if stream is not None:
        for old in [h for h in logger.handlers if getattr(h, "_awaknow", False)]:
            logger.removeHandler(old)
    if not any(getattr(h, "_awaknow", False) for h in logger.handlers):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(_RedactingFilter())
        setattr(handler, "_awaknow", True)  # noqa: B010 (marks our handler; checked above)
        logger.addHandler(handler)
        logger.propagate = False
    return logger


def get_logger(name: str) -> logging.Logger:
    """A child of the ``awaknow`` logger, so one handler and one filter cover everything."""
    return logging.getLogger(f"{LOGGER_NAME}.{name}")
