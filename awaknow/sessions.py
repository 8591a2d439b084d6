"""Session rules: limits, the one-active-session rule, the create body, billing.

Everything that decides whether a session may start, what Tavus is asked for, and how many
seconds are billed lives here, so pages, the CLI, the callbacks and the reaper cannot disagree.
The database enforces the rules (a primary key per active user, a primary key per bill), so
they hold across tabs, threads and retries, not just in the page that asked.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from typing import Literal

import duckdb

from awaknow.accounts import require_user, validate_user_id
from awaknow.errors import (
    NotFoundError,
    ParallelSessionError,
    UsageLimitError,
    ValidationError,
    shorten,
)
from awaknow.logs import get_logger
from awaknow.store import Store, retry_on_conflict, utcnow

log = get_logger("sessions")

SESSION_TYPES = ("reflect_alone", "resolve_together")
MAX_CALL_SECONDS = 300
PARTICIPANT_LEFT_TIMEOUT = 60
PARTICIPANT_ABSENT_TIMEOUT = 120
REAPER_GRACE_SECONDS = 120
# error_kind of an active session whose End Tavus did not confirm: the reaper retries it.
END_NOT_CONFIRMED = "TavusEndNotConfirmedError"
STATUSES = ("starting", "active", "unknown", "completed", "failed")
# What pages call each status; "unknown" is a live create Tavus did not answer.
STATUS_LABELS = {
    "starting": "starting",
    "active": "active",
    "unknown": "awaiting Tavus",
    "completed": "completed",
    "failed": "failed",
}
MAX_CONTEXT_CHARS = 4000
# A call Tavus reports in status ``error``: billed like any ended call, counted as a failure.
TAVUS_STATUS_ERROR_KIND = "TavusStatusError"
# Whose clock a bill's end time is on, as a person reads it; ``estimated`` (Tavus's
# ``updated_at``) and ``app`` are replaced by the ``tavus`` shutdown time when it comes.
CLOCK_NOTES = {
    "tavus": "Tavus's shutdown time",
    "estimated": "estimated from Tavus's updated_at until the shutdown event arrives",
    "app": "the app's clock until Tavus's shutdown event arrives",
}


@dataclass(frozen=True)
class Allowance:
    """What the user's plan still allows right now."""

    plan_id: str
    minutes_limit: int
    seconds_used: int
    solo_sessions_today: int
    solo_sessions_per_day: int | None
    group_sessions: bool

    @property
    def seconds_left(self) -> int:
        return max(0, self.minutes_limit * 60 - self.seconds_used)

    @property
    def minutes_used(self) -> float:
        return self.seconds_used / 60

    @property
    def fraction_used(self) -> float:
        return self.seconds_used / (self.minutes_limit * 60) if self.minutes_limit else 1.0


@dataclass(frozen=True)
class Reservation:
    """A session row written and the user's active slot taken, before any Tavus call."""

    session_id: str
    user_id: str
    session_type: str
    plan_id: str
    conversation_name: str
    max_call_duration: int


SessionMode = Literal["live", "mock"]


@dataclass(frozen=True)
class SessionRecord:
    """One row of ``sessions``, read by name: pages, the CLI and the service share this shape.

    The columns are listed explicitly (``SESSION_COLUMNS``), so a migration that adds one does
    not silently change what is read; add the field here when a page needs it.
    """

    session_id: str
    user_id: str
    session_type: str
    status: str  # starting | active | unknown | completed | failed
    mode: SessionMode
    mode_reason: str | None
    plan_id: str | None
    persona_id: str
    replica_id: str
    conversation_id: str | None
    conversation_name: str
    conversation_url: str | None
    context: str | None
    max_call_duration: int
    created_at: datetime
    started_at: datetime | None
    replica_joined_at: datetime | None
    ended_at: datetime | None
    end_source: str | None
    shutdown_reason: str | None
    error_kind: str | None
    error_message: str | None
    seconds_used: int | None
    perception_analysis: str | None
    started_by: str | None  # who started it in the app: an email, 'local', or None (CLI)
    recording_requested: bool | None  # None: started before this was recorded (migration 10)

    @property
    def running(self) -> bool:
        """Starting or active: the user's slot is taken and the call may be billing."""
        return self.status in ("starting", "active")

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)

    @property
    def end_not_confirmed(self) -> bool:
        """Someone asked to end it and Tavus did not confirm: it may still be billing."""
        return self.status in ("active", "unknown") and self.error_kind == END_NOT_CONFIRMED

    @property
    def billing_started_at(self) -> datetime:
        """Tavus's creation time, or the reservation time before Tavus answered."""
        return self.started_at or self.created_at


