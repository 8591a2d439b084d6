"""Tavus costs: live minutes priced with the account's pricing (``awaknow.pricing``).

Tavus prices a month's live minutes as a whole (included minutes, then overage), so a
session's cost depends on every other live minute of its month. Costs per user, persona,
plan or session type therefore use the month's average price per live second, the whole
account's month cost divided by its live seconds: the parts of a month add up to what Tavus
bills for it, whatever the filters leave out. Mock minutes cost nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import duckdb
import pandas as pd

from awaknow.analytics.filters import (
    DEFAULT_TOP_USERS,
    Filters,
    check_positive,
    frame_of,
)
from awaknow.analytics.limits import parse_month
from awaknow.analytics.rollups import usage_rows, user_month_rows
from awaknow.pricing import Pricing
from awaknow.sessions import month_start
from awaknow.store import Store, scalar, utcnow

FORECAST_METHOD = (
    "Forecast: the live minutes billed so far this month, divided by the share of the month "
    "that has passed (to the second, UTC), priced like the month's minutes (included minutes "
    "first, then overage). Sessions still running count once they end."
)


def _month_after(first: date) -> date:
    return month_start(first + timedelta(days=32))


def _rates_sql(
    cur: duckdb.DuckDBPyConnection, f: Filters, pricing: Pricing
) -> tuple[str, list[Any]]:
    """The CTE ``rates (month, usd_per_second)``: each month's average price of a live second
    for the whole account, over the calendar months ``f``'s dates touch (every month without
    dates). Only dates are taken from ``f``: a month is priced as Tavus bills it."""
    months = Filters(
        start=month_start(f.start) if f.start else None,
        end=_month_after(month_start(f.end)) - timedelta(days=1) if f.end else None,
    )
    rows, params = user_month_rows(cur, months)
    cost, cost_params = pricing.cost_sql("account_seconds")
    return (
        f"rates AS (SELECT month, {cost} / nullif(account_seconds, 0) AS usd_per_second "
        f"FROM (SELECT month, sum(live_seconds) AS account_seconds FROM ({rows}) "
        "GROUP BY month))",
        [*cost_params, *params],
    )


# --- this month -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spend:
    """The account's Tavus spend for ``month`` up to ``now`` and where it is heading.

    ``forecast_*`` extrapolate the month so far to its end (``FORECAST_METHOD``); for a
    month that is over they equal the actual figures. ``budget_share`` and
    ``forecast_budget_share`` are shares of ``budget_usd`` (None without a budget);
    ``budget_state`` is ``Pricing.budget_state`` of the spend so far.
    """

    month: date
    live_minutes: float
    mock_minutes: float
    spend_usd: float
    included_minutes_left: float
    forecast_minutes: float
    forecast_usd: float
    budget_usd: float | None
    budget_share: float | None
    forecast_budget_share: float | None
    budget_state: str | None


def _month_seconds(cur: duckdb.DuckDBPyConnection, first: date, last: date, mode: str) -> float:
    rows, params = usage_rows(cur, Filters(start=first, end=last, modes=(mode,)))
    return float(
        scalar(cur, f"SELECT coalesce(sum(seconds_used * sessions), 0) FROM ({rows})", params)
    )


def _pace(first: date, now: datetime) -> tuple[float, float]:
    """Seconds of ``first``'s month passed at ``now`` (all of it once over) and its length."""
    start = datetime.combine(first, time.min)
    length = (datetime.combine(_month_after(first), time.min) - start).total_seconds()
    passed = min(max((now - start).total_seconds(), 0.0), length)
    return passed, length


