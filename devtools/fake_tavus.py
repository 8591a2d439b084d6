"""A local, Tavus-compatible HTTP server for development and tests.

No machine that builds or tests AwakNow can reach Tavus, so every live-mode code path runs
against this server over real loopback HTTP, and staff point ``TAVUS_API_BASE_URL`` at it to
try live mode offline. It reproduces what AwakNow relies on from the Tavus v2 API: the status
codes and error bodies, the conversation lifecycle with its callbacks (also readable through
``?verbose=true``), and the failures that cannot be triggered on demand against the real
service (bad key, a key refused from this IP, no credits, concurrency, 5xx, 429, slowness, a
conversation in status ``error``). Like Tavus, it sends ``application.recording_ready`` only
for a conversation created with ``enable_recording`` and a ``recording_s3_bucket_name``
(Tavus records only into the account's own bucket); ``test_mode`` conversations cost nothing,
are born ended and hold no concurrency slot; ``DELETE ?hard=true`` forgets a conversation
with its events.

The HTTP side uses only the standard library, so the fake has no moving parts of its own to
debug; ``httpx`` posts the callbacks because AwakNow depends on it anyway.

Run it with ``python -m devtools.fake_tavus --port 8765``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import queue
import re
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from awaknow.logs import configure_logging

# Under the ``awaknow`` logger, so ``--verbose`` goes through its one redacting handler.
_log = logging.getLogger("awaknow.fake_tavus")

DEFAULT_PERSONA_ID = "p7e13c73f41f"
DEFAULT_REPLICA_ID = "r4317e64d25a"
DEFAULT_MAX_CALL_DURATION = 3600  # seconds; Tavus's own default
TICK_SECONDS = 0.2  # how often the background clock looks for expired conversations

_ISO_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_CONVERSATION_ID = re.compile(r"c[0-9a-f]+")

_INVALID_PERSONA = (400, {"error": "Invalid persona_id"})
_INVALID_REPLICA = (400, {"error": "Invalid replica_uuid"})
_INVALID_CONVERSATION = (400, {"error": "Invalid conversation_id"})
_CONVERSATION_NOT_FOUND = (404, {"message": "Conversation not found"})
_ALREADY_ENDED = (400, {"error": "Conversation has already ended"})
_CONCURRENCY = (400, {"message": "User has reached maximum concurrent conversations"})
_NO_CREDITS = (402, {"message": "The user is out of conversational credits"})
_BAD_KEY = (401, {"message": "Invalid access token"})
# A key restricted to other IP addresses (the body's wording is not documented).
_FORBIDDEN = (403, {"message": "Forbidden: this API key is not allowed from this IP address"})

# Fields of a conversation that the real API returns; everything else in the stored state is
# for tests only, so clients written against the fake cannot come to depend on it.
_PUBLIC_FIELDS = (
    "conversation_id",
    "conversation_name",
    "conversation_url",
    "callback_url",
    "status",
    "persona_id",
    "replica_id",
    "created_at",
    "updated_at",
)
_CREATE_FIELDS = (
    "conversation_id",
    "conversation_name",
    "conversation_url",
    "status",
    "callback_url",
    "created_at",
    "persona_id",
    "replica_id",
)
_STRING_FIELDS = (
    "persona_id",
    "replica_id",
    "conversation_name",
    "conversational_context",
    "custom_greeting",
    "callback_url",
)
_BOOL_FIELDS = ("test_mode", "audio_only", "require_auth")

Reply = tuple[int, Any]
"""An endpoint's answer: HTTP status and JSON body (``None`` for no body)."""

_COMPANION_PROMPT = (
    "You are the AwakNow Companion, a warm and steady wellness guide. You help people pause, "
    "notice how they feel, and choose one small next step. Listen more than you speak, reflect "
    "back what you hear in plain words, and keep answers short enough for a spoken "
    "conversation. Offer simple grounding practices such as slow breathing, a short body scan "
    "or naming five things in the room, and ask before starting one. You are not a therapist: "
    "never diagnose or give medical advice, and if someone mentions self-harm or a crisis, "
    "gently encourage them to contact local emergency services or a crisis line right away."
)

