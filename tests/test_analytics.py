"""Analytics on a small hand-made history, written through the real session rules.

Every figure below is worked out by hand from the sessions in ``HISTORY``, so a change in a
definition (what counts as a failure, which minutes count, month boundaries) shows up as a
wrong number rather than passing silently.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from awaknow import accounts, analytics, sessions
from awaknow.analytics import Filters
from awaknow.errors import ValidationError
from awaknow.store import Store

P1 = "p7e13c73f41f"
P2 = "p0a1b2c3d4e5"
REPLICA = "r4317e64d25a"
ENDED = "end_conversation_endpoint_hit"

USERS = (
    ("alice", "awaknow_pro", "Alice A."),
    ("bob", "awaknow_free", "Bob B."),
    ("carol", "awaknow_growth", "Carol C."),
    ("dave", "awaknow_free", None),  # never uses anything
    ("erin", "awaknow_free", "Erin E."),
)

# (user, type, mode, persona, start, seconds, shutdown reason); all billed through the rules.
HISTORY = (
    ("alice", "reflect_alone", "live", P1, "2026-03-02 10:00", 120, ENDED),
    ("alice", "resolve_together", "live", P1, "2026-03-02 12:00", 300, "max_call_duration reached"),
    ("alice", "reflect_alone", "mock", P1, "2026-03-09 09:00", 90, None),
    ("alice", "reflect_alone", "live", P2, "2026-03-10 09:00", 30,
     "bot_could_not_join_meeting_it_was_probably_ended"),
    ("bob", "reflect_alone", "live", P1, "2026-03-03 08:00", 300, "participant_left_timeout"),
    ("bob", "reflect_alone", "live", P1, "2026-03-04 08:00", 290,
     "participant_left_timeout reached"),
    ("bob", "reflect_alone", "live", P1, "2026-03-05 08:00", 190, ENDED),
    ("erin", "reflect_alone", "live", P1, "2026-03-11 20:00", 280, ENDED),
    ("erin", "reflect_alone", "live", P1, "2026-03-12 20:00", 250, ENDED),
    ("erin", "reflect_alone", "live", P1, "2026-03-13 20:00", 270, ENDED),
    ("erin", "reflect_alone", "live", P1, "2026-03-14 20:00", 260, ENDED),
    ("erin", "reflect_alone", "live", P1, "2026-03-15 20:00", 200,
     "internal error occurred at step 3"),
    # Across midnight at both month ends: billed to the day (and month) it started.
    ("carol", "reflect_alone", "live", P1, "2026-02-28 23:58", 240,
     "participant_absent_timeout reached"),
    ("carol", "reflect_alone", "live", P1, "2026-03-31 23:59", 200, None),
)  # fmt: skip
FAILED_START = ("carol", "2026-03-16 10:00", "TavusServerError")
STILL_ACTIVE = ("alice", "2026-03-20 10:00")
MARCH = Filters(start=date(2026, 3, 1), end=date(2026, 3, 31))


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _reserve(
    store: Store, user: str, kind: str, mode: str, persona: str, start: datetime
) -> sessions.Reservation:
    return sessions.reserve(
        store,
        user,
        kind,
        mode=mode,
        mode_reason="test",
        persona_id=persona,
        replica_id=REPLICA,
        context=None,
        now=start,
    )


def _activate(store: Store, session_id: str, mode: str, start: datetime) -> None:
    sessions.mark_active(
        store,
        session_id,
        mode=mode,
        mode_reason="test",
        started_at=start,
        conversation={
            "conversation_id": "c" + session_id.replace("-", "")[:16],
            "conversation_url": f"https://tavus.daily.co/{session_id}",
        },
    )


def _build(db: Store) -> Store:
    for user_id, plan, name in USERS:
        accounts.add_user(db, user_id, plan, name)
    for user, kind, mode, persona, start, seconds, reason in HISTORY:
        begun = _at(start)
        reservation = _reserve(db, user, kind, mode, persona, begun)
        _activate(db, reservation.session_id, mode, begun)
        sessions.close_and_bill(
            db,
            reservation.session_id,
            ended_at=begun + timedelta(seconds=seconds),
            end_source="user",
            shutdown_reason=reason,
        )
    user, start, kind = FAILED_START
    failed = _reserve(db, user, "reflect_alone", "live", P1, _at(start))
    sessions.mark_failed(db, failed.session_id, error_kind=kind, error_message="503")
    user, start = STILL_ACTIVE
    active = _reserve(db, user, "reflect_alone", "live", P1, _at(start))
    _activate(db, active.session_id, "live", _at(start))
    return db


# Every figure must come out the same from raw rows, from rollups, and from both at once.
ROLLUPS = {
    "raw": None,
    "rolled_up": date(2026, 11, 1),  # every settled day in the rollups
    "split": date(2026, 3, 12),  # days before 10 March rolled up, the rest raw
}


@pytest.fixture(scope="module", params=list(ROLLUPS))
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The history above, built once per way of reading it: every test only reads it."""
    db = _build(Store(tmp_path_factory.mktemp("analytics") / "t.duckdb"))
    today = ROLLUPS[request.param]
    if today is not None:
        analytics.refresh_rollups(db, today=today)
    return db


