"""Callback ingest off the request path: group commits, answer, process in the background.

A callback is answered only after its raw row is committed (accepted means durable), but the
request pays for nothing else: one writer thread groups the events that arrive within a few
milliseconds into one transaction (one commit for many requests), and one worker thread applies
the stored events afterwards through ``process_event``, which marks each processed exactly
once. If the process dies between the two, the rows stay unprocessed (``processed_at IS NULL``)
and ``start`` queues every such row again, so processing resumes where it stopped. An event
whose processing fails or waits for its session is left to the poller, as before.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

from awaknow.events.processing import IngestResult, process_event, store_event
from awaknow.logs import get_logger
from awaknow.store import Store, retry_on_conflict, utcnow

log = get_logger("events")

BATCH_WINDOW_SECONDS = 0.002  # how long the writer waits for more events to share a commit
MAX_BATCH = 256


@dataclass
class _Delivery:
    payload: dict[str, Any]
    received_at: datetime
    answer: Future[IngestResult] = field(default_factory=Future)


class EventIngest:
    """One store's batching writer and processing worker (threads started by ``start``)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._incoming: queue.SimpleQueue[_Delivery | None] = queue.SimpleQueue()
        self._to_process: deque[str] = deque()
        self._changed = threading.Condition()
        self._outstanding = 0  # accepted (or queued at start) and not yet through the worker
        self._stopping = False
        self._threads: list[threading.Thread] = []

    def start(self) -> int:
        """Queue every stored-but-unprocessed event, start the threads; returns how many."""
        with self._changed:
            if self._threads:
                return 0
            rows = (
                self._store.cursor()
                .execute(
                    "SELECT event_key FROM conversation_events WHERE processed_at IS NULL "
                    "ORDER BY received_at"
                )
                .fetchall()
            )
            self._to_process.extend(row[0] for row in rows)
            self._outstanding += len(rows)
            self._threads = [
                threading.Thread(target=self._write_forever, name="event-writer", daemon=True),
                threading.Thread(target=self._process_forever, name="event-worker", daemon=True),
            ]
        for thread in self._threads:
            thread.start()
        if rows:
            log.info("resuming %d stored but unprocessed event(s)", len(rows))
        return len(rows)

    def submit(self, payload: dict[str, Any]) -> Future[IngestResult]:
        """Queue one validated callback; the future resolves once its row is committed."""
        if not self._threads:
            self.start()  # normally done by the app's lifespan; this covers a bare route
        delivery = _Delivery(payload, utcnow())
        with self._changed:
            if self._stopping:
                raise RuntimeError("the event writer is stopping")
            self._outstanding += 1
        self._incoming.put(delivery)
        return delivery.answer

    def wait_until_processed(self, timeout: float = 30.0) -> bool:
        """Block until everything accepted so far went through the worker (tests, CLI)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._outstanding:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the queued commits and processing, then end both threads."""
        with self._changed:
            if not self._threads or self._stopping:
                return
            self._stopping = True
            self._changed.notify_all()
        self._incoming.put(None)
        for thread in self._threads:
            thread.join(timeout)

    def _done(self, count: int) -> None:
        with self._changed:
            self._outstanding -= count
            self._changed.notify_all()

    def _next_batch(self) -> list[_Delivery] | None:
        first = self._incoming.get()
        if first is None:
            return None
        batch = [first]
        deadline = time.monotonic() + BATCH_WINDOW_SECONDS
        while len(batch) < MAX_BATCH:
            remaining = deadline - time.monotonic()
            try:
                if remaining > 0:
                    item = self._incoming.get(timeout=remaining)
                else:
                    item = self._incoming.get_nowait()
            except queue.Empty:
                break
            if item is None:  # a stop: commit this batch first, then end
                self._incoming.put(None)
                break
            batch.append(item)
        return batch

    def _write_forever(self) -> None:
        while (batch := self._next_batch()) is not None:
            results = self._commit(batch)
            stored = [r.event_key for r in results if isinstance(r, IngestResult) and r.stored]
            with self._changed:
                self._to_process.extend(stored)
                self._changed.notify_all()
            for delivery, result in zip(batch, results, strict=True):
                if isinstance(result, IngestResult):
                    delivery.answer.set_result(result)
                else:
                    delivery.answer.set_exception(result)
            self._done(len(batch) - len(stored))

    def _commit(self, batch: list[_Delivery]) -> list[IngestResult | Exception]:
        """All of ``batch`` in one transaction; one by one if that fails, so that one bad
        event (or a race with the poller storing the same event) fails only itself."""

        def together() -> list[IngestResult | Exception]:
            with self._store.transaction() as cur:
                return [store_event(cur, d.payload, "callback", d.received_at) for d in batch]

        try:
            return retry_on_conflict(together)
        except Exception:
            log.info("a batch of %d callback event(s) failed; storing them one by one", len(batch))
        results: list[IngestResult | Exception] = []
        for delivery in batch:
            try:
                results.append(self._commit_one(delivery))
            except Exception as exc:
                log.exception("a callback event could not be stored")
                results.append(exc)
        return results

    def _commit_one(self, delivery: _Delivery) -> IngestResult:
        def alone() -> IngestResult:
            with self._store.transaction() as cur:
                return store_event(cur, delivery.payload, "callback", delivery.received_at)

        try:
            return retry_on_conflict(alone)
        except duckdb.ConstraintException:  # stored by the poller at the same moment
            return alone()

    def _process_forever(self) -> None:
        while True:
            with self._changed:
                while not self._to_process and not self._stopping:
                    self._changed.wait()
                if not self._to_process:
                    return  # stopping, and nothing left
                key = self._to_process.popleft()
            try:
                process_event(self._store, key)  # failures are recorded on the event
            except Exception:
                log.exception("processing event %s failed", key[:12])
            finally:
                self._done(1)


_ingests: dict[int, EventIngest] = {}
_ingests_lock = threading.Lock()


def ingest_for(store: Store) -> EventIngest:
    """The store's one ingest (one writer per database file, like its one connection)."""
    with _ingests_lock:
        ingest = _ingests.get(id(store))
        if ingest is None or ingest._store is not store:
            ingest = _ingests[id(store)] = EventIngest(store)
        return ingest


def start_ingest(store: Store) -> int:
    """Start the store's ingest (idempotent); returns how many unprocessed events it resumed."""
    return ingest_for(store).start()


def stop_ingest(store: Store) -> None:
    """Drain and stop the store's ingest, before the store is closed."""
    with _ingests_lock:
        ingest = _ingests.pop(id(store), None)
    if ingest is not None and ingest._store is store:
        ingest.stop()


def wait_for_event_processing(store: Store, timeout: float = 30.0) -> bool:
    """Block until every callback accepted so far is processed (or given up to the poller)."""
    with _ingests_lock:
        ingest = _ingests.get(id(store))
    return ingest is None or ingest._store is not store or ingest.wait_until_processed(timeout)