SESSION_COLUMNS = tuple(field.name for field in fields(SessionRecord))


def read_session(cur: duckdb.DuckDBPyConnection, session_id: str) -> SessionRecord | None:
    row = cur.execute(
        f"SELECT {', '.join(SESSION_COLUMNS)} FROM sessions WHERE session_id = ?", [session_id]
    ).fetchone()
    return SessionRecord(*row) if row else None


def conversation_name(session_type: str, session_id: str) -> str:
    return f"awaknow_{session_type}_{session_id}"


def month_start(day: date) -> date:
    return day.replace(day=1)


def billed_seconds(started_at: datetime, ended_at: datetime) -> int:
    """Whole seconds from creation to end: Tavus bills from creation, rounded up per second."""
    return max(0, math.ceil((ended_at - started_at).total_seconds() - 1e-6))


def validate_session_type(session_type: str) -> str:
    if session_type not in SESSION_TYPES:
        raise ValidationError(
            f"Unknown session type {shorten(session_type)}: use reflect_alone or resolve_together"
        )
    return session_type


def allowance(cur: duckdb.DuckDBPyConnection, user_id: str, now: datetime) -> Allowance:
    """The user's limits and what this calendar month and day have used of them.

    One statement rather than three: every Start pays for this, and a DuckDB round trip costs
    about as much as the small scans in it.
    """
    today = now.date()
    row = cur.execute(
        "SELECT plan_id, tavus_minutes_limit, solo_sessions_per_day, group_sessions, "
        "(SELECT coalesce(sum(seconds_used), 0) FROM tavus_usage "
        " WHERE user_id = $user AND usage_date >= $month AND usage_date < $next_month), "
        "(SELECT count(*) FROM sessions WHERE user_id = $user "
        " AND session_type = 'reflect_alone' AND status IN ('starting', 'active', 'completed') "
        " AND created_at >= $today AND created_at < $tomorrow) "
        "FROM user_subscriptions WHERE user_id = $user AND status = 'active'",
        {
            "user": user_id,
            "month": month_start(today),
            "next_month": (month_start(today) + timedelta(days=32)).replace(day=1),
            "today": datetime.combine(today, datetime.min.time()),
            "tomorrow": datetime.combine(today + timedelta(days=1), datetime.min.time()),
        },
    ).fetchone()
    if row is None:
        raise UsageLimitError(
            f"User {shorten(user_id)} has no active plan: assign one on Plans and users"
        )
    plan_id, minutes_limit, solo_per_day, group, used, solo_today = row
    return Allowance(
        plan_id, int(minutes_limit), int(used), int(solo_today), solo_per_day, bool(group)
    )


def check_allowed(allow: Allowance, session_type: str) -> int:
    """Raise UsageLimitError when the plan forbids this session; return the seconds it may last."""
    if session_type == "resolve_together" and not allow.group_sessions:
        raise UsageLimitError(
            f"Resolve Together sessions are not part of the {allow.plan_id} plan: "
            "upgrade to awaknow_pro"
        )
    if (
        session_type == "reflect_alone"
        and allow.solo_sessions_per_day is not None
        and allow.solo_sessions_today >= allow.solo_sessions_per_day
    ):
        raise UsageLimitError(
            f"The {allow.plan_id} plan allows {allow.solo_sessions_per_day} solo session(s) a "
            "day and today's are used: try again tomorrow (UTC) or upgrade"
        )
    if allow.seconds_left <= 0:
        raise UsageLimitError(
            f"All {allow.minutes_limit} Tavus minutes of this month are used: "
            "wait for next month or upgrade the plan"
        )
    return min(MAX_CALL_SECONDS, allow.seconds_left)


