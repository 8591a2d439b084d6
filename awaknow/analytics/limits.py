"""Usage against plan limits, and the one rule that puts a share of the plan in a band."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from awaknow.analytics.filters import NO_FILTERS, Filters, check_positive, frame_of
from awaknow.analytics.rollups import user_usage_rows
from awaknow.errors import ValidationError, shorten
from awaknow.sessions import month_start
from awaknow.store import Store

AMBER_ABOVE = 0.5  # fraction of the plan's minutes used: amber above this
RED_ABOVE = 0.8  # ... and red above this
RUNNING_LOW_MINUTES = 5  # fewer minutes left than this is "running low"
BANDS = ("ok", "amber", "red")
# The one threshold rule, highest first: a share of the plan above ``above`` is in ``band``
# (below every threshold: "ok"). ``usage_band`` and the SQL's band column both read it.
_BANDS_ABOVE = (("red", RED_ABOVE), ("amber", AMBER_ABOVE))
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
# Usage months people can mean; outside this, date arithmetic (next month) would overflow.
MIN_YEAR = 2000
MAX_YEAR = 2999


def parse_month(month: date | str) -> date:
    """The first day of a month given as a date (any day of it) or as 'YYYY-MM'."""
    if isinstance(month, datetime):
        return month_start(month.date())
    if isinstance(month, date):
        return month_start(month)
    found = _MONTH.match(month.strip()) if isinstance(month, str) else None
    if found is None or not 1 <= int(found.group(2)) <= 12:
        raise ValidationError(f"Month {shorten(month)} is not valid: use YYYY-MM, e.g. 2026-03")
    year = int(found.group(1))
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValidationError(
            f"Month {shorten(month)} is out of range: "
            f"use a month from {MIN_YEAR}-01 to {MAX_YEAR}-12"
        )
    return date(year, int(found.group(2)), 1)


def usage_band(fraction_used: float | None) -> str:
    """The band of a share of the plan's minutes; None (a limit of zero) is "red"."""
    if fraction_used is None:
        return "red"
    for band, above in _BANDS_ABOVE:
        if fraction_used > above:
            return band
    return "ok"


def _band_sql(fraction: str) -> str:
    """``usage_band`` as a SQL CASE over the column ``fraction``; one ``?`` per threshold."""
    steps = " ".join(f"WHEN {fraction} > ? THEN '{band}'" for band, _ in _BANDS_ABOVE)
    return f"CASE WHEN {fraction} IS NULL THEN 'red' {steps} ELSE 'ok' END"


def _month_usage_sql(used_rows: str, users_where: str) -> str:
    """Every user matching ``users_where`` with this month's billed usage against the limit.

    ``used_rows`` is the month's ``user_usage_rows``. Parameters: its own, those of
    ``users_where``, the band thresholds, running-low seconds.
    """
    return f"""
    WITH used AS (
        SELECT user_id, sum(seconds_used) AS seconds, CAST(sum(sessions) AS BIGINT) AS sessions
        FROM ({used_rows}) GROUP BY user_id
    ),
    rows AS (
        SELECT u.user_id, u.display_name, s.plan_id, p.name AS plan_name,
            coalesce(used.seconds, 0) AS seconds, s.tavus_minutes_limit AS minutes_limit,
            coalesce(used.sessions, 0) AS sessions
        FROM users u
        LEFT JOIN user_subscriptions s ON s.user_id = u.user_id AND s.status = 'active'
        LEFT JOIN plans p ON p.plan_id = s.plan_id
        LEFT JOIN used ON used.user_id = u.user_id
        WHERE {users_where}
    ),
    figures AS (
        SELECT *, round(seconds / 60, 2) AS minutes_used,
            seconds / (60 * nullif(minutes_limit, 0)) AS fraction_used
        FROM rows
    )
    SELECT user_id, display_name, plan_id, plan_name, minutes_used, minutes_limit,
        fraction_used,
        CASE WHEN minutes_limit IS NOT NULL THEN {_band_sql("fraction_used")} END AS band,
        CASE WHEN minutes_limit IS NOT NULL THEN minutes_limit * 60 - seconds < ? END
            AS running_low,
        sessions
    FROM figures
    """


def _month_usage(
    store: Store,
    month: date | str,
    users_where: str = "true",
    users_params: list[Any] | None = None,
    order: str = "user_id",
    limit: int | None = None,
) -> pd.DataFrame:
    first = parse_month(month)
    following = month_start(first + timedelta(days=32))
    cur = store.cursor()
    used_rows, used_params = user_usage_rows(
        cur, Filters(start=first, end=following - timedelta(days=1))
    )
    params = [
        *used_params,
        *(users_params or []),
        *(above for _, above in _BANDS_ABOVE),
        RUNNING_LOW_MINUTES * 60,
    ]
    sql = _month_usage_sql(used_rows, users_where) + f" ORDER BY {order}"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return frame_of(cur, sql, params)


def usage_vs_limit(
    store: Store, month: date | str, f: Filters | None = None, top_n: int | None = None
) -> pd.DataFrame:
    """Each subscribed user's billed minutes in ``month`` against the plan's monthly limit.

    ``month`` is a date (any day of the month) or 'YYYY-MM'. Only ``f.plan_ids`` (the current
    plan) and ``f.user_ids`` narrow it: the limit counts every minute of the month, so the
    date, persona, type and mode filters do not apply. Users without usage are included.
    Sorted by fraction used, highest first; ``top_n`` keeps that many.

    Columns: user_id, plan_id, minutes_used, minutes_limit, fraction_used, band ('ok' up to
    50 %, 'amber' above 50 %, 'red' above 80 %), running_low (under 5 minutes left).
    """
    if top_n is not None:
        check_positive("top_n", top_n)
    f = f or NO_FILTERS
    clauses: list[str] = ["s.plan_id IS NOT NULL"]
    params: list[Any] = []
    for column, values in (("s.plan_id", f.plan_ids), ("u.user_id", f.user_ids)):
        if values:
            clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
    frame = _month_usage(
        store,
        month,
        " AND ".join(clauses),
        params,
        order="fraction_used DESC NULLS FIRST, user_id",
        limit=top_n,
    )
    return frame[
        [
            "user_id",
            "plan_id",
            "minutes_used",
            "minutes_limit",
            "fraction_used",
            "band",
            "running_low",
        ]
    ]


def users_overview(store: Store, month: date | str) -> pd.DataFrame:
    """Every user with plan and ``month``'s usage (a date in it, or 'YYYY-MM'), by user id.

    Columns: user_id, display_name, plan_id, plan_name, minutes_used, minutes_limit,
    fraction_used, band, running_low, sessions (billed sessions of the month). The plan
    columns are empty for a user without an active subscription.
    """
    return _month_usage(store, month)


def monthly_usage(store: Store, month: str) -> pd.DataFrame:
    """One row per user for the month 'YYYY-MM', zero usage included (the CLI ``usage``).

    Columns: user_id, plan_id, minutes_used, minutes_limit, sessions (billed in the month).
    """
    if not isinstance(month, str):
        raise ValidationError(f"Month {shorten(month)} is not valid: use YYYY-MM, e.g. 2026-03")
    frame = _month_usage(store, month)
    return frame[["user_id", "plan_id", "minutes_used", "minutes_limit", "sessions"]]
