"""Engagement on a small hand-made history: sessions through the real session rules, the
replica joining and transcripts arriving as Tavus events.

March 2026 (ISO weeks start on 2, 9 and 16 March):

=  ====  ================  =======  ================  =====  ======  =============================
#  user  type              persona  start             secs   joined  how it ended
=  ====  ================  =======  ================  =====  ======  =============================
1  ann   reflect_alone     P1       03-02 10:00       300    +10 s   end_conversation_endpoint_hit
2  ann   reflect_alone     P1       03-03 10:00       50     +10 s   end_conversation_endpoint_hit
3  ben   reflect_alone     P1       03-02 12:00       200    never   participant_absent_timeout
4  ben   resolve_together  P2       03-10 09:00       240    +20 s   max_call_duration
5  ann   reflect_alone     P2       03-16 09:00       120    +5 s    participant_left_timeout
6  cat   reflect_alone     P1       03-09 08:00       failed to start (no conversation)
7  cat   reflect_alone     P1       03-17 08:00       100    +10 s   End button, no reason
=  ====  ================  =======  ================  =====  ======  =============================

Transcripts: #1 has four spoken turns (user 9 of 17 words) and a system prompt, #5 two turns
(user 2 of 3 words).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from awaknow import accounts, analytics, events, sessions
from awaknow.analytics import Filters
from awaknow.config import load_settings
from awaknow.errors import ValidationError
from awaknow.service import AwakNowService, open_service
from tests.conftest import iso
from tests.test_analytics import REPLICA, rows

P1 = "p7e13c73f41f"
P2 = "p0a1b2c3d4e5"
HISTORY = (
    ("ann", "reflect_alone", P1, "2026-03-02 10:00", 300, 10, "end_conversation_endpoint_hit"),
    ("ann", "reflect_alone", P1, "2026-03-03 10:00", 50, 10, "end_conversation_endpoint_hit"),
    ("ben", "reflect_alone", P1, "2026-03-02 12:00", 200, None, "participant_absent_timeout"),
    ("ben", "resolve_together", P2, "2026-03-10 09:00", 240, 20, "max_call_duration reached"),
    ("ann", "reflect_alone", P2, "2026-03-16 09:00", 120, 5, "participant_left_timeout"),
    ("cat", "reflect_alone", P1, "2026-03-09 08:00", None, None, None),
    ("cat", "reflect_alone", P1, "2026-03-17 08:00", 100, 10, None),
)
TRANSCRIPTS = {
    0: [
        ("system", "You are a warm companion."),
        ("assistant", "Hello there how are you"),
        ("user", "Fine thanks"),
        ("assistant", "Tell me more"),
        ("user", "I had a long day at work"),
    ],
    4: [("replica", "Hi"), ("user", "Hello again")],
}


def _event(cid: str, event_type: str, when: datetime, **properties: object) -> dict:
    return {
        "conversation_id": cid,
        "event_type": event_type,
        "message_type": event_type.split(".")[0],
        "timestamp": iso(when),
        "properties": properties,
    }


def _build(svc: AwakNowService) -> list[str]:
    """The history above; returns each entry's conversation id (None for the failed one)."""
    db = svc.store
    for user, plan in (("ann", "awaknow_pro"), ("ben", "awaknow_pro"), ("cat", "awaknow_pro")):
        accounts.add_user(db, user, plan)
    conversations = []
    for index, (user, kind, persona, start, seconds, joined, reason) in enumerate(HISTORY):
        begun = datetime.fromisoformat(start)
        reservation = sessions.reserve(
            db,
            user,
            kind,
            mode="live",
            mode_reason="test",
            persona_id=persona,
            replica_id=REPLICA,
            context=None,
            now=begun,
        )
        if seconds is None:
            sessions.mark_failed(
                db, reservation.session_id, error_kind="TavusServerError", error_message="503"
            )
            conversations.append("")
            continue
        cid = f"c{index:015x}"
        conversations.append(cid)
        sessions.mark_active(
            db,
            reservation.session_id,
            mode="live",
            mode_reason="test",
            started_at=begun,
            conversation={"conversation_id": cid},
        )
        if joined is not None:
            joined_at = begun + timedelta(seconds=joined)
            events.ingest_event(
                svc.store, _event(cid, "system.replica_joined", joined_at), "callback"
            )
        sessions.close_and_bill(
            db,
            reservation.session_id,
            ended_at=begun + timedelta(seconds=seconds),
            end_source="tavus" if reason else "user",
            shutdown_reason=reason,
        )
    for index, turns in TRANSCRIPTS.items():
        _transcribe(svc, conversations[index], turns)
    return conversations


