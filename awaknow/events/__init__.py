"""Tavus conversation events: store raw, deduplicate by identity, then apply idempotently.

Events reach AwakNow two ways: Tavus POSTs them to the webhook route (``awaknow.webhooks``),
or, when Tavus cannot reach the app (no public URL, or a mock session), the app reads them from
``GET /v2/conversations/{id}?verbose=true`` (``polling``). Both end in ``ingest_event``.

- ``envelope``: what a valid event is, its identity key, its fields made storable;
- ``registry``: every known event type once (name, how it is applied, how it reads);
- ``processing``: store once, apply through the registry; takes only the store;
- ``ingest``: the callback route's batched commits and background processing (resumed at start);
- ``polling``: fetch events no callback delivered, retry failed processing;
- ``reads``: the session detail page's timeline, transcript and recording.

Billing only ever goes through ``sessions.close_and_bill``: a shutdown with a plausible Tavus
timestamp bills (or corrects an app-clock bill) to Tavus's clock exactly once; a shutdown
without one only closes a still-active session at the time it was received and never rebills.
"""

from awaknow.events.envelope import EventRejected, event_key, validate_envelope
from awaknow.events.ingest import (
    EventIngest,
    ingest_for,
    start_ingest,
    stop_ingest,
    wait_for_event_processing,
)
from awaknow.events.polling import (
    CALLBACK_GRACE_SECONDS,
    poll_due,
    poll_pending,
    start_background_sync,
    sync_conversation,
    sync_in_background,
    wait_for_background_syncs,
)
from awaknow.events.processing import IngestResult, ingest_event, process_event
from awaknow.events.reads import (
    TIMELINE_COLUMNS,
    TRANSCRIPT_COLUMNS,
    recording,
    session_timeline,
    transcript,
)
from awaknow.events.registry import EVENT_TYPES, EventContext, EventType

__all__ = [
    "CALLBACK_GRACE_SECONDS",
    "EVENT_TYPES",
    "TIMELINE_COLUMNS",
    "TRANSCRIPT_COLUMNS",
    "EventContext",
    "EventIngest",
    "EventRejected",
    "EventType",
    "IngestResult",
    "event_key",
    "ingest_event",
    "ingest_for",
    "poll_due",
    "poll_pending",
    "process_event",
    "recording",
    "session_timeline",
    "start_background_sync",
    "start_ingest",
    "stop_ingest",
    "sync_conversation",
    "sync_in_background",
    "transcript",
    "validate_envelope",
    "wait_for_background_syncs",
    "wait_for_event_processing",
]
