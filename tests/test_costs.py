"""Tavus costs on a small hand-made history, written through the real session rules.

Pricing: $0.50 a live minute for the first 10 live minutes of a month, then $1.00.

March 2026, live: ann 6 min (P1), ben 4 min (P1), cat 5 min (P2, reflect) and 3 min (P2,
resolve) = 18 min, so March costs 10 x 0.50 + 8 x 1.00 = $13.00, $13/18 a live minute on
average. ann's 2 mock minutes cost nothing. February: ben 5 live minutes = $2.50.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from awaknow import accounts, analytics, sessions
from awaknow.analytics import Filters
from awaknow.config import load_settings
from awaknow.errors import ConfigError, ValidationError
from awaknow.pricing import Pricing
from awaknow.store import Store
from tests.test_analytics import REPLICA, rows

P1 = "p7e13c73f41f"
P2 = "p0a1b2c3d4e5"
PRICING = Pricing(minute_price=0.5, included_minutes=10, overage_price=1.0, monthly_budget=8.0)
USERS = (
    ("ann", "awaknow_growth"),  # $9.99
    ("ben", "awaknow_free"),
    ("cat", "awaknow_pro"),  # $19.99
    ("dan", "awaknow_growth"),  # pays, never talks
)
# (user, type, mode, persona, start, seconds)
HISTORY = (
    ("ben", "reflect_alone", "live", P1, "2026-02-27 10:00", 300),
    ("ann", "reflect_alone", "live", P1, "2026-03-02 10:00", 360),
    ("ann", "reflect_alone", "mock", P1, "2026-03-03 10:00", 120),
    ("ben", "reflect_alone", "live", P1, "2026-03-05 10:00", 240),
    ("cat", "reflect_alone", "live", P2, "2026-03-10 10:00", 300),
    ("cat", "resolve_together", "live", P2, "2026-03-20 10:00", 180),
)
MARCH_RATE = 13 / 18  # USD per live minute in March


def _session(db: Store, user: str, kind: str, mode: str, persona: str, start: str, seconds: int):
    begun = datetime.fromisoformat(start)
    reservation = sessions.reserve(
        db,
        user,
        kind,
        mode=mode,
        mode_reason="test",
        persona_id=persona,
        replica_id=REPLICA,
        context=None,
        now=begun,
    )
    sessions.mark_active(
        db,
        reservation.session_id,
        mode=mode,
        mode_reason="test",
        started_at=begun,
        conversation={"conversation_id": "c" + reservation.session_id.replace("-", "")[:16]},
    )
    sessions.close_and_bill(
        db,
        reservation.session_id,
        ended_at=begun + timedelta(seconds=seconds),
        end_source="user",
        shutdown_reason="end_conversation_endpoint_hit",
    )


def _build(db: Store) -> Store:
    for user_id, plan in USERS:
        accounts.add_user(db, user_id, plan)
    db.cursor().execute("UPDATE user_subscriptions SET started_at = TIMESTAMP '2026-01-01'")
    for entry in HISTORY:
        _session(db, *entry)
    return db


ROLLUPS = {"raw": None, "rolled_up": date(2026, 11, 1), "split": date(2026, 3, 12)}


@pytest.fixture(scope="module", params=list(ROLLUPS))
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Store:
    db = _build(Store(tmp_path_factory.mktemp("costs") / "t.duckdb"))
    today = ROLLUPS[request.param]
    if today is not None:
        analytics.refresh_rollups(db, today=today)
    return db


# --- the pricing rule -------------------------------------------------------------------------


def test_pricing_rule_in_python_and_sql_agree(tmp_path: Path) -> None:
    cur = Store(tmp_path / "t.duckdb").cursor()
    for seconds in (0, 59, 600, 601, 1080, 36_000):
        sql, params = PRICING.cost_sql("s")
        (in_sql,) = cur.execute(f"SELECT {sql} FROM (SELECT ? AS s)", [*params, seconds]).fetchone()
        assert in_sql == pytest.approx(PRICING.cost_usd(seconds))
    assert PRICING.cost_usd(18 * 60) == pytest.approx(13.0)
    assert PRICING.cost_usd(10 * 60) == pytest.approx(5.0)


def test_budget_states_at_80_and_100_percent() -> None:
    assert [PRICING.budget_state(x) for x in (6.39, 6.4, 7.99, 8.0, 20)] == [
        "ok",
        "warning",
        "warning",
        "exceeded",
        "exceeded",
    ]
    assert Pricing(0.5, 10, 1.0).budget_state(1e9) is None


def test_pricing_settings_and_bad_values() -> None:
    pricing = load_settings(
        environ={
            "AWAKNOW_TAVUS_MINUTE_PRICE": "0.25",
            "AWAKNOW_TAVUS_INCLUDED_MINUTES": "500",
            "AWAKNOW_TAVUS_OVERAGE_PRICE": "0.35",
            "AWAKNOW_TAVUS_MONTHLY_BUDGET": "250",
        },
        env_file="",
    ).pricing
    assert pricing == Pricing(0.25, 500, 0.35, 250.0)
    assert load_settings(environ={}, env_file="").pricing.monthly_budget is None
    for name, value in (
        ("AWAKNOW_TAVUS_MINUTE_PRICE", "-1"),
        ("AWAKNOW_TAVUS_MINUTE_PRICE", "cheap"),
        ("AWAKNOW_TAVUS_INCLUDED_MINUTES", "10.5"),
        ("AWAKNOW_TAVUS_OVERAGE_PRICE", "nan"),
        ("AWAKNOW_TAVUS_MONTHLY_BUDGET", "0"),
    ):
        with pytest.raises(ConfigError, match=name):
            load_settings(environ={name: value}, env_file="")


# --- this month -------------------------------------------------------------------------------


def test_month_spend_and_forecast(store: Store) -> None:
    # 21 March 00:00: 20 of March's 31 days have passed, 18 live minutes billed.
    spend = analytics.month_spend(store, PRICING, now=datetime(2026, 3, 21))
    assert spend.month == date(2026, 3, 1)
    assert (spend.live_minutes, spend.mock_minutes, spend.spend_usd) == (18.0, 2.0, 13.0)
    assert spend.included_minutes_left == 0
    # 18 min / 20 days x 31 days = 27.9 min: 10 x 0.50 + 17.9 x 1.00.
    assert (spend.forecast_minutes, spend.forecast_usd) == (27.9, 22.9)
    assert spend.budget_usd == 8.0
    assert spend.budget_share == pytest.approx(13 / 8)
    assert spend.forecast_budget_share == pytest.approx(22.9 / 8)
    assert spend.budget_state == "exceeded"


def test_budget_alert_levels(store: Store) -> None:
    now = datetime(2026, 3, 21)
    for budget, state in ((15.0, "warning"), (16.25, "warning"), (16.26, "ok")):
        pricing = Pricing(0.5, 10, 1.0, budget)
        assert analytics.month_spend(store, pricing, now=now).budget_state == state
    assert analytics.month_spend(store, Pricing(0.5, 10, 1.0), now=now).budget_state is None


def test_a_month_that_is_over_has_no_forecast_beyond_itself(store: Store) -> None:
    spend = analytics.month_spend(store, PRICING, "2026-02", now=datetime(2026, 3, 21))
    assert (spend.live_minutes, spend.spend_usd, spend.forecast_usd) == (5.0, 2.5, 2.5)
    assert spend.included_minutes_left == 5.0 and spend.budget_state == "ok"
    frame = analytics.spend_vs_budget(store, Filters(), PRICING, "2026-02", datetime(2026, 3, 21))
    assert set(frame["kind"]) == {"actual"} and len(frame) == 28
    assert rows(frame.tail(2)) == [
        (date(2026, 2, 27), "actual", 5.0, 2.5, 8.0),
        (date(2026, 2, 28), "actual", 5.0, 2.5, 8.0),
    ]


def test_spend_vs_budget_day_by_day_then_forecast(store: Store) -> None:
    frame = analytics.spend_vs_budget(store, Filters(), PRICING, "2026-03", datetime(2026, 3, 21))
    actual = frame[frame["kind"] == "actual"]
    assert len(actual) == 21  # 1 to 21 March
    by_day = {day: (minutes, usd) for day, _, minutes, usd, _ in rows(actual)}
    assert by_day[date(2026, 3, 1)] == (0.0, 0.0)
    assert by_day[date(2026, 3, 2)] == (6.0, 3.0)
    assert by_day[date(2026, 3, 3)] == (6.0, 3.0)  # the mock minutes cost nothing
    assert by_day[date(2026, 3, 5)] == (10.0, 5.0)
    assert by_day[date(2026, 3, 10)] == (15.0, 10.0)
    assert by_day[date(2026, 3, 21)] == (18.0, 13.0)
    forecast = rows(frame[frame["kind"] == "forecast"])
    assert len(forecast) == 11  # from today's spend so far to 31 March
    assert forecast[0] == (date(2026, 3, 21), "forecast", 18.0, 13.0, 8.0)
    assert forecast[1] == (date(2026, 3, 22), "forecast", 19.8, 14.8, 8.0)  # 18 x 22 / 20
    assert forecast[-1] == (date(2026, 3, 31), "forecast", 27.9, 22.9, 8.0)
    # Filters do not narrow the account's spend; a month not begun has no rows.
    narrowed = analytics.spend_vs_budget(
        store, Filters(user_ids=("ann",)), PRICING, "2026-03", datetime(2026, 3, 21)
    )
    assert narrowed.equals(frame)
    assert analytics.spend_vs_budget(
        store, Filters(), PRICING, "2026-04", datetime(2026, 3, 21)
    ).empty


# --- breakdowns -------------------------------------------------------------------------------


def test_cost_per_persona_type_and_plan(store: Store) -> None:
    p1 = 10 * MARCH_RATE + 2.5  # ann 6 and ben 4 March minutes, ben's February 5
    p2 = 8 * MARCH_RATE
    assert rows(analytics.cost_per_persona(store, Filters(), PRICING)) == [
        (P1, 4, 15.0, 2.0, round(p1, 2), round(p1 / 4, 4)),
        (P2, 2, 8.0, 0.0, round(p2, 2), round(p2 / 2, 4)),
    ]
    reflect = 15 * MARCH_RATE + 2.5
    assert rows(analytics.cost_per_session_type(store, Filters(), PRICING)) == [
        ("reflect_alone", 5, 20.0, 2.0, round(reflect, 2), round(reflect / 5, 4)),
        ("resolve_together", 1, 3.0, 0.0, round(3 * MARCH_RATE, 2), round(3 * MARCH_RATE, 4)),
    ]
    plans = {row[0]: row[4] for row in rows(analytics.cost_per_plan(store, Filters(), PRICING))}
    assert plans == {
        "awaknow_pro": round(8 * MARCH_RATE, 2),
        "awaknow_free": round(4 * MARCH_RATE + 2.5, 2),
        "awaknow_growth": round(6 * MARCH_RATE, 2),
    }
    # A filter narrows what is counted, never the month's price: March alone, then live only.
    march = Filters(start=date(2026, 3, 10), end=date(2026, 3, 31))
    assert rows(analytics.cost_per_persona(store, march, PRICING)) == [
        (P2, 2, 8.0, 0.0, round(p2, 2), round(p2 / 2, 4))
    ]
    mock_only = analytics.cost_per_persona(store, Filters(modes=("mock",)), PRICING)
    assert rows(mock_only) == [(P1, 1, 0.0, 2.0, 0.0, 0.0)]


def test_cost_per_user(store: Store) -> None:
    assert rows(analytics.cost_per_user(store, Filters(), PRICING)) == [
        ("cat", "awaknow_pro", 2, 8.0, round(8 * MARCH_RATE, 2)),
        ("ben", "awaknow_free", 2, 9.0, round(4 * MARCH_RATE + 2.5, 2)),
        ("ann", "awaknow_growth", 2, 6.0, round(6 * MARCH_RATE, 2)),
    ]
    top = analytics.cost_per_user(store, Filters(start=date(2026, 3, 1)), PRICING, top_n=1)
    assert rows(top) == [("cat", "awaknow_pro", 2, 8.0, round(8 * MARCH_RATE, 2))]
    with pytest.raises(ValidationError):
        analytics.cost_per_user(store, Filters(), PRICING, top_n=0)


def test_margin_per_plan(store: Store) -> None:
    assert rows(analytics.margin_per_plan(store, Filters(), PRICING, "2026-03")) == [
        ("awaknow_free", "Free", 0.0, 1, 0.0, 4.0, 2.89, -2.89),
        ("awaknow_growth", "Reflect+", 9.99, 2, 19.98, 6.0, 4.33, round(19.98 - 6 * MARCH_RATE, 2)),
        ("awaknow_pro", "Resolve Together", 19.99, 1, 19.99, 8.0, 5.78,
         round(19.99 - 8 * MARCH_RATE, 2)),
    ]  # fmt: skip
    pro = analytics.margin_per_plan(store, Filters(plan_ids=("awaknow_pro",)), PRICING, "2026-03")
    assert rows(pro)[0][:4] == ("awaknow_pro", "Resolve Together", 19.99, 1) and len(pro) == 1


def test_users_costing_more_than_they_pay(store: Store) -> None:
    assert rows(analytics.users_costing_more(store, Filters(), PRICING, "2026-03")) == [
        ("ben", "awaknow_free", 0.0, 4.0, 2.89, 2.89)
    ]
    cheap_plans = Pricing(minute_price=2.0, included_minutes=10, overage_price=3.0)
    # March at these prices: 10 x 2 + 8 x 3 = $44 for 18 min; ann's 6 min cost $14.67.
    losses = rows(analytics.users_costing_more(store, Filters(), cheap_plans, "2026-03"))
    assert [row[0] for row in losses] == ["ben", "ann"]
    assert losses[1] == ("ann", "awaknow_growth", 9.99, 6.0, 14.67, round(6 * 44 / 18 - 9.99, 2))


def test_a_subscription_that_started_later_pays_nothing_that_month(tmp_path: Path) -> None:
    db = _build(Store(tmp_path / "t.duckdb"))
    db.cursor().execute(
        "UPDATE user_subscriptions SET started_at = TIMESTAMP '2026-04-02' WHERE user_id = 'dan'"
    )
    growth = analytics.margin_per_plan(db, Filters(), PRICING, "2026-03").iloc[1]
    assert (growth["subscribers"], growth["revenue_usd"]) == (1, 9.99)


def _cost_figures(db: Store) -> list:
    return [
        analytics.cost_per_user(db, Filters(), PRICING),
        analytics.cost_per_user(db, Filters(start=date(2026, 3, 1)), PRICING),
        analytics.cost_per_persona(db, Filters(), PRICING),
        analytics.margin_per_plan(db, Filters(), PRICING, "2026-03"),
        analytics.users_costing_more(db, Filters(), PRICING, "2026-03"),
        analytics.month_spend(db, PRICING, "2026-03", now=datetime(2026, 3, 21)),
    ]


def _assert_rollups_equal_raw(db: Store) -> None:
    rolled = _cost_figures(db)
    cur = db.cursor()
    state = cur.execute("SELECT covered_until, refreshed_at FROM rollup_state").fetchall()
    cur.execute("DELETE FROM rollup_state")  # no watermark: everything is read raw
    raw = _cost_figures(db)
    cur.executemany("INSERT INTO rollup_state (covered_until, refreshed_at) VALUES (?, ?)", state)
    for ours, expected in zip(rolled, raw, strict=True):
        assert ours.equals(expected) if hasattr(ours, "equals") else ours == expected


def test_cost_rollups_equal_raw_as_sessions_end(tmp_path: Path) -> None:
    db = _build(Store(tmp_path / "t.duckdb"))
    assert analytics.refresh_rollups(db, today=date(2026, 3, 12)) == date(2026, 3, 10)
    live = "SELECT sum(live_seconds) FROM rollup_user_monthly WHERE month = DATE '2026-02-01'"
    assert db.cursor().execute(live).fetchone() == (300,)
    _assert_rollups_equal_raw(db)
    # A live session ends after the refresh: counted at once (its day is past the watermark).
    _session(db, "dan", "reflect_alone", "live", P1, "2026-03-11 10:00", 120)
    _assert_rollups_equal_raw(db)
    assert "dan" in analytics.cost_per_user(db, Filters(), PRICING)["user_id"].tolist()
    # The watermark moves past it and past March: still the same figures.
    analytics.refresh_rollups(db, today=date(2026, 3, 15))
    _assert_rollups_equal_raw(db)
    analytics.refresh_rollups(db, today=date(2026, 11, 1))
    _assert_rollups_equal_raw(db)
    assert analytics.month_spend(db, PRICING, "2026-03").live_minutes == 20.0
