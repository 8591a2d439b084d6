"""The AwakNow service: the one object pages, the CLI, callbacks and the reaper talk to.

It decides live or mock (and says why), runs the session rules around the Tavus calls, and
makes sure that a conversation Tavus created is always ended or reconciled, so nothing keeps
billing unseen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from awaknow import access, accounts, events, reconcile, remote_end, sessions
from awaknow.config import Settings, load_settings
from awaknow.errors import (
    AwakNowError,
    NotFoundError,
    TavusEndNotConfirmedError,
    TavusError,
    TavusUnreachableError,
    shorten,
)
from awaknow.logs import configure_logging, get_logger
from awaknow.mock import MockTavus
from awaknow.mode import Check, ModeStatus, ServiceStatus, diagnose
from awaknow.sessions import SessionRecord
from awaknow.store import Store, utcnow
from awaknow.tavus import TavusBackend, TavusClient
from awaknow.tavus_names import (
    ENDED_STATUSES,
    SHUTDOWN_BY_MAX_DURATION,
    parse_tavus_time,
)

log = get_logger("service")

# Pages show a failed persona check from cache for this long...
FAILED_VERIFICATION_RETRY_SECONDS = 60.0
# ...but a start checks again once the failure is this old, so one blip does not send a
# minute of starts to the mock, while a broken Tavus is asked at most once per interval.
START_RECHECK_SECONDS = 2.0
NO_KEY_REASON = (
    "No Tavus API key configured (TAVUS_API_KEY or VITE_TAVUS_API_KEY): sessions use the mock"
)


@dataclass(frozen=True)
class StartedSession:
    session_id: str
    user_id: str
    session_type: str
    conversation_id: str
    conversation_name: str
    conversation_url: str
    mode: str
    mode_reason: str
    max_call_duration: int
    status: str = "active"


@dataclass(frozen=True)
class EndedSession:
    session_id: str
    status: str
    seconds_used: int
    minutes_used: float
    newly_billed: bool


RefreshOutcome = Literal["running", "ended_by_tavus", "ended_elsewhere"]


@dataclass(frozen=True)
class SessionRefresh:
    """A session looked at again while a page shows its call: still running, or how it ended.

    ``remote_status`` is Tavus's (or the mock's) word for the call, or the session's own status
    once it is over; ``ended`` is the bill when this look closed the session.
    """

    session: SessionRecord
    outcome: RefreshOutcome
    remote_status: str
    ended: EndedSession | None = None


class AwakNowService:
    """Owns the store and the Tavus backends; safe to share between threads."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        client_factory: Callable[[Settings], TavusBackend] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self._client_factory = client_factory or (
            lambda s: TavusClient(s.api_key.value or "", s.api_base_url.value or "")
        )
        self._client: TavusBackend | None = None
        self._mock = MockTavus(
            persona_id=settings.persona_id.value or "",
            replica_id=settings.replica_id.value or "",
            reason=NO_KEY_REASON,
        )
        self._lock = threading.Lock()
        self._failed_check: tuple[float, ModeStatus] | None = None

    # --- mode -------------------------------------------------------------------------------

    @property
    def client(self) -> TavusBackend | None:
        """The live Tavus client, or None without a key (created once, pooled)."""
        if not self.settings.api_key_configured:
            return None
        with self._lock:
            if self._client is None:
                self._client = self._client_factory(self.settings)
            return self._client

    def mode_status(
        self, *, force: bool = False, failure_max_age: float = FAILED_VERIFICATION_RETRY_SECONDS
    ) -> ModeStatus:
        """Verify the persona (cached by the client); a failure is reused for
        ``failure_max_age`` seconds, then checked again by the one caller that claims it."""
        persona_id = self.settings.persona_id.value or ""
        client = self.client
        if client is None:
            return ModeStatus("mock", NO_KEY_REASON, self._mock.get_persona(persona_id))
        if not force:
            with self._lock:
                failed = self._failed_check
                if failed is not None:
                    failed_at, status = failed
                    if time.monotonic() - failed_at < failure_max_age:
                        return status
                    # Claim the re-check: concurrent callers keep the cached failure meanwhile.
                    self._failed_check = (time.monotonic(), status)
        try:
            persona = client.get_persona(persona_id, force=force)
        except TavusError as exc:
            if self.settings.strict:
                reason = (
                    f"Persona verification failed: {exc} (AWAKNOW_FALLBACK=strict: "
                    "no session starts until this is fixed)"
                )
            else:
                reason = f"Persona verification failed, so sessions use the mock: {exc}"
            status = ModeStatus(
                "unavailable" if self.settings.strict else "mock", reason, None, exc, utcnow()
            )
            log.info("persona %s not verified: %s", persona_id, exc)
            self._failed_check = (time.monotonic(), status)
            return status
        self._failed_check = None
        return ModeStatus(
            "live",
            f"API key configured and persona {persona_id} verified with Tavus",
            persona,
            None,
            utcnow(),
        )

    def status(self, *, force: bool = False) -> ServiceStatus:
        """What the status command and the Persona page show; never the key."""
        mode = self.mode_status(force=force)
        s = self.settings
        return ServiceStatus(
            mode=mode.mode,
            reason=mode.reason,
            verified=mode.mode == "live",
            strict=s.strict,
            persona_id=s.persona_id.value,
            persona_source=s.persona_id.source,
            persona_variable=s.persona_id.name,
            replica_id=s.replica_id.value,
            replica_source=s.replica_id.source,
            replica_variable=s.replica_id.name,
            api_key_configured=s.api_key_configured,
            api_key_source=s.api_key.source,
            api_base_url=s.api_base_url.value,
            callback_url_configured=s.callback_url is not None,
            db_path=str(self.store.path),
        )

    def diagnose(self, mode: ModeStatus | None = None) -> list[Check]:
        """The troubleshooting checks for ``mode`` (by default the current one)."""
        return diagnose(self.settings, mode or self.mode_status())

    def _backend_for_start(self) -> tuple[TavusBackend, str, str]:
        """Pick live or mock; in strict fallback a failed verification is raised."""
        mode = self.mode_status(failure_max_age=START_RECHECK_SECONDS)
        if mode.mode == "live":
            assert self.client is not None
            return self.client, "live", mode.reason
        if mode.mode == "unavailable" and mode.error is not None:
            raise mode.error
        return self._mock, "mock", mode.reason

    def backend_for(self, mode: str) -> TavusBackend:
        """The backend that owns a session's conversation (a mock session stays mock)."""
        if mode == "live" and self.client is not None:
            return self.client
        return self._mock

    # --- sessions ---------------------------------------------------------------------------

    def start_session(
        self,
        user_id: str,
        session_type: str,
        context: str | None = None,
        *,
        started_by: str | None = None,
    ) -> StartedSession:
        """Reserve atomically, then create the conversation; fall back visibly or fail cleanly.

        ``started_by`` (the signed-in person, or ``local``) is kept on the session: staff see
        the sessions they started.

        A live create whose outcome is unknown (Tavus may have created it after the client gave
        up) is kept as an ``unknown`` session the reaper reconciles; in mock fallback the user
        then gets a new mock session, in strict fallback the error says the app keeps looking.
        """
        backend, mode, reason = self._backend_for_start()
        reservation = self._reserve(user_id, session_type, context, mode, reason, started_by)
        body = self._create_body(reservation, context, mode)
        try:
            try:
                conversation = reconcile.create_conversation(self.store, backend, body)
            except TavusError as exc:
                unknown = isinstance(exc, TavusUnreachableError) and exc.request_sent
                if unknown:
                    reconcile.mark_unknown(
                        self.store,
                        reservation.session_id,
                        error_kind=type(exc).__name__,
                        error_message=str(exc),
                    )
                if mode != "live" or self.settings.strict:
                    if unknown:
                        raise type(exc)(
                            f"{exc} Tavus may still have created the conversation: the app "
                            "keeps looking for it and ends it if it appears",
                            status=exc.status,
                            body=exc.body,
                        ) from exc
                    raise
                reason = f"Tavus could not create the conversation, so this is a mock: {exc}"
                log.info("falling back to mock for %s: %s", reservation.session_id, exc)
                backend, mode = self._mock, "mock"
                if unknown:  # that session stays on the books; this one is the mock
                    reservation = self._reserve(
                        user_id, session_type, context, mode, reason, started_by
                    )
                    body = self._create_body(reservation, context, mode)
                conversation = self._mock.create_conversation(body)
        except BaseException as exc:  # nothing was created: free the slot, bill nothing
            sessions.mark_failed(
                self.store,
                reservation.session_id,
                error_kind=type(exc).__name__,
                error_message=str(exc),
            )
            raise
        started_at = parse_tavus_time(conversation.get("created_at")) or utcnow()
        sessions.mark_active(
            self.store,
            reservation.session_id,
            conversation=conversation,
            mode=mode,
            mode_reason=reason,
            started_at=started_at,
        )
        log.info(
            "started session %s: conversation %s (%s)",
            reservation.session_id,
            conversation["conversation_id"],
            mode,
        )
        return StartedSession(
            session_id=reservation.session_id,
            user_id=reservation.user_id,
            session_type=session_type,
            conversation_id=conversation["conversation_id"],
            conversation_name=reservation.conversation_name,
            conversation_url=conversation.get("conversation_url") or "",
            mode=mode,
            mode_reason=reason,
            max_call_duration=reservation.max_call_duration,
        )

    def _reserve(
        self,
        user_id: str,
        session_type: str,
        context: str | None,
        mode: str,
        reason: str,
        started_by: str | None,
    ) -> sessions.Reservation:
        return sessions.reserve(
            self.store,
            user_id,
            session_type,
            mode=mode,
            mode_reason=reason,
            persona_id=self.settings.persona_id.value or "",
            replica_id=self.settings.replica_id.value or "",
            context=context,
            started_by=started_by,
            recording_requested=self.settings.recording_configured,
        )

    def _create_body(
        self, reservation: sessions.Reservation, context: str | None, mode: str
    ) -> dict:
        return sessions.create_body(
            reservation,
            persona_id=self.settings.persona_id.value or "",
            replica_id=self.settings.replica_id.value or "",
            callback_url=self.settings.callback_url if mode == "live" else None,
            context=context,
            recording=self.settings.recording_properties(),
        )

    def end_session(self, session_id: str, *, end_source: str = "user") -> EndedSession:
        """Ask Tavus to end the call, and close and bill once only when it confirms.

        The bill runs to the click, or to Tavus's own end time when the call had already
        ended; Tavus's shutdown event corrects it later. An End Tavus does not confirm leaves
        the session active with the error recorded, raises, and is retried by the reaper.
        """
        row = self.get_session(session_id)
        bill: sessions.Bill | None = None
        if row.running and row.conversation_id:
            backend = self.backend_for(row.mode)
            try:
                already = backend.end_conversation(row.conversation_id)
            except TavusEndNotConfirmedError as exc:
                reconcile.record_end_not_confirmed(self.store, session_id, str(exc))
                log.info("end of %s not confirmed: %s", row.conversation_id, exc)
                raise
            if already:
                bill = remote_end.close_already_ended(self.store, backend, row, already, end_source)
        if bill is None:
            bill = sessions.close_and_bill(
                self.store, session_id, ended_at=utcnow(), end_source=end_source
            )
        if row.conversation_id and (self.settings.callback_url is None or row.mode != "live"):
            # No callbacks will come (no public URL, or a mock call): fetch the events with
            # ?verbose=true in a daemon thread so the page does not wait.
            events.start_background_sync(self.store, self.backend_for, session_id)
        return self._ended(bill)

    def poll_events(self, *, max_age_hours: float = 24, now: datetime | None = None) -> int:
        """One pass of the event poller (see ``events.poll_pending``) with this app's backends;
        live sessions get a grace period for their callbacks when a public URL is set."""
        return events.poll_pending(
            self.store,
            self.backend_for,
            callbacks_configured=self.settings.callback_url is not None,
            max_age_hours=max_age_hours,
            now=now,
        )

    def refresh_session(
        self,
        session_id: str,
        *,
        remote_status: Callable[[SessionRecord], str] | None = None,
    ) -> SessionRefresh:
        """Look at a session again; when Tavus says its call ended, close and bill it now.

        Tavus ends calls on its own (participant left, maximum duration, its dashboard), and
        the page showing the call asks this every few seconds, so the bill follows at once
        instead of at the reaper's next pass. ``remote_status`` lets every tab share one answer
        (the pages cache it briefly); by default Tavus is asked.
        """
        session = self.get_session(session_id)
        if not session.running:
            return SessionRefresh(session, "ended_elsewhere", session.status)
        remote = (remote_status or self.conversation_status)(session)
        if remote not in ENDED_STATUSES:  # "error" too: the call stopped on Tavus's side
            return SessionRefresh(session, "running", remote)
        ended = self.end_session(session_id, end_source="tavus")
        return SessionRefresh(self.get_session(session_id), "ended_by_tavus", remote, ended)

    def reap(self, now: datetime | None = None) -> list[EndedSession]:
        """One pass of the reaper: reconcile unknown creates, retry unconfirmed ends, close
        sessions Tavus already stopped (ended, or status ``error``), and end sessions past their
        maximum duration plus grace."""
        now = now or utcnow()
        ended = [
            self._ended(bill)
            for bill in reconcile.reconcile_unknown_creates(self.store, self.backend_for, now)
        ]
        for session_id in reconcile.unconfirmed_ends(self.store):
            try:
                ended.append(self.end_session(session_id, end_source="reaper"))
            except TavusError as exc:
                log.info("end of session %s still not confirmed: %s", session_id, exc)
        stale = sessions.stale_sessions(self.store, now)
        due_ids = {session_id for session_id, *_ in stale}
        stopped = remote_end.close_stopped(self.store, self.backend_for, skip=due_ids)
        ended.extend(self._ended(bill) for bill in stopped)
        for session_id, conversation_id, mode, due in stale:
            backend = self.backend_for(mode)
            if conversation_id is None:
                row = self.get_session(session_id)
                try:
                    found = backend.find_conversation_by_name(row.conversation_name)
                except TavusError as exc:
                    # The app stopped mid-create and Tavus cannot say: keep looking.
                    reconcile.mark_unknown(
                        self.store,
                        session_id,
                        error_kind="StaleStart",
                        error_message=f"the app stopped before Tavus answered ({exc})",
                    )
                    continue
                if found is None:
                    sessions.mark_failed(
                        self.store,
                        session_id,
                        error_kind="StaleStart",
                        error_message="the app stopped before Tavus answered",
                    )
                    continue
                conversation_id = found["conversation_id"]
                sessions.mark_active(
                    self.store,
                    session_id,
                    conversation=found,
                    mode=mode,
                    mode_reason=row.mode_reason or "",
                    started_at=parse_tavus_time(found.get("created_at")) or row.created_at,
                )
            remote = remote_end.remote_end(backend, conversation_id)
            if remote is not None:
                bill = remote_end.close_remotely_ended(
                    self.store, self.get_session(session_id), remote, "reaper"
                )
                ended.append(self._ended(bill))
                continue
            try:
                backend.end_conversation(conversation_id)
            except TavusError as exc:
                log.warning(
                    "reaper could not end %s (%s); closing at its maximum duration",
                    conversation_id,
                    exc,
                )
            # Tavus itself stops the call at max_call_duration, so bill up to that moment.
            bill = sessions.close_and_bill(
                self.store,
                session_id,
                ended_at=min(now, due),
                end_source="reaper",
                shutdown_reason=SHUTDOWN_BY_MAX_DURATION,
            )
            ended.append(self._ended(bill))
        return ended

    @staticmethod
    def _ended(bill: sessions.Bill) -> EndedSession:
        return EndedSession(
            bill.session_id, bill.status, bill.seconds_used, bill.minutes_used, bill.newly_billed
        )

    # --- reads ------------------------------------------------------------------------------

    def get_session(self, session_id: str) -> SessionRecord:
        session = sessions.read_session(self.store.cursor(), session_id)
        if session is None:
            raise NotFoundError(
                f"Unknown session {shorten(session_id)}: "
                "list them with `python -m awaknow sessions`"
            )
        return session

    def session_for_conversation(self, conversation_id: str) -> SessionRecord | None:
        """The newest session behind a Tavus (or mock) conversation id, if this app made it."""
        # An equality lookup the index answers; ORDER BY ... LIMIT 1 in SQL scans every session.
        rows = (
            self.store.cursor()
            .execute(
                "SELECT created_at, session_id FROM sessions WHERE conversation_id = ?",
                [conversation_id],
            )
            .fetchall()
        )
        return self.get_session(max(rows)[1]) if rows else None

    def active_session(self, user_id: str) -> SessionRecord | None:
        session_id = sessions.active_session_id(self.store.cursor(), user_id)
        return self.get_session(session_id) if session_id else None

    def conversation_status(self, session: SessionRecord) -> str:
        """Ask Tavus (or the mock) whether the call still runs; 'unknown' if it cannot say."""
        if not session.conversation_id:
            return session.status
        try:
            conv = self.backend_for(session.mode).get_conversation(
                session.conversation_id, quick=True
            )
        except TavusError as exc:
            log.info("status of %s unavailable: %s", session.conversation_id, exc)
            return "unknown"
        return str(conv.get("status") or "unknown")

    def allowance(self, user_id: str) -> sessions.Allowance:
        return sessions.allowance(self.store.cursor(), user_id, utcnow())

    def start_blocker(self, user_id: str, session_type: str) -> str | None:
        """Why a start would be refused right now (for a disabled button), or None."""
        cur = self.store.cursor()
        try:
            accounts.require_user(cur, user_id)
            active = sessions.active_session_id(cur, user_id)
            if active:
                return f"{user_id} already has an active session: end it first"
            sessions.check_allowed(sessions.allowance(cur, user_id, utcnow()), session_type)
        except AwakNowError as exc:
            return str(exc)
        return None

    def close(self) -> None:
        """Let event syncs and the callback ingest finish first: DuckDB refuses to close a
        connection mid-query."""
        events.stop_ingest(self.store)
        events.wait_for_background_syncs()
        if self._client is not None:
            self._client.close()
        self.store.close()