@pytest.fixture
def empty(tmp_path: Path) -> Store:
    return Store(tmp_path / "empty.duckdb")


def rows(frame: pd.DataFrame) -> list[tuple]:
    """A frame as plain tuples (dates as ``date``), to compare with exact expectations."""
    out = []
    for record in frame.itertuples(index=False):
        out.append(
            tuple(
                v.date() if isinstance(v, pd.Timestamp) else (None if pd.isna(v) else v)
                for v in record
            )
        )
    return out


# --- headline figures -------------------------------------------------------------------------


def test_kpis_without_filters(store: Store) -> None:
    assert analytics.kpis(store) == analytics.Kpis(
        sessions=16,
        succeeded=12,  # 14 billed, less the bot-join and internal-error calls
        failed=3,  # those two and the failed start
        in_progress=1,
        minutes=50.33,  # 3020 s
        live_minutes=48.83,  # 2930 s
        mock_minutes=1.5,
        active_users=4,
        success_rate=0.8,
        avg_minutes=3.6,  # 3020 s / 14 = 215.7 s
        p90_minutes=4.95,  # between 290 s and 300 s at 0.7: 297 s
    )


@pytest.mark.parametrize(
    ("filters", "minutes", "sessions", "completed", "failed"),
    [
        (Filters(modes=("mock",)), 1.5, 1, 1, 0),
        (Filters(persona_ids=(P2,)), 0.5, 1, 0, 1),
        (MARCH, 46.33, 15, 11, 3),  # carol's 28 February call is out
        (Filters(end=date(2026, 2, 28)), 4.0, 1, 1, 0),
        (Filters(plan_ids=("awaknow_free",)), 34.0, 8, 7, 1),  # bob 780 s + erin 1260 s
        (Filters(session_types=("resolve_together",)), 5.0, 1, 1, 0),
        (Filters(user_ids=("bob", "dave")), 13.0, 3, 3, 0),
        (Filters(user_ids=("dave",)), 0.0, 0, 0, 0),
    ],
)
def test_kpis_filters_narrow(
    store: Store, filters: Filters, minutes: float, sessions: int, completed: int, failed: int
) -> None:
    figures = analytics.kpis(store, filters)
    assert (figures.minutes, figures.sessions) == (minutes, sessions)
    assert (figures.succeeded, figures.failed) == (completed, failed)


def test_kpis_of_nothing(empty: Store) -> None:
    figures = analytics.kpis(empty)
    assert figures.sessions == figures.minutes == figures.active_users == 0
    assert figures.success_rate is figures.avg_minutes is figures.p90_minutes is None


def test_filters_are_hashable_and_checked() -> None:
    listed = Filters(modes=["mock", "live"])  # type: ignore[arg-type]
    assert listed.modes == ("live", "mock")
    assert hash(listed) == hash(Filters(modes=("live", "mock")))
    with pytest.raises(ValidationError, match="after the end date"):
        Filters(start=date(2026, 3, 2), end=date(2026, 3, 1))


