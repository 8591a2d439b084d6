"""Tavus conversation events: store raw, deduplicate by identity, then process idempotently.

Events reach AwakNow two ways: Tavus POSTs them to the callback route (``awaknow.callbacks``),
or, when Tavus cannot reach the app (no public URL, or a mock session), the app reads them from
``GET /v2/conversations/{id}?verbose=true`` (``sync_conversation``, ``poll_pending``). Both paths
end in ``ingest_event``:

1. The raw event is stored first, in its own transaction, keyed by the sha256 of its identity
   (conversation, type, timestamp, properties), so a repeated delivery (the same callback
   twice, or a callback and a poll of the same event) is a duplicate and changes nothing.
   Unknown event types and unknown conversations are stored and flagged, never rejected.
2. Then it is processed (replica joined, shutdown and billing, transcript, recording,
   perception analysis). Every step is idempotent. A failure is recorded on the event
   (``process_error``, ``attempts``) and retried by ``poll_pending``; nothing accepted is lost.

Billing only ever goes through ``sessions.close_and_bill``: a shutdown with a plausible Tavus
timestamp bills (or corrects an app-clock bill) to Tavus's clock exactly once; a shutdown
without one only closes a still-active session at the time it was received and never rebills.

The read helpers at the bottom feed the session detail page with small frames.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd

from awaknow import sessions
from awaknow.errors import AwakNowError, TavusError
from awaknow.logs import get_logger, redact
from awaknow.store import Store, retry_on_conflict, utcnow
from awaknow.tavus import parse_tavus_time

if TYPE_CHECKING:
    from awaknow.service import AwakNowService

log = get_logger("events")

REPLICA_JOINED = "system.replica_joined"
SHUTDOWN = "system.shutdown"
TRANSCRIPTION_READY = "application.transcription_ready"
RECORDING_READY = "application.recording_ready"
RECORDING_COPY_FAILED = "application.recording_copy_failed"
PERCEPTION_ANALYSIS = "application.perception_analysis"
KNOWN_EVENT_TYPES = frozenset(
    {
        REPLICA_JOINED,
        SHUTDOWN,
        TRANSCRIPTION_READY,
        RECORDING_READY,
        RECORDING_COPY_FAILED,
        PERCEPTION_ANALYSIS,
    }
)
SOURCES = ("callback", "poll")

MAX_ID_CHARS = 256  # conversation_id and event_type; Tavus's are far shorter
MAX_PROCESS_ATTEMPTS = 20  # past this a failing event stays visible, unprocessed, for a person
# A Tavus shutdown time is trusted for billing only inside this window: from shortly before the
# conversation was created to shortly after the event was received. Anything else is garbage.
CLOCK_SKEW_BEFORE_START = timedelta(seconds=60)
CLOCK_SKEW_AFTER_RECEIPT = timedelta(seconds=300)
# Polling for events Tavus has not sent yet: when callbacks are expected, give them time first;
# then back off (1, 2, 4 ... minutes, at most hourly) for a day.
CALLBACK_GRACE_SECONDS = 120
POLL_BACKOFF_BASE_SECONDS = 60
POLL_BACKOFF_MAX_SECONDS = 3600
MAX_SYNCS_PER_PASS = 20

TIMELINE_COLUMNS = ["time", "source", "event_type", "summary"]
TRANSCRIPT_COLUMNS = [
    "seq",
    "role",
    "content",
    "seconds_from_start",
    "duration",
    "is_system_prompt",
]
EVENT_COLUMNS = [
    "received_at",
    "event_timestamp",
    "event_type",
    "message_type",
    "source",
    "known_type",
    "session_id",
    "processed_at",
    "process_error",
    "attempts",
    "event_key",
    "payload",
]

# One event is processed at a time in this process: the callback route, the poller and the
# post-end sync can then never process the same event twice concurrently.
_process_lock = threading.Lock()


class EventRejected(ValueError):
    """The payload is not a Tavus event envelope (answered 400 by the callback route)."""


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
        """The callback route's answer: no session ids or payload echoed back."""
        return {
            "status": self.status,
            "event_key": self.event_key,
            "known_type": self.known_type,
            "known_conversation": self.session_id is not None,
            "processed": self.processed,
        }


# --- envelope, identity, sanitising ---------------------------------------------------------


