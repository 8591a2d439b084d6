"""Usage analytics: every analytics query, aggregated in DuckDB, returned as small frames.

Pages, the CLI and the benchmark call these functions and never write SQL themselves, so a
figure means the same thing everywhere. Each function takes the ``Store`` first and (mostly) a
``Filters``; every value a person picked reaches DuckDB as a bound parameter.

Definitions (the only place they are made):

- A *session* is a row of ``sessions``. Counts of sessions (``kpis()["sessions"]``,
  ``sessions_per_day_by_type``, ``sessions_table``) include the ones still starting or
  active; outcomes only look at *finished* sessions (status completed or failed).
- *Failure*: status ``failed`` (the conversation was never created), or a completed session
  whose Tavus shutdown reason is an error (``ERROR_SHUTDOWN_GROUPS``). *Success*: every other
  completed session. Shutdown reasons are compared through the ``shutdown_reason_group``
  macro (store migration 4, the same rule as ``events.normalize_shutdown_reason``), so
  ``participant_left_timeout`` and ``participant_left_timeout reached`` are one reason and
  every ``internal error occurred at step ...`` is ``internal_error``.
- *Minutes* are billed minutes: ``tavus_usage.seconds_used / 60`` of billed (completed)
  sessions, summed as whole seconds and rounded to 2 decimals only at the end. Live and mock
  minutes are both billed rows; ``mode`` tells them apart and every minutes frame has it.
- *Dates* are UTC days of the session's start: ``tavus_usage.usage_date`` for minutes,
  ``sessions.created_at`` for session counts (the two differ only for a session created in
  the last seconds before midnight). ``Filters.start``/``end`` are inclusive.
- *Usage against the plan* is per calendar month, like the limit itself: every billed minute
  of the month counts, whatever its mode, persona or session type.

Both tables carry every filter column (``tavus_usage`` copies them from the session when it
bills), so minutes never need a join to ``sessions``.

Rollups. Scanning ten million sessions for every chart is too slow for the analytics page, so
once ``refresh_rollups`` has run (store migration 5 holds its tables), settled days are read
from two small daily rollups (sessions by day, filter dimensions and how they ended; billed
sessions by day, dimensions and exact billed seconds, which keeps sums, the p90 and any
histogram exact) and only the days from ``rollup_state.covered_until`` on are read raw.
``refresh_rollups`` recomputes the days that may still change and moves that watermark;
nothing on the write path has to know about rollups. A filter on users always reads raw rows
(the rollups have no user).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

import duckdb
import pandas as pd

from awaknow.errors import ValidationError
from awaknow.sessions import month_start
from awaknow.store import Store, one_row, utcnow

# Shutdown reason groups (after ``shutdown_reason_group``) that mean the call went wrong.
ERROR_SHUTDOWN_GROUPS = (
    "bot_could_not_join_meeting_it_was_probably_ended",
    "daily_room_has_been_deleted",
    "exception_encountered_during_conversation_startup",
    "internal_error",
)
NOT_REPORTED = "not reported"
AMBER_ABOVE = 0.5  # fraction of the plan's minutes used: amber above this
RED_ABOVE = 0.8  # ... and red above this
RUNNING_LOW_MINUTES = 5  # fewer minutes left than this is "running low"
BANDS = ("ok", "amber", "red")
GRAINS = {"day": "day", "week": "week"}  # weeks start on Monday (ISO)
P90 = 0.9
DEFAULT_TOP_USERS = 20
DEFAULT_BIN_MINUTES = 0.5
# A session's rows stop changing within this many days of its start: it ends within minutes
# (the reaper), and its Tavus events are polled for at most a day after it ended.
SETTLE_DAYS = 2
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class Filters:
    """What the analyst picked; an empty tuple or None means "all".

    Hashable (lists are turned into sorted tuples), so pages can cache results by it.
    """

    start: date | None = None
    end: date | None = None
    persona_ids: tuple[str, ...] = ()
    session_types: tuple[str, ...] = ()
    modes: tuple[str, ...] = ()
    plan_ids: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, list | set | frozenset):
                object.__setattr__(self, field.name, tuple(sorted(value)))
        for name in ("start", "end"):
            value = getattr(self, name)
            if isinstance(value, datetime):
                object.__setattr__(self, name, value.date())
        if self.start and self.end and self.start > self.end:
            raise ValidationError(
                f"The start date {self.start} is after the end date {self.end}: swap them"
            )


NO_FILTERS = Filters()
_LIST_FILTERS = (
    ("persona_id", "persona_ids"),
    ("session_type", "session_types"),
    ("mode", "modes"),
    ("plan_id", "plan_ids"),
    ("user_id", "user_ids"),
)
_DATE_COLUMNS = {"usage": "usage_date", "session_days": "day"}


def _where(
    f: Filters, table: Literal["usage", "sessions", "session_days"]
) -> tuple[str, list[Any]]:
    """SQL conditions and their parameters for ``f`` on one kind of row.

    ``usage`` rows have ``usage_date``, ``session_days`` rows (the rollup) ``day``; raw
    ``sessions`` are compared as a timestamp range rather than cast to DATE, so DuckDB can
    skip whole row groups by their min/max.
    """
    clauses: list[str] = []
    params: list[Any] = []
    if table == "sessions":
        if f.start:
            clauses.append("created_at >= ?")
            params.append(datetime.combine(f.start, time.min))
        if f.end:
            clauses.append("created_at < ?")
            params.append(datetime.combine(f.end + timedelta(days=1), time.min))
    else:
        column = _DATE_COLUMNS[table]
        if f.start:
            clauses.append(f"{column} >= ?")
            params.append(f.start)
        if f.end:
            clauses.append(f"{column} <= ?")
            params.append(f.end)
    for column, name in _LIST_FILTERS:
        values = getattr(f, name)
        if values:
            clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
    return " AND ".join(clauses) or "true", params


# --- where rows come from: rollups for settled days, raw tables for the rest -----------------


def _covered_until(cur: duckdb.DuckDBPyConnection, f: Filters) -> date | None:
    """The first day the rollups do not cover, or None when the query must read raw rows."""
    if f.user_ids:
        return None
    row = cur.execute("SELECT max(covered_until) FROM rollup_state").fetchone()
    return row[0] if row else None


_USAGE_COLUMNS = "usage_date, persona_id, session_type, mode, plan_id, seconds_used"
_SESSION_COLUMNS = "persona_id, session_type, mode, plan_id, status, shutdown_reason, error_kind"


def _usage_rows(cur: duckdb.DuckDBPyConnection, f: Filters) -> tuple[str, list[Any]]:
    """A subquery of billed sessions matching ``f``, ``sessions`` of them per row.

    Columns: usage_date, persona_id, session_type, mode, plan_id, seconds_used, sessions.
    """
    where, params = _where(f, "usage")
    raw = f"SELECT {_USAGE_COLUMNS}, 1 AS sessions FROM tavus_usage WHERE {where}"
    until = _covered_until(cur, f)
    if until is None:
        return raw, params
    return (
        f"SELECT {_USAGE_COLUMNS}, sessions FROM rollup_usage_daily "
        f"WHERE usage_date < ? AND {where} UNION ALL {raw} AND usage_date >= ?",
        [until, *params, *params, until],
    )


def _session_rows(cur: duckdb.DuckDBPyConnection, f: Filters) -> tuple[str, list[Any]]:
    """A subquery of sessions (any status) matching ``f``, ``sessions`` of them per row.

    Columns: day, persona_id, session_type, mode, plan_id, status, shutdown_reason,
    error_kind, sessions.
    """
    where, params = _where(f, "sessions")
    raw = (
        f"SELECT CAST(created_at AS DATE) AS day, {_SESSION_COLUMNS}, 1 AS sessions "
        f"FROM sessions WHERE {where}"
    )
    until = _covered_until(cur, f)
    if until is None:
        return raw, params
    day_where, day_params = _where(f, "session_days")
    return (
        f"SELECT day, {_SESSION_COLUMNS}, sessions FROM rollup_sessions_daily "
        f"WHERE day < ? AND {day_where} UNION ALL {raw} AND created_at >= ?",
        [until, *day_params, *params, datetime.combine(until, time.min)],
    )


_ERROR_GROUPS_SQL = ", ".join(f"'{group}'" for group in ERROR_SHUTDOWN_GROUPS)


def _classified(rows: str) -> str:
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
                 THEN 'failure'
                 WHEN status = 'completed' THEN 'success' END AS outcome
        FROM ended
    )
    """


