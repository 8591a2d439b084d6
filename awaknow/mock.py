"""The mock Tavus backend: the whole app works without a key, offline, and says so.

It mirrors ``TavusClient`` (see ``awaknow.tavus.TavusBackend``) closely enough that sessions,
billing, the reaper and the events view run the same code in both modes: conversations have real
creation and end times, expire at ``max_call_duration`` like Tavus's, and report the same events.
Nothing here costs money, so nothing is retried or rate limited.
"""

from __future__ import annotations

import copy
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from awaknow.tavus import ClosedOnExit, check_id
from awaknow.tavus_names import (
    CONVERSATION_ACTIVE,
    CONVERSATION_ENDED,
    REPLICA_JOINED,
    SHUTDOWN,
    SHUTDOWN_BY_END_ENDPOINT,
    SHUTDOWN_BY_MAX_DURATION,
    TRANSCRIPTION_READY,
    format_tavus_time,
    message_type_of,
)

MOCK_PERSONA_NAME = "AwakNow Companion (mock)"
MOCK_SYSTEM_PROMPT = (
    "You are the AwakNow companion (MOCK: no Tavus call is made). You listen with warmth, "
    "reflect feelings back, and help people find one small next step."
)
_MOCK_TURNS = (
    ("assistant", "[mock] Hi, I'm your AwakNow companion. How are you feeling today?"),
    ("user", "[mock] A bit tense, work has been a lot this week."),
    ("assistant", "[mock] That sounds heavy. What part of it weighs on you most?"),
    ("user", "[mock] Mostly that I never seem to finish anything."),
    ("assistant", "[mock] Let's pick one small thing you could finish today."),
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Conversation:
    conversation_id: str
    conversation_name: str | None
    conversation_url: str
    persona_id: str
    replica_id: str
    created_at: datetime
    max_call_duration: float | None
    ended_at: datetime | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "conversation_name": self.conversation_name,
            "conversation_url": self.conversation_url,
            "status": CONVERSATION_ENDED if self.ended_at else CONVERSATION_ACTIVE,
            "callback_url": None,
            "persona_id": self.persona_id,
            "replica_id": self.replica_id,
            "created_at": format_tavus_time(self.created_at),
            "updated_at": format_tavus_time(self.ended_at or self.created_at),
        }