def _transcribe(svc: AwakNowService, cid: str, turns: list[tuple[str, str]]) -> None:
    transcript = [{"role": role, "content": content} for role, content in turns]
    when = datetime(2026, 3, 20)
    payload = _event(cid, "application.transcription_ready", when, transcript=transcript)
    events.ingest_event(svc.store, payload, "callback")


def _service(path: Path) -> AwakNowService:
    return open_service(path, settings=load_settings(environ={}, env_file=""))


ROLLUPS = {"raw": None, "rolled_up": date(2026, 11, 1), "split": date(2026, 3, 12)}


@pytest.fixture(scope="module", params=list(ROLLUPS))
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[object]:
    svc = _service(tmp_path_factory.mktemp("engagement") / "t.duckdb")
    _build(svc)
    today = ROLLUPS[request.param]
    if today is not None:
        analytics.refresh_rollups(svc.store, today=today)
    yield svc.store
    svc.close()


def test_active_users_per_day_week_and_month(store) -> None:
    assert rows(analytics.active_users(store, Filters())) == [
        (date(2026, 3, 2), 2),
        (date(2026, 3, 3), 1),
        (date(2026, 3, 9), 1),  # cat's failed start counts: cat came
        (date(2026, 3, 10), 1),
        (date(2026, 3, 16), 1),
        (date(2026, 3, 17), 1),
    ]
    assert rows(analytics.active_users(store, Filters(), "week")) == [
        (date(2026, 3, 2), 2),
        (date(2026, 3, 9), 2),
        (date(2026, 3, 16), 2),
    ]
    assert rows(analytics.active_users(store, Filters(), "month")) == [(date(2026, 3, 1), 3)]
    p2 = analytics.active_users(store, Filters(persona_ids=(P2,)), "week")
    assert rows(p2) == [(date(2026, 3, 9), 1), (date(2026, 3, 16), 1)]
    with pytest.raises(ValidationError, match="Grain"):
        analytics.active_users(store, Filters(), "year")  # type: ignore[arg-type]


def test_new_and_returning_users(store) -> None:
    assert rows(analytics.new_vs_returning(store, Filters())) == [
        (date(2026, 3, 2), "new", 2),
        (date(2026, 3, 9), "new", 1),
        (date(2026, 3, 9), "returning", 1),
        (date(2026, 3, 16), "returning", 2),
    ]
    # ann's first session ever was before these dates: she is returning, not new.
    later = analytics.new_vs_returning(store, Filters(start=date(2026, 3, 16)))
    assert rows(later) == [(date(2026, 3, 16), "returning", 2)]


def test_weekly_retention_cohorts(store) -> None:
    assert rows(analytics.retention_cohorts(store, Filters())) == [
        (date(2026, 3, 2), 0, 2, 2, 1.0),
        (date(2026, 3, 2), 1, 2, 1, 0.5),  # ben
        (date(2026, 3, 2), 2, 2, 1, 0.5),  # ann
        (date(2026, 3, 9), 0, 1, 1, 1.0),
        (date(2026, 3, 9), 1, 1, 1, 1.0),  # cat
    ]


def test_sessions_per_user(store) -> None:
    assert rows(analytics.sessions_per_user(store, Filters())) == [(2, 2), (3, 1)]


