"""Session feedback: one current rating per session, its rules, the CLI and its analytics.

A small fixed history (ratings hand-picked):

====  ==========  ================  =======  =====  ======  =========
#     user        type              persona  day    secs    rating
====  ==========  ================  =======  =====  ======  =========
0     ann         reflect_alone     P1       03-02  300     5
1     ann         reflect_alone     P1       03-03  130     4
2     ben         reflect_alone     P2       03-04  50      1  "Felt rushed"
3     ben         resolve_together  P1       03-10  200     2, then changed to 3
4     ann         reflect_alone     P2       03-11  90      (not rated)
====  ==========  ================  =======  =====  ======  =========
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from awaknow import accounts, analytics, feedback, sessions
from awaknow.analytics import Filters
from awaknow.errors import NotFoundError, ValidationError
from awaknow.store import Store
from tests.test_analytics import REPLICA, rows
from tests.test_cli import Cli

P1 = "p7e13c73f41f"
P2 = "p0a1b2c3d4e5"
HISTORY = (
    ("ann", "reflect_alone", P1, "2026-03-02 10:00", 300),
    ("ann", "reflect_alone", P1, "2026-03-03 10:00", 130),
    ("ben", "reflect_alone", P2, "2026-03-04 10:00", 50),
    ("ben", "resolve_together", P1, "2026-03-10 10:00", 200),
    ("ann", "reflect_alone", P2, "2026-03-11 10:00", 90),
)


def _start(db: Store, user: str, kind: str, persona: str, start: str) -> str:
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
    sessions.mark_active(
        db,
        reservation.session_id,
        mode="live",
        mode_reason="test",
        started_at=begun,
        conversation={"conversation_id": "c" + reservation.session_id.replace("-", "")[:16]},
    )
    return reservation.session_id


def _build(db: Store) -> list[str]:
    for user in ("ann", "ben"):
        accounts.add_user(db, user, "awaknow_pro")
    ids = []
    for user, kind, persona, start, seconds in HISTORY:
        session_id = _start(db, user, kind, persona, start)
        sessions.close_and_bill(
            db,
            session_id,
            ended_at=datetime.fromisoformat(start) + timedelta(seconds=seconds),
            end_source="user",
        )
        ids.append(session_id)
    feedback.rate_session(db, ids[0], 5, None, "local")
    feedback.rate_session(db, ids[1], 4, "  ", "local")
    feedback.rate_session(db, ids[2], 1, " Felt rushed ", "cli")
    feedback.rate_session(db, ids[3], 2, "Audio dropped", "local")
    feedback.rate_session(db, ids[3], 3, None, "maria")  # changed later: one current rating
    return ids


@pytest.fixture
def built(tmp_path: Path) -> tuple[Store, list[str]]:
    db = Store(tmp_path / "t.duckdb")
    return db, _build(db)


def test_one_current_rating_per_session_with_who_gave_it(built) -> None:
    db, ids = built
    assert db.cursor().execute("SELECT count(*) FROM session_feedback").fetchone() == (4,)
    changed = feedback.session_rating(db, ids[3])
    assert changed is not None
    assert (changed.rating, changed.note, changed.rated_by) == (3, None, "maria")
    assert feedback.session_rating(db, ids[2]).note == "Felt rushed"  # type: ignore[union-attr]
    assert feedback.session_rating(db, ids[1]).note is None  # type: ignore[union-attr]
    assert feedback.session_rating(db, ids[4]) is None


def test_bad_ratings_unknown_and_running_sessions_are_refused(built) -> None:
    db, ids = built
    for bad in (0, 6, 2.5, True, "4"):
        with pytest.raises(ValidationError, match="from 1 to 5"):
            feedback.rate_session(db, ids[0], bad, None, "local")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="500"):
        feedback.rate_session(db, ids[0], 3, "x" * 501, "local")
    with pytest.raises(NotFoundError, match="Unknown session"):
        feedback.rate_session(db, "nope", 3, None, "local")
    running = _start(db, "ann", "reflect_alone", P1, "2026-03-12 10:00")
    with pytest.raises(ValidationError, match="still running"):
        feedback.rate_session(db, running, 3, None, "local")
    assert feedback.session_rating(db, ids[0]).rating == 5  # type: ignore[union-attr]


def test_rating_analytics_by_persona_type_and_week(built) -> None:
    db, _ = built
    assert analytics.rating_summary(db, Filters()) == (4, 3.25)
    assert rows(analytics.ratings_by(db, Filters(), "persona")) == [
        (P2, 1, 1, 1.0, 1.0),
        (P1, 3, 1, 1 / 3, 4.0),
        (P1, 4, 1, 1 / 3, 4.0),
        (P1, 5, 1, 1 / 3, 4.0),
    ]
    by_type = rows(analytics.ratings_by(db, Filters(), "session type"))
    assert by_type[0] == ("reflect_alone", 1, 1, 1 / 3, 10 / 3)
    assert by_type[-1] == ("resolve_together", 3, 1, 1.0, 3.0)
    weeks = analytics.ratings_by(db, Filters(), "week")
    assert weeks.groupby("group")["ratings"].sum().to_dict() == {"2026-03-02": 3, "2026-03-09": 1}
    assert analytics.rating_summary(db, Filters(start=date(2026, 3, 9))) == (1, 3.0)
    assert analytics.rating_summary(db, Filters(user_ids=("ann",))) == (2, 4.5)
    with pytest.raises(ValidationError):
        analytics.ratings_by(db, Filters(), "plan")


def test_lowest_rated_and_rating_against_duration(built) -> None:
    db, ids = built
    lowest = analytics.lowest_rated(db, Filters(), limit=2)
    assert lowest["session_id"].tolist() == [ids[2], ids[3]]
    assert lowest["note"].tolist()[0] == "Felt rushed"
    assert rows(analytics.rating_vs_duration(db, Filters())) == [
        (0, 1, 1.0),  # 50 s
        (2, 1, 4.0),  # 130 s
        (3, 1, 3.0),  # 200 s
        (5, 1, 5.0),  # 300 s
    ]


def test_a_rebill_on_tavus_clock_keeps_the_rating_duration_in_step(built) -> None:
    db, ids = built
    sessions.close_and_bill(
        db,
        ids[0],
        ended_at=datetime(2026, 3, 2, 10, 4, 10),  # 250 s by Tavus's clock
        end_source="tavus",
        tavus_clock=True,
    )
    assert (4, 1, 5.0) in rows(analytics.rating_vs_duration(db, Filters()))


def test_cli_feedback_and_its_one_line_errors(tmp_path: Path) -> None:
    db_path = tmp_path / "cli.duckdb"
    db = Store(db_path)
    ids = _build(db)
    running = _start(db, "ann", "reflect_alone", P1, "2026-03-12 10:00")
    db.close()
    cli = Cli(db_path)
    assert "rated 2 of 5" in cli("feedback", ids[4], "--rating", "2", "--note", "Too quiet").stdout
    assert cli.json("feedback", ids[4], "--rating", "4")["rating"] == 4
    for args, message in (
        (("nope", "--rating", "3"), "Unknown session"),
        ((ids[4], "--rating", "0"), "from 1 to 5"),
        ((ids[4], "--rating", "6"), "from 1 to 5"),
        ((running, "--rating", "3"), "still running"),
    ):
        assert message in cli("feedback", *args, code=1).stderr
    cli("feedback", ids[4], "--rating", "x", code=2)
    db = Store(db_path)
    rating = feedback.session_rating(db, ids[4])
    assert rating is not None and (rating.rating, rating.note, rating.rated_by) == (4, None, "cli")