class MockTavus(ClosedOnExit):
    """An in-memory, thread-safe stand-in for ``TavusClient``.

    Conversations live only as long as this process: one it does not know (the app restarted)
    is reported ended, so the reaper closes and bills it instead of waiting forever.
    """

    mode = "mock"

    def __init__(
        self,
        *,
        persona_id: str,
        replica_id: str,
        reason: str,
        room_path: str = "/mock-room",
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.persona_id = persona_id
        self.replica_id = replica_id
        self.reason = reason
        self._room_path = room_path.rstrip("/")
        self._clock = clock
        self._lock = threading.Lock()
        self._conversations: dict[str, _Conversation] = {}
        self._created_at = clock()

    def __repr__(self) -> str:
        return f"MockTavus(persona_id={self.persona_id!r}, reason={self.reason!r})"

    def close(self) -> None:
        """Nothing to release; kept so callers can close either backend the same way."""

    def get_persona(self, persona_id: str, *, force: bool = False) -> dict[str, Any]:
        """A persona shaped like Tavus's, marked ``mock`` so no page mistakes it for the real one.

        ``force`` is accepted for interface parity; there is no cache to refresh.
        """
        check_id("persona", persona_id)
        stamp = format_tavus_time(self._created_at)
        return {
            "persona_id": persona_id,
            "persona_name": MOCK_PERSONA_NAME,
            "default_replica_id": self.replica_id,
            "system_prompt": MOCK_SYSTEM_PROMPT,
            "context": "",
            "document_ids": [],
            "document_tags": [],
            "layers": {
                "llm": {"model": "mock-llm"},
                "tts": {"tts_engine": "mock"},
                "perception": {"perception_model": "off"},
                "stt": {"stt_engine": "mock"},
                "conversational_flow": {"turn_detection_model": "mock"},
            },
            "pipeline_mode": "full",
            "created_at": stamp,
            "updated_at": stamp,
            "mock": True,
        }

    def create_conversation(self, body: dict[str, Any]) -> dict[str, Any]:
        """Start a mock conversation whose room is served by this app (a relative URL)."""
        now = self._clock()
        conversation_id = "c" + secrets.token_hex(8)
        properties = body.get("properties") or {}
        duration = properties.get("max_call_duration")
        conversation = _Conversation(
            conversation_id=conversation_id,
            conversation_name=body.get("conversation_name"),
            conversation_url=f"{self._room_path}/{conversation_id}",
            persona_id=body.get("persona_id") or self.persona_id,
            replica_id=body.get("replica_id") or self.replica_id,
            created_at=now,
            max_call_duration=float(duration) if isinstance(duration, int | float) else None,
        )
        conversation.events.append(_event(conversation, REPLICA_JOINED, now, {}))
        with self._lock:
            self._conversations[conversation_id] = conversation
            return conversation.public()

    def get_conversation(
        self, conversation_id: str, *, verbose: bool = False, quick: bool = False
    ) -> dict[str, Any]:
        """Read one conversation; ``verbose`` adds the events Tavus would have sent.

        ``quick`` is accepted for interface parity: nothing here is slow.
        """
        check_id("conversation", conversation_id)
        with self._lock:
            conversation = self._conversations.get(conversation_id)
            if conversation is None:
                result = self._forgotten(conversation_id)
                events: list[dict[str, Any]] = []
            else:
                self._expire(conversation)
                result = conversation.public()
                events = copy.deepcopy(conversation.events)
        if verbose:
            result["events"] = events
        return result

    def list_conversations(
        self, *, status: str | None = None, limit: int = 100, page: int = 1
    ) -> dict[str, Any]:
        """Newest first, paged like Tavus."""
        with self._lock:
            for conversation in self._conversations.values():
                self._expire(conversation)
            rows = [c.public() for c in self._conversations.values()]
        if status:
            rows = [row for row in rows if row["status"] == status]
        rows.sort(key=lambda row: row["created_at"], reverse=True)
        start = max(page - 1, 0) * max(limit, 0)
        return {"data": rows[start : start + max(limit, 0)], "total_count": len(rows)}

    def end_conversation(self, conversation_id: str) -> dict[str, Any] | None:
        """End it now (idempotent); always confirmed, nothing here can refuse.

        Like the client, returns the conversation when it had already ended (expired at
        ``max_call_duration`` or forgotten in a restart), so the bill uses its end time.
        """
        check_id("conversation", conversation_id)
        with self._lock:
            conversation = self._conversations.get(conversation_id)
            if conversation is None:
                return self._forgotten(conversation_id)
            self._expire(conversation)
            if conversation.ended_at is not None:
                return conversation.public()
            self._finish(conversation, self._clock(), SHUTDOWN_BY_END_ENDPOINT)
            return None

    def find_conversation_by_name(
        self, conversation_name: str, *, status: str | None = None
    ) -> dict[str, Any] | None:
        """The newest conversation with this name (names are unique per session anyway)."""
        listing = self.list_conversations(status=status, limit=len(self._conversations) + 1)
        for conversation in listing["data"]:
            if conversation["conversation_name"] == conversation_name:
                return conversation
        return None

    def _forgotten(self, conversation_id: str) -> dict[str, Any]:
        """What a conversation from before a restart looks like: ended, details unknown."""
        return {
            "conversation_id": conversation_id,
            "conversation_name": None,
            "conversation_url": f"{self._room_path}/{conversation_id}",
            "status": CONVERSATION_ENDED,
            "callback_url": None,
            "persona_id": None,
            "replica_id": None,
            "created_at": None,
            "updated_at": None,
        }

    def _expire(self, conversation: _Conversation) -> None:
        """End a conversation that ran past ``max_call_duration``, at the moment Tavus would."""
        if conversation.ended_at is not None or conversation.max_call_duration is None:
            return
        deadline = conversation.created_at + timedelta(seconds=conversation.max_call_duration)
        if self._clock() >= deadline:
            self._finish(conversation, deadline, SHUTDOWN_BY_MAX_DURATION)

    def _finish(self, conversation: _Conversation, when: datetime, reason: str) -> None:
        """Record the end and the events Tavus sends after it (no recording in mock mode)."""
        conversation.ended_at = when
        conversation.events.append(
            _event(conversation, SHUTDOWN, when, {"shutdown_reason": reason})
        )
        conversation.events.append(
            _event(
                conversation,
                TRANSCRIPTION_READY,
                when,
                {"transcript": _transcript(conversation.created_at, when)},
            )
        )


def _event(
    conversation: _Conversation,
    event_type: str,
    when: datetime,
    properties: dict[str, Any],
) -> dict[str, Any]:
    """An event in the callback envelope's shape, so one parser reads both modes."""
    return {
        "conversation_id": conversation.conversation_id,
        "event_type": event_type,
        "message_type": message_type_of(event_type),
        "timestamp": format_tavus_time(when),
        "properties": {"replica_id": conversation.replica_id, **properties},
    }


def _transcript(started: datetime, ended: datetime) -> list[dict[str, Any]]:
    """A fixed conversation spread evenly over the call, so timings stay inside it."""
    span = max((ended - started).total_seconds(), 0.0)
    entries: list[dict[str, Any]] = [{"role": "system", "content": MOCK_SYSTEM_PROMPT}]
    for index, (role, content) in enumerate(_MOCK_TURNS, start=1):
        offset = round(span * index / (len(_MOCK_TURNS) + 1), 3)
        entries.append(
            {
                "role": role,
                "content": content,
                "timestamp": (started + timedelta(seconds=offset)).timestamp(),
                "seconds_from_start": offset,
            }
        )
    return entries