def test_filter_options_and_bounds(store: Store, empty: Store) -> None:
    assert analytics.filter_options(store) == {
        "personas": [P2, P1],
        "session_types": ["reflect_alone", "resolve_together"],
        "modes": ["live", "mock"],
        "plans": ["awaknow_free", "awaknow_growth", "awaknow_pro"],
    }
    assert analytics.find_users(store) == ["alice", "bob", "carol", "dave", "erin"]
    assert analytics.date_bounds(store) == (date(2026, 2, 28), date(2026, 3, 31))
    assert analytics.date_bounds(empty) is None
    assert analytics.filter_options(empty)["personas"] == []


def test_find_users_searches_literally_and_stops_at_the_limit(store: Store) -> None:
    assert analytics.find_users(store, " AR ") == ["carol"]  # any case, trimmed
    assert analytics.find_users(store, "e", limit=2) == ["alice", "dave"]
    assert analytics.find_users(store, "%") == []  # a literal %, not "anything"
    with pytest.raises(ValidationError, match="limit"):
        analytics.find_users(store, "a", limit=0)


# --- minutes ----------------------------------------------------------------------------------


def test_minutes_per_week(store: Store) -> None:
    frame = analytics.minutes_over_time(store, grain="week")
    assert list(frame.columns) == ["period", "mode", "minutes", "sessions"]
    assert rows(frame) == [
        (date(2026, 2, 23), "live", 4.0, 1),
        (date(2026, 3, 2), "live", 20.0, 5),  # alice 420 s + bob 780 s
        (date(2026, 3, 9), "live", 21.5, 6),  # alice 30 s + erin 1260 s
        (date(2026, 3, 9), "mock", 1.5, 1),
        (date(2026, 3, 30), "live", 3.33, 1),
    ]


def test_minutes_per_day(store: Store) -> None:
    frame = analytics.minutes_over_time(store, Filters(user_ids=("alice", "carol")), "day")
    assert rows(frame) == [
        (date(2026, 2, 28), "live", 4.0, 1),
        (date(2026, 3, 2), "live", 7.0, 2),
        (date(2026, 3, 9), "mock", 1.5, 1),
        (date(2026, 3, 10), "live", 0.5, 1),
        (date(2026, 3, 31), "live", 3.33, 1),
    ]
    with pytest.raises(ValidationError, match="use day or week"):
        analytics.minutes_over_time(store, grain="month")  # type: ignore[arg-type]


def test_minutes_per_user_top_n(store: Store) -> None:
    assert rows(analytics.minutes_per_user(store, top_n=2)) == [
        ("erin", "awaknow_free", 21.0, 5),
        ("bob", "awaknow_free", 13.0, 3),
    ]
    assert rows(analytics.minutes_per_user(store, Filters(modes=("mock",)))) == [
        ("alice", "awaknow_pro", 1.5, 1)
    ]
    with pytest.raises(ValidationError, match="top_n"):
        analytics.minutes_per_user(store, top_n=0)


def test_minutes_per_persona_and_type(store: Store) -> None:
    assert rows(analytics.minutes_per_persona(store)) == [
        (P2, "live", 0.5, 1),
        (P1, "live", 48.33, 12),
        (P1, "mock", 1.5, 1),
    ]
    assert rows(analytics.minutes_per_session_type(store, MARCH)) == [
        ("reflect_alone", "live", 39.83, 11),  # 2930 - 300 - 240 s
        ("reflect_alone", "mock", 1.5, 1),
        ("resolve_together", "live", 5.0, 1),
    ]


def test_duration_distribution(store: Store) -> None:
    frame = analytics.duration_distribution(store)
    assert rows(frame) == [
        (0.0, 0), (0.5, 1), (1.0, 0), (1.5, 1), (2.0, 1), (2.5, 0),
        (3.0, 3), (3.5, 0), (4.0, 3), (4.5, 3), (5.0, 2),
    ]  # fmt: skip
    assert rows(analytics.duration_distribution(store, bin_minutes=2)) == [
        (0.0, 2), (2.0, 4), (4.0, 8),
    ]  # fmt: skip
    with pytest.raises(ValidationError, match="under one second"):
        analytics.duration_distribution(store, bin_minutes=0)


# --- outcomes ---------------------------------------------------------------------------------


