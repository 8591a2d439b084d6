"""Reading events from Tavus when no callback brings them: no public URL, mock sessions, lost
callbacks, and events whose processing failed.

``GET /v2/conversations/{id}?verbose=true`` returns a conversation's events in the callback
envelope, so they go through the same ``ingest_event`` and deduplicate against callbacks.
Polling needs the Tavus (or mock) backend that owns a session's conversation; the caller passes
``backend_for`` (session mode to backend), so this module never imports the service.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import duckdb

from awaknow import sessions
from awaknow.errors import NotFoundError, TavusError
from awaknow.events.envelope import EventRejected, optional_text
from awaknow.events.processing import ingest_event, process_event
from awaknow.logs import get_logger
from awaknow.store import Store, utcnow
from awaknow.tavus import TavusBackend
from awaknow.tavus_names import SHUTDOWN

log = get_logger("events")

BackendFor = Callable[[str], TavusBackend]  # a session's mode -> the backend that owns it

MAX_PROCESS_ATTEMPTS = 20  # past this a failing event stays visible, unprocessed, for a person
# Polling for events Tavus has not sent yet: when callbacks are expected, give them time first;
# then back off (1, 2, 4 ... minutes, at most hourly) for a day.
CALLBACK_GRACE_SECONDS = 120
POLL_BACKOFF_BASE_SECONDS = 60
POLL_BACKOFF_MAX_SECONDS = 3600
MAX_SYNCS_PER_PASS = 20


def sync_conversation(store: Store, backend_for: BackendFor, session_id: str) -> int:
    """Read a session's events through ``?verbose=true`` and ingest each; return how many were
    new. Works in mock mode too. ``TavusError`` propagates after the attempt is recorded."""
    session = sessions.read_session(store.cursor(), session_id)
    if session is None:
        raise NotFoundError(
            f"Unknown session {session_id!r}: list them with `python -m awaknow sessions`"
        )
    conversation_id = session.conversation_id
    if not conversation_id:
        return 0
    backend = backend_for(session.mode)
    try:
        conversation = backend.get_conversation(conversation_id, verbose=True)
    except TavusError as exc:
        _record_poll(store, conversation_id, session_id, 0, str(exc))
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
            result = ingest_event(store, payload, "poll")
        except EventRejected as exc:
            log.info("skipped an event of %s from the poll: %s", conversation_id, exc)
            continue
        new += result.stored
    _record_poll(store, conversation_id, session_id, new, None)
    if new:
        log.info("poll of %s stored %d new event(s)", conversation_id, new)
    return new


def sync_in_background(store: Store, backend_for: BackendFor, session_id: str) -> None:
    """``sync_conversation`` for the sync worker: failures are logged, the poller retries."""
    try:
        sync_conversation(store, backend_for, session_id)
    except Exception as exc:
        log.warning("could not fetch the events of session %s: %s", session_id, exc)


# Ended sessions whose events are still to fetch, and the one worker that fetches them in turn,
# each SYNC_DELAY_SECONDS after its End. Deferred because Tavus rarely has the transcript and
# recording at the moment of the End, and so that the Starts and Ends that follow go first; one
# worker rather than a thread per End, so back-to-back sessions never run several fetches (each
# a handful of transactions) at once. What the worker misses, the poller catches.
SYNC_DELAY_SECONDS = 3.0
_pending_syncs: queue.Queue[tuple[float, Store, BackendFor, str]] = queue.Queue()
_worker: threading.Thread | None = None
_worker_lock = threading.Lock()
_flush = threading.Event()  # set while someone waits for the queue: no more delays


def _sync_worker() -> None:
    while True:
        due, store, backend_for, session_id = _pending_syncs.get()
        try:
            _flush.wait(max(0.0, due - time.monotonic()))
            sync_in_background(store, backend_for, session_id)
        finally:
            _pending_syncs.task_done()


def start_background_sync(store: Store, backend_for: BackendFor, session_id: str) -> None:
    """Queue a just-ended session's event fetch for the sync worker, so the page does not wait.

    Whoever closes the database (the CLI after ``end``, tests) should first call
    ``wait_for_background_syncs``: DuckDB refuses to close a connection that is mid-query.
    """
    global _worker
    _pending_syncs.put((time.monotonic() + SYNC_DELAY_SECONDS, store, backend_for, session_id))
    with _worker_lock:
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(target=_sync_worker, name="awaknow-sync", daemon=True)
            _worker.start()


def wait_for_background_syncs(timeout: float = 10.0) -> bool:
    """Run every queued fetch now, without its delay; True when none is left."""
    deadline = time.monotonic() + timeout
    _flush.set()
    try:
        while _pending_syncs.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not _pending_syncs.unfinished_tasks
    finally:
        _flush.clear()


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
                [conversation_id, session_id, utcnow(), optional_text(error, 500), new],
            )
    except duckdb.Error as exc:  # bookkeeping only: a concurrent poll already counted
        log.debug("poll bookkeeping for %s skipped: %s", conversation_id, exc)


def poll_due(
    now: datetime,
    ended_at: datetime,
    polls: int | None,
    last_polled_at: datetime | None,
    expects_callbacks: bool,
) -> bool:
    """Whether a session's events should be fetched now (grace first, then backoff)."""
    if not polls or last_polled_at is None:
        grace = CALLBACK_GRACE_SECONDS if expects_callbacks else 0
        return now >= ended_at + timedelta(seconds=grace)
    wait = min(POLL_BACKOFF_BASE_SECONDS * 2 ** min(polls - 1, 12), POLL_BACKOFF_MAX_SECONDS)
    return now >= last_polled_at + timedelta(seconds=wait)


def poll_pending(
    store: Store,
    backend_for: BackendFor,
    *,
    callbacks_configured: bool,
    max_age_hours: float = 24,
    now: datetime | None = None,
) -> int:
    """One poller pass; returns the events stored or (re)processed.

    Retries events whose processing failed or whose conversation was unknown when they came,
    then fetches the events of sessions ended in the last ``max_age_hours`` that still lack a
    transcript or a shutdown event (with backoff, and, for live sessions when
    ``callbacks_configured``, after a grace period for the callbacks).
    """
    now = now or utcnow()
    cutoff = now - timedelta(hours=max_age_hours)
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
    synced = 0
    for session_id, mode, ended_at, polls, last_polled_at in pending:
        if synced >= MAX_SYNCS_PER_PASS:
            break
        expects_callbacks = callbacks_configured and mode == "live"
        if not poll_due(now, ended_at, polls, last_polled_at, expects_callbacks):
            continue
        synced += 1
        try:
            done += sync_conversation(store, backend_for, session_id)
        except Exception as exc:  # one conversation must not stop the pass
            log.warning("poll of session %s failed: %s", session_id, exc)
    return done
