"""Every Tavus event type AwakNow understands, once: its name, how it is applied, how it reads.

Adding an event type is one ``EventType`` in ``EVENT_TYPES`` plus its apply function (and a
name in ``awaknow.tavus_names``). Processing, the webhook route's ``known_type`` flag and the
session timeline all read this registry; a type that is not in it is stored and flagged,
never rejected.

Every apply function must be idempotent: an event can arrive twice (callback and poll), and a
failed one is retried.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from awaknow import sessions
from awaknow.events.envelope import MAX_ID_CHARS, finite_number, optional_text
from awaknow.logs import get_logger
from awaknow.store import Store
from awaknow.tavus_names import (
    PERCEPTION_ANALYSIS,
    RECORDING_COPY_FAILED,
    RECORDING_READY,
    REPLICA_JOINED,
    SHUTDOWN,
    TRANSCRIPTION_READY,
    parse_tavus_time,
)

log = get_logger("events")

# A Tavus shutdown time is trusted for billing only inside this window: from shortly before the
# conversation was created to shortly after the event was received. Anything else is garbage.
CLOCK_SKEW_BEFORE_START = timedelta(seconds=60)
CLOCK_SKEW_AFTER_RECEIPT = timedelta(seconds=300)


@dataclass(frozen=True)
class EventContext:
    """One stored event of a known session, as an apply function needs it."""

    store: Store
    session_id: str
    conversation_id: str
    properties: dict[str, Any]
    event_time: datetime | None  # Tavus's timestamp, None when missing or unreadable
    received_at: datetime

    @property
    def happened_at(self) -> datetime:
        """Tavus's time when it sent a readable one, else when the event reached us."""
        return self.event_time or self.received_at


@dataclass(frozen=True)
class EventType:
    """A Tavus event type: ``apply`` changes the session (None: stored for reading only);
    ``summarise`` turns its properties into one line of the session timeline."""

    name: str
    apply: Callable[[EventContext], None] | None
    summarise: Callable[[dict[str, Any]], str]


# --- system.replica_joined --------------------------------------------------------------------


def _apply_replica_joined(event: EventContext) -> None:
    joined = event.happened_at
    with event.store.transaction() as cur:
        # Read, then update by the key alone: DuckDB answers ``session_id = ?`` from the index,
        # but an UPDATE with any further condition scans every session (155 ms at 1M).
        row = cur.execute(
            "SELECT replica_joined_at FROM sessions WHERE session_id = ?", [event.session_id]
        ).fetchone()
        if row is not None and (row[0] is None or row[0] > joined):
            cur.execute(
                "UPDATE sessions SET replica_joined_at = ? WHERE session_id = ?",
                [joined, event.session_id],
            )


def _summarise_replica_joined(properties: dict[str, Any]) -> str:
    return f"replica {properties.get('replica_id') or '?'} joined"


# --- system.shutdown --------------------------------------------------------------------------


def _plausible_end(
    event_time: datetime | None, started_at: datetime | None, received_at: datetime
) -> bool:
    """Whether a shutdown time may be billed: after the start and not after its receipt."""
    if event_time is None or started_at is None:
        return False
    return (
        started_at - CLOCK_SKEW_BEFORE_START <= event_time <= received_at + CLOCK_SKEW_AFTER_RECEIPT
    )


def _apply_shutdown(event: EventContext) -> None:
    """Bill to Tavus's clock once; without a usable time only close a still-active session.

    Billing only ever goes through ``sessions.close_and_bill``, which corrects an app-clock
    bill to Tavus's clock at most once and never bills twice.
    """
    reason = optional_text(event.properties.get("shutdown_reason"), 500)
    row = (
        event.store.cursor()
        .execute(
            "SELECT status, coalesce(started_at, created_at) FROM sessions WHERE session_id = ?",
            [event.session_id],
        )
        .fetchone()
    )
    if row is None:
        return
    status, started_at = row
    if event.event_time is not None and _plausible_end(
        event.event_time, started_at, event.received_at
    ):
        bill = sessions.close_and_bill(
            event.store,
            event.session_id,
            ended_at=event.event_time,
            end_source="tavus",
            shutdown_reason=reason,
            tavus_clock=True,
        )
    elif status in ("active", "starting"):
        log.warning(
            "shutdown of %s has no usable timestamp (%r): closing at its receipt time",
            event.conversation_id,
            event.event_time,
        )
        bill = sessions.close_and_bill(
            event.store,
            event.session_id,
            ended_at=event.received_at,
            end_source="tavus",
            shutdown_reason=reason,
        )
    else:
        # Already closed and billed: keep the bill, record only the reason if none is known.
        if reason:
            with event.store.transaction() as cur:
                cur.execute(
                    "UPDATE sessions SET shutdown_reason = coalesce(shutdown_reason, ?) "
                    "WHERE session_id = ?",
                    [reason, event.session_id],
                )
        return
    log.info(
        "shutdown of %s (%s): session %s billed %s s by the %s clock",
        event.conversation_id,
        reason,
        event.session_id,
        bill.seconds_used,
        bill.clock,
    )


def _summarise_shutdown(properties: dict[str, Any]) -> str:
    reason = properties.get("shutdown_reason")
    return f"shutdown: {reason}" if reason else "shutdown (no reason given)"


# --- application.transcription_ready ----------------------------------------------------------


