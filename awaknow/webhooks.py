"""``POST /api/tavus/callback?token=SECRET``: Tavus's webhook (its "callback_url") for
conversation events, served in the app's process.

Tavus does not sign callbacks, so the secret in the URL is the authentication: compared in
constant time, and never logged or echoed (only the path is logged; the log filter masks the
secret anyway). Following Stripe's webhook guidance the route authenticates, bounds and parses
the body, stores the raw event (``awaknow.events.ingest``: committed in a batch with the
events arriving at the same moment), and answers 200 once the row is committed; processing
runs afterwards in a background worker, and its failures are retried by the poller. Nothing
here answers 500: an unexpected failure before the event is stored answers 503, so a sender
that retries will deliver it again.
"""

from __future__ import annotations

import asyncio
import hmac
import json

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from awaknow.events import EventRejected, ingest_for, validate_envelope
from awaknow.logs import get_logger, protect_logger
from awaknow.service import shared_service

log = get_logger("webhooks")

MAX_BODY_BYTES = 1024 * 1024  # 1 MB: a long transcript is well under it
# Server loggers that can print a request line (method, path AND query) of this route.
SERVER_LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn.asgi")


# ``streamlit run`` turns uvicorn's access log off, but serving the app with ``uvicorn
# app:app`` (or a test harness) logs every request line, query string and token included.
for _name in SERVER_LOGGERS:
    protect_logger(_name)


class _BodyTooLarge(Exception):
    pass


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _authorised(request: Request, secret: str | None) -> bool:
    """Constant-time check of ``?token=``; without a configured secret nothing is accepted."""
    if not secret:
        return False
    token = request.query_params.get("token")
    if token is None:
        return False
    return hmac.compare_digest(token.encode("utf-8", "replace"), secret.encode("utf-8", "replace"))


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (without buffering) anything over ``limit`` bytes.

    The declared Content-Length is checked first; the streamed read is capped as well, for
    chunked bodies and for senders whose Content-Length is wrong.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise EventRejected("invalid Content-Length") from None
        if size < 0:
            raise EventRejected("invalid Content-Length")
        if size > limit:
            raise _BodyTooLarge
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def parse_body(body: bytes) -> dict:
    """Strict JSON object (UTF-8, no NaN/Infinity) with a usable envelope, or EventRejected."""
    try:
        payload = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        raise EventRejected("the body is not JSON") from None
    validate_envelope(payload)
    return payload


async def tavus_callback(request: Request) -> Response:
    """Authenticate, bound, parse and durably store one Tavus event (processed later)."""
    path = request.url.path  # never the full URL: its query holds the secret
    try:
        service = await anyio.to_thread.run_sync(shared_service)
    except Exception:
        log.exception("callback on %s: the service is not available", path)
        return _error(503, "service unavailable, retry later")
    try:
        if not _authorised(request, service.settings.callback_secret.value):
            log.warning("callback on %s refused: missing or wrong token", path)
            return _error(401, "missing or wrong token")
        try:
            body = await _read_body(request, MAX_BODY_BYTES)
        except _BodyTooLarge:
            log.warning("callback on %s refused: body over %d bytes", path, MAX_BODY_BYTES)
            return _error(413, f"body over {MAX_BODY_BYTES} bytes")
        except ClientDisconnect:
            log.info("callback on %s: the sender disconnected mid-body", path)
            return _error(400, "incomplete body")
        payload = parse_body(body)
    except EventRejected as exc:
        log.info("callback on %s refused: %s", path, exc)
        return _error(400, str(exc))
    except Exception:
        log.exception("callback on %s failed before the event was read", path)
        return _error(503, "could not read the event, retry later")
    try:
        result = await asyncio.wrap_future(ingest_for(service.store).submit(payload))
    except EventRejected as exc:  # validated above; kept for safety
        return _error(400, str(exc))
    except Exception:
        log.exception("callback on %s: the event could not be stored", path)
        return _error(503, "the event could not be stored, retry later")
    return JSONResponse(result.as_json(), status_code=200)