COMPANION_PERSONA: dict[str, Any] = {
    "persona_id": DEFAULT_PERSONA_ID,
    "persona_name": "AwakNow Companion",
    "system_prompt": _COMPANION_PROMPT,
    "default_replica_id": DEFAULT_REPLICA_ID,
    "context": "",
    "document_ids": [],
    "document_tags": [],
    "layers": {
        "llm": {"model": "tavus-llama-4", "speculative_inference": True},
        "tts": {
            "tts_engine": "cartesia",
            "tts_emotion_control": True,
            "voice_settings": {"speed": "normal", "emotion": ["positivity:high", "curiosity"]},
        },
        "perception": {
            "perception_model": "raven-0",
            "ambient_awareness_queries": [
                "Does the participant look tense or relaxed?",
                "Is the participant in a quiet, private space?",
            ],
        },
        "stt": {
            "stt_engine": "tavus-advanced",
            "participant_pause_sensitivity": "medium",
            "participant_interrupt_sensitivity": "medium",
            "smart_turn_detection": True,
        },
    },
    "pipeline_mode": "full",
    "created_at": "2025-06-12T09:21:44.512304Z",
    "updated_at": "2025-09-03T16:05:12.118820Z",
}
"""The AwakNow persona every fake starts with, shaped like a real ``GET /v2/personas/{id}``."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    """Tavus's timestamp format: ISO-8601 UTC with microseconds and ``Z``."""
    return moment.strftime(_ISO_FORMAT)


def _parse_iso(text: str) -> datetime:
    return datetime.strptime(text, _ISO_FORMAT).replace(tzinfo=UTC)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _decode_json(raw: bytes) -> Any:
    """Parse a request body; an empty body counts as ``{}``. Raises ``ValueError``."""
    if not raw.strip():
        return {}
    return json.loads(raw)


# Kind -> options it accepts besides ``times`` and ``methods``.
_FAULT_OPTIONS: dict[str, frozenset[str]] = {
    "bad_key": frozenset(),
    "forbidden": frozenset(),
    "unknown_persona": frozenset(),
    "credits": frozenset(),
    "concurrency": frozenset(),
    "server_error": frozenset({"status"}),
    "rate_limit": frozenset({"retry_after"}),
    "latency": frozenset({"seconds"}),
    "invalid_id": frozenset(),
    "end_refused": frozenset(),
    "hang": frozenset({"seconds"}),
    "slow_answer": frozenset({"seconds"}),
}
# Kinds that only make sense on some endpoints; the others hit every /v2 request. The
# ``routes`` option replaces these defaults (e.g. a 402 on reads, to test a client's mapping).
_FAULT_ROUTES: dict[str, frozenset[str]] = {
    "unknown_persona": frozenset({"get_persona", "create_conversation"}),
    "credits": frozenset({"create_conversation"}),
    "concurrency": frozenset({"create_conversation"}),
    "invalid_id": frozenset({"get_conversation", "end_conversation"}),
    "end_refused": frozenset({"end_conversation"}),
}
# Short names accepted by the ``routes`` option, besides the full route names.
_ROUTE_ALIASES = {
    "persona": "get_persona",
    "create": "create_conversation",
    "get": "get_conversation",
    "end": "end_conversation",
    "list": "list_conversations",
}
_ROUTE_NAMES = frozenset({*_ROUTE_ALIASES.values(), "list_personas", "delete_conversation"})
_HANG_SECONDS = 60.0  # "no answer": far past any client's read timeout


@dataclass
class _Fault:
    """A failure the fake injects. ``times`` counts down per request it actually hits."""

    kind: str
    times: int | None = None
    methods: frozenset[str] | None = None
    routes: frozenset[str] | None = None
    status: int = 500
    seconds: float = 1.0
    retry_after: int | None = None

    @classmethod
    def build(cls, kind: object, options: dict[str, Any]) -> _Fault:
        """Validate ``set_fault`` arguments; a typo must fail loudly, not silently do nothing."""
        if not isinstance(kind, str) or kind not in _FAULT_OPTIONS:
            raise ValueError(
                f"unknown fault kind {kind!r}; expected one of {sorted(_FAULT_OPTIONS)}"
            )
        unknown = set(options) - _FAULT_OPTIONS[kind] - {"times", "methods", "routes"}
        if unknown:
            raise ValueError(f"fault {kind!r} does not take {sorted(unknown)}")
        fault = cls(kind)
        if kind == "hang":
            fault.seconds = _HANG_SECONDS
        if "routes" in options:
            routes = options["routes"]
            if isinstance(routes, str) or not all(isinstance(r, str) for r in routes):
                raise ValueError('routes must be a list such as ["create", "end"]')
            names = frozenset(_ROUTE_ALIASES.get(r, r) for r in routes)
            if not names <= _ROUTE_NAMES:
                raise ValueError(f"unknown routes {sorted(names - _ROUTE_NAMES)}")
            fault.routes = names
        if "times" in options:
            times = options["times"]
            if not _is_int(times) or times < 1:
                raise ValueError("times must be a positive integer")
            fault.times = times
        if "methods" in options:
            methods = options["methods"]
            if isinstance(methods, str) or not all(isinstance(m, str) for m in methods):
                raise ValueError('methods must be a list of HTTP methods such as ["POST"]')
            fault.methods = frozenset(m.upper() for m in methods)
        if "status" in options:
            if not _is_int(options["status"]) or not 500 <= options["status"] <= 599:
                raise ValueError("status must be a 5xx code")
            fault.status = options["status"]
        if "seconds" in options:
            if not _is_number(options["seconds"]) or options["seconds"] < 0:
                raise ValueError("seconds must be a non-negative number")
            fault.seconds = float(options["seconds"])
        if "retry_after" in options:
            if not _is_int(options["retry_after"]) or options["retry_after"] < 0:
                raise ValueError("retry_after must be a non-negative integer")
            fault.retry_after = options["retry_after"]
        return fault

    def hits(self, method: str, route: str | None) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        routes = self.routes if self.routes is not None else _FAULT_ROUTES.get(self.kind)
        return routes is None or route in routes

    def describe(self) -> dict[str, Any]:
        """The fault as JSON, for ``/_fake/state`` and the control endpoint's answer."""
        out: dict[str, Any] = {"kind": self.kind, "times": self.times}
        out["methods"] = sorted(self.methods) if self.methods is not None else None
        if self.routes is not None:
            out["routes"] = sorted(self.routes)
        if self.kind == "server_error":
            out["status"] = self.status
        elif self.kind in ("latency", "hang", "slow_answer"):
            out["seconds"] = self.seconds
        elif self.kind == "rate_limit":
            out["retry_after"] = self.retry_after
        return out


