"""A call Tavus stopped on its own (timeout, participant left, status ``error``): when, by
which clock, and closing its session to that moment.

Billing to when Tavus stopped the call, rather than to when someone noticed, keeps minutes
honest. The ``system.shutdown`` event's time is Tavus's own end time; ``updated_at`` moves
with later events, so it is only an estimate, shown as such until the shutdown event arrives
and corrects the bill (``sessions.close_and_bill``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from awaknow import sessions
from awaknow.errors import TavusError
from awaknow.sessions import SessionRecord
from awaknow.store import Store, utcnow
from awaknow.tavus import TavusBackend
from awaknow.tavus_names import CONVERSATION_ERROR, ENDED_STATUSES, SHUTDOWN, parse_tavus_time


@dataclass(frozen=True)
class RemoteEnd:
    """A conversation Tavus already stopped: when, by which clock, and whether it failed."""

    ended_at: datetime
    by_shutdown: bool  # True: the system.shutdown time; False: updated_at, an estimate
    failed: bool  # Tavus reported status ``error``
    shutdown_reason: str | None


def remote_end(backend: TavusBackend, conversation_id: str) -> RemoteEnd | None:
    """How Tavus already ended the call, or None while it runs. A lookup that fails, or an
    end time Tavus does not give, is None too: the caller then ends the call itself."""
    try:
        conversation = backend.get_conversation(conversation_id, verbose=True)
    except TavusError:
        return None
    status = conversation.get("status")
    if status not in ENDED_STATUSES:
        return None
    shutdown_at, reason = shutdown_of(conversation)
    if shutdown_at is not None:
        return RemoteEnd(shutdown_at, True, status == CONVERSATION_ERROR, reason)
    updated_at = parse_tavus_time(conversation.get("updated_at"))
    if updated_at is None:
        return None
    return RemoteEnd(updated_at, False, status == CONVERSATION_ERROR, None)


def close_remotely_ended(
    store: Store, row: SessionRecord, remote: RemoteEnd, end_source: str
) -> sessions.Bill:
    """Bill a call Tavus already stopped to Tavus's time, never later than now; a call in
    status ``error`` is billed all the same and marked as a failure."""
    bill = sessions.close_and_bill(
        store,
        row.session_id,
        ended_at=min(utcnow(), max(remote.ended_at, row.billing_started_at)),
        end_source=end_source,
        shutdown_reason=remote.shutdown_reason,
        tavus_clock=remote.by_shutdown,
        estimated=not remote.by_shutdown,
    )
    if remote.failed:
        sessions.mark_tavus_status_error(store, row.session_id)
    return bill


def close_already_ended(
    store: Store, backend: TavusBackend, row: SessionRecord, conversation: dict, end_source: str
) -> sessions.Bill:
    """End found the call already stopped by Tavus (``conversation`` is its confirming read):
    bill to the shutdown time when Tavus lists it, else to ``updated_at`` as an estimate."""
    remote = remote_end(backend, row.conversation_id or conversation.get("conversation_id", ""))
    if remote is None:
        updated_at = parse_tavus_time(conversation.get("updated_at"))
        if updated_at is None:  # gone at Tavus with no time: bill to the click
            return sessions.close_and_bill(
                store, row.session_id, ended_at=utcnow(), end_source=end_source
            )
        failed = conversation.get("status") == CONVERSATION_ERROR
        remote = RemoteEnd(updated_at, False, failed, None)
    return close_remotely_ended(store, row, remote, end_source)


def close_stopped(
    store: Store, backend_for: Callable[[str], TavusBackend], *, skip: Collection[str]
) -> list[sessions.Bill]:
    """Close the running sessions whose call Tavus already stopped (ended, or status
    ``error``), except ``skip`` (the reaper ends those itself), each billed to Tavus's time."""
    bills: list[sessions.Bill] = []
    for session_id, conversation_id, mode in sessions.active_conversations(store):
        if session_id in skip:
            continue
        remote = remote_end(backend_for(mode), conversation_id)
        if remote is not None:
            row = sessions.read_session(store.cursor(), session_id)
            if row is not None:
                bills.append(close_remotely_ended(store, row, remote, "reaper"))
    return bills


def shutdown_of(conversation: dict) -> tuple[datetime | None, str | None]:
    """Time and reason of the ``system.shutdown`` in a ``?verbose=true`` conversation, or
    (None, None) while Tavus has not listed it."""
    found = conversation.get("events")
    for event in found if isinstance(found, list) else []:
        if not isinstance(event, dict) or event.get("event_type") != SHUTDOWN:
            continue
        when = parse_tavus_time(event.get("timestamp"))
        if when is None:
            continue
        properties = event.get("properties")
        reason = properties.get("shutdown_reason") if isinstance(properties, dict) else None
        return when, reason if isinstance(reason, str) and reason.strip() else None
    return None, None