def month_spend(
    store: Store, pricing: Pricing, month: date | str | None = None, now: datetime | None = None
) -> Spend:
    """The account's spend in ``month`` (default: the month of ``now``, default now, UTC).

    Filters do not apply: the budget, the included minutes and the forecast are the
    account's.
    """
    now = now or utcnow()
    first = parse_month(month) if month is not None else month_start(now.date())
    last = _month_after(first) - timedelta(days=1)
    cur = store.cursor()
    live = _month_seconds(cur, first, last, "live")
    mock = _month_seconds(cur, first, last, "mock")
    passed, length = _pace(first, now)
    forecast_seconds = live * length / passed if passed else 0.0
    spent = pricing.cost_usd(live)
    forecast = pricing.cost_usd(forecast_seconds)
    budget = pricing.monthly_budget
    return Spend(
        month=first,
        live_minutes=round(live / 60, 2),
        mock_minutes=round(mock / 60, 2),
        spend_usd=round(spent, 2),
        included_minutes_left=round(max(pricing.included_minutes - live / 60, 0.0), 2),
        forecast_minutes=round(forecast_seconds / 60, 2),
        forecast_usd=round(forecast, 2),
        budget_usd=budget,
        budget_share=spent / budget if budget else None,
        forecast_budget_share=forecast / budget if budget else None,
        budget_state=pricing.budget_state(spent),
    )


def spend_vs_budget(
    store: Store,
    f: Filters,
    pricing: Pricing,
    month: date | str,
    now: datetime | None = None,
) -> pd.DataFrame:
    """Cumulative spend of ``month`` per day, then the forecast to its end; with the budget.

    The account's figure, like the budget: filters do not apply. Rows ``kind = 'actual'``:
    each day from the 1st to today (or to the month's end), spend up to the end of that day
    (today: so far). While the month runs, rows ``kind = 'forecast'`` go on from today's
    spend so far to ``month_spend(...).forecast_usd`` on the last day, at the month's pace.
    Columns: day, kind, live_minutes, spend_usd, budget_usd (None without a budget).
    """
    now = now or utcnow()
    first = parse_month(month)
    last = _month_after(first) - timedelta(days=1)
    upto = min(last, now.date())
    points: list[tuple[date, str, float]] = []
    if first <= upto:
        cur = store.cursor()
        rows, params = usage_rows(cur, Filters(start=first, end=upto, modes=("live",)))
        daily = cur.execute(
            "WITH daily AS (SELECT usage_date AS day, sum(seconds_used * sessions) AS s "
            f"FROM ({rows}) GROUP BY usage_date), "
            "days AS (SELECT CAST(d AS DATE) AS day FROM generate_series("
            "CAST(? AS TIMESTAMP), CAST(? AS TIMESTAMP), INTERVAL 1 DAY) t(d)) "
            "SELECT day, sum(coalesce(s, 0)) OVER (ORDER BY day) FROM days "
            "LEFT JOIN daily USING (day) ORDER BY day",
            [*params, first, upto],
        ).fetchall()
        points = [(day, "actual", float(seconds)) for day, seconds in daily]
        passed, length = _pace(first, now)
        if passed < length:
            so_far = points[-1][2]
            per_second = so_far / passed if passed else 0.0
            start = datetime.combine(first, time.min)
            points.append((upto, "forecast", so_far))
            day = upto + timedelta(days=1)
            while day <= last:
                elapsed = datetime.combine(day + timedelta(days=1), time.min) - start
                points.append((day, "forecast", per_second * elapsed.total_seconds()))
                day += timedelta(days=1)
    return pd.DataFrame(
        {
            "day": [day for day, _, _ in points],
            "kind": [kind for _, kind, _ in points],
            "live_minutes": [round(seconds / 60, 2) for _, _, seconds in points],
            "spend_usd": [round(pricing.cost_usd(seconds), 2) for _, _, seconds in points],
            "budget_usd": [pricing.monthly_budget] * len(points),
        },
        columns=["day", "kind", "live_minutes", "spend_usd", "budget_usd"],
    )


# --- breakdowns -------------------------------------------------------------------------------