def open_service(
    db_path: str | Path | None = None,
    *,
    settings: Settings | None = None,
    client_factory: Callable[[Settings], TavusBackend] | None = None,
) -> AwakNowService:
    """Open the database (migrating it) and return the service.

    ``db_path`` overrides AWAKNOW_DB_PATH; ``settings`` lets tests pass an environment.
    """
    settings = settings or load_settings()
    access.check_settings(settings)
    configure_logging(settings.log_level.value or "WARNING")
    path = Path(db_path) if db_path is not None else settings.resolved_db_path()
    return AwakNowService(settings, Store(path), client_factory=client_factory)


_shared: dict[Settings, AwakNowService] = {}
_shared_lock = threading.Lock()


def shared_service() -> AwakNowService:
    """The process's service for the current settings.

    The app's pages, its callback route and its reaper must share one DuckDB connection
    (DuckDB allows one writing process), so they all come through here rather than each
    opening the file.
    """
    settings = load_settings()
    access.check_settings(settings)
    with _shared_lock:
        service = _shared.get(settings)
        if service is None:
            configure_logging(settings.log_level.value or "WARNING")
            service = AwakNowService(settings, Store(settings.resolved_db_path()))
            _shared[settings] = service
        return service


def close_shared_services(under: Path | None = None) -> None:
    """Close and forget cached services (those whose database lies in ``under``, or all).

    For tests and shutdown: the next ``shared_service()`` opens the file afresh.
    """
    with _shared_lock:
        stale = [
            (settings, service)
            for settings, service in _shared.items()
            if under is None or service.store.path.resolve().is_relative_to(under.resolve())
        ]
        for settings, _service in stale:
            del _shared[settings]
    for _settings, service in stale:
        service.close()