def test_outcomes_failures_and_reasons(store: Store) -> None:
    assert rows(analytics.outcomes(store)) == [("success", 12), ("failure", 3)]
    assert rows(analytics.failures(store)) == [
        ("TavusServerError", 1),
        ("bot_could_not_join_meeting_it_was_probably_ended", 1),
        ("internal_error", 1),
    ]
    assert rows(analytics.shutdown_reasons(store)) == [
        ("end_conversation_endpoint_hit", 6),
        ("not reported", 2),
        ("participant_left_timeout", 2),  # with and without " reached"
        ("bot_could_not_join_meeting_it_was_probably_ended", 1),
        ("internal_error", 1),
        ("max_call_duration", 1),
        ("participant_absent_timeout", 1),
    ]
    assert rows(analytics.outcomes(store, Filters(user_ids=("bob",)))) == [("success", 3)]


def test_sessions_per_day_by_type_counts_every_status(store: Store) -> None:
    frame = analytics.sessions_per_day_by_type(store, Filters(user_ids=("alice", "carol")))
    assert rows(frame) == [
        (date(2026, 2, 28), "reflect_alone", 1),
        (date(2026, 3, 2), "reflect_alone", 1),
        (date(2026, 3, 2), "resolve_together", 1),
        (date(2026, 3, 9), "reflect_alone", 1),
        (date(2026, 3, 10), "reflect_alone", 1),
        (date(2026, 3, 16), "reflect_alone", 1),  # the failed start
        (date(2026, 3, 20), "reflect_alone", 1),  # still active
        (date(2026, 3, 31), "reflect_alone", 1),
    ]


# --- plan limits ------------------------------------------------------------------------------


def test_usage_vs_limit_bands(store: Store) -> None:
    frame = analytics.usage_vs_limit(store, date(2026, 3, 15))
    assert list(frame.columns) == [
        "user_id", "plan_id", "minutes_used", "minutes_limit", "fraction_used", "band",
        "running_low",
    ]  # fmt: skip
    assert rows(frame.drop(columns="fraction_used")) == [
        ("erin", "awaknow_free", 21.0, 25, "red", True),  # 84 %, 4 minutes left
        ("bob", "awaknow_free", 13.0, 25, "amber", False),  # 52 %
        ("carol", "awaknow_growth", 3.33, 100, "ok", False),
        ("alice", "awaknow_pro", 9.0, 15000, "ok", False),
        ("dave", "awaknow_free", 0.0, 25, "ok", False),
    ]
    assert frame["fraction_used"].tolist() == pytest.approx(
        [0.84, 0.52, 200 / 6000, 540 / 900000, 0.0]
    )
    top = analytics.usage_vs_limit(store, "2026-03", Filters(plan_ids=("awaknow_free",)), 2)
    assert top["user_id"].tolist() == ["erin", "bob"]


def test_usage_vs_limit_ignores_other_filters(store: Store) -> None:
    """The limit counts every minute of the month, so a mode or date filter changes nothing."""
    mock_only = analytics.usage_vs_limit(store, "2026-03", Filters(modes=("mock",)))
    pd.testing.assert_frame_equal(mock_only, analytics.usage_vs_limit(store, "2026-03"))


def test_monthly_usage_has_every_user_and_respects_month_ends(store: Store) -> None:
    assert rows(analytics.monthly_usage(store, "2026-03")) == [
        ("alice", "awaknow_pro", 9.0, 15000, 4),
        ("bob", "awaknow_free", 13.0, 25, 3),
        ("carol", "awaknow_growth", 3.33, 100, 1),  # 31 March 23:59, not 28 February
        ("dave", "awaknow_free", 0.0, 25, 0),
        ("erin", "awaknow_free", 21.0, 25, 5),
    ]
    february = analytics.monthly_usage(store, "2026-02")
    assert february.loc[february.user_id == "carol", "minutes_used"].tolist() == [4.0]
    assert february["minutes_used"].sum() == 4.0
    assert analytics.monthly_usage(store, "2026-04")["minutes_used"].sum() == 0


@pytest.mark.parametrize("month", ["2026-13", "2026-3", "March", "", "2026-03-01", "2026-00"])
def test_monthly_usage_refuses_bad_months(store: Store, month: str) -> None:
    with pytest.raises(ValidationError, match="use YYYY-MM") as caught:
        analytics.monthly_usage(store, month)
    assert "\n" not in str(caught.value)