def _cost_by(store: Store, f: Filters, pricing: Pricing, column: str) -> pd.DataFrame:
    """Sessions, live and mock minutes and cost per value of ``column``, costliest first."""
    cur = store.cursor()
    rates, rate_params = _rates_sql(cur, f, pricing)
    rows, params = usage_rows(cur, f)
    return frame_of(
        cur,
        f"WITH {rates}, "
        "by_month AS (SELECT CAST(date_trunc('month', usage_date) AS DATE) AS month, "
        f"{column}, sum(sessions) AS billed, "
        "sum(seconds_used * sessions) FILTER (mode = 'live') AS live_seconds, "
        "sum(seconds_used * sessions) FILTER (mode = 'mock') AS mock_seconds "
        f"FROM ({rows}) GROUP BY ALL), "
        f"costs AS (SELECT {column}, sum(billed) AS billed, "
        "coalesce(sum(live_seconds), 0) AS live_seconds, "
        "coalesce(sum(mock_seconds), 0) AS mock_seconds, "
        "coalesce(sum(live_seconds * usd_per_second), 0) AS usd "
        f"FROM by_month LEFT JOIN rates USING (month) GROUP BY {column}) "
        f"SELECT {column}, CAST(billed AS BIGINT) AS sessions, "
        "round(live_seconds / 60, 2) AS live_minutes, round(mock_seconds / 60, 2) AS mock_minutes, "
        "round(usd, 2) AS cost_usd, round(usd / billed, 4) AS cost_per_session_usd "
        f"FROM costs ORDER BY usd DESC, {column}",
        [*rate_params, *params],
    )


def cost_per_persona(store: Store, f: Filters, pricing: Pricing) -> pd.DataFrame:
    """Columns: persona_id, sessions (billed), live_minutes, mock_minutes, cost_usd,
    cost_per_session_usd."""
    return _cost_by(store, f, pricing, "persona_id")


def cost_per_session_type(store: Store, f: Filters, pricing: Pricing) -> pd.DataFrame:
    """Columns: session_type, sessions (billed), live_minutes, mock_minutes, cost_usd,
    cost_per_session_usd."""
    return _cost_by(store, f, pricing, "session_type")


def cost_per_plan(store: Store, f: Filters, pricing: Pricing) -> pd.DataFrame:
    """Per plan the session was billed under. Columns: plan_id, sessions (billed),
    live_minutes, mock_minutes, cost_usd, cost_per_session_usd."""
    return _cost_by(store, f, pricing, "plan_id")


def cost_per_user(
    store: Store, f: Filters, pricing: Pricing, top_n: int = DEFAULT_TOP_USERS
) -> pd.DataFrame:
    """The ``top_n`` users costing most, costliest first (ties by user id).

    Columns: user_id, plan_id (current plan), sessions (billed), live_minutes, cost_usd.
    """
    check_positive("top_n", top_n)
    cur = store.cursor()
    rates, rate_params = _rates_sql(cur, f, pricing)
    rows, params = user_month_rows(cur, f)
    return frame_of(
        cur,
        f"WITH {rates}, "
        "per_user AS (SELECT user_id, sum(u.sessions) AS billed, "
        "sum(live_seconds) AS live_seconds, "
        "coalesce(sum(live_seconds * usd_per_second), 0) AS usd "
        f"FROM ({rows}) u LEFT JOIN rates USING (month) GROUP BY user_id "
        "ORDER BY usd DESC, user_id LIMIT ?) "
        "SELECT p.user_id, s.plan_id, CAST(p.billed AS BIGINT) AS sessions, "
        "round(p.live_seconds / 60, 2) AS live_minutes, round(p.usd, 2) AS cost_usd "
        "FROM per_user p LEFT JOIN user_subscriptions s USING (user_id) "
        "ORDER BY p.usd DESC, p.user_id",
        [*rate_params, *params, top_n],
    )


