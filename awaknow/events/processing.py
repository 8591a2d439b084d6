"""Storing an event once, by identity, and applying it to its session through the registry.

1. The raw event is stored first, in its own transaction, keyed by the sha256 of its identity
   (``envelope.event_key``), so a repeated delivery (the same callback twice, or a callback and
   a poll of the same event) is a duplicate and changes nothing. Unknown event types and
   unknown conversations are stored and flagged, never rejected.
2. Then it is processed by its ``EventType.apply``. A failure is recorded on the event
   (``process_error``, ``attempts``) and retried by the poller; nothing accepted is lost.

Everything here needs only the store, so the service, the webhook route and the poller can all
call it without importing each other.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from awaknow.errors import AwakNowError
from awaknow.events.envelope import (
    MAX_ID_CHARS,
    event_key,
    storable_text,
    stored_payload,
    stored_properties,
    validate_envelope,
)
from awaknow.events.registry import EVENT_TYPES, EventContext
from awaknow.logs import get_logger
from awaknow.store import Store, retry_on_conflict, utcnow
from awaknow.tavus_names import parse_tavus_time

log = get_logger("events")

SOURCES = ("callback", "poll")

# One event is processed at a time in this process: the webhook route, the poller and the
# post-end sync can then never process the same event twice concurrently.
_process_lock = threading.Lock()


@dataclass(frozen=True)
class IngestResult:
    """What happened to one delivered event."""

    event_key: str
    status: str  # "stored" (first delivery) | "duplicate" (already stored: nothing changed)
    conversation_id: str
    event_type: str
    session_id: str | None  # None: a conversation this database does not know (flagged)
    known_type: bool
    processed: bool  # False: processing failed or waits for its session; retried by the poller
    error: str | None = None

    @property
    def stored(self) -> bool:
        return self.status == "stored"

    def as_json(self) -> dict[str, Any]:
        """The webhook route's answer: no session ids or payload echoed back."""
        return {
            "status": self.status,
            "event_key": self.event_key,
            "known_type": self.known_type,
            "known_conversation": self.session_id is not None,
            "processed": self.processed,
        }


def _session_for(cur: duckdb.DuckDBPyConnection, conversation_id: str) -> str | None:
    """The session of a conversation, by an equality lookup that the index answers.

    Sorting the matches in SQL (``ORDER BY created_at DESC LIMIT 1``) made DuckDB scan every
    session; a conversation id belongs to one session, so the newest is picked in Python.
    """
    rows = cur.execute(
        "SELECT created_at, session_id FROM sessions WHERE conversation_id = ?",
        [conversation_id],
    ).fetchall()
    return max(rows)[1] if rows else None


def _existing(store: Store, key: str) -> tuple[str | None, bool] | None:
    """(session_id, processed) of a stored event, or None."""
    row = (
        store.cursor()
        .execute(
            "SELECT session_id, processed_at IS NOT NULL FROM conversation_events "
            "WHERE event_key = ?",
            [key],
        )
        .fetchone()
    )
    return (row[0], bool(row[1])) if row else None