def _fault_of(fault: _Fault | None, kind: str) -> bool:
    return fault is not None and fault.kind == kind


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it, so tests can check exactly what a client sent."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    json: Any  # the decoded body, or None when it was empty or not JSON


@dataclass(frozen=True)
class _Call:
    """A routed /v2 request as the endpoint implementations see it."""

    ident: str  # the id in the path, "" for collection routes
    query: dict[str, str]
    raw: bytes
    fault: _Fault | None


def _page(items: list[Any], query: dict[str, str], max_page_size: int | None = None) -> Reply:
    """Tavus list pagination: 1-based ``page``, ``limit`` per page, and the unpaged count.

    ``max_page_size`` caps ``limit`` silently, so a page shorter than asked for is not the
    last one: clients must stop on ``total_count``.
    """
    try:
        limit = int(query.get("limit") or 10)
        page = int(query.get("page") or 1)
    except ValueError:
        limit = page = 0
    if limit < 1 or page < 1:
        return 400, {"message": "limit and page must be positive integers"}
    if max_page_size is not None:
        limit = min(limit, max_page_size)
    start = (page - 1) * limit
    return 200, {"data": items[start : start + limit], "total_count": len(items)}


def _check_create_body(body: dict[str, Any]) -> str | None:
    """Type checks on ``POST /v2/conversations``; returns the problem, or None when fine."""
    for name in _STRING_FIELDS:
        if body.get(name) is not None and not isinstance(body[name], str):
            return f"{name} must be a string"
    for name in _BOOL_FIELDS:
        if body.get(name) is not None and not isinstance(body[name], bool):
            return f"{name} must be a boolean"
    callback_url = body.get("callback_url")
    if callback_url and not callback_url.startswith(("http://", "https://")):
        return "callback_url must be an http or https URL"
    properties = body.get("properties")
    if properties is None:
        return None
    if not isinstance(properties, dict):
        return "properties must be an object"
    duration = properties.get("max_call_duration")
    if duration is not None and (not _is_number(duration) or duration <= 0):
        return "properties.max_call_duration must be a positive number of seconds"
    return None


def _transcript(conv: dict[str, Any], system_prompt: str, start: datetime) -> list[dict[str, Any]]:
    """A short, deterministic call transcript in the 2026 shape (with timing fields)."""
    request = conv["request"]
    context = request.get("conversational_context")
    greeting = request.get("custom_greeting") or (
        "Hi, I'm your AwakNow companion. How are you arriving today?"
    )
    if context:
        reflection = (
            f"Thank you for telling me. I'm keeping in mind what you shared before we started: "
            f"{context} Let's take one slow breath together."
        )
    else:
        reflection = "Thank you for telling me. Let's take one slow breath together."
    turns = (
        ("system", system_prompt, 0.0, 0.0),
        ("assistant", greeting, 1.2, 3.4),
        ("user", "Honestly, a bit tense. Work has been a lot this week.", 5.1, 3.9),
        ("assistant", reflection, 9.6, 6.2),
        ("user", "Okay. That actually helps a little.", 17.3, 2.4),
        (
            "assistant",
            "I'm glad. What is one small, kind thing you could do for yourself this evening?",
            20.4,
            4.6,
        ),
    )
    begin = start.timestamp()
    return [
        {
            "role": role,
            "content": content,
            "timestamp": round(begin + offset, 3),
            "seconds_from_start": offset,
            "duration": duration,
        }
        for role, content, offset, duration in turns
    ]


