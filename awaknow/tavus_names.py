"""Tavus's own names and formats, spelled once for the client, the mock backend and the events.

Event types, conversation statuses, the shutdown reasons AwakNow itself produces or mimics,
and Tavus's timestamp format. The local Tavus server in ``devtools/`` keeps its own literals on
purpose: it stands in for Tavus, so it must not change when these do.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

# Event types of the callback envelope (``event_type``); the part before the dot is its
# ``message_type``.
REPLICA_JOINED = "system.replica_joined"
SHUTDOWN = "system.shutdown"
TRANSCRIPTION_READY = "application.transcription_ready"
RECORDING_READY = "application.recording_ready"
RECORDING_COPY_FAILED = "application.recording_copy_failed"
PERCEPTION_ANALYSIS = "application.perception_analysis"

# A conversation's ``status``: ``active`` while the call can run, ``ended`` once Tavus ended it.
CONVERSATION_ACTIVE = "active"
CONVERSATION_ENDED = "ended"
# Tavus's example types also list ``error``: such a conversation has stopped (and stopped
# billing) just like an ended one; AwakNow bills it and counts it as a failure.
CONVERSATION_ERROR = "error"
ENDED_STATUSES = frozenset({CONVERSATION_ENDED, CONVERSATION_ERROR})

# ``properties.shutdown_reason`` when the end endpoint was called, and when the call reached its
# ``max_call_duration`` (which the reaper reports too when it ends a call for Tavus).
SHUTDOWN_BY_END_ENDPOINT = "end_conversation_endpoint_hit"
SHUTDOWN_BY_MAX_DURATION = "max_call_duration reached"

# ISO-8601 UTC with microseconds and ``Z``: ``2025-09-10T00:35:24.310570Z``.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_LATEST_EPOCH = 32503680000  # year 3000: anything later is not a Tavus time


def message_type_of(event_type: str) -> str:
    """The envelope's ``message_type`` for an event type (``system`` or ``application``)."""
    return event_type.split(".", 1)[0]


def format_tavus_time(moment: datetime) -> str:
    """A moment in Tavus's timestamp format; a naive moment is taken as UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime(TIME_FORMAT)


def parse_tavus_time(value: object) -> datetime | None:
    """A Tavus timestamp as naive UTC (every TIMESTAMP column's convention), or None.

    Conversation and envelope timestamps are ISO-8601 (``2025-09-10T00:35:24.310570Z``); a
    Unix epoch number is tolerated too. A time without zone is taken as UTC.
    """
    try:
        if isinstance(value, str) and value.strip():
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value) or not 0 < value < _LATEST_EPOCH:
                return None
            parsed = datetime.fromtimestamp(value, UTC)
        else:
            return None
    except (ValueError, TypeError, OverflowError, OSError):
        return None
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        except (ValueError, OverflowError):
            return None
    return parsed