def transcript_rows(
    transcript: object,
) -> list[tuple[str, str, float | None, float | None, float | None]]:
    """(role, content, spoken_at, seconds_from_start, duration) per entry, whatever the shape."""
    if transcript is None:
        return []
    entries = transcript if isinstance(transcript, list) else [transcript]
    rows = []
    for entry in entries:
        if isinstance(entry, dict):
            role = optional_text(entry.get("role"), MAX_ID_CHARS) or "unknown"
            content = optional_text(entry.get("content")) or ""
            stamp = entry.get("timestamp")
            spoken_at = finite_number(stamp)
            if spoken_at is None and isinstance(stamp, str):
                parsed = parse_tavus_time(stamp)
                spoken_at = parsed.replace(tzinfo=UTC).timestamp() if parsed else None
            rows.append(
                (
                    role,
                    content,
                    spoken_at,
                    finite_number(entry.get("seconds_from_start")),
                    finite_number(entry.get("duration")),
                )
            )
        else:
            rows.append(("unknown", optional_text(entry) or "", None, None, None))
    return rows


def _apply_transcript(event: EventContext) -> None:
    rows = transcript_rows(event.properties.get("transcript"))
    with event.store.transaction() as cur:
        if rows:
            cur.executemany(
                "INSERT INTO transcripts (conversation_id, seq, session_id, role, content, "
                "spoken_at, seconds_from_start, duration) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (conversation_id, seq) DO UPDATE SET "
                "session_id = excluded.session_id, role = excluded.role, "
                "content = excluded.content, "
                "spoken_at = excluded.spoken_at, seconds_from_start = excluded.seconds_from_start, "
                "duration = excluded.duration",
                [
                    [event.conversation_id, seq, event.session_id, *row]
                    for seq, row in enumerate(rows)
                ],
            )
        # A later, shorter transcript replaces a longer one completely.
        cur.execute(
            "DELETE FROM transcripts WHERE conversation_id = ? AND seq >= ?",
            [event.conversation_id, len(rows)],
        )
    log.info("transcript of %s: %d entries", event.conversation_id, len(rows))


def _summarise_transcript(properties: dict[str, Any]) -> str:
    entries = properties.get("transcript")
    count = len(entries) if isinstance(entries, list) else 0
    return f"transcript ready: {count} entries"


# --- application.recording_ready / recording_copy_failed --------------------------------------


def _apply_recording(event: EventContext) -> None:
    properties = event.properties
    with event.store.transaction() as cur:
        cur.execute(
            "INSERT INTO recordings (conversation_id, session_id, bucket_name, s3_key, duration, "
            "storage_provider, storage_uri, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (conversation_id) DO UPDATE SET session_id = excluded.session_id, "
            "bucket_name = excluded.bucket_name, s3_key = excluded.s3_key, "
            "duration = excluded.duration, storage_provider = excluded.storage_provider, "
            "storage_uri = excluded.storage_uri, received_at = excluded.received_at",
            [
                event.conversation_id,
                event.session_id,
                optional_text(properties.get("bucket_name"), 1024),
                optional_text(properties.get("s3_key"), 2048),
                finite_number(properties.get("duration")),
                optional_text(properties.get("storage_provider"), MAX_ID_CHARS),
                optional_text(properties.get("storage_uri"), 4096),
                event.happened_at,
            ],
        )


def _summarise_recording(properties: dict[str, Any]) -> str:
    where = properties.get("storage_uri") or properties.get("s3_key") or "?"
    return f"recording ready: {where}"


def _summarise_recording_copy_failed(properties: dict[str, Any]) -> str:
    failure = properties.get("error_message") or properties.get("error_code")
    return f"recording copy failed: {failure}"


# --- application.perception_analysis ----------------------------------------------------------


def _apply_perception(event: EventContext) -> None:
    analysis = optional_text(event.properties.get("analysis"))
    if analysis is None:
        return
    with event.store.transaction() as cur:
        cur.execute(
            "UPDATE sessions SET perception_analysis = ? WHERE session_id = ?",
            [analysis, event.session_id],
        )


def _summarise_perception(properties: dict[str, Any]) -> str:
    analysis = properties.get("analysis")
    return f"perception analysis: {len(analysis) if isinstance(analysis, str) else 0} chars"


EVENT_TYPES: dict[str, EventType] = {
    entry.name: entry
    for entry in (
        EventType(REPLICA_JOINED, _apply_replica_joined, _summarise_replica_joined),
        EventType(SHUTDOWN, _apply_shutdown, _summarise_shutdown),
        EventType(TRANSCRIPTION_READY, _apply_transcript, _summarise_transcript),
        EventType(RECORDING_READY, _apply_recording, _summarise_recording),
        # The recording page reads the failure from the stored event; nothing to apply.
        EventType(RECORDING_COPY_FAILED, None, _summarise_recording_copy_failed),
        EventType(PERCEPTION_ANALYSIS, _apply_perception, _summarise_perception),
    )
}


def summarise(
    event_type: str, known_type: bool, properties: dict[str, Any], error: str | None
) -> str:
    """One timeline line for a stored event, with its processing failure if it has one.

    ``known_type`` is the flag stored with the event: a type added to the registry later was
    not applied to the events stored before it, and the line says so.
    """
    entry = EVENT_TYPES.get(event_type)
    if entry is None or not known_type:
        text = "unknown event type (stored, not processed)"
    else:
        text = entry.summarise(properties)
    if error:
        text += f" [processing failed: {error}]"
    return text