def _analysis(conversation_id: str, seconds: float) -> str:
    """Deterministic perception-analysis markdown, as Raven would summarise a calm call."""
    return (
        "## Perception analysis\n\n"
        f"- Conversation `{conversation_id}` lasted about {round(seconds)} seconds.\n"
        "- The participant sat facing the camera in a quiet indoor room with soft light.\n"
        "- Shoulders dropped and speech slowed after the breathing exercise; the participant "
        "smiled briefly near the end.\n"
        "- No signs of acute distress were observed.\n"
    )


class FakeTavus:
    """A Tavus v2 API on a loopback port, with a conversation lifecycle and injectable faults.

    State is public so tests can assert on it: ``requests`` (every request except the
    ``/_fake`` control routes), ``conversations`` (full state by id, including the create body
    under ``request``, ``properties``, ``ended_at``, ``shutdown_reason`` and ``events``) and
    ``callbacks_sent`` (``{"url", "payload", "status", "error"}`` per callback POST).
    """

    def __init__(
        self,
        *,
        api_key: str | None = "test-key",
        host: str = "127.0.0.1",
        port: int = 0,
        max_concurrent: int = 3,
        replica_join_delay: float = 0.05,
        callback_timeout: float = 2.0,
        max_page_size: int | None = None,
    ) -> None:
        """``api_key=None`` accepts any non-empty ``x-api-key``; ``port=0`` picks a free port."""
        if max_concurrent < 0 or replica_join_delay < 0 or callback_timeout <= 0:
            raise ValueError("max_concurrent, replica_join_delay and callback_timeout are >= 0")
        self._api_key = api_key
        self._address = (host, port)
        self._max_concurrent = max_concurrent
        self._replica_join_delay = replica_join_delay
        self._callback_timeout = callback_timeout
        self._max_page_size = max_page_size

        self.requests: list[RecordedRequest] = []
        self.conversations: dict[str, dict[str, Any]] = {}
        self.callbacks_sent: list[dict[str, Any]] = []

        # One lock guards all state: the fake is tiny and correctness beats throughput here.
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._personas: dict[str, dict[str, Any]] = {}
        self._replicas: set[str] = set()
        self._fault: _Fault | None = None
        self._pending_joins: dict[str, float] = {}  # conversation id -> monotonic due time
        self._connections: set[socket.socket] = set()
        self._outbox: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._base_url: str | None = None
        self._routes: tuple[tuple[str, re.Pattern[str], str, Callable[[_Call], Reply]], ...] = (
            ("GET", re.compile(r"/v2/personas/?"), "list_personas", self._list_personas),
            ("GET", re.compile(r"/v2/personas/([^/]+)"), "get_persona", self._get_persona),
            (
                "POST",
                re.compile(r"/v2/conversations/?"),
                "create_conversation",
                self._create_conversation,
            ),
            (
                "GET",
                re.compile(r"/v2/conversations/?"),
                "list_conversations",
                self._list_conversations,
            ),
            (
                "GET",
                re.compile(r"/v2/conversations/([^/]+)"),
                "get_conversation",
                self._get_conversation,
            ),
            (
                "POST",
                re.compile(r"/v2/conversations/([^/]+)/end"),
                "end_conversation",
                self._end_conversation,
            ),
            (
                "DELETE",
                re.compile(r"/v2/conversations/([^/]+)"),
                "delete_conversation",
                self._delete_conversation,
            ),
        )
        self.add_persona(COMPANION_PERSONA)

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` of the running server (still set after ``stop()``)."""
        if self._base_url is None:
            raise RuntimeError("FakeTavus is not started")
        return self._base_url

    def start(self) -> FakeTavus:
        """Bind (raising ``OSError`` if the port is taken) and serve from daemon threads."""
        if self._server is not None:
            raise RuntimeError("FakeTavus can only be started once")
        self._server = _Server(self._address, self)
        host, port = self._server.server_address[:2]
        host_text = host.decode() if isinstance(host, bytes) else host
        self._base_url = f"http://{host_text}:{port}"
        self._threads = [
            threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},  # keeps stop() fast
                name="fake-tavus-http",
                daemon=True,
            ),
            threading.Thread(target=self._run_clock, name="fake-tavus-clock", daemon=True),
            threading.Thread(target=self._run_sender, name="fake-tavus-callbacks", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open keep-alive connections and drop undelivered callbacks.

        Open connections are closed too: otherwise a client's pooled connection would keep
        getting answers from a server that tests believe is gone.
        """
        if self._server is None or self._stopping.is_set():
            return
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)
        self._outbox.put(None)
        for thread in self._threads:
            thread.join(timeout=self._callback_timeout + 1)

    def __enter__(self) -> FakeTavus:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- test controls -------------------------------------------------------------------

    def set_fault(self, kind: str | None, **options: Any) -> None:
        """Inject one failure, replacing any previous one; ``None`` clears it.

        Kinds hitting every /v2 request: ``bad_key`` (401), ``forbidden`` (403, a key
        restricted to other IP addresses), ``server_error`` (500, or option
        ``status``), ``rate_limit`` (429, option ``retry_after`` adds that header), ``latency``
        (sleep ``seconds``, default 1, then answer normally: a create then happens late),
        ``hang`` (no answer at all for ``seconds``, default 60, then the connection is
        dropped; nothing is done) and ``slow_answer`` (do the work, e.g. create the
        conversation, then answer only after ``seconds``). Kinds hitting only some endpoints:
        ``unknown_persona`` (persona GET and create: 400 Invalid persona_id), ``credits``
        (create: 402), ``concurrency`` (create: the 400 concurrency body), ``invalid_id``
        (conversation GET and end: 400 Invalid conversation_id, though the id is fine) and
        ``end_refused`` (the same, on end only). ``routes=[...]`` picks the endpoints instead
        (``persona``, ``create``, ``get``, ``end``, ``list`` or full route names).
        ``times=N`` clears the fault after the N requests it actually hit, so retry logic can
        be tested; ``methods=["POST"]`` restricts it to those methods. The same is reachable
        over HTTP as ``POST /_fake/fault`` with ``{"kind": ..., **options}``.
        """
        if kind is None:
            if options:
                raise ValueError("options need a fault kind")
            fault = None
        else:
            fault = _Fault.build(kind, options)
        with self._lock:
            self._fault = fault

    def add_persona(self, persona: dict[str, Any]) -> None:
        """Make a persona (and its default replica) known; missing fields get realistic ones."""
        persona_id = persona.get("persona_id")
        if not isinstance(persona_id, str) or not persona_id:
            raise ValueError("a persona needs a persona_id")
        stamp = _iso(_utcnow())
        stored = {
            "persona_name": persona_id,
            "system_prompt": "",
            "default_replica_id": None,
            "context": "",
            "document_ids": [],
            "document_tags": [],
            "layers": {},
            "pipeline_mode": "full",
            "created_at": stamp,
            "updated_at": stamp,
            **copy.deepcopy(persona),
        }
        with self._lock:
            self._personas[persona_id] = stored
            if stored["default_replica_id"]:
                self._replicas.add(stored["default_replica_id"])

    def fail_conversation(self, conversation_id: str) -> None:
        """Put an active conversation in status ``error`` (in Tavus's example types), as a
        call that broke on Tavus's side: it stops, with no shutdown event (none is
        documented for it), and ``updated_at`` is the only end time a client can read."""
        with self._lock:
            conv = self.conversations[conversation_id]
            if conv["status"] != "active":
                raise ValueError(f"conversation {conversation_id} is {conv['status']}, not active")
            stamp = _iso(_utcnow())
            conv.update(status="error", ended_at=stamp, updated_at=stamp)
            self._pending_joins.pop(conversation_id, None)

    def expire_due(self) -> None:
        """End every active conversation older than its ``max_call_duration``, as Tavus does.

        Age is measured from ``created_at``, so a test can backdate that field and call this
        instead of waiting.
        """
        now = _utcnow()
        with self._lock:
            for conv in list(self.conversations.values()):
                if conv["status"] != "active":
                    continue
                limit = conv["properties"].get("max_call_duration", DEFAULT_MAX_CALL_DURATION)
                if (now - _parse_iso(conv["created_at"])).total_seconds() >= limit:
                    self._end_locked(conv, "max_call_duration reached")

    # -- request handling ----------------------------------------------------------------

    def _handle(
        self, method: str, target: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int | None, Any, dict[str, str]]:
        """Answer one request: ``(status, JSON body or None, extra headers)``; status None
        drops the connection without an answer."""
        parts = urlsplit(target)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if path.startswith("/_fake/"):
            status, body = self._control(method, path, raw)
            return status, body, {}
        try:
            decoded = _decode_json(raw) if raw.strip() else None
        except ValueError:
            decoded = None
        with self._lock:
            self.requests.append(RecordedRequest(method, path, query, headers, decoded))
        if not path.startswith("/v2/"):
            return 404, {"message": f"Not found: {method} {path}"}, {}

        route_name: str | None = None
        endpoint: Callable[[_Call], Reply] | None = None
        ident = ""
        for route_method, pattern, name, function in self._routes:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                route_name, endpoint = name, function
                ident = match.group(1) if pattern.groups else ""
                break

        fault = self._take_fault(method, route_name)
        if fault is not None:
            if fault.kind == "hang":
                self._stopping.wait(fault.seconds)
                return None, None, {}
            if fault.kind == "latency":
                time.sleep(fault.seconds)
            elif fault.kind == "bad_key":
                return *_BAD_KEY, {}
            elif fault.kind == "forbidden":
                return *_FORBIDDEN, {}
            elif fault.kind == "server_error":
                return fault.status, {"message": "Internal server error"}, {}
            elif fault.kind == "rate_limit":
                extra = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
                return 429, {"message": "Too many requests"}, extra

        key = headers.get("x-api-key", "")
        if not key or (self._api_key is not None and key != self._api_key):
            return *_BAD_KEY, {}
        if endpoint is None:
            return 404, {"message": f"Not found: {method} {path}"}, {}
        if fault is not None and fault.kind in ("invalid_id", "end_refused"):
            return *_INVALID_CONVERSATION, {}
        if fault is not None and route_name != "create_conversation":
            if fault.kind == "credits":
                return *_NO_CREDITS, {}
            if fault.kind == "concurrency":
                return *_CONCURRENCY, {}
        status, body = endpoint(_Call(ident, query, raw, fault))
        if fault is not None and fault.kind == "slow_answer":
            self._stopping.wait(fault.seconds)  # done, but answered after the client gave up
        return status, body, {}

    def _take_fault(self, method: str, route: str | None) -> _Fault | None:
        """The fault that hits this request, if any, counting down its ``times``."""
        with self._lock:
            fault = self._fault
            if fault is None or not fault.hits(method, route):
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times == 0:
                    self._fault = None
            return fault

    def _control(self, method: str, path: str, raw: bytes) -> Reply:
        """``/_fake/*``: fault injection and state over HTTP for the CLI fake (no key needed)."""
        if method == "POST" and path == "/_fake/fault":
            try:
                spec = _decode_json(raw)
            except ValueError:
                return 400, {"message": "body must be JSON"}
            if not isinstance(spec, dict):
                return 400, {"message": 'body must be an object such as {"kind": "credits"}'}
            options = dict(spec)
            try:
                self.set_fault(options.pop("kind", None), **options)
            except ValueError as exc:
                return 400, {"message": str(exc)}
            with self._lock:
                return 200, {"fault": self._fault.describe() if self._fault else None}
        if method == "GET" and path == "/_fake/state":
            with self._lock:
                return 200, {
                    "fault": self._fault.describe() if self._fault else None,
                    "conversations": copy.deepcopy(self.conversations),
                }
        return 404, {"message": f"Not found: {method} {path}"}

    # -- endpoints -----------------------------------------------------------------------

    def _list_personas(self, call: _Call) -> Reply:
        wanted = call.query.get("persona_type")
        with self._lock:
            personas = [
                copy.deepcopy(p)
                for p in self._personas.values()
                if not wanted or p.get("persona_type", "user") == wanted
            ]
        return _page(personas, call.query)

    def _get_persona(self, call: _Call) -> Reply:
        if _fault_of(call.fault, "unknown_persona"):
            return _INVALID_PERSONA
        with self._lock:
            persona = self._personas.get(call.ident)
            return (200, copy.deepcopy(persona)) if persona else _INVALID_PERSONA

    def _create_conversation(self, call: _Call) -> Reply:
        try:
            body = _decode_json(call.raw)
        except ValueError:
            return 400, {"message": "Request body must be valid JSON"}
        if not isinstance(body, dict):
            return 400, {"message": "Request body must be a JSON object"}
        problem = _check_create_body(body)
        if problem:
            return 400, {"message": problem}
        if _fault_of(call.fault, "unknown_persona"):
            return _INVALID_PERSONA
        if _fault_of(call.fault, "credits"):
            return _NO_CREDITS
        if _fault_of(call.fault, "concurrency"):
            return _CONCURRENCY

        with self._lock:
            persona_id = body.get("persona_id")
            persona: dict[str, Any] = {}
            if persona_id is not None:
                if persona_id not in self._personas:
                    return _INVALID_PERSONA
                persona = self._personas[persona_id]
            replica_id = body.get("replica_id")
            if replica_id is None:
                replica_id = persona.get("default_replica_id")
                if replica_id is None:
                    return 400, {"message": "replica_id is required: the persona has no default"}
            if replica_id not in self._replicas:
                return _INVALID_REPLICA
            test_mode = bool(body.get("test_mode"))
            if not test_mode and self._active_count() >= self._max_concurrent:
                return _CONCURRENCY
            conv = self._new_conversation(body, persona_id, replica_id, test_mode)
            reply = {field: conv[field] for field in _CREATE_FIELDS}
            if "meeting_token" in conv:
                reply["meeting_token"] = conv["meeting_token"]
        return 200, reply

    def _list_conversations(self, call: _Call) -> Reply:
        wanted = call.query.get("status")
        with self._lock:
            newest_first = reversed(list(self.conversations.values()))
            items = [
                self._public(conv)
                for conv in newest_first
                if not conv["deleted"] and (not wanted or conv["status"] == wanted)
            ]
        return _page(items, call.query, self._max_page_size)

    def _get_conversation(self, call: _Call) -> Reply:
        verbose = call.query.get("verbose", "").lower() == "true"
        with self._lock:
            conv, error = self._find(call.ident)
            if conv is None:
                return error
            view = self._public(conv)
            if verbose:
                view["events"] = copy.deepcopy(conv["events"])
        return 200, view

    def _end_conversation(self, call: _Call) -> Reply:
        with self._lock:
            conv, error = self._find(call.ident)
            if conv is None:
                return error
            if conv["status"] != "active":
                return _ALREADY_ENDED
            self._end_locked(conv, "end_conversation_endpoint_hit")
        return 200, {}

    def _delete_conversation(self, call: _Call) -> Reply:
        """Delete ends a live call (as deleting its Daily room would); ``hard`` forgets it all."""
        hard = call.query.get("hard", "").lower() == "true"
        with self._lock:
            conv, error = self._find(call.ident)
            if conv is None:
                return error
            if conv["status"] == "active":
                self._end_locked(conv, "daily_room_has_been_deleted")
            if hard:
                del self.conversations[call.ident]
            else:
                conv["deleted"] = True
                conv["updated_at"] = _iso(_utcnow())
        return 204, None

    # -- conversation state (callers hold self._lock) -------------------------------------

    def _find(self, ident: str) -> tuple[dict[str, Any] | None, Reply]:
        if not _CONVERSATION_ID.fullmatch(ident):
            return None, _INVALID_CONVERSATION
        conv = self.conversations.get(ident)
        if conv is None or conv["deleted"]:
            return None, _CONVERSATION_NOT_FOUND
        return conv, (200, None)

    def _active_count(self) -> int:
        return sum(
            1 for c in self.conversations.values() if c["status"] == "active" and not c["test_mode"]
        )

    @staticmethod
    def _public(conv: dict[str, Any]) -> dict[str, Any]:
        return {field: conv[field] for field in _PUBLIC_FIELDS}

    def _new_conversation(
        self, body: dict[str, Any], persona_id: str | None, replica_id: str, test_mode: bool
    ) -> dict[str, Any]:
        conversation_id = "c" + secrets.token_hex(8)
        while conversation_id in self.conversations:
            conversation_id = "c" + secrets.token_hex(8)
        stamp = _iso(_utcnow())
        conv: dict[str, Any] = {
            "conversation_id": conversation_id,
            "conversation_name": body.get("conversation_name") or "New Conversation",
            "conversation_url": f"https://tavus.daily.co/{conversation_id}",
            "callback_url": body.get("callback_url"),
            # test_mode: the replica never joins, nothing is billed, and it is born ended.
            "status": "ended" if test_mode else "active",
            "persona_id": persona_id,
            "replica_id": replica_id,
            "created_at": stamp,
            "updated_at": stamp,
            "ended_at": stamp if test_mode else None,
            "shutdown_reason": None,
            "properties": copy.deepcopy(body.get("properties") or {}),
            "test_mode": test_mode,
            "deleted": False,
            "request": copy.deepcopy(body),
            "events": [],
        }
        if body.get("require_auth"):
            conv["meeting_token"] = secrets.token_urlsafe(24)
        self.conversations[conversation_id] = conv
        if not test_mode:
            self._pending_joins[conversation_id] = time.monotonic() + self._replica_join_delay
            self._wake.notify_all()
        return conv

    def _end_locked(self, conv: dict[str, Any], reason: str) -> None:
        """End a conversation and emit, in Tavus's order, everything that follows a call."""
        now = _utcnow()
        stamp = _iso(now)
        conv.update(status="ended", ended_at=stamp, updated_at=stamp, shutdown_reason=reason)
        self._pending_joins.pop(conv["conversation_id"], None)
        started = _parse_iso(conv["created_at"])
        seconds = (now - started).total_seconds()
        self._emit(
            conv,
            "system.shutdown",
            {"replica_id": conv["replica_id"], "shutdown_reason": reason},
        )
        persona = self._personas.get(conv["persona_id"] or "", {})
        transcript = _transcript(conv, persona.get("system_prompt") or "", started)
        self._emit(conv, "application.transcription_ready", {"transcript": transcript})
        properties = conv["properties"]
        bucket = properties.get("recording_s3_bucket_name")
        if properties.get("enable_recording") and bucket:
            key = f"recordings/{conv['conversation_id']}.mp4"
            self._emit(
                conv,
                "application.recording_ready",
                {
                    "bucket_name": bucket,
                    "s3_key": key,
                    "duration": round(seconds),
                    "storage_provider": "s3",
                    "storage_uri": f"s3://{bucket}/{key}",
                },
            )
        self._emit(
            conv,
            "application.perception_analysis",
            {"analysis": _analysis(conv["conversation_id"], seconds)},
        )

    def _emit(self, conv: dict[str, Any], event_type: str, properties: dict[str, Any]) -> None:
        """Record an event for ``?verbose=true`` and queue its callback, if a URL was given."""
        event = {
            "conversation_id": conv["conversation_id"],
            "event_type": event_type,
            "message_type": event_type.split(".", 1)[0],
            "timestamp": _iso(_utcnow()),
            "webhook_url": conv["callback_url"],
            "properties": properties,
        }
        conv["events"].append(event)
        if conv["callback_url"]:
            self._outbox.put((conv["callback_url"], copy.deepcopy(event)))

    # -- background threads --------------------------------------------------------------

    def _run_clock(self) -> None:
        """Let replicas join after their delay and end calls past ``max_call_duration``."""
        while not self._stopping.is_set():
            with self._wake:
                now = time.monotonic()
                waits = [due - now for due in self._pending_joins.values()]
                self._wake.wait(max(0.0, min([TICK_SECONDS, *waits])))
                if self._stopping.is_set():
                    return
                now = time.monotonic()
                for conversation_id, due in list(self._pending_joins.items()):
                    if due > now:
                        continue
                    del self._pending_joins[conversation_id]
                    conv = self.conversations.get(conversation_id)
                    if conv is not None and conv["status"] == "active":
                        conv["updated_at"] = _iso(_utcnow())
                        self._emit(
                            conv, "system.replica_joined", {"replica_id": conv["replica_id"]}
                        )
            self.expire_due()

    def _run_sender(self) -> None:
        """POST queued callbacks one by one, off the request path so answers are never slowed."""
        with httpx.Client(timeout=self._callback_timeout, trust_env=False) as client:
            while (item := self._outbox.get()) is not None:
                if self._stopping.is_set():
                    continue
                url, payload = item
                record: dict[str, Any] = {
                    "url": url,
                    "payload": payload,
                    "status": None,
                    "error": None,
                }
                try:
                    record["status"] = client.post(url, json=payload).status_code
                except Exception as exc:  # whatever the receiver did wrong is data for the test
                    record["error"] = f"{type(exc).__name__}: {exc}"
                with self._lock:
                    self.callbacks_sent.append(record)

    # -- connection tracking (used by the handler) ---------------------------------------

    def _track(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)


class _Server(ThreadingHTTPServer):
    """The HTTP server, holding its ``FakeTavus`` so handlers can reach it."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], fake: FakeTavus) -> None:
        self.fake = fake
        super().__init__(address, _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        # The default prints a traceback to stderr; a dropped client is routine here.
        _log.debug("connection error from %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    """Turns HTTP into ``FakeTavus._handle`` calls; JSON in, JSON out, keep-alive on."""

    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections are closed after a minute
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stall
    error_content_type = "application/json"
    error_message_format = '{"message": "%(message)s"}'

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _dispatch(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True  # the unread body would corrupt the next request
            self._reply(411, {"message": "Content-Length is required"}, {})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._reply(400, {"message": "Invalid Content-Length"}, {})
            return
        raw = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            status, body, extra = self.server.fake._handle(self.command, self.path, headers, raw)
        except Exception as exc:  # a bug in the fake must still answer in JSON
            _log.error("fake Tavus failed on %s %s: %r", self.command, self.path, exc)
            _log.debug("traceback", exc_info=True)
            status, body, extra = 500, {"message": "Internal server error"}, {}
        if status is None:
            self.close_connection = True  # "hang": the client only ever sees its timeout
            return
        self._reply(status, body, extra)

    def _reply(self, status: int, body: Any, extra: dict[str, str]) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        try:
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            if body is not None:
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError as exc:  # the client gave up, e.g. timed out during a latency fault
            self.close_connection = True
            _log.debug("could not answer %s %s: %r", self.command, self.path, exc)


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError("port must be 0-65535")
    return port


def main(argv: list[str] | None = None) -> int:
    """Serve a fake Tavus until Ctrl-C or SIGTERM; exit 2 when the port cannot be bound."""
    parser = argparse.ArgumentParser(
        prog="python -m devtools.fake_tavus",
        description="A local Tavus-compatible API. Point TAVUS_API_BASE_URL at it.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=_port, default=0, help="0 picks a free port")
    parser.add_argument(
        "--api-key", help="x-api-key to require (default: any non-empty key is accepted)"
    )
    parser.add_argument("--max-concurrent", type=int, default=3)
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    if args.max_concurrent < 0:
        parser.error("--max-concurrent must be >= 0")
    if args.verbose:
        configure_logging("DEBUG")

    fake = FakeTavus(
        api_key=args.api_key, host=args.host, port=args.port, max_concurrent=args.max_concurrent
    )
    try:
        fake.start()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(f"fake Tavus: cannot listen on {args.host}:{args.port}: {reason}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops like Ctrl-C
    print(f"fake Tavus listening on {fake.base_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt stop()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
