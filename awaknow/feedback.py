"""How a conversation went, in the words of whoever ran it: one current rating per session.

A rating (1 to 5) and an optional short note are given when a session ends (Start page), and
can be added or changed later (the session's detail, ``python -m awaknow feedback``). The row
copies the session's dimensions, as a bill does, so rating analytics never join ``sessions``.
Notes are sensitive: never logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from awaknow.errors import NotFoundError, ValidationError
from awaknow.logs import get_logger
from awaknow.store import Store, retry_on_conflict, utcnow

log = get_logger("feedback")

RATINGS = (1, 2, 3, 4, 5)
MAX_NOTE_CHARS = 500
RUNNING = ("starting", "active")


@dataclass(frozen=True)
class Rating:
    """The current rating of a session."""

    session_id: str
    rating: int
    note: str | None
    rated_by: str
    rated_at: datetime


def check_rating(rating: object) -> int:
    """``rating`` as a whole number from 1 to 5, or a ValidationError saying so."""
    if isinstance(rating, bool) or not isinstance(rating, int) or rating not in RATINGS:
        raise ValidationError(f"Rating {rating!r} is not valid: give a whole number from 1 to 5")
    return rating


def _clean_note(note: str | None) -> str | None:
    text = (note or "").strip()
    if len(text) > MAX_NOTE_CHARS:
        raise ValidationError(
            f"The note has {len(text)} characters: keep it to {MAX_NOTE_CHARS} or fewer"
        )
    return text or None


def rate_session(
    store: Store, session_id: str, rating: int, note: str | None, rated_by: str
) -> Rating:
    """Record or replace the rating of an ended session; returns it as stored.

    A running session cannot be rated yet (NotFoundError for an unknown one,
    ValidationError for a running one or a bad rating or note).
    """
    rating = check_rating(rating)
    note = _clean_note(note)
    rated_by = (rated_by or "").strip() or "unknown"

    def write() -> Rating:
        now = utcnow()
        with store.transaction() as cur:
            row = cur.execute(
                "SELECT status FROM sessions WHERE session_id = ?", [session_id]
            ).fetchone()
            if row is None:
                raise NotFoundError(f"Unknown session {session_id!r}: check the id")
            if row[0] in RUNNING:
                raise ValidationError(
                    f"Session {session_id} is still running: rate it once it has ended"
                )
            cur.execute(
                "INSERT INTO session_feedback (session_id, user_id, persona_id, session_type, "
                "mode, plan_id, day, seconds_used, rating, note, rated_by, rated_at) "
                "SELECT session_id, user_id, persona_id, session_type, mode, plan_id, "
                "CAST(created_at AS DATE), seconds_used, ?, ?, ?, ? FROM sessions "
                "WHERE session_id = ? "
                "ON CONFLICT (session_id) DO UPDATE SET rating = excluded.rating, "
                "note = excluded.note, rated_by = excluded.rated_by, "
                "rated_at = excluded.rated_at, seconds_used = excluded.seconds_used",
                [rating, note, rated_by, now, session_id],
            )
        return Rating(session_id, rating, note, rated_by, now)

    stored = retry_on_conflict(write)
    log.info("session %s rated %d by %s", session_id, rating, rated_by)
    return stored


def session_rating(store: Store, session_id: str) -> Rating | None:
    """The current rating of a session, or None before it has one."""
    row = (
        store.cursor()
        .execute(
            "SELECT session_id, rating, note, rated_by, rated_at FROM session_feedback "
            "WHERE session_id = ?",
            [session_id],
        )
        .fetchone()
    )
    return None if row is None else Rating(row[0], int(row[1]), row[2], row[3], row[4])