def test_session_funnel_by_persona_and_type(store) -> None:
    funnel = analytics.session_funnel(store, Filters(), "persona")
    steps = list(analytics.FUNNEL_STEPS)
    assert rows(funnel) == [
        (P2, steps[0], 0, 2, 1.0),  # P2 (p0a1...) sorts first
        (P2, steps[1], 1, 2, 1.0),
        (P2, steps[2], 2, 2, 1.0),
        (P2, steps[3], 3, 1, 0.5),  # ben's call hit its maximum duration
        (P1, steps[0], 0, 4, 1.0),
        (P1, steps[1], 1, 3, 0.75),  # ben never saw the replica
        (P1, steps[2], 2, 2, 0.5),  # ann's 50 s call: 40 s after the replica joined
        (P1, steps[3], 3, 2, 0.5),
    ]
    by_type = analytics.session_funnel(store, Filters(), "session type")
    assert by_type[by_type["group"] == "reflect_alone"]["sessions"].tolist() == [5, 4, 3, 3]
    assert by_type[by_type["group"] == "resolve_together"]["sessions"].tolist() == [1, 1, 1, 0]
    with pytest.raises(ValidationError, match="compare"):
        analytics.session_funnel(store, Filters(), "plan")


def test_turns_and_word_shares(store) -> None:
    assert rows(analytics.transcript_engagement(store, Filters(), "persona")) == [
        (P2, 1, 2.0, 2 / 3),
        (P1, 1, 4.0, 9 / 17),
    ]
    assert rows(analytics.transcript_engagement(store, Filters(), "session type")) == [
        ("reflect_alone", 2, 3.0, 11 / 20)
    ]


def _figures(db) -> list[pd.DataFrame]:
    return [
        analytics.active_users(db, Filters(), "day"),
        analytics.active_users(db, Filters(), "week"),
        analytics.new_vs_returning(db, Filters()),
        analytics.retention_cohorts(db, Filters()),
        analytics.sessions_per_user(db, Filters()),
        analytics.session_funnel(db, Filters(), "persona"),
        analytics.transcript_engagement(db, Filters(), "persona"),
        analytics.transcript_engagement(db, Filters(session_types=("reflect_alone",))),
    ]


def _assert_rollups_equal_raw(db) -> None:
    rolled = _figures(db)
    cur = db.cursor()
    state = cur.execute("SELECT covered_until, refreshed_at FROM rollup_state").fetchall()
    cur.execute("DELETE FROM rollup_state")
    raw = _figures(db)
    cur.executemany("INSERT INTO rollup_state (covered_until, refreshed_at) VALUES (?, ?)", state)
    for ours, expected in zip(rolled, raw, strict=True):
        pd.testing.assert_frame_equal(ours, expected)


def test_engagement_rollups_equal_raw_as_sessions_end_and_events_arrive(tmp_path: Path) -> None:
    svc = _service(tmp_path / "t.duckdb")
    try:
        conversations = _build(svc)
        db = svc.store
        assert analytics.refresh_rollups(db, today=date(2026, 3, 12)) == date(2026, 3, 10)
        assert db.cursor().execute("SELECT count(*) FROM rollup_funnel_daily").fetchone()[0] > 0
        _assert_rollups_equal_raw(db)
        # ben's call of 10 March (past the watermark) gets its transcript late.
        _transcribe(svc, conversations[3], [("replica", "Welcome both"), ("user", "Thanks")])
        _assert_rollups_equal_raw(db)
        assert analytics.transcript_engagement(db, Filters())["sessions"].sum() == 3
        analytics.refresh_rollups(db, today=date(2026, 3, 13))
        _assert_rollups_equal_raw(db)
        analytics.refresh_rollups(db, today=date(2026, 11, 1))
        _assert_rollups_equal_raw(db)
        rolled = "SELECT sum(sessions) FROM rollup_transcripts_daily"
        assert db.cursor().execute(rolled).fetchone() == (3,)
    finally:
        svc.close()