def active_session_id(cur: duckdb.DuckDBPyConnection, user_id: str) -> str | None:
    row = cur.execute(
        "SELECT session_id FROM active_sessions WHERE user_id = ?", [user_id]
    ).fetchone()
    return row[0] if row else None


def reserve(
    store: Store,
    user_id: str,
    session_type: str,
    *,
    mode: str,
    mode_reason: str,
    persona_id: str,
    replica_id: str,
    context: str | None,
    recording_requested: bool = False,
    now: datetime | None = None,
    started_by: str | None = None,
) -> Reservation:
    """Atomically take the user's active slot, check the plan and write the session row.

    The slot insert comes first: of many concurrent starts for one user, only one can commit
    it, and that one then reads limits that no other start can change underneath it.
    """
    user_id = validate_user_id(user_id)
    validate_session_type(session_type)
    if context is not None and len(context) > MAX_CONTEXT_CHARS:
        raise ValidationError(
            f"Context is {len(context)} characters; keep it under {MAX_CONTEXT_CHARS}"
        )
    now = now or utcnow()
    session_id = str(uuid.uuid4())
    try:
        with store.transaction() as cur:
            require_user(cur, user_id)
            existing = active_session_id(cur, user_id)
            if existing:
                raise ParallelSessionError(
                    f"User {user_id} already has an active session ({existing}): end it first"
                )
            cur.execute(
                "INSERT INTO active_sessions (user_id, session_id, reserved_at) VALUES (?, ?, ?)",
                [user_id, session_id, now],
            )
            allow = allowance(cur, user_id, now)
            max_seconds = check_allowed(allow, session_type)
            name = conversation_name(session_type, session_id)
            cur.execute(
                "INSERT INTO sessions (session_id, user_id, session_type, status, mode, "
                "mode_reason, plan_id, persona_id, replica_id, conversation_name, context, "
                "max_call_duration, created_at, started_by, recording_requested) "
                "VALUES (?, ?, ?, 'starting', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    session_id,
                    user_id,
                    session_type,
                    mode,
                    mode_reason,
                    allow.plan_id,
                    persona_id,
                    replica_id,
                    name,
                    context,
                    max_seconds,
                    now,
                    started_by,
                    recording_requested,
                ],
            )
    except (duckdb.ConstraintException, duckdb.TransactionException):
        raise ParallelSessionError(
            f"User {user_id} already has a session starting or active: end it first"
        ) from None
    log.info(
        "reserved session %s for %s (%s, %s s max)", session_id, user_id, session_type, max_seconds
    )
    return Reservation(session_id, user_id, session_type, allow.plan_id, name, max_seconds)


def create_body(
    reservation: Reservation,
    *,
    persona_id: str,
    replica_id: str,
    callback_url: str | None,
    context: str | None,
    recording: dict[str, str],
    test_mode: bool = False,
) -> dict:
    """The POST /v2/conversations body, with the original app's timeouts and flags.

    Captions use the documented ``enable_closed_captions`` (the original app's
    ``enable_transcription`` is not in Tavus's reference; the transcript callback needs
    neither). Recording is requested only with ``recording`` (the bucket properties from
    ``Settings.recording_properties``): Tavus records only into the account's own bucket.
    ``test_mode`` is the smoke test's create: no cost, no concurrency slot.
    """
    properties: dict = {
        "max_call_duration": reservation.max_call_duration,
        "participant_left_timeout": PARTICIPANT_LEFT_TIMEOUT,
        "participant_absent_timeout": PARTICIPANT_ABSENT_TIMEOUT,
        "enable_closed_captions": True,
        "language": "english",
    }
    if recording:
        properties["enable_recording"] = True
        properties.update(recording)
    body: dict = {
        "persona_id": persona_id,
        "replica_id": replica_id,
        "conversation_name": reservation.conversation_name,
        "properties": properties,
    }
    if test_mode:
        body["test_mode"] = True
    if callback_url:
        body["callback_url"] = callback_url
    if context and context.strip():
        body["conversational_context"] = context.strip()
    return body


