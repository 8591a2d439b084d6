"""Headline figures and the charts' queries: minutes, sessions and how they ended."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import pandas as pd

from awaknow.analytics.filters import (
    DEFAULT_BIN_MINUTES,
    DEFAULT_TOP_USERS,
    DEFAULT_USER_MATCHES,
    GRAINS,
    NO_FILTERS,
    NOT_REPORTED,
    P90,
    Filters,
    check_positive,
    frame_of,
    like_pattern,
    to_minutes,
)
from awaknow.analytics.rollups import (
    classified_sql,
    session_rows,
    usage_rows,
    user_session_rows,
    user_usage_rows,
)
from awaknow.errors import ValidationError
from awaknow.sessions import TAVUS_STATUS_ERROR_KIND
from awaknow.store import Store, one_row

# --- options ----------------------------------------------------------------------------------


def filter_options(store: Store) -> dict[str, list[str]]:
    """The values each filter can take: ``personas``, ``session_types``, ``modes`` (seen in
    sessions) and ``plans`` (every plan, cheapest first), sorted.

    Users are not listed: there can be tens of thousands, so the picker asks ``find_users``.
    """
    cur = store.cursor()
    rows, params = session_rows(cur, NO_FILTERS)
    seen = cur.execute(
        "SELECT list(DISTINCT persona_id ORDER BY persona_id), "
        "list(DISTINCT session_type ORDER BY session_type), list(DISTINCT mode ORDER BY mode) "
        f"FROM ({rows})",
        params,
    ).fetchone()
    plans = cur.execute("SELECT plan_id FROM plans ORDER BY price_usd, plan_id").fetchall()
    personas, session_types, modes = (list(values or []) for values in seen or ((), (), ()))
    return {
        "personas": personas,
        "session_types": session_types,
        "modes": modes,
        "plans": [row[0] for row in plans],
    }


def find_users(store: Store, text: str = "", limit: int = DEFAULT_USER_MATCHES) -> list[str]:
    """At most ``limit`` user ids containing ``text`` (any case, taken literally), sorted.

    The user picker asks this as someone types rather than receiving every user.
    """
    check_positive("limit", limit)
    rows = (
        store.cursor()
        .execute(
            "SELECT user_id FROM users WHERE user_id ILIKE ? ESCAPE '\\' ORDER BY user_id LIMIT ?",
            [like_pattern(text.strip()), limit],
        )
        .fetchall()
    )
    return [row[0] for row in rows]


def date_bounds(store: Store) -> tuple[date, date] | None:
    """First and last day (UTC) with a session, or None while there are none."""
    row = (
        store.cursor()
        .execute(
            "SELECT CAST(min(created_at) AS DATE), CAST(max(created_at) AS DATE) FROM sessions"
        )
        .fetchone()
    )
    return (row[0], row[1]) if row and row[0] is not None else None


# --- headline figures -------------------------------------------------------------------------


def _billed_sql(rows: str) -> str:
    """Billed seconds (all, live, mock), billed sessions and the interpolated p90 seconds.

    The p90 is ``quantile_cont`` worked out from counts per exact duration, so it is the same
    whether the rows are raw or rolled up: the values at ranks floor(p) and ceil(p) of
    p = 0.9 * (n - 1), interpolated.
    """
    return f"""
    WITH hist AS (
        SELECT seconds_used, mode, sum(sessions) AS n FROM ({rows}) GROUP BY ALL
    ),
    per_second AS (SELECT seconds_used, sum(n) AS n FROM hist GROUP BY seconds_used),
    ranked AS (
        SELECT seconds_used, sum(n) OVER (ORDER BY seconds_used) AS upto FROM per_second
    ),
    position AS (SELECT ? * (sum(n) - 1) AS p FROM per_second),
    bounds AS (
        SELECT min(seconds_used) FILTER (upto > floor(p)) AS lo,
            min(seconds_used) FILTER (upto > ceil(p)) AS hi, p - floor(p) AS fraction
        FROM ranked, position GROUP BY p
    )
    SELECT coalesce(sum(seconds_used * n), 0),
        coalesce(sum(seconds_used * n) FILTER (mode = 'live'), 0),
        coalesce(sum(seconds_used * n) FILTER (mode = 'mock'), 0),
        coalesce(sum(n), 0),
        (SELECT lo + (hi - lo) * fraction FROM bounds)
    FROM hist
    """


@dataclass(frozen=True)
class Kpis:
    """The headline numbers for one filter set.

    ``sessions`` counts every session: ``succeeded + failed + in_progress`` (the last still
    starting or active). ``success_rate`` is ``succeeded / (succeeded + failed)``, None without
    finished sessions. ``minutes``, ``live_minutes`` and ``mock_minutes`` are billed minutes;
    ``avg_minutes`` and ``p90_minutes`` (interpolated 90th percentile) are billed minutes per
    billed session, None without one. ``active_users`` started at least one session.
    """

    sessions: int
    succeeded: int
    failed: int
    in_progress: int
    minutes: float
    live_minutes: float
    mock_minutes: float
    active_users: int
    success_rate: float | None
    avg_minutes: float | None
    p90_minutes: float | None


def kpis(store: Store, f: Filters = NO_FILTERS) -> Kpis:
    """The headline numbers for ``f`` (see ``Kpis``)."""
    cur = store.cursor()
    rows, params = session_rows(cur, f)
    sessions, succeeded, failed = one_row(
        cur,
        classified_sql(rows) + "SELECT coalesce(sum(sessions), 0), "
        "coalesce(sum(sessions) FILTER (outcome = 'success'), 0), "
        "coalesce(sum(sessions) FILTER (outcome = 'failure'), 0) FROM classified",
        params,
    )
    rows, params = user_session_rows(cur, f)
    (active_users,) = one_row(cur, f"SELECT count(DISTINCT user_id) FROM ({rows})", params)
    rows, params = usage_rows(cur, f)
    seconds, live, mock, billed, p90_seconds = one_row(cur, _billed_sql(rows), [*params, P90])
    sessions, succeeded, failed = int(sessions), int(succeeded), int(failed)
    return Kpis(
        sessions=sessions,
        succeeded=succeeded,
        failed=failed,
        in_progress=sessions - succeeded - failed,
        minutes=to_minutes(seconds),
        live_minutes=to_minutes(live),
        mock_minutes=to_minutes(mock),
        active_users=int(active_users),
        success_rate=succeeded / (succeeded + failed) if succeeded + failed else None,
        avg_minutes=to_minutes(seconds / billed) if billed else None,
        p90_minutes=None if p90_seconds is None else to_minutes(p90_seconds),
    )


# --- minutes ----------------------------------------------------------------------------------

_MINUTES = "round(sum(seconds_used * sessions) / 60, 2) AS minutes"
_SESSIONS = "CAST(sum(sessions) AS BIGINT) AS sessions"


def minutes_over_time(
    store: Store, f: Filters = NO_FILTERS, grain: Literal["day", "week"] = "day"
) -> pd.DataFrame:
    """Billed minutes per day or per ISO week (``period`` = its Monday), split by mode.

    Columns: period, mode, minutes, sessions (billed sessions). Periods without usage are
    absent rather than zero.
    """
    if grain not in GRAINS:
        raise ValidationError(f"Grain {grain!r} is not known: use day or week")
    return _minutes_by(
        store, f, "CAST(date_trunc(?, usage_date) AS DATE) AS period", [GRAINS[grain]]
    )


def _minutes_by(
    store: Store, f: Filters, column: str, column_params: list[Any] | None = None
) -> pd.DataFrame:
    """Billed minutes and sessions per value of ``column`` and mode, in that order.

    ``column`` is a constant name or ``expression AS name``; ``column_params`` fill its ``?``.
    """
    cur = store.cursor()
    rows, params = usage_rows(cur, f)
    return frame_of(
        cur,
        f"SELECT {column}, mode, {_MINUTES}, {_SESSIONS} FROM ({rows}) GROUP BY ALL ORDER BY 1, 2",
        [*(column_params or []), *params],
    )


def minutes_per_persona(store: Store, f: Filters = NO_FILTERS) -> pd.DataFrame:
    """Columns: persona_id, mode, minutes, sessions (billed)."""
    return _minutes_by(store, f, "persona_id")


def minutes_per_session_type(store: Store, f: Filters = NO_FILTERS) -> pd.DataFrame:
    """Columns: session_type, mode, minutes, sessions (billed)."""
    return _minutes_by(store, f, "session_type")


def minutes_per_user(
    store: Store, f: Filters = NO_FILTERS, top_n: int = DEFAULT_TOP_USERS
) -> pd.DataFrame:
    """The ``top_n`` users by billed minutes, most first (ties by user id).

    Columns: user_id, plan_id (the user's current plan), minutes, sessions (billed).
    """
    check_positive("top_n", top_n)
    cur = store.cursor()
    rows, params = user_usage_rows(cur, f)
    return frame_of(
        cur,
        "WITH top AS (SELECT user_id, sum(seconds_used) AS seconds, "
        f"CAST(sum(sessions) AS BIGINT) AS sessions FROM ({rows}) GROUP BY user_id "
        "ORDER BY seconds DESC, user_id LIMIT ?) "
        "SELECT t.user_id, s.plan_id, round(t.seconds / 60, 2) AS minutes, t.sessions "
        "FROM top t LEFT JOIN user_subscriptions s USING (user_id) "
        "ORDER BY t.seconds DESC, t.user_id",
        [*params, top_n],
    )


def duration_distribution(
    store: Store, f: Filters = NO_FILTERS, bin_minutes: float = DEFAULT_BIN_MINUTES
) -> pd.DataFrame:
    """Histogram of billed session durations, empty buckets included.

    Columns: bucket (lower bound in minutes; a bucket holds durations from it to the next
    bound), sessions.
    """
    if not (isinstance(bin_minutes, int | float) and math.isfinite(bin_minutes)):
        raise ValidationError(f"Bucket width {bin_minutes!r} is not a number of minutes")
    if bin_minutes * 60 < 1:
        raise ValidationError(f"Bucket width {bin_minutes} min is under one second: widen it")
    cur = store.cursor()
    rows, params = usage_rows(cur, f)
    return frame_of(
        cur,
        "WITH b AS (SELECT CAST(floor(seconds_used / ?) AS BIGINT) AS k, sum(sessions) AS n "
        f"FROM ({rows}) GROUP BY k) "
        "SELECT round(r.k * ?, 6) AS bucket, CAST(coalesce(b.n, 0) AS BIGINT) AS sessions "
        "FROM range(0, coalesce((SELECT max(k) + 1 FROM b), 0)) r(k) LEFT JOIN b USING (k) "
        "ORDER BY r.k",
        [bin_minutes * 60, *params, float(bin_minutes)],
    )


# --- sessions and outcomes --------------------------------------------------------------------


def sessions_per_day_by_type(store: Store, f: Filters = NO_FILTERS) -> pd.DataFrame:
    """Sessions started per UTC day and type, whatever their status.

    Columns: day, session_type, sessions.
    """
    cur = store.cursor()
    rows, params = session_rows(cur, f)
    return frame_of(
        cur,
        f"SELECT CAST(day AS DATE) AS day, session_type, {_SESSIONS} FROM ({rows}) "
        "GROUP BY ALL ORDER BY day, session_type",
        params,
    )


def _from_classified(store: Store, f: Filters, select: str, extra: list[Any]) -> pd.DataFrame:
    cur = store.cursor()
    rows, params = session_rows(cur, f)
    return frame_of(cur, classified_sql(rows) + select, [*params, *extra])


def outcomes(store: Store, f: Filters = NO_FILTERS) -> pd.DataFrame:
    """Finished sessions by outcome. Columns: outcome (success, failure), sessions."""
    return _from_classified(
        store,
        f,
        f"SELECT outcome, {_SESSIONS} FROM classified WHERE outcome IS NOT NULL "
        "GROUP BY outcome ORDER BY outcome DESC",
        [],
    )


def failures(store: Store, f: Filters = NO_FILTERS) -> pd.DataFrame:
    """Failed sessions by kind, most first: the error class of a start that failed,
    ``TavusStatusError`` for a call Tavus reported in status ``error``, or the error shutdown
    reason of a call that failed otherwise. Columns: failure_kind, sessions."""
    return _from_classified(
        store,
        f,
        "SELECT CASE WHEN status = 'failed' THEN coalesce(error_kind, 'unknown error') "
        f"WHEN error_kind = '{TAVUS_STATUS_ERROR_KIND}' THEN error_kind "
        f"ELSE reason_group END AS failure_kind, {_SESSIONS} FROM classified "
        "WHERE outcome = 'failure' GROUP BY ALL ORDER BY sessions DESC, failure_kind",
        [],
    )


def shutdown_reasons(store: Store, f: Filters = NO_FILTERS) -> pd.DataFrame:
    """How completed calls ended (grouped reason, NULL as 'not reported'), most first.

    Failed starts have no call and so no reason; they are in ``failures``.
    Columns: shutdown_reason, sessions.
    """
    return _from_classified(
        store,
        f,
        f"SELECT coalesce(reason_group, ?) AS shutdown_reason, {_SESSIONS} FROM classified "
        "WHERE status = 'completed' GROUP BY ALL ORDER BY sessions DESC, shutdown_reason",
        [NOT_REPORTED],
    )
