"""Where rows come from (daily rollups for settled days, raw tables for the rest) and keeping
the rollups current. See the package docstring for why rollups exist."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

import duckdb

from awaknow.analytics.engagement import refresh_engagement_rollups
from awaknow.analytics.filters import ERROR_SHUTDOWN_GROUPS, Filters, covered_until, where_sql
from awaknow.sessions import TAVUS_STATUS_ERROR_KIND, month_start
from awaknow.store import Store, one_row, utcnow

# A session's rows stop changing within this many days of its start: it ends within minutes
# (the reaper), and its Tavus events are polled for at most a day after it ended.
SETTLE_DAYS = 2


USAGE_COLUMNS = "usage_date, persona_id, session_type, mode, plan_id, seconds_used"
SESSION_COLUMNS = "persona_id, session_type, mode, plan_id, status, shutdown_reason, error_kind"


def usage_rows(cur: duckdb.DuckDBPyConnection, f: Filters) -> tuple[str, list[Any]]:
    """A subquery of billed sessions matching ``f``, ``sessions`` of them per row.

    Columns: usage_date, persona_id, session_type, mode, plan_id, seconds_used, sessions.
    """
    where, params = where_sql(f, "usage")
    raw = f"SELECT {USAGE_COLUMNS}, 1 AS sessions FROM tavus_usage WHERE {where}"
    until = covered_until(cur, f)
    if until is None:
        return raw, params
    return (
        f"SELECT {USAGE_COLUMNS}, sessions FROM rollup_usage_daily "
        f"WHERE usage_date < ? AND {where} UNION ALL {raw} AND usage_date >= ?",
        [until, *params, *params, until],
    )


def _next_month(day: date) -> date:
    return month_start(day + timedelta(days=32 - day.day))


def _per_user_days(cur: duckdb.DuckDBPyConnection, f: Filters) -> tuple[date, date] | None:
    """The days ``[first, cut)`` the per-user monthly rollups answer for ``f``, or None.

    Only when ``f`` narrows nothing but the dates: whole months inside them, up to the
    watermark (whose own month the rollups cover up to it).
    """
    if f.persona_ids or f.session_types or f.modes or f.plan_ids or f.user_ids:
        return None
    until = covered_until(cur, f)
    if until is None:
        return None
    start = f.start or date.min
    first = start if start.day == 1 else _next_month(start)
    if f.end is None or until <= f.end + timedelta(days=1):
        cut = until
    else:
        cut = month_start(f.end + timedelta(days=1))
    return (first, cut) if first < cut else None


def user_usage_rows(cur: duckdb.DuckDBPyConnection, f: Filters) -> tuple[str, list[Any]]:
    """A subquery of billed usage matching ``f`` per user: user_id, seconds_used, sessions.

    The days ``_per_user_days`` allows come from ``rollup_user_monthly``, the others raw.
    """
    where, params = where_sql(f, "usage")
    raw = f"SELECT user_id, seconds_used, 1 AS sessions FROM tavus_usage WHERE {where}"
    days = _per_user_days(cur, f)
    if days is None:
        return raw, params
    first, cut = days
    return (
        "SELECT user_id, seconds_used, sessions FROM rollup_user_monthly "
        f"WHERE month >= ? AND month < ? UNION ALL {raw} "
        "AND NOT (usage_date >= ? AND usage_date < ?)",
        [first, cut, *params, first, cut],
    )


def user_month_rows(cur: duckdb.DuckDBPyConnection, f: Filters) -> tuple[str, list[Any]]:
    """A subquery of billed usage matching ``f`` per user and month: month (its first day),
    user_id, live_seconds (the seconds that cost money), seconds_used, sessions.

    The days ``_per_user_days`` allows come from ``rollup_user_monthly``, the others raw.
    """
    where, params = where_sql(f, "usage")
    raw = (
        "SELECT CAST(date_trunc('month', usage_date) AS DATE) AS month, user_id, "
        "CASE WHEN mode = 'live' THEN seconds_used ELSE 0 END AS live_seconds, seconds_used, "
        f"1 AS sessions FROM tavus_usage WHERE {where}"
    )
    days = _per_user_days(cur, f)
    if days is None:
        return raw, params
    first, cut = days
    return (
        "SELECT month, user_id, live_seconds, seconds_used, sessions FROM rollup_user_monthly "
        f"WHERE month >= ? AND month < ? UNION ALL {raw} "
        "AND NOT (usage_date >= ? AND usage_date < ?)",
        [first, cut, *params, first, cut],
    )


def user_session_rows(cur: duckdb.DuckDBPyConnection, f: Filters) -> tuple[str, list[Any]]:
    """A subquery of sessions (any status) matching ``f`` per user: user_id, sessions.

    The days ``_per_user_days`` allows come from ``rollup_user_sessions_monthly``.
    """
    where, params = where_sql(f, "sessions")
    raw = f"SELECT user_id, 1 AS sessions FROM sessions WHERE {where}"
    days = _per_user_days(cur, f)
    if days is None:
        return raw, params
    first, cut = days
    return (
        "SELECT user_id, sessions FROM rollup_user_sessions_monthly "
        f"WHERE month >= ? AND month < ? UNION ALL {raw} "
        "AND NOT (created_at >= ? AND created_at < ?)",
        [first, cut, *params, datetime.combine(first, time.min), datetime.combine(cut, time.min)],
    )


def session_rows(cur: duckdb.DuckDBPyConnection, f: Filters) -> tuple[str, list[Any]]:
    """A subquery of sessions (any status) matching ``f``, ``sessions`` of them per row.

    Columns: day, persona_id, session_type, mode, plan_id, status, shutdown_reason,
    error_kind, sessions.
    """
    where, params = where_sql(f, "sessions")
    raw = (
        f"SELECT CAST(created_at AS DATE) AS day, {SESSION_COLUMNS}, 1 AS sessions "
        f"FROM sessions WHERE {where}"
    )
    until = covered_until(cur, f)
    if until is None:
        return raw, params
    day_where, day_params = where_sql(f, "session_days")
    return (
        f"SELECT day, {SESSION_COLUMNS}, sessions FROM rollup_sessions_daily "
        f"WHERE day < ? AND {day_where} UNION ALL {raw} AND created_at >= ?",
        [until, *day_params, *params, datetime.combine(until, time.min)],
    )


_ERROR_GROUPS_SQL = ", ".join(f"'{group}'" for group in ERROR_SHUTDOWN_GROUPS)


def classified_sql(rows: str) -> str:
    """CTEs ending in ``classified``: sessions per (status, reason, error) with its outcome.

    The few distinct combinations are counted first and only they go through the reason
    macro, so classifying costs nothing per row. ``outcome`` is NULL while a session runs.
    """
    return f"""
    WITH ended AS (
        SELECT status, shutdown_reason, error_kind, sum(sessions) AS sessions
        FROM ({rows}) GROUP BY ALL
    ),
    classified AS (
        SELECT *, shutdown_reason_group(shutdown_reason) AS reason_group,
            CASE WHEN status = 'failed'
                      OR shutdown_reason_group(shutdown_reason) IN ({_ERROR_GROUPS_SQL})
                      OR error_kind = '{TAVUS_STATUS_ERROR_KIND}'
                 THEN 'failure'
                 WHEN status = 'completed' THEN 'success' END AS outcome
        FROM ended
    )
    """


def refresh_rollups(
    target: Store | duckdb.DuckDBPyConnection,
    *,
    today: date | None = None,
    full: bool = False,
) -> date:
    """Recompute the days that may have changed and move the rollups' watermark; idempotent.

    The rollups then cover every day before ``today - SETTLE_DAYS`` (default today: UTC),
    and never a day with a session still running, whose rows will change. Each refresh
    recomputes the last ``SETTLE_DAYS`` it covered before, in case a late event changed them;
    ``full`` recomputes everything (after anything rewrote older sessions, e.g. the seed).
    Pass a Store to run in its own transaction, or a cursor inside the caller's. Returns
    the new watermark.
    """
    if isinstance(target, Store):
        with target.transaction() as cur:
            return refresh_rollups(cur, today=today, full=full)
    cur = target
    until = (today or utcnow().date()) - timedelta(days=SETTLE_DAYS)
    running = cur.execute(
        "SELECT CAST(min(s.created_at) AS DATE) FROM active_sessions a "
        "JOIN sessions s USING (session_id)"
    ).fetchone()
    if running and running[0] is not None:
        until = min(until, running[0])
    (previous,) = one_row(cur, "SELECT max(covered_until) FROM rollup_state")
    since = (
        date.min if full or previous is None else min(previous, until) - timedelta(days=SETTLE_DAYS)
    )
    first_month = month_start(since)
    cur.execute("DELETE FROM rollup_user_monthly WHERE month >= ?", [first_month])
    cur.execute(
        "INSERT INTO rollup_user_monthly (month, user_id, seconds_used, sessions, live_seconds) "
        "SELECT CAST(date_trunc('month', usage_date) AS DATE), user_id, sum(seconds_used), "
        "count(*), coalesce(sum(seconds_used) FILTER (mode = 'live'), 0) FROM tavus_usage "
        "WHERE usage_date >= ? AND usage_date < ? GROUP BY ALL",
        [first_month, until],
    )
    cur.execute("DELETE FROM rollup_user_sessions_monthly WHERE month >= ?", [first_month])
    cur.execute(
        "INSERT INTO rollup_user_sessions_monthly (month, user_id, sessions) "
        "SELECT CAST(date_trunc('month', created_at) AS DATE), user_id, count(*) FROM sessions "
        "WHERE created_at >= ? AND created_at < ? GROUP BY ALL",
        [datetime.combine(first_month, time.min), datetime.combine(until, time.min)],
    )
    cur.execute("DELETE FROM rollup_sessions_daily WHERE day >= ?", [since])
    cur.execute("DELETE FROM rollup_usage_daily WHERE usage_date >= ?", [since])
    cur.execute(
        f"INSERT INTO rollup_sessions_daily (day, {SESSION_COLUMNS}, sessions) "
        f"SELECT CAST(created_at AS DATE), {SESSION_COLUMNS}, count(*) FROM sessions "
        "WHERE created_at >= ? AND created_at < ? GROUP BY ALL",
        [datetime.combine(since, time.min), datetime.combine(until, time.min)],
    )
    cur.execute(
        f"INSERT INTO rollup_usage_daily ({USAGE_COLUMNS}, sessions) "
        f"SELECT {USAGE_COLUMNS}, count(*) FROM tavus_usage "
        "WHERE usage_date >= ? AND usage_date < ? GROUP BY ALL",
        [since, until],
    )
    refresh_engagement_rollups(cur, since, until)
    cur.execute("DELETE FROM rollup_state")
    cur.execute(
        "INSERT INTO rollup_state (covered_until, refreshed_at) VALUES (?, ?)", [until, utcnow()]
    )
    return until