def test_users_overview(store: Store) -> None:
    frame = analytics.users_overview(store, date(2026, 3, 1))
    assert frame["user_id"].tolist() == ["alice", "bob", "carol", "dave", "erin"]
    dave = frame.set_index("user_id").loc["dave"]
    assert (dave["display_name"] is None or pd.isna(dave["display_name"])) and dave["sessions"] == 0
    erin = frame.set_index("user_id").loc["erin"]
    assert (erin["plan_name"], erin["minutes_used"], erin["band"]) == ("Free", 21.0, "red")


# --- drill-down -------------------------------------------------------------------------------


def test_sessions_table(store: Store) -> None:
    table = analytics.sessions_table(store)
    assert len(table) == 16
    assert table["created_at"].is_monotonic_decreasing
    assert table.iloc[0]["user_id"] == "carol" and table.iloc[0]["minutes"] == 3.33
    active = analytics.sessions_table(store, status=("active",))
    assert active["user_id"].tolist() == ["alice"]
    assert len(analytics.sessions_table(store, MARCH, limit=2)) == 2
    failed = analytics.sessions_table(store, status=("failed",)).iloc[0]
    assert failed["error_message"] == "503" and pd.isna(failed["conversation_id"])


def test_sessions_table_search_is_literal(store: Store) -> None:
    assert set(analytics.sessions_table(store, search="  ERIN ")["user_id"]) == {"erin"}
    assert analytics.sessions_table(store, search="a_i").empty  # '_' is not a wildcard
    assert analytics.sessions_table(store, search="%").empty
    one = analytics.sessions_table(store).iloc[3]
    for text in (one["session_id"][:8], one["conversation_id"], one["session_type"]):
        assert (
            one["session_id"] in analytics.sessions_table(store, search=text)["session_id"].tolist()
        )
    with pytest.raises(ValidationError, match="limit"):
        analytics.sessions_table(store, limit=0)


# --- rollups ----------------------------------------------------------------------------------


def test_rollups_stop_at_settled_days_and_running_sessions(tmp_path: Path) -> None:
    db = _build(Store(tmp_path / "t.duckdb"))
    assert analytics.kpis(db).sessions == 16  # never refreshed: read from raw rows
    assert analytics.refresh_rollups(db, today=date(2026, 3, 12)) == date(2026, 3, 10)
    before = analytics.kpis(db).failed

    def late_error(day: str) -> None:
        db.cursor().execute(
            "UPDATE sessions SET shutdown_reason = 'daily_room_has_been_deleted' "
            "WHERE CAST(created_at AS DATE) = ?",
            [date.fromisoformat(day)],
        )

    # A late event on a rolled-up day within the settle window: the next refresh sees it.
    late_error("2026-03-09")
    assert analytics.refresh_rollups(db, today=date(2026, 3, 13)) == date(2026, 3, 11)
    assert analytics.kpis(db).failed == before + 1
    # Older than that, only a full refresh does (the rows are assumed settled by then).
    late_error("2026-03-03")
    analytics.refresh_rollups(db, today=date(2026, 3, 14))
    assert analytics.kpis(db).failed == before + 1
    analytics.refresh_rollups(db, today=date(2026, 3, 14), full=True)
    assert analytics.kpis(db).failed == before + 2
    # alice's session from 20 March still runs: its day stays raw, whatever the date.
    assert analytics.refresh_rollups(db, today=date(2026, 11, 1)) == date(2026, 3, 20)
    rolled = db.cursor().execute("SELECT sum(sessions) FROM rollup_sessions_daily").fetchone()
    assert rolled[0] == 14  # not the running one, nor carol's later one on 31 March


def test_user_filter_reads_raw_rows(tmp_path: Path) -> None:
    """The rollups have no user column, so a user filter must not use them."""
    db = _build(Store(tmp_path / "t.duckdb"))
    analytics.refresh_rollups(db, today=date(2026, 11, 1))
    assert analytics.kpis(db, Filters(user_ids=("bob",))).minutes == 13.0