def _frame(cur: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> pd.DataFrame:
    return cur.execute(sql, params).df()


# --- keeping the rollups current --------------------------------------------------------------


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
    cur.execute("DELETE FROM rollup_sessions_daily WHERE day >= ?", [since])
    cur.execute("DELETE FROM rollup_usage_daily WHERE usage_date >= ?", [since])
    cur.execute(
        "INSERT INTO rollup_sessions_daily "
        f"SELECT CAST(created_at AS DATE), {_SESSION_COLUMNS}, count(*) FROM sessions "
        "WHERE created_at >= ? AND created_at < ? GROUP BY ALL",
        [datetime.combine(since, time.min), datetime.combine(until, time.min)],
    )
    cur.execute(
        f"INSERT INTO rollup_usage_daily SELECT {_USAGE_COLUMNS}, count(*) FROM tavus_usage "
        "WHERE usage_date >= ? AND usage_date < ? GROUP BY ALL",
        [since, until],
    )
    cur.execute("DELETE FROM rollup_state")
    cur.execute("INSERT INTO rollup_state VALUES (?, ?)", [until, utcnow()])
    return until


# --- options ----------------------------------------------------------------------------------


def filter_options(store: Store) -> dict[str, list[str]]:
    """The values each filter can take: ``personas``, ``session_types``, ``modes`` (seen in
    sessions), ``plans`` (every plan, cheapest first) and ``users`` (every user), sorted."""
    cur = store.cursor()
    rows, params = _session_rows(cur, NO_FILTERS)
    seen = cur.execute(
        "SELECT list(DISTINCT persona_id ORDER BY persona_id), "
        "list(DISTINCT session_type ORDER BY session_type), list(DISTINCT mode ORDER BY mode) "
        f"FROM ({rows})",
        params,
    ).fetchone()
    plans = cur.execute("SELECT plan_id FROM plans ORDER BY price_usd, plan_id").fetchall()
    users = cur.execute("SELECT user_id FROM users ORDER BY user_id").fetchall()
    personas, session_types, modes = (list(values or []) for values in seen or ((), (), ()))
    return {
        "personas": personas,
        "session_types": session_types,
        "modes": modes,
        "plans": [row[0] for row in plans],
        "users": [row[0] for row in users],
    }


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


def kpis(store: Store, f: Filters = NO_FILTERS) -> dict[str, Any]:
    """The headline numbers for ``f``.

    ``sessions`` counts every session (``in_progress`` of them still starting or active),
    ``completed`` the successes and ``failed`` the failures, so
    ``sessions == completed + failed + in_progress``; ``success_rate`` is
    ``completed / (completed + failed)`` (None without finished sessions). ``minutes``,
    ``live_minutes``, ``mock_minutes``, ``avg_minutes`` and ``p90_minutes`` (interpolated
    90th percentile) are billed minutes per billed session. ``active_users`` started at least
    one session.
    """
    cur = store.cursor()
    rows, params = _session_rows(cur, f)
    sessions, completed, failed = one_row(
        cur,
        _classified(rows) + "SELECT coalesce(sum(sessions), 0), "
        "coalesce(sum(sessions) FILTER (outcome = 'success'), 0), "
        "coalesce(sum(sessions) FILTER (outcome = 'failure'), 0) FROM classified",
        params,
    )
    where, params = _where(f, "sessions")
    (active_users,) = one_row(
        cur, f"SELECT count(DISTINCT user_id) FROM sessions WHERE {where}", params
    )
    rows, params = _usage_rows(cur, f)
    seconds, live, mock, billed, p90_seconds = one_row(cur, _billed_sql(rows), [*params, P90])
    sessions, completed, failed = int(sessions), int(completed), int(failed)
    return {
        "sessions": sessions,
        "completed": completed,
        "failed": failed,
        "in_progress": sessions - completed - failed,
        "minutes": _minutes(seconds),
        "live_minutes": _minutes(live),
        "mock_minutes": _minutes(mock),
        "active_users": int(active_users),
        "success_rate": completed / (completed + failed) if completed + failed else None,
        "avg_minutes": _minutes(seconds / billed) if billed else None,
        "p90_minutes": None if p90_seconds is None else _minutes(p90_seconds),
    }


def _minutes(seconds: float) -> float:
    return round(float(seconds) / 60, 2)


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
    rows, params = _usage_rows(cur, f)
    return _frame(
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
    _check_positive("top_n", top_n)
    where, params = _where(f, "usage")
    return _frame(
        store.cursor(),
        "WITH top AS (SELECT user_id, sum(seconds_used) AS seconds, count(*) AS sessions "
        f"FROM tavus_usage WHERE {where} GROUP BY user_id "
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
    rows, params = _usage_rows(cur, f)
    return _frame(
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
    rows, params = _session_rows(cur, f)
    return _frame(
        cur,
        f"SELECT CAST(day AS DATE) AS day, session_type, {_SESSIONS} FROM ({rows}) "
        "GROUP BY ALL ORDER BY day, session_type",
        params,
    )


def _from_classified(store: Store, f: Filters, select: str, extra: list[Any]) -> pd.DataFrame:
    cur = store.cursor()
    rows, params = _session_rows(cur, f)
    return _frame(cur, _classified(rows) + select, [*params, *extra])


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
    """Failed sessions by kind, most first: the error class of a start that failed, or the
    error shutdown reason of a call that did. Columns: failure_kind, sessions."""
    return _from_classified(
        store,
        f,
        "SELECT CASE WHEN status = 'failed' THEN coalesce(error_kind, 'unknown error') "
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


# --- usage against plan limits ----------------------------------------------------------------


def parse_month(month: date | str) -> date:
    """The first day of a month given as a date (any day of it) or as 'YYYY-MM'."""
    if isinstance(month, datetime):
        return month_start(month.date())
    if isinstance(month, date):
        return month_start(month)
    found = _MONTH.match(month.strip()) if isinstance(month, str) else None
    if found is None or not 1 <= int(found.group(2)) <= 12:
        raise ValidationError(f"Month {month!r} is not valid: use YYYY-MM, e.g. 2026-03")
    return date(int(found.group(1)), int(found.group(2)), 1)


def _month_usage_sql(users_where: str) -> str:
    """Every user matching ``users_where`` with this month's billed usage against the limit.

    Parameters: month start, next month start, amber, red, running-low seconds.
    """
    return f"""
    WITH used AS (
        SELECT user_id, sum(seconds_used) AS seconds, count(*) AS sessions
        FROM tavus_usage WHERE usage_date >= ? AND usage_date < ? GROUP BY user_id
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
        CASE WHEN minutes_limit IS NULL THEN NULL
             WHEN fraction_used IS NULL OR fraction_used > ? THEN 'red'
             WHEN fraction_used > ? THEN 'amber' ELSE 'ok' END AS band,
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
    params = [
        first,
        following,
        *(users_params or []),
        RED_ABOVE,
        AMBER_ABOVE,
        RUNNING_LOW_MINUTES * 60,
    ]
    sql = _month_usage_sql(users_where) + f" ORDER BY {order}"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return _frame(store.cursor(), sql, params)


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
        _check_positive("top_n", top_n)
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
        raise ValidationError(f"Month {month!r} is not valid: use YYYY-MM, e.g. 2026-03")
    frame = _month_usage(store, month)
    return frame[["user_id", "plan_id", "minutes_used", "minutes_limit", "sessions"]]


# --- drill-down -------------------------------------------------------------------------------


def _like_pattern(text: str) -> str:
    """``text`` as a literal ILIKE pattern: its own % and _ match only themselves."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def sessions_table(
    store: Store,
    f: Filters = NO_FILTERS,
    *,
    status: tuple[str, ...] = (),
    search: str | None = None,
    limit: int = 500,
) -> pd.DataFrame:
    """Sessions newest first, at most ``limit``, for the sessions page and the CLI.

    ``status`` keeps only those statuses; ``search`` (case-insensitive, taken literally)
    matches the user id, conversation id or conversation name (which holds the session id).
    Columns: session_id, user_id, session_type, mode, status, created_at, started_at,
    ended_at, minutes, conversation_id, conversation_url, shutdown_reason, error_message.
    """
    _check_positive("limit", limit)
    where, params = _where(f, "sessions")
    if status:
        where += f" AND status IN ({', '.join('?' * len(status))})"
        params.extend(status)
    if search and search.strip():
        pattern = _like_pattern(search.strip())
        where += (
            " AND ("
            + " OR ".join(
                f"{column} ILIKE ? ESCAPE '\\'"
                for column in ("user_id", "conversation_id", "conversation_name")
            )
            + ")"
        )
        params.extend([pattern] * 3)
    return _frame(
        store.cursor(),
        "SELECT session_id, user_id, session_type, mode, status, created_at, started_at, "
        "ended_at, round(seconds_used / 60, 2) AS minutes, conversation_id, conversation_url, "
        f"shutdown_reason, error_message FROM sessions WHERE {where} "
        "ORDER BY created_at DESC, session_id DESC LIMIT ?",
        [*params, limit],
    )


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"{name} must be a whole number of at least 1, not {value!r}")