def mark_active(
    store: Store,
    session_id: str,
    *,
    conversation: dict,
    mode: str,
    mode_reason: str,
    started_at: datetime,
) -> None:
    with store.transaction() as cur:
        cur.execute(
            "UPDATE sessions SET status = 'active', conversation_id = ?, conversation_url = ?, "
            "mode = ?, mode_reason = ?, started_at = ? WHERE session_id = ?",
            [
                conversation["conversation_id"],
                conversation.get("conversation_url"),
                mode,
                mode_reason,
                started_at,
                session_id,
            ],
        )


def mark_failed(store: Store, session_id: str, *, error_kind: str, error_message: str) -> None:
    """A start that never produced a conversation: free the slot, bill nothing."""
    with store.transaction() as cur:
        cur.execute(
            "UPDATE sessions SET status = 'failed', error_kind = ?, error_message = ?, "
            "ended_at = ?, end_source = 'app', seconds_used = 0 "
            "WHERE session_id = ? AND status IN ('starting', 'active')",
            [error_kind, error_message, utcnow(), session_id],
        )
        cur.execute("DELETE FROM active_sessions WHERE session_id = ?", [session_id])


@dataclass(frozen=True)
class Bill:
    """The result of closing a session; ``newly_billed`` is False on a repeated end."""

    session_id: str
    status: str
    seconds_used: int
    newly_billed: bool
    clock: str

    @property
    def minutes_used(self) -> float:
        return round(self.seconds_used / 60, 2)


def close_and_bill(
    store: Store,
    session_id: str,
    *,
    ended_at: datetime,
    end_source: str,
    shutdown_reason: str | None = None,
    tavus_clock: bool = False,
    estimated: bool = False,
) -> Bill:
    """Close a session and bill it exactly once; idempotent.

    ``tavus_clock`` marks ``ended_at`` as Tavus's own shutdown time: it then replaces an
    earlier app-clock or estimated end (the bill row is corrected, never duplicated), while a
    later non-Tavus end never overrides Tavus's time. ``estimated`` marks ``ended_at`` as
    Tavus's ``updated_at``, shown as an estimate until the shutdown event corrects it. A
    manual End racing Tavus's shutdown callback is a DuckDB write-write conflict; the loser
    retries and then sees the winner's bill.
    """
    return retry_on_conflict(
        lambda: _close_and_bill_once(
            store,
            session_id,
            ended_at=ended_at,
            end_source=end_source,
            shutdown_reason=shutdown_reason,
            clock="tavus" if tavus_clock else "estimated" if estimated else "app",
        )
    )