def _month_users_sql(
    cur: duckdb.DuckDBPyConnection, f: Filters, pricing: Pricing, month: date | str
) -> tuple[str, list[Any]]:
    """CTEs ending in ``users_month``: per user with a subscription or usage in ``month``,
    plan_id (current plan; NULL without an active one), subscribed (the subscription started
    before the month ended), paid_usd (then the plan's price, else 0), live_seconds and
    cost_usd.

    Subscriptions keep no history, so a user counts under the current plan. Only
    ``f.plan_ids`` and ``f.user_ids`` narrow it: a month is priced and paid as a whole.
    """
    first = parse_month(month)
    following = _month_after(first)
    rates, rate_params = _rates_sql(cur, Filters(start=first, end=first), pricing)
    used, used_params = user_month_rows(
        cur, Filters(start=first, end=following - timedelta(days=1), user_ids=f.user_ids)
    )
    clauses: list[str] = ["true"]
    params: list[Any] = []
    for column, values in (("plan_id", f.plan_ids), ("user_id", f.user_ids)):
        if values:
            clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
    return (
        f"WITH {rates}, "
        "used AS (SELECT user_id, sum(live_seconds) AS live_seconds "
        f"FROM ({used}) GROUP BY user_id), "
        "subscribed AS (SELECT s.user_id, s.plan_id, s.started_at < ? AS subscribed, "
        "CASE WHEN s.started_at < ? THEN CAST(p.price_usd AS DOUBLE) ELSE 0 END AS paid_usd "
        "FROM user_subscriptions s JOIN plans p USING (plan_id) WHERE s.status = 'active'), "
        "users_month AS (SELECT user_id, plan_id, coalesce(subscribed, false) AS subscribed, "
        "coalesce(paid_usd, 0) AS paid_usd, "
        "coalesce(live_seconds, 0) AS live_seconds, "
        "coalesce(live_seconds * (SELECT usd_per_second FROM rates), 0) AS cost_usd "
        f"FROM subscribed FULL JOIN used USING (user_id) WHERE {' AND '.join(clauses)}) ",
        [*rate_params, *used_params, *[datetime.combine(following, time.min)] * 2, *params],
    )


def margin_per_plan(store: Store, f: Filters, pricing: Pricing, month: date | str) -> pd.DataFrame:
    """Per plan in ``month``: subscription revenue (price x subscribers) minus the Tavus cost
    of those subscribers' live minutes, every plan listed, cheapest first.

    Subscribers: users whose active subscription started before the month ended.
    Columns: plan_id, plan_name, price_usd, subscribers, revenue_usd, live_minutes,
    tavus_cost_usd, margin_usd.
    """
    cur = store.cursor()
    ctes, params = _month_users_sql(cur, f, pricing, month)
    plans_where = ""
    if f.plan_ids:
        plans_where = f"WHERE p.plan_id IN ({', '.join('?' * len(f.plan_ids))})"
    return frame_of(
        cur,
        ctes + ", per_plan AS (SELECT plan_id, count(*) AS subscribers, "
        "sum(paid_usd) AS revenue, sum(live_seconds) AS live_seconds, sum(cost_usd) AS cost "
        "FROM users_month WHERE subscribed GROUP BY plan_id) "
        "SELECT p.plan_id, p.name AS plan_name, CAST(p.price_usd AS DOUBLE) AS price_usd, "
        "coalesce(m.subscribers, 0) AS subscribers, "
        "round(coalesce(m.revenue, 0), 2) AS revenue_usd, "
        "round(coalesce(m.live_seconds, 0) / 60, 2) AS live_minutes, "
        "round(coalesce(m.cost, 0), 2) AS tavus_cost_usd, "
        "round(coalesce(m.revenue, 0) - coalesce(m.cost, 0), 2) AS margin_usd "
        f"FROM plans p LEFT JOIN per_plan m USING (plan_id) {plans_where} "
        "ORDER BY p.price_usd, p.plan_id",
        [*params, *f.plan_ids],
    )


def users_costing_more(
    store: Store,
    f: Filters,
    pricing: Pricing,
    month: date | str,
    top_n: int = DEFAULT_TOP_USERS,
) -> pd.DataFrame:
    """The ``top_n`` users whose live minutes in ``month`` cost more than they paid for it,
    largest loss first (ties by user id).

    Columns: user_id, plan_id (current plan), paid_usd, live_minutes, tavus_cost_usd, loss_usd.
    """
    check_positive("top_n", top_n)
    cur = store.cursor()
    ctes, params = _month_users_sql(cur, f, pricing, month)
    return frame_of(
        cur,
        ctes + "SELECT user_id, plan_id, paid_usd, round(live_seconds / 60, 2) AS live_minutes, "
        "round(cost_usd, 2) AS tavus_cost_usd, round(cost_usd - paid_usd, 2) AS loss_usd "
        "FROM users_month WHERE cost_usd > paid_usd "
        "ORDER BY cost_usd - paid_usd DESC, user_id LIMIT ?",
        [*params, top_n],
    )