def store_event(
    cur: duckdb.DuckDBPyConnection,
    payload: dict[str, Any],
    source: str,
    received_at: datetime,
) -> IngestResult:
    """Insert one raw event in the caller's transaction (nothing if its key is already stored).

    The result says "stored" or "duplicate"; ``processed`` is whether it already was.
    Raises ``duckdb.ConstraintException`` if another transaction stored the same key first.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
    conversation_id, event_type = validate_envelope(payload)
    key = event_key(payload)
    known_type = event_type in EVENT_TYPES
    message_type = payload.get("message_type")
    stored_conversation_id = storable_text(conversation_id)
    # Look first, then a plain INSERT: ``ON CONFLICT DO NOTHING RETURNING`` cost several
    # times more per row. A concurrent insert of the same key (the poller) fails this
    # transaction instead, and the callers treat it as the duplicate it is.
    existing = cur.execute(
        "SELECT session_id, processed_at IS NOT NULL FROM conversation_events WHERE event_key = ?",
        [key],
    ).fetchone()
    if existing is not None:
        return IngestResult(
            key, "duplicate", conversation_id, event_type, existing[0], known_type, existing[1]
        )
    session_id = _session_for(cur, stored_conversation_id)
    cur.execute(
        "INSERT INTO conversation_events (event_key, conversation_id, session_id, "
        "event_type, message_type, event_timestamp, received_at, source, known_type, "
        "payload, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
        [
            key,
            stored_conversation_id,
            session_id,
            storable_text(event_type),
            storable_text(message_type)[:MAX_ID_CHARS] if isinstance(message_type, str) else None,
            parse_tavus_time(payload.get("timestamp")),
            received_at,
            source,
            known_type,
            stored_payload(payload),
        ],
    )
    log.info(
        "%s %s for conversation %s stored (%s%s)",
        source,
        event_type,
        conversation_id,
        "known type" if known_type else "UNKNOWN type",
        "" if session_id else ", UNKNOWN conversation",
    )
    return IngestResult(key, "stored", conversation_id, event_type, session_id, known_type, False)


def ingest_event(
    store: Store,
    payload: dict[str, Any],
    source: str,
    *,
    received_at: datetime | None = None,
) -> IngestResult:
    """Store one event (once, by identity), then process it; see the module notes.

    Raises ``EventRejected`` for a payload without a usable ``conversation_id``/``event_type``.
    Storage errors propagate (the caller must not report the event as accepted); processing
    errors do not: they are recorded on the event and retried later. The callback route
    stores through ``awaknow.events.ingest`` instead, which processes off the request path.
    """
    conversation_id, event_type = validate_envelope(payload)
    key = event_key(payload)
    stored: IngestResult | None = None
    try:
        with store.transaction() as cur:
            stored = store_event(cur, payload, source, received_at or utcnow())
    except (duckdb.ConstraintException, duckdb.TransactionException):
        # The same event stored by another thread at the same moment: a duplicate.
        if _existing(store, key) is None:
            raise
    status = "stored" if stored is not None and stored.stored else "duplicate"
    known_type = event_type in EVENT_TYPES
    session_id = stored.session_id if stored is not None else None
    existing = _existing(store, key)
    session_id, processed = existing if existing else (session_id, False)
    error = None
    if not processed:
        # A first delivery is processed now; a duplicate of an event whose processing failed
        # (or waited for its session) gets another try. Processed events are never redone.
        processed, error = process_event(store, key)
        existing = _existing(store, key)
        session_id = existing[0] if existing else session_id
    return IngestResult(
        key, status, conversation_id, event_type, session_id, known_type, processed, error
    )


def process_event(store: Store, key: str) -> tuple[bool, str | None]:
    """Apply one stored event to its session; idempotent. Returns (processed, error)."""
    with _process_lock:
        row = (
            store.cursor()
            .execute(
                "SELECT conversation_id, session_id, event_type, event_timestamp, received_at, "
                "payload, processed_at FROM conversation_events WHERE event_key = ?",
                [key],
            )
            .fetchone()
        )
        if row is None:
            return False, "event not stored"
        conversation_id, session_id, event_type, event_time, received_at, raw, done = row
        if done is not None:
            return True, None
        try:
            entry = EVENT_TYPES.get(event_type)
            if entry is not None and entry.apply is not None:
                if session_id is None:
                    session_id = _link(store, key, conversation_id)
                    if session_id is None:
                        return False, None  # an unknown conversation: relinked by the poller
                event = EventContext(
                    store,
                    session_id,
                    conversation_id,
                    stored_properties(raw),
                    event_time,
                    received_at,
                )
                apply = entry.apply
                retry_on_conflict(lambda: apply(event))
            with store.transaction() as cur:
                cur.execute(
                    "UPDATE conversation_events SET processed_at = ?, process_error = NULL "
                    "WHERE event_key = ?",
                    [utcnow(), key],
                )
        except Exception as exc:  # recorded on the event and retried, never lost
            message = storable_text(f"{type(exc).__name__}: {exc}")[:500]
            log.warning(
                "processing %s event %s failed: %s",
                event_type,
                key[:12],
                message,
                exc_info=not isinstance(exc, duckdb.TransactionException | AwakNowError),
            )
            try:
                with store.transaction() as cur:
                    cur.execute(
                        "UPDATE conversation_events SET process_error = ?, "
                        "attempts = coalesce(attempts, 0) + 1 WHERE event_key = ?",
                        [message, key],
                    )
            except duckdb.Error:
                log.exception("could not record the failure of event %s", key[:12])
            return False, message
        return True, None


def _link(store: Store, key: str, conversation_id: str) -> str | None:
    """Attach an event stored before its session knew its conversation id."""
    with store.transaction() as cur:
        session_id = _session_for(cur, conversation_id)
        if session_id is not None:
            cur.execute(
                "UPDATE conversation_events SET session_id = ? WHERE event_key = ?",
                [session_id, key],
            )
    return session_id