def validate_envelope(payload: object) -> tuple[str, str]:
    """Return ``(conversation_id, event_type)`` or raise ``EventRejected`` with a short reason."""
    if not isinstance(payload, dict):
        raise EventRejected("the body must be a JSON object")
    found: list[str] = []
    for name in ("conversation_id", "event_type"):
        value = payload.get(name)
        if not isinstance(value, str) or not value.strip():
            raise EventRejected(f"{name} must be a non-empty string")
        if len(value) > MAX_ID_CHARS:
            raise EventRejected(f"{name} is longer than {MAX_ID_CHARS} characters")
        found.append(value)
    return found[0], found[1]


def _identity_time(value: object) -> object:
    """The timestamp as it enters the identity: normalised when readable, else as sent."""
    parsed = parse_tavus_time(value) if isinstance(value, str) else None
    return parsed.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if parsed is not None else value


def event_key(payload: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the event's identity.

    ``webhook_url`` and ``message_type`` are not part of it, so a callback and the same event
    read back through ``?verbose=true`` share one key.
    """
    identity = {
        "conversation_id": payload.get("conversation_id"),
        "event_type": payload.get("event_type"),
        "timestamp": _identity_time(payload.get("timestamp")),
        "properties": payload.get("properties"),
    }
    canonical = json.dumps(
        identity, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _text(value: str) -> str:
    """A string DuckDB accepts: lone surrogates (legal in JSON escapes) become '?'."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


def _opt_text(value: object, limit: int | None = None) -> str | None:
    """A string field as text; numbers and structures as JSON; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except ValueError:
            text = str(value)
    text = _text(text)
    return text[:limit] if limit is not None else text


def _number(value: object) -> float | None:
    """A finite float from a number or numeric string, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            return None
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _stored_payload(payload: dict[str, Any]) -> str:
    """The raw event as JSON text, with the callback secret masked in ``webhook_url``."""
    clean = dict(payload)
    if isinstance(clean.get("webhook_url"), str):
        clean["webhook_url"] = redact(clean["webhook_url"])
    text = json.dumps(clean, ensure_ascii=False, default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: the escaped form is lossless and valid JSON
        text = json.dumps(clean, ensure_ascii=True, default=str)
    return text


def normalize_shutdown_reason(reason: object) -> str | None:
    """Group Tavus's shutdown reasons for analytics; the SQL macro ``shutdown_reason_group``
    (migration 4) applies the same rule inside DuckDB.

    ``participant_left_timeout reached`` and the bare ``participant_left_timeout`` are one
    group; every ``internal error occurred at step x`` is ``internal_error``.
    """
    if not isinstance(reason, str) or not reason.strip():
        return None
    text = reason.strip().lower()
    if text.startswith("internal error"):
        return "internal_error"
    text = re.sub(r"\s+reached$", "", text)
    return re.sub(r"\s+", "_", text)


# --- storing and processing -----------------------------------------------------------------


def _session_for(cur: duckdb.DuckDBPyConnection, conversation_id: str) -> str | None:
    row = cur.execute(
        "SELECT session_id FROM sessions WHERE conversation_id = ? "
        "ORDER BY created_at DESC LIMIT 1",
        [conversation_id],
    ).fetchone()
    return row[0] if row else None


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


def ingest_event(
    service: AwakNowService,
    payload: dict[str, Any],
    source: str,
    *,
    received_at: datetime | None = None,
) -> IngestResult:
    """Store one event (once, by identity), then process it; see the module notes.

    Raises ``EventRejected`` for a payload without a usable ``conversation_id``/``event_type``.
    Storage errors propagate (the caller must not report the event as accepted); processing
    errors do not: they are recorded on the event and retried later.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
    conversation_id, event_type = validate_envelope(payload)
    key = event_key(payload)
    store = service.store
    received_at = received_at or utcnow()
    known_type = event_type in KNOWN_EVENT_TYPES
    message_type = payload.get("message_type")
    values: list[Any] = [
        key,
        _text(conversation_id),
        None,  # session_id, filled in the transaction
        _text(event_type),
        _text(message_type)[:MAX_ID_CHARS] if isinstance(message_type, str) else None,
        parse_tavus_time(payload.get("timestamp")),
        received_at,
        source,
        known_type,
        _stored_payload(payload),
    ]
    inserted: list[tuple[Any, ...]] = []
    try:
        with store.transaction() as cur:
            values[2] = _session_for(cur, values[1])
            inserted = cur.execute(
                "INSERT INTO conversation_events (event_key, conversation_id, session_id, "
                "event_type, message_type, event_timestamp, received_at, source, known_type, "
                "payload, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0) "
                "ON CONFLICT DO NOTHING RETURNING event_key",
                values,
            ).fetchall()
    except (duckdb.ConstraintException, duckdb.TransactionException):
        # The same event stored by another thread at the same moment: a duplicate.
        if _existing(store, key) is None:
            raise
    status = "stored" if inserted else "duplicate"
    if inserted:
        log.info(
            "%s %s for conversation %s stored (%s%s)",
            source,
            event_type,
            conversation_id,
            "known type" if known_type else "UNKNOWN type",
            "" if values[2] else ", UNKNOWN conversation",
        )
    existing = _existing(store, key)
    session_id, processed = existing if existing else (values[2], False)
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
    """Apply one stored event to the session; idempotent. Returns (processed, error)."""
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
            if event_type in KNOWN_EVENT_TYPES and event_type != RECORDING_COPY_FAILED:
                if session_id is None:
                    session_id = _link(store, key, conversation_id)
                    if session_id is None:
                        return False, None  # an unknown conversation: relinked by the poller
                payload = json.loads(raw)
                properties = payload.get("properties") if isinstance(payload, dict) else None
                if not isinstance(properties, dict):
                    properties = {}
                handler = _HANDLERS[event_type]
                retry_on_conflict(
                    lambda: handler(
                        store, session_id, conversation_id, properties, event_time, received_at
                    )
                )
            with store.transaction() as cur:
                cur.execute(
                    "UPDATE conversation_events SET processed_at = ?, process_error = NULL "
                    "WHERE event_key = ?",
                    [utcnow(), key],
                )
        except Exception as exc:  # recorded on the event and retried, never lost
            message = _text(f"{type(exc).__name__}: {exc}")[:500]
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


def _on_replica_joined(
    store: Store,
    session_id: str,
    conversation_id: str,
    properties: dict[str, Any],
    event_time: datetime | None,
    received_at: datetime,
) -> None:
    joined = event_time or received_at
    with store.transaction() as cur:
        cur.execute(
            "UPDATE sessions SET replica_joined_at = ? WHERE session_id = ? "
            "AND (replica_joined_at IS NULL OR replica_joined_at > ?)",
            [joined, session_id, joined],
        )


def _plausible_end(
    event_time: datetime | None, started_at: datetime | None, received_at: datetime
) -> bool:
    """Whether a shutdown time may be billed: after the start and not after its receipt."""
    if event_time is None or started_at is None:
        return False
    return (
        started_at - CLOCK_SKEW_BEFORE_START <= event_time <= received_at + CLOCK_SKEW_AFTER_RECEIPT
    )


def _on_shutdown(
    store: Store,
    session_id: str,
    conversation_id: str,
    properties: dict[str, Any],
    event_time: datetime | None,
    received_at: datetime,
) -> None:
    reason = _opt_text(properties.get("shutdown_reason"), 500)
    row = (
        store.cursor()
        .execute(
            "SELECT status, coalesce(started_at, created_at) FROM sessions WHERE session_id = ?",
            [session_id],
        )
        .fetchone()
    )
    if row is None:
        return
    status, started_at = row
    if _plausible_end(event_time, started_at, received_at):
        assert event_time is not None
        bill = sessions.close_and_bill(
            store,
            session_id,
            ended_at=event_time,
            end_source="tavus",
            shutdown_reason=reason,
            tavus_clock=True,
        )
    elif status in ("active", "starting"):
        log.warning(
            "shutdown of %s has no usable timestamp (%r): closing at its receipt time",
            conversation_id,
            event_time,
        )
        bill = sessions.close_and_bill(
            store, session_id, ended_at=received_at, end_source="tavus", shutdown_reason=reason
        )
    else:
        # Already closed and billed: keep the bill, record only the reason if none is known.
        if reason:
            with store.transaction() as cur:
                cur.execute(
                    "UPDATE sessions SET shutdown_reason = coalesce(shutdown_reason, ?) "
                    "WHERE session_id = ?",
                    [reason, session_id],
                )
        return
    log.info(
        "shutdown of %s (%s): session %s billed %s s by the %s clock",
        conversation_id,
        reason,
        session_id,
        bill.seconds_used,
        bill.clock,
    )


def _transcript_rows(
    transcript: object,
) -> list[tuple[str, str, float | None, float | None, float | None]]:
    """(role, content, spoken_at, seconds_from_start, duration) per entry, whatever the shape."""
    if transcript is None:
        return []
    entries = transcript if isinstance(transcript, list) else [transcript]
    rows = []
    for entry in entries:
        if isinstance(entry, dict):
            role = _opt_text(entry.get("role"), MAX_ID_CHARS) or "unknown"
            content = _opt_text(entry.get("content")) or ""
            stamp = entry.get("timestamp")
            spoken_at = _number(stamp)
            if spoken_at is None and isinstance(stamp, str):
                parsed = parse_tavus_time(stamp)
                spoken_at = parsed.replace(tzinfo=UTC).timestamp() if parsed else None
            rows.append(
                (
                    role,
                    content,
                    spoken_at,
                    _number(entry.get("seconds_from_start")),
                    _number(entry.get("duration")),
                )
            )
        else:
            rows.append(("unknown", _opt_text(entry) or "", None, None, None))
    return rows


def _on_transcript(
    store: Store,
    session_id: str,
    conversation_id: str,
    properties: dict[str, Any],
    event_time: datetime | None,
    received_at: datetime,
) -> None:
    rows = _transcript_rows(properties.get("transcript"))
    with store.transaction() as cur:
        if rows:
            cur.executemany(
                "INSERT INTO transcripts (conversation_id, seq, session_id, role, content, "
                "spoken_at, seconds_from_start, duration) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (conversation_id, seq) DO UPDATE SET "
                "session_id = excluded.session_id, role = excluded.role, "
                "content = excluded.content, "
                "spoken_at = excluded.spoken_at, seconds_from_start = excluded.seconds_from_start, "
                "duration = excluded.duration",
                [[conversation_id, seq, session_id, *row] for seq, row in enumerate(rows)],
            )
        # A later, shorter transcript replaces a longer one completely.
        cur.execute(
            "DELETE FROM transcripts WHERE conversation_id = ? AND seq >= ?",
            [conversation_id, len(rows)],
        )
    log.info("transcript of %s: %d entries", conversation_id, len(rows))


def _on_recording(
    store: Store,
    session_id: str,
    conversation_id: str,
    properties: dict[str, Any],
    event_time: datetime | None,
    received_at: datetime,
) -> None:
    with store.transaction() as cur:
        cur.execute(
            "INSERT INTO recordings (conversation_id, session_id, bucket_name, s3_key, duration, "
            "storage_provider, storage_uri, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (conversation_id) DO UPDATE SET session_id = excluded.session_id, "
            "bucket_name = excluded.bucket_name, s3_key = excluded.s3_key, "
            "duration = excluded.duration, storage_provider = excluded.storage_provider, "
            "storage_uri = excluded.storage_uri, received_at = excluded.received_at",
            [
                conversation_id,
                session_id,
                _opt_text(properties.get("bucket_name"), 1024),
                _opt_text(properties.get("s3_key"), 2048),
                _number(properties.get("duration")),
                _opt_text(properties.get("storage_provider"), MAX_ID_CHARS),
                _opt_text(properties.get("storage_uri"), 4096),
                event_time or received_at,
            ],
        )


def _on_perception(
    store: Store,
    session_id: str,
    conversation_id: str,
    properties: dict[str, Any],
    event_time: datetime | None,
    received_at: datetime,
) -> None:
    analysis = _opt_text(properties.get("analysis"))
    if analysis is None:
        return
    with store.transaction() as cur:
        cur.execute(
            "UPDATE sessions SET perception_analysis = ? WHERE session_id = ?",
            [analysis, session_id],
        )


_HANDLERS: dict[str, Callable[..., None]] = {
    REPLICA_JOINED: _on_replica_joined,
    SHUTDOWN: _on_shutdown,
    TRANSCRIPTION_READY: _on_transcript,
    RECORDING_READY: _on_recording,
    PERCEPTION_ANALYSIS: _on_perception,
}


# --- polling (no public URL, mock sessions, lost callbacks) ---------------------------------


def sync_conversation(service: AwakNowService, session_id: str) -> int:
    """Read a session's events through ``?verbose=true`` and ingest each; return how many were
    new. Works in mock mode too. ``TavusError`` propagates after the attempt is recorded."""
    row = service.get_session(session_id)
    conversation_id = row.conversation_id
    if not conversation_id:
        return 0
    backend = service.backend_for(row.mode)
    try:
        conversation = backend.get_conversation(conversation_id, verbose=True)
    except TavusError as exc:
        _record_poll(service.store, conversation_id, session_id, 0, str(exc))
        raise
    found = conversation.get("events") if isinstance(conversation, dict) else None
    new = 0
    for event in found if isinstance(found, list) else []:
        if not isinstance(event, dict):
            continue
        payload = dict(event)
        if not payload.get("conversation_id"):  # verbose events may omit it
            payload["conversation_id"] = conversation_id
        try:
            result = ingest_event(service, payload, "poll")
        except EventRejected as exc:
            log.info("skipped an event of %s from the poll: %s", conversation_id, exc)
            continue
        new += result.stored
    _record_poll(service.store, conversation_id, session_id, new, None)
    if new:
        log.info("poll of %s stored %d new event(s)", conversation_id, new)
    return new


def sync_in_background(service: AwakNowService, session_id: str) -> None:
    """``sync_conversation`` for a daemon thread: failures are logged, the poller retries."""
    try:
        sync_conversation(service, session_id)
    except Exception as exc:
        log.warning("could not fetch the events of session %s: %s", session_id, exc)
    finally:
        with _syncs_lock:
            _syncs.discard(threading.current_thread())


_syncs: set[threading.Thread] = set()
_syncs_lock = threading.Lock()


def start_background_sync(service: AwakNowService, session_id: str) -> threading.Thread:
    """Fetch a just-ended session's events in a daemon thread, so the page does not wait.

    Whoever closes the database (the CLI after ``end``, tests) should first call
    ``wait_for_background_syncs``: DuckDB refuses to close a connection that is mid-query.
    """
    thread = threading.Thread(
        target=sync_in_background,
        args=(service, session_id),
        name=f"awaknow-sync-{session_id[:8]}",
        daemon=True,
    )
    with _syncs_lock:
        _syncs.add(thread)
    thread.start()
    return thread


def wait_for_background_syncs(timeout: float = 10.0) -> bool:
    """Join the running background syncs; True when none is left running."""
    deadline = time.monotonic() + timeout
    with _syncs_lock:
        running = list(_syncs)
    for thread in running:
        thread.join(max(0.0, deadline - time.monotonic()))
    return not any(thread.is_alive() for thread in running)


def _record_poll(
    store: Store, conversation_id: str, session_id: str, new: int, error: str | None
) -> None:
    try:
        with store.transaction() as cur:
            cur.execute(
                "INSERT INTO conversation_polls (conversation_id, session_id, polls, "
                "last_polled_at, last_error, events_stored) VALUES (?, ?, 1, ?, ?, ?) "
                "ON CONFLICT (conversation_id) DO UPDATE SET polls = conversation_polls.polls + 1, "
                "last_polled_at = excluded.last_polled_at, last_error = excluded.last_error, "
                "events_stored = conversation_polls.events_stored + excluded.events_stored",
                [conversation_id, session_id, utcnow(), _opt_text(error, 500), new],
            )
    except duckdb.Error as exc:  # bookkeeping only: a concurrent poll already counted
        log.debug("poll bookkeeping for %s skipped: %s", conversation_id, exc)


def _poll_due(
    now: datetime,
    ended_at: datetime,
    polls: int | None,
    last_polled_at: datetime | None,
    expects_callbacks: bool,
) -> bool:
    if not polls or last_polled_at is None:
        grace = CALLBACK_GRACE_SECONDS if expects_callbacks else 0
        return now >= ended_at + timedelta(seconds=grace)
    wait = min(POLL_BACKOFF_BASE_SECONDS * 2 ** min(polls - 1, 12), POLL_BACKOFF_MAX_SECONDS)
    return now >= last_polled_at + timedelta(seconds=wait)


def poll_pending(
    service: AwakNowService, *, max_age_hours: float = 24, now: datetime | None = None
) -> int:
    """One poller pass; returns the events stored or (re)processed.

    Retries events whose processing failed or whose conversation was unknown when they came,
    then fetches the events of sessions ended in the last ``max_age_hours`` that still lack a
    transcript or a shutdown event (with backoff, and after a grace period when callbacks are
    expected).
    """
    now = now or utcnow()
    cutoff = now - timedelta(hours=max_age_hours)
    store = service.store
    cur = store.cursor()
    done = 0
    retry = cur.execute(
        "SELECT event_key FROM conversation_events e WHERE processed_at IS NULL "
        "AND received_at >= ? AND coalesce(attempts, 0) < ? "
        "AND (session_id IS NOT NULL OR EXISTS (SELECT 1 FROM sessions s "
        "WHERE s.conversation_id = e.conversation_id)) ORDER BY received_at",
        [cutoff, MAX_PROCESS_ATTEMPTS],
    ).fetchall()
    for (key,) in retry:
        processed, _ = process_event(store, key)
        done += processed
    pending = cur.execute(
        "SELECT s.session_id, s.mode, s.ended_at, p.polls, p.last_polled_at "
        "FROM sessions s LEFT JOIN conversation_polls p ON p.conversation_id = s.conversation_id "
        "WHERE s.status = 'completed' AND s.conversation_id IS NOT NULL AND s.ended_at >= ? "
        "AND (NOT EXISTS (SELECT 1 FROM transcripts t WHERE t.conversation_id = s.conversation_id) "
        "OR NOT EXISTS (SELECT 1 FROM conversation_events e "
        "WHERE e.conversation_id = s.conversation_id AND e.event_type = ?)) "
        "ORDER BY s.ended_at",
        [cutoff, SHUTDOWN],
    ).fetchall()
    callbacks = service.settings.callback_url is not None
    synced = 0
    for session_id, mode, ended_at, polls, last_polled_at in pending:
        if synced >= MAX_SYNCS_PER_PASS:
            break
        if not _poll_due(now, ended_at, polls, last_polled_at, callbacks and mode == "live"):
            continue
        synced += 1
        try:
            done += sync_conversation(service, session_id)
        except Exception as exc:  # one conversation must not stop the pass
            log.warning("poll of session %s failed: %s", session_id, exc)
    return done


# --- reads for the session detail page -------------------------------------------------------


def _stored_properties(raw: str) -> dict[str, Any]:
    """The ``properties`` object of a stored payload; {} when it has none or is unreadable."""
    try:
        payload = json.loads(raw)
    except ValueError:
        return {}
    props = payload.get("properties") if isinstance(payload, dict) else None
    return props if isinstance(props, dict) else {}


def _summary(event_type: str, known: bool, raw: str, error: str | None) -> str:
    props = _stored_properties(raw)
    if not known:
        text = "unknown event type (stored, not processed)"
    elif event_type == SHUTDOWN:
        reason = props.get("shutdown_reason")
        text = f"shutdown: {reason}" if reason else "shutdown (no reason given)"
    elif event_type == REPLICA_JOINED:
        text = f"replica {props.get('replica_id') or '?'} joined"
    elif event_type == TRANSCRIPTION_READY:
        entries = props.get("transcript")
        count = len(entries) if isinstance(entries, list) else 0
        text = f"transcript ready: {count} entries"
    elif event_type == RECORDING_READY:
        where = props.get("storage_uri") or props.get("s3_key") or "?"
        text = f"recording ready: {where}"
    elif event_type == RECORDING_COPY_FAILED:
        text = f"recording copy failed: {props.get('error_message') or props.get('error_code')}"
    else:
        analysis = props.get("analysis")
        text = f"perception analysis: {len(analysis) if isinstance(analysis, str) else 0} chars"
    if error:
        text += f" [processing failed: {error}]"
    return text


def session_timeline(store: Store, session_id: str) -> pd.DataFrame:
    """The session's own milestones and its Tavus events, oldest first."""
    cur = store.cursor()
    session = cur.execute(
        "SELECT created_at, started_at, replica_joined_at, ended_at, end_source, "
        "shutdown_reason, status, conversation_id, mode, error_message "
        "FROM sessions WHERE session_id = ?",
        [session_id],
    ).fetchone()
    if session is None:
        return pd.DataFrame(columns=TIMELINE_COLUMNS)
    (
        created,
        started,
        joined,
        ended,
        end_source,
        reason,
        status,
        conversation_id,
        mode,
        error,
    ) = session
    rows: list[tuple[Any, str, str, str]] = [
        (created, "app", "app.created", f"session created ({mode}); plan limits checked")
    ]
    if started is not None:
        rows.append((started, "app", "app.started", f"conversation {conversation_id} created"))
    if joined is not None:
        rows.append((joined, "app", "app.replica_joined", "replica joined the call"))
    if ended is not None:
        if status == "failed":
            rows.append((ended, "app", "app.failed", f"start failed: {error}"))
        else:
            rows.append(
                (
                    ended,
                    "app",
                    "app.ended",
                    f"ended by {end_source}" + (f" ({reason})" if reason else ""),
                )
            )
    bill = cur.execute(
        "SELECT billed_at, seconds_used, clock FROM tavus_usage WHERE session_id = ?",
        [session_id],
    ).fetchone()
    if bill is not None:
        rows.append(
            (
                bill[0],
                "app",
                "app.billed",
                f"billed {bill[1]} s ({bill[1] / 60:.2f} min) by the {bill[2]} clock",
            )
        )
    if conversation_id:
        for when, source, event_type, known, raw, err in cur.execute(
            "SELECT coalesce(event_timestamp, received_at), source, event_type, known_type, "
            "payload, process_error FROM conversation_events WHERE conversation_id = ?",
            [conversation_id],
        ).fetchall():
            rows.append((when, source, event_type, _summary(event_type, known, raw, err)))
    frame = pd.DataFrame(rows, columns=TIMELINE_COLUMNS)
    frame["time"] = pd.to_datetime(frame["time"])
    return frame.sort_values("time", kind="stable", na_position="last").reset_index(drop=True)


def transcript(
    store: Store, session_id: str, *, include_system_prompt: bool = False
) -> pd.DataFrame:
    """The session's transcript in order; the persona's system prompt (role ``system``) is
    left out unless asked for, and always flagged in ``is_system_prompt``."""
    frame = (
        store.cursor()
        .execute(
            "SELECT t.seq, t.role, t.content, t.seconds_from_start, t.duration, "
            "t.role = 'system' AS is_system_prompt FROM transcripts t "
            "JOIN sessions s ON s.conversation_id = t.conversation_id "
            "WHERE s.session_id = ? AND (? OR t.role <> 'system') ORDER BY t.seq",
            [session_id, include_system_prompt],
        )
        .df()
    )
    return frame[TRANSCRIPT_COLUMNS]


def recording(store: Store, session_id: str) -> dict[str, Any] | None:
    """The session's recording (``status`` ready), a failed copy (``status`` copy_failed), or
    None when Tavus has reported neither."""
    cur = store.cursor()
    found = cur.execute(
        "SELECT r.conversation_id, r.bucket_name, r.s3_key, r.duration, r.storage_provider, "
        "r.storage_uri, r.received_at FROM recordings r "
        "JOIN sessions s ON s.conversation_id = r.conversation_id WHERE s.session_id = ?",
        [session_id],
    ).fetchone()
    if found is not None:
        names = (
            "conversation_id",
            "bucket_name",
            "s3_key",
            "duration",
            "storage_provider",
            "storage_uri",
            "received_at",
        )
        result: dict[str, Any] = dict(zip(names, found, strict=True))
        uri = result["storage_uri"]
        if not uri and result["bucket_name"] and result["s3_key"]:
            uri = f"s3://{result['bucket_name']}/{result['s3_key']}"
        result["uri"] = uri
        result["status"] = "ready"
        return result
    failed = cur.execute(
        "SELECT e.conversation_id, e.payload, coalesce(e.event_timestamp, e.received_at) "
        "FROM conversation_events e JOIN sessions s ON s.conversation_id = e.conversation_id "
        "WHERE s.session_id = ? AND e.event_type = ? ORDER BY 3 DESC LIMIT 1",
        [session_id, RECORDING_COPY_FAILED],
    ).fetchone()
    if failed is None:
        return None
    props = _stored_properties(failed[1])
    return {
        "conversation_id": failed[0],
        "status": "copy_failed",
        "s3_key": props.get("s3_key"),
        "duration": _number(props.get("duration")),
        "error_code": props.get("error_code"),
        "error_message": props.get("error_message"),
        "received_at": failed[2],
    }


def events_for(store: Store, conversation_id: str) -> pd.DataFrame:
    """Every stored event of a conversation (raw payload included, secret masked)."""
    frame = (
        store.cursor()
        .execute(
            "SELECT received_at, event_timestamp, event_type, message_type, source, known_type, "
            "session_id, processed_at, process_error, coalesce(attempts, 0) AS attempts, "
            "event_key, payload FROM conversation_events WHERE conversation_id = ? "
            "ORDER BY coalesce(event_timestamp, received_at), received_at",
            [conversation_id],
        )
        .df()
    )
    return frame[EVENT_COLUMNS]
