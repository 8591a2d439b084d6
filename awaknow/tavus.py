"""The Tavus v2 HTTP client: the only code in AwakNow that talks to Tavus.

Every non-2xx answer and every transport failure becomes one ``TavusError`` subclass, built in
``error_from_response`` (or ``_unreachable``), so callers branch on classes and show ``str(exc)``
to a person. Only calls that are safe to repeat are retried: creating a conversation starts
billing, so a failed create is reconciled by name (``find_conversation_by_name``) instead.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

import httpx

from awaknow import logs
from awaknow.errors import (
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
)
from awaknow.tavus_logging import loggable_body, persona_in_request
from awaknow.tavus_names import ENDED_STATUSES

DEFAULT_BASE_URL = "https://tavusapi.com"
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=20.0, write=10.0, pool=5.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=10, max_keepalive_connections=5, keepalive_expiry=30)
# A server asking for a long pause would freeze a page; past this, fail and let the person retry.
MAX_RETRY_AFTER_SECONDS = 5.0
# Enough to cover any realistic account while bounding a reconcile that Tavus keeps paginating.
MAX_LIST_PAGES = 50
# A status read that only confirms an End must not hold the page: one try, this read timeout.
QUICK_READ_TIMEOUT = 3.0

_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PATH_ID = re.compile(r"^/v2/(personas|conversations)/([^/?]+)")
_PATH_KINDS = {"personas": "persona", "conversations": "conversation"}
# Order matters: "replica_uuid" and "replica_id" both name a replica.
_ID_WORDS = (
    ("persona_id", "persona"),
    ("replica_uuid", "replica"),
    ("replica_id", "replica"),
    ("conversation_id", "conversation"),
)
_NOT_FOUND_HINTS = {
    "persona": "check TAVUS_PERSONA_ID",
    "replica": "check TAVUS_REPLICA_ID (or the persona's default replica)",
    "conversation": "it may have been deleted or belong to another API key",
}
_RETRYABLE = (TavusServerError, TavusRateLimitError, TavusUnreachableError)
_MAX_DETAIL = 200

_log = logs.get_logger("tavus")


@runtime_checkable
class TavusBackend(Protocol):
    """What sessions and pages need from Tavus, met by ``TavusClient`` and ``MockTavus``.

    Callers hold a ``TavusBackend`` so switching to mock mode changes one constructor call.
    """

    mode: str

    def get_persona(self, persona_id: str, *, force: bool = False) -> dict[str, Any]:
        """Return the persona as a flat dict."""
        ...

    def create_conversation(self, body: dict[str, Any]) -> dict[str, Any]:
        """Start a conversation (billing starts now) and return it."""
        ...

    def get_conversation(
        self, conversation_id: str, *, verbose: bool = False, quick: bool = False
    ) -> dict[str, Any]:
        """Return one conversation; ``verbose`` adds its events; ``quick`` means one short try."""
        ...

    def list_conversations(
        self, *, status: str | None = None, limit: int = 100, page: int = 1
    ) -> dict[str, Any]:
        """Return ``{"data": [...], "total_count": N}``."""
        ...

    def end_conversation(self, conversation_id: str) -> dict[str, Any] | None:
        """End a conversation, or raise ``TavusEndNotConfirmedError``.

        Returns the conversation when it had already ended (its ``updated_at`` is Tavus's end
        time), None when this call ended it. Ending an ended one is not an error.
        """
        ...

    def find_conversation_by_name(
        self, conversation_name: str, *, status: str | None = None
    ) -> dict[str, Any] | None:
        """Return the conversation with this name, or None."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class ClosedOnExit:
    """``with backend:`` closes the backend on the way out (``TavusClient`` and ``MockTavus``)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        raise NotImplementedError


def check_id(kind: str, value: str) -> str:
    """Refuse an id that could change the URL path it is put in (``../``, ``?``, ``/``).

    Raised as not-found because, to a person, a malformed id and an unknown one need the same fix.
    """
    if not isinstance(value, str) or not _ID_PATTERN.fullmatch(value):
        shown = logs.redact(repr(value)[:80])
        raise TavusNotFoundError(
            f"{shown} is not a valid Tavus {kind} id (letters, digits, _ and - only): "
            f"{_NOT_FOUND_HINTS.get(kind, 'check the id')}"
        )
    return value


def error_from_response(response: httpx.Response) -> TavusError:
    """Map a non-2xx Tavus answer to its error class, with a one-line actionable message."""
    status = response.status_code
    body = _parse_body(response)
    detail = _detail(body)
    code = f"{status} {detail}" if detail else f"{status} {response.reason_phrase}".strip()
    lowered = detail.lower()
    id_kind = _invalid_id_kind(lowered) if status == 400 else None
    cls: type[TavusError]
    if status == 401:
        cls = TavusAuthError
        message = (
            f"Tavus rejected the API key ({code}): "
            "set a valid TAVUS_API_KEY in the environment or .env"
        )
    elif status == 403:
        cls = TavusForbiddenError
        message = f"Tavus refused this API key from here ({code}): it is restricted, " + (
            "usually to other IPs; allow this server's outgoing IP for it in the Tavus dashboard"
        )
    elif status == 402:
        cls = TavusCreditsError
        message = (
            f"The Tavus account is out of conversational credits ({code}): "
            "add credits in the Tavus dashboard"
        )
    elif status == 400 and "maximum concurrent" in lowered:
        cls = TavusConcurrencyError
        message = (
            f"Every concurrent conversation slot of the Tavus plan is in use ({code}): "
            "end active conversations (python -m awaknow sessions --active) "
            "or raise the plan's limit"
        )
    elif status == 404 or id_kind:
        cls = TavusNotFoundError
        message = _not_found_message(response, code, id_kind)
    elif status == 429:
        cls = TavusRateLimitError
        message = f"Tavus is rate limiting requests ({code}): wait a few seconds and try again"
    elif status >= 500:
        cls = TavusServerError
        message = (
            f"Tavus had a server error ({code}): try again in a minute; "
            "if it persists, check the Tavus status page"
        )
    elif status >= 400:
        cls = TavusBadRequestError
        message = (
            f"Tavus refused the request ({code}): "
            "check the session settings (the DEBUG log shows the request body)"
        )
    else:
        cls = TavusBadRequestError
        message = (
            f"Tavus answered {code} where a success was expected: "
            f"check TAVUS_API_BASE_URL (normally {DEFAULT_BASE_URL})"
        )
    return cls(logs.redact(" ".join(message.split())), status=status, body=body)


class TavusClient(ClosedOnExit):
    """A pooled, retrying, logging client for the Tavus endpoints AwakNow uses.

    Thread-safe: Streamlit sessions, route handlers and the reaper share one instance.
    """

    mode = "live"

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: httpx.Timeout | None = None,
        transport: httpx.BaseTransport | None = None,
        max_retries: int = 2,
        backoff_seconds: float = 0.3,
        persona_cache_seconds: float = 300.0,
        quick_read_timeout: float = QUICK_READ_TIMEOUT,
    ) -> None:
        if not api_key:
            raise TavusAuthError(
                "No Tavus API key is configured: set TAVUS_API_KEY in the environment or .env"
            )
        logs.register_secret(api_key)
        self._base_url = base_url.rstrip("/") or DEFAULT_BASE_URL
        self._max_retries = max(0, max_retries)
        self._backoff_seconds = max(0.0, backoff_seconds)
        self._persona_cache_seconds = persona_cache_seconds
        base_timeout = timeout or DEFAULT_TIMEOUT
        self._quick_timeout = httpx.Timeout(
            connect=base_timeout.connect,
            read=quick_read_timeout,
            write=base_timeout.write,
            pool=base_timeout.pool,
        )
        self._persona_cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._persona_lock = threading.Lock()
        self._http = httpx.Client(
            base_url=self._base_url,
            headers={
                "x-api-key": api_key,
                "Accept": "application/json",
                "Content-Type": "application/json",
            },
            timeout=base_timeout,
            limits=DEFAULT_LIMITS,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"TavusClient(base_url={self._base_url!r})"

    def close(self) -> None:
        """Close pooled connections; the client is unusable afterwards."""
        self._http.close()

    def get_persona(self, persona_id: str, *, force: bool = False) -> dict[str, Any]:
        """Verify the persona, cached because every page render asks and the answer rarely moves.

        ``force`` is the "verify now" button. Failures are not cached, so a fixed key or persona
        id is picked up on the next call.
        """
        check_id("persona", persona_id)
        now = time.monotonic()
        if not force:
            with self._persona_lock:
                cached = self._persona_cache.get(persona_id)
            if cached and cached[0] > now:
                return copy.deepcopy(cached[1])
        payload = self._json(self._send("GET", f"/v2/personas/{persona_id}", retry=True))
        persona = _unwrap_persona(payload, persona_id)
        with self._persona_lock:
            self._persona_cache[persona_id] = (now + self._persona_cache_seconds, persona)
        return copy.deepcopy(persona)

    def create_conversation(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a conversation, never retried: a lost answer may still have started billing.

        After a ``TavusUnreachableError`` the caller looks the conversation up by name.
        """
        return self._json(self._send("POST", "/v2/conversations", json_body=body, retry=False))

    def get_conversation(
        self, conversation_id: str, *, verbose: bool = False, quick: bool = False
    ) -> dict[str, Any]:
        """Read one conversation; ``verbose`` adds the events used when callbacks cannot arrive.

        ``quick`` is for reads a person waits on (confirming an End, a status badge): no
        retries and a short read timeout, so a slow Tavus costs seconds, not a minute.
        """
        check_id("conversation", conversation_id)
        params = {"verbose": "true"} if verbose else None
        response = self._send(
            "GET",
            f"/v2/conversations/{conversation_id}",
            params=params,
            retry=not quick,
            timeout=self._quick_timeout if quick else None,
        )
        return self._json(response)

    def list_conversations(
        self, *, status: str | None = None, limit: int = 100, page: int = 1
    ) -> dict[str, Any]:
        """One page of conversations, normalised to ``{"data": [...], "total_count": N}``."""
        params: dict[str, str | int] = {"limit": limit, "page": page}
        if status:
            params["status"] = status
        payload = self._json(self._send("GET", "/v2/conversations", params=params, retry=True))
        data = payload.get("data") or []
        total = payload.get("total_count")
        return {"data": data, "total_count": total if isinstance(total, int) else len(data)}

    def end_conversation(self, conversation_id: str) -> dict[str, Any] | None:
        """End a conversation so it stops billing; done only when Tavus confirms it.

        The POST comes first, so a slow Tavus never delays the end itself. A 2xx confirms.
        Anything else (a refusal, a timeout, "already ended") is checked with one quick read:
        ``ended``/``error`` or a 404 confirms, and the read is returned when it shows the end
        time. Otherwise ``TavusEndNotConfirmedError``: the call may still be billing. Timeouts
        are not retried here; the caller (a person clicking again, the reaper) retries.
        """
        check_id("conversation", conversation_id)
        try:
            self._send(
                "POST",
                f"/v2/conversations/{conversation_id}/end",
                retry=True,
                retry_timeouts=False,
            )
            return None
        except TavusError as error:
            end_error = error
        if isinstance(end_error, TavusAuthError):  # a read with the same key cannot succeed
            raise _end_not_confirmed(conversation_id, end_error) from end_error
        try:
            current = self.get_conversation(conversation_id, quick=True)
        except TavusError as lookup:
            if isinstance(lookup, TavusNotFoundError) and lookup.status == 404:
                _log.debug("Conversation %s is gone at Tavus: ended", conversation_id)
                return {"conversation_id": conversation_id, "status": "ended"}
            raise _end_not_confirmed(conversation_id, end_error, lookup) from end_error
        if current.get("status") in ENDED_STATUSES:
            _log.debug("Conversation %s had already ended", conversation_id)
            return current
        raise _end_not_confirmed(conversation_id, end_error) from end_error

    def find_conversation_by_name(
        self, conversation_name: str, *, status: str | None = None
    ) -> dict[str, Any] | None:
        """Find the conversation a timed-out create may have started, so it is not orphaned.

        Pages are followed until ``total_count`` is covered: a page shorter than asked for
        does not mean the last one (Tavus may cap the page size). None means a complete
        listing did not have it; a listing that fails or never ends raises.
        """
        limit = 100
        seen = 0
        for page in range(1, MAX_LIST_PAGES + 1):
            listing = self.list_conversations(status=status, limit=limit, page=page)
            data = listing["data"]
            for conversation in data:
                if conversation.get("conversation_name") == conversation_name:
                    return conversation
            seen += len(data)
            if not data or seen >= listing["total_count"]:
                return None
        raise TavusServerError(
            f"Tavus listed more than {MAX_LIST_PAGES} pages of conversations while AwakNow "
            f"looked for {conversation_name}: the search stops there and is tried again later"
        )

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: dict[str, Any] | None = None,
        retry: bool,
        retry_timeouts: bool = True,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        """Send with retries for safe calls; raise the mapped error once retries run out.

        ``retry_timeouts=False`` still retries quick failures (5xx, 429, refused connections)
        but not a timeout, which already cost a whole read timeout.
        """
        attempts = 1 + (self._max_retries if retry else 0)
        attempt = 0
        while True:
            attempt += 1
            cause: BaseException | None = None
            retry_after: float | None = None
            error: TavusError
            try:
                response = self._send_once(method, path, params, json_body, timeout)
            except httpx.TransportError as exc:
                cause = exc
                error = _unreachable(self._base_url, exc)
                reason = type(exc).__name__
                if not retry_timeouts and isinstance(exc, httpx.TimeoutException):
                    raise error from cause
            else:
                if response.is_success:
                    return response
                error = error_from_response(response)
                retry_after = _retry_after(response)
                reason = f"HTTP {response.status_code}"
            if attempt == attempts or not isinstance(error, _RETRYABLE):
                raise error from cause
            delay = self._backoff_seconds * 2 ** (attempt - 1)
            if retry_after is not None:
                delay = max(delay, retry_after)
            _log.info(
                "Retrying %s %s (attempt %d of %d) after %s in %.2f s",
                method,
                path,
                attempt + 1,
                attempts,
                reason,
                delay,
            )
            time.sleep(delay)

    def _send_once(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        json_body: dict[str, Any] | None,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        """One HTTP round trip, logged at DEBUG with secrets removed."""
        persona = persona_in_request(path, json_body)
        started = time.perf_counter()
        try:
            response = self._http.request(
                method,
                path,
                params=params,
                json=json_body,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TransportError as exc:
            _log.debug(
                "Tavus %s %s failed after %.0f ms (%s) persona=%s request=%s",
                method,
                path,
                (time.perf_counter() - started) * 1000,
                type(exc).__name__,
                persona,
                loggable_body(json_body),
            )
            raise
        body = _parse_body(response)
        _log.debug(
            "Tavus %s %s -> %d in %.0f ms persona=%s request=%s response=%s",
            method,
            path,
            response.status_code,
            (time.perf_counter() - started) * 1000,
            persona or (body.get("persona_id") if isinstance(body, dict) else None),
            loggable_body(json_body),
            loggable_body(body),
        )
        return response

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        """Parse a 2xx body; anything but a JSON object means a proxy or outage answered."""
        body = _parse_body(response)
        if isinstance(body, dict):
            return body
        raise TavusServerError(
            f"Tavus answered {response.status_code} without a JSON object: "
            f"check TAVUS_API_BASE_URL (normally {DEFAULT_BASE_URL}) and try again",
            status=response.status_code,
            body=body,
        )


# No connection was made, so the request never reached Tavus and nothing was created.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def _unreachable(base_url: str, exc: httpx.TransportError) -> TavusUnreachableError:
    """The error for no answer at all; the exception's class name says which kind."""
    return TavusUnreachableError(
        f"Could not reach Tavus at {base_url} ({type(exc).__name__}): "
        "check TAVUS_API_BASE_URL and the network",
        request_sent=not isinstance(exc, _NOT_SENT),
    )


def _end_not_confirmed(
    conversation_id: str, error: TavusError, lookup: TavusError | None = None
) -> TavusEndNotConfirmedError:
    """The one-line error for an End Tavus did not confirm, keeping the refusal's own words."""
    checked = f"; the status check failed too ({lookup})" if lookup is not None else ""
    return TavusEndNotConfirmedError(
        f"Tavus did not confirm that conversation {conversation_id} ended ({error}{checked}): "
        "it may still be running (and billing); try End again, the app also retries on its own",
        status=error.status,
        body=error.body,
    )


def _parse_body(response: httpx.Response) -> Any:
    """JSON when the body is JSON, else the raw text (HTML error pages from proxies)."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def _detail(body: Any) -> str:
    """Tavus's own words for the error, from ``error`` and/or ``message``, or a short text body."""
    if isinstance(body, dict):
        parts = [body.get(key) for key in ("error", "message")]
        texts = [p for p in parts if isinstance(p, str) and p.strip()]
        return "; ".join(dict.fromkeys(texts))[:_MAX_DETAIL]
    if isinstance(body, str) and not body.lstrip().startswith("<"):
        return body.strip()[:_MAX_DETAIL]
    return ""


def _invalid_id_kind(lowered_detail: str) -> str | None:
    """``persona``/``replica``/``conversation`` for a 400 "Invalid <id word>", else None."""
    if "invalid" not in lowered_detail:
        return None
    for word, kind in _ID_WORDS:
        if word in lowered_detail:
            return kind
    return None


def _not_found_message(response: httpx.Response, code: str, kind: str | None) -> str:
    """Name the unknown thing and its id, taken from the request that was refused."""
    path, request_body = _request_of(response)
    match = _PATH_ID.match(path)
    path_kind = _PATH_KINDS[match.group(1)] if match else None
    kind = kind or path_kind
    if kind is None:
        return (
            f"Tavus has no such resource ({code}): "
            f"check TAVUS_API_BASE_URL (normally {DEFAULT_BASE_URL})"
        )
    ident = match.group(2) if match and kind == path_kind else None
    if ident is None and isinstance(request_body, dict):
        value = request_body.get(f"{kind}_id")
        ident = value if isinstance(value, str) else None
    subject = f"{kind} {ident}" if ident else f"the {kind}"
    return f"Tavus does not know {subject} ({code}): {_NOT_FOUND_HINTS[kind]}"


def _request_of(response: httpx.Response) -> tuple[str, Any]:
    """Path and JSON body of the request behind ``response`` (a bare Response has none)."""
    try:
        request = response.request
    except RuntimeError:
        return "", None
    try:
        body = json.loads(request.content) if request.content else None
    except (ValueError, httpx.RequestNotRead):
        body = None
    return request.url.path, body


def _retry_after(response: httpx.Response) -> float | None:
    """A numeric ``Retry-After``, capped; HTTP-date values fall back to plain backoff."""
    try:
        seconds = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def _unwrap_persona(payload: dict[str, Any], persona_id: str) -> dict[str, Any]:
    """Accept the flat object real clients see and the ``{"data": [obj]}`` the docs show."""
    data = payload.get("data")
    if "persona_id" not in payload and isinstance(data, list):
        if data and isinstance(data[0], dict):
            return data[0]
        raise TavusNotFoundError(
            f"Tavus does not know persona {persona_id} (empty answer): check TAVUS_PERSONA_ID",
            status=200,
            body=payload,
        )
    return payload