def _close_and_bill_once(
    store: Store,
    session_id: str,
    *,
    ended_at: datetime,
    end_source: str,
    shutdown_reason: str | None,
    clock: str,
) -> Bill:
    tavus_clock = clock == "tavus"
    with store.transaction() as cur:
        # The session and its bill (if any) in one round trip.
        row = cur.execute(
            "SELECT status, coalesce(started_at, created_at), user_id, mode, "
            "(SELECT {'seconds_used': seconds_used, 'clock': clock} FROM tavus_usage "
            " WHERE session_id = $id) "
            "FROM sessions WHERE session_id = $id",
            {"id": session_id},
        ).fetchone()
        if row is None:
            raise NotFoundError(f"Unknown session {shorten(session_id)}")
        status, started_at, user_id, mode, billed = row
        if status == "failed":
            return Bill(session_id, status, 0, False, "app")
        ended_at = max(ended_at, started_at)
        seconds = billed_seconds(started_at, ended_at)
        bill = (billed["seconds_used"], billed["clock"]) if billed is not None else None
        if bill is not None:
            if not tavus_clock or bill[1] == "tavus":
                if shutdown_reason:
                    cur.execute(
                        "UPDATE sessions SET shutdown_reason = coalesce(shutdown_reason, ?) "
                        "WHERE session_id = ?",
                        [shutdown_reason, session_id],
                    )
                return Bill(session_id, "completed", int(bill[0]), False, bill[1])
            cur.execute(
                "UPDATE tavus_usage SET ended_at = ?, seconds_used = ?, minutes_used = ?, "
                "clock = 'tavus' WHERE session_id = ?",
                [ended_at, seconds, seconds / 60, session_id],
            )
            cur.execute(
                "UPDATE sessions SET ended_at = ?, seconds_used = ?, "
                "shutdown_reason = coalesce(?, shutdown_reason) WHERE session_id = ?",
                [ended_at, seconds, shutdown_reason, session_id],
            )
            cur.execute(
                "UPDATE session_feedback SET seconds_used = ? WHERE session_id = ?",
                [seconds, session_id],
            )
            log.info("rebilled session %s to Tavus's clock: %s s", session_id, seconds)
            return Bill(session_id, "completed", seconds, False, "tavus")
        # An End that Tavus did not confirm at first is history once it is confirmed.
        cur.execute(
            "UPDATE sessions SET status = 'completed', ended_at = ?, end_source = ?, "
            "shutdown_reason = coalesce(?, shutdown_reason), seconds_used = ?, "
            "error_message = CASE WHEN error_kind = ? THEN NULL ELSE error_message END, "
            "error_kind = CASE WHEN error_kind = ? THEN NULL ELSE error_kind END "
            "WHERE session_id = ?",
            [
                ended_at,
                end_source,
                shutdown_reason,
                seconds,
                END_NOT_CONFIRMED,
                END_NOT_CONFIRMED,
                session_id,
            ],
        )
        # The bill copies the session's dimensions so analytics never needs a join.
        cur.execute(
            "INSERT INTO tavus_usage (session_id, user_id, plan_id, persona_id, replica_id, "
            "session_type, mode, conversation_id, started_at, ended_at, seconds_used, "
            "minutes_used, usage_date, clock, billed_at) "
            "SELECT session_id, user_id, plan_id, persona_id, replica_id, session_type, mode, "
            "conversation_id, ?, ?, ?, ?, ?, ?, ? FROM sessions WHERE session_id = ?",
            [
                started_at,
                ended_at,
                seconds,
                seconds / 60,
                started_at.date(),
                clock,
                utcnow(),
                session_id,
            ],
        )
        cur.execute("DELETE FROM active_sessions WHERE session_id = ?", [session_id])
    log.info(
        "billed session %s (%s, %s): %s s by the %s clock",
        session_id,
        user_id,
        mode,
        seconds,
        clock,
    )
    return Bill(session_id, "completed", seconds, True, clock)


def mark_tavus_status_error(store: Store, session_id: str) -> None:
    """Tavus reported the call in status ``error``: keep the bill, show it as a failure."""
    store.cursor().execute(
        "UPDATE sessions SET error_kind = ?, error_message = ? "
        "WHERE session_id = ? AND error_kind IS NULL",
        [
            TAVUS_STATUS_ERROR_KIND,
            "Tavus reported this conversation in status 'error': the call failed on Tavus's side "
            "(its minutes are billed up to when it stopped)",
            session_id,
        ],
    )


def bill_clock(store: Store, session_id: str) -> str | None:
    """Whose clock the session's bill is on (``CLOCK_NOTES``), or None while not billed."""
    row = (
        store.cursor()
        .execute("SELECT clock FROM tavus_usage WHERE session_id = ?", [session_id])
        .fetchone()
    )
    return str(row[0]) if row else None


def active_conversations(store: Store) -> list[tuple[str, str, str]]:
    """Sessions with a running conversation: (session id, conversation id, mode)."""
    rows = (
        store.cursor()
        .execute(
            "SELECT session_id, conversation_id, mode FROM sessions "
            "WHERE status = 'active' AND conversation_id IS NOT NULL ORDER BY created_at"
        )
        .fetchall()
    )
    return [(r[0], r[1], r[2]) for r in rows]


def stale_sessions(
    store: Store, now: datetime, grace_seconds: int = REAPER_GRACE_SECONDS
) -> list[tuple[str, str | None, str, datetime]]:
    """Active sessions past their maximum duration plus grace: (id, conversation, mode, due)."""
    rows = (
        store.cursor()
        .execute(
            "SELECT session_id, conversation_id, mode, "
            "coalesce(started_at, created_at) + to_seconds(max_call_duration) AS due "
            "FROM sessions WHERE status IN ('active', 'starting') "
            "AND coalesce(started_at, created_at) + to_seconds(max_call_duration + ?) < ?",
            [grace_seconds, now],
        )
        .fetchall()
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]
