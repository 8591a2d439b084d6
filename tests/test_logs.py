"""The redacting log filter: secrets never reach output, and request-log records keep shape."""

import io
import logging

from awaknow.logs import configure_logging, get_logger, protect_logger, register_secret

SECRET = "sk-log-test-0123456789"


def _capture(name: str) -> tuple[logging.Logger, io.StringIO]:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, buffer


def test_request_line_arguments_are_masked_in_place() -> None:
    register_secret(SECRET)
    logger, buffer = _capture("test.access")
    protect_logger("test.access")
    protect_logger("test.access")  # idempotent
    logger.info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5",
        "POST",
        f"/api/tavus/callback?token={SECRET}",
        "1.1",
        200,
    )
    line = buffer.getvalue()
    assert SECRET not in line and "token=***" in line and line.rstrip().endswith("200")
    assert len(logging.getLogger("test.access").filters) == 1


def test_a_token_split_across_format_and_argument_is_still_masked() -> None:
    logger, buffer = _capture("test.split")
    protect_logger("test.split")
    logger.info("callback url ?token=%s", "not-registered-value")
    assert "not-registered-value" not in buffer.getvalue()


def test_secrets_in_objects_and_tracebacks_are_masked() -> None:
    register_secret(SECRET)
    buffer = io.StringIO()
    configure_logging("INFO", stream=buffer)
    try:
        log = get_logger("test")
        log.info("body %s", {"x-api-key": SECRET})
        try:
            raise RuntimeError(f"failed with {SECRET}")
        except RuntimeError:
            log.exception("request failed")
    finally:
        configure_logging("WARNING", stream=io.StringIO())
    text = buffer.getvalue()
    assert SECRET not in text and text.count("***") >= 2 and "RuntimeError" in text