def _per_user_figures(db: Store) -> list[pd.DataFrame | analytics.Kpis]:
    return [
        analytics.kpis(db),  # its distinct active users come from the per-user rollup
        analytics.kpis(db, Filters(start=date(2026, 2, 28), end=date(2026, 3, 12))),
        analytics.kpis(db, Filters(start=date(2026, 3, 1))),
        analytics.minutes_per_user(db),
        analytics.minutes_per_user(db, Filters(start=date(2026, 3, 1))),
        analytics.minutes_per_user(db, Filters(start=date(2026, 2, 28), end=date(2026, 3, 12))),
        analytics.minutes_per_user(db, Filters(end=date(2026, 3, 4))),
        analytics.usage_vs_limit(db, "2026-03"),
        analytics.users_overview(db, "2026-02"),
        analytics.monthly_usage(db, "2026-03"),
    ]


def _assert_per_user_rollup_equals_raw(db: Store) -> None:
    """The per-user figures read through the rollups equal those from raw rows alone."""
    rolled = _per_user_figures(db)
    cur = db.cursor()
    state = cur.execute("SELECT covered_until, refreshed_at FROM rollup_state").fetchall()
    cur.execute("DELETE FROM rollup_state")  # no watermark: everything is read raw
    raw = _per_user_figures(db)
    cur.executemany("INSERT INTO rollup_state (covered_until, refreshed_at) VALUES (?, ?)", state)
    for ours, expected in zip(rolled, raw, strict=True):
        if isinstance(ours, pd.DataFrame):
            pd.testing.assert_frame_equal(ours, expected)
        else:
            assert ours == expected


def test_per_user_rollup_equals_raw_as_sessions_end(tmp_path: Path) -> None:
    db = _build(Store(tmp_path / "t.duckdb"))
    assert analytics.refresh_rollups(db, today=date(2026, 3, 12)) == date(2026, 3, 10)
    assert db.cursor().execute("SELECT count(*) FROM rollup_user_monthly").fetchone()[0] > 0
    _assert_per_user_rollup_equals_raw(db)

    # A session ends after the refresh: counted at once (its day is past the watermark).
    begun = _at("2026-03-11 09:00")
    reservation = _reserve(db, "dave", "reflect_alone", "live", P1, begun)
    _activate(db, reservation.session_id, "live", begun)
    sessions.close_and_bill(
        db,
        reservation.session_id,
        ended_at=begun + timedelta(seconds=300),
        end_source="user",
        shutdown_reason=ENDED,
    )
    _assert_per_user_rollup_equals_raw(db)
    assert "dave" in analytics.minutes_per_user(db)["user_id"].tolist()
    # The watermark moves past it (and into the next month): still the same figures.
    assert analytics.refresh_rollups(db, today=date(2026, 3, 15)) == date(2026, 3, 13)
    _assert_per_user_rollup_equals_raw(db)
    analytics.refresh_rollups(db, today=date(2026, 11, 1))
    _assert_per_user_rollup_equals_raw(db)


def test_per_user_figures_read_the_rollup(tmp_path: Path) -> None:
    """Settled months come from rollup_user_monthly (shown by changing a rollup row)."""
    db = _build(Store(tmp_path / "t.duckdb"))
    analytics.refresh_rollups(db, today=date(2026, 11, 1))
    db.cursor().execute(
        "UPDATE rollup_user_monthly SET seconds_used = seconds_used + 600 "
        "WHERE user_id = 'bob' AND month = DATE '2026-03-01'"
    )
    assert analytics.minutes_per_user(db, top_n=1)["user_id"].tolist() == ["bob"]
    bob = analytics.usage_vs_limit(db, "2026-03").set_index("user_id").loc["bob"]
    assert bob["minutes_used"] == 23.0
    db.cursor().execute(
        "INSERT INTO rollup_user_sessions_monthly (month, user_id, sessions) "
        "VALUES (DATE '2026-03-01', 'nobody', 1)"
    )
    assert analytics.kpis(db).active_users == 5  # alice, bob, carol and erin, and "nobody"
    # A filter the rollup cannot answer (a mode) reads raw rows.
    live = analytics.minutes_per_user(db, Filters(modes=("live",)))
    assert live.set_index("user_id").loc["bob", "minutes"] == 13.0
