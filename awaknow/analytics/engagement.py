"""Engagement: whether people come back and whether they talk.

Active users, new and returning users, weekly retention cohorts and sessions per user count
sessions of any status by the UTC day they were created. The funnel follows each session
through four steps, each a subset of the one before: the conversation was created (Tavus
accepted it), the replica joined, the call lasted at least a minute after the replica joined,
and it ended normally (the End button, or the participant leaving; not a failure or a
timeout). Transcripts give turns per session (entries spoken by the user or the replica) and
the user's share of the words spoken.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any, Literal

import duckdb
import pandas as pd

from awaknow.analytics.filters import Filters, covered_until, frame_of, where_sql
from awaknow.errors import ValidationError
from awaknow.store import Store

ACTIVE_GRAINS = ("day", "week", "month")
COMPARE_BY = {"persona": "persona_id", "session type": "session_type"}
TALKED_SECONDS = 60  # "talked": at least this long between the replica joining and the end
NORMAL_END_REASONS = ("end_conversation_endpoint_hit", "participant_left_timeout")
FUNNEL_STEPS = ("conversation created", "replica joined", "talked 1+ min", "ended normally")
SPEAKING_ROLES = ("user", "replica", "assistant")  # Tavus names the replica's turns either way
MAX_COHORT_WEEKS = 12  # weeks after the first shown in the retention heatmap

DIMENSIONS = "persona_id, session_type, mode, plan_id"
_NORMAL = ", ".join(f"'{reason}'" for reason in NORMAL_END_REASONS)
_ROLES = ", ".join(f"'{role}'" for role in SPEAKING_ROLES)

# Per session: its funnel steps as 0/1 (each implies the one before).
_JOINED = "started_at IS NOT NULL AND replica_joined_at IS NOT NULL"
_TALKED = f"{_JOINED} AND date_diff('second', replica_joined_at, ended_at) >= {TALKED_SECONDS}"
_ENDED_NORMALLY = (
    f"{_TALKED} AND status = 'completed' AND (shutdown_reason_group(shutdown_reason) "
    f"IN ({_NORMAL}) OR (shutdown_reason IS NULL AND end_source = 'user'))"
)
# Per session: its funnel steps as 1 or 0 (each implies the one before).
FUNNEL_SQL = ", ".join(
    f"CASE WHEN {condition} THEN 1 ELSE 0 END AS {name}"
    for name, condition in (
        ("created", "started_at IS NOT NULL"),
        ("joined", _JOINED),
        ("talked", _TALKED),
        ("ended_normally", _ENDED_NORMALLY),
    )
)

# Per transcribed session: turns, the user's words and every speaker's words.
TRANSCRIPT_SQL = f"""
    SELECT t.session_id, count(*) AS turns,
        sum(words) FILTER (role = 'user') AS user_words, sum(words) AS words
    FROM (
        SELECT session_id, lower(role) AS role,
            CASE WHEN trim(content) = '' THEN 0
                 ELSE len(regexp_split_to_array(trim(content), '\\s+')) END AS words
        FROM transcripts WHERE session_id IS NOT NULL AND lower(role) IN ({_ROLES})
    ) t GROUP BY t.session_id
"""


def _day_cut(cur: duckdb.DuckDBPyConnection, f: Filters) -> datetime | None:
    """Midnight of the rollups' watermark, or None when ``f`` must read raw rows."""
    until = covered_until(cur, f)
    return None if until is None else datetime.combine(until, time.min)


def user_day_rows(cur: duckdb.DuckDBPyConnection, f: Filters) -> tuple[str, list[Any]]:
    """A subquery of sessions matching ``f`` per user and day: day, user_id, sessions.

    Settled days come from ``rollup_user_daily`` when only dates narrow ``f``.
    """
    where, params = where_sql(f, "sessions")
    raw = (
        "SELECT CAST(created_at AS DATE) AS day, user_id, count(*) AS sessions FROM sessions "
        f"WHERE {where}"
    )
    narrowed = f.persona_ids or f.session_types or f.modes or f.plan_ids
    cut = None if narrowed else _day_cut(cur, f)
    if cut is None:
        return raw + " GROUP BY ALL", params
    day_where, day_params = where_sql(f, "session_days")
    return (
        f"SELECT day, user_id, sessions FROM rollup_user_daily WHERE day < ? AND {day_where} "
        f"UNION ALL {raw} AND created_at >= ? GROUP BY ALL",
        [cut.date(), *day_params, *params, cut],
    )


def funnel_rows(cur: duckdb.DuckDBPyConnection, f: Filters) -> tuple[str, list[Any]]:
    """A subquery of sessions matching ``f`` with their funnel steps, ``sessions`` per row.

    Columns: day, persona_id, session_type, mode, plan_id, sessions, created, joined, talked,
    ended_normally (sessions reaching each step). Settled days from ``rollup_funnel_daily``.
    """
    where, params = where_sql(f, "sessions")
    raw = (
        f"SELECT CAST(created_at AS DATE) AS day, {DIMENSIONS}, 1 AS sessions, {FUNNEL_SQL} "
        f"FROM sessions WHERE {where}"
    )
    cut = _day_cut(cur, f)
    if cut is None:
        return raw, params
    day_where, day_params = where_sql(f, "session_days")
    return (
        f"SELECT day, {DIMENSIONS}, sessions, created, joined, talked, ended_normally "
        f"FROM rollup_funnel_daily WHERE day < ? AND {day_where} "
        f"UNION ALL {raw} AND created_at >= ?",
        [cut.date(), *day_params, *params, cut],
    )


def transcript_rows(cur: duckdb.DuckDBPyConnection, f: Filters) -> tuple[str, list[Any]]:
    """A subquery of transcribed sessions matching ``f``, ``sessions`` of them per row.

    Columns: day, persona_id, session_type, mode, plan_id, sessions, turns, user_words,
    words. Settled days from ``rollup_transcripts_daily``.
    """
    where, params = where_sql(f, "sessions")
    raw = (
        f"SELECT CAST(s.created_at AS DATE) AS day, {DIMENSIONS}, 1 AS sessions, t.turns, "
        f"coalesce(t.user_words, 0) AS user_words, t.words FROM ({TRANSCRIPT_SQL}) t "
        f"JOIN sessions s USING (session_id) WHERE {where}"
    )
    cut = _day_cut(cur, f)
    if cut is None:
        return raw, params
    day_where, day_params = where_sql(f, "session_days")
    return (
        f"SELECT day, {DIMENSIONS}, sessions, turns, user_words, words "
        f"FROM rollup_transcripts_daily WHERE day < ? AND {day_where} "
        f"UNION ALL {raw} AND s.created_at >= ?",
        [cut.date(), *day_params, *params, cut],
    )


def refresh_engagement_rollups(cur: duckdb.DuckDBPyConnection, first: date, cut: date) -> None:
    """Recompute the engagement rollups for the days ``[first, cut)``.

    Called by ``refresh_rollups`` inside its transaction, with its window.
    """
    since, until = datetime.combine(first, time.min), datetime.combine(cut, time.min)
    cur.execute("DELETE FROM rollup_user_daily WHERE day >= ?", [first])
    cur.execute(
        "INSERT INTO rollup_user_daily (day, user_id, sessions) "
        "SELECT CAST(created_at AS DATE), user_id, count(*) FROM sessions "
        "WHERE created_at >= ? AND created_at < ? GROUP BY ALL",
        [since, until],
    )
    cur.execute("DELETE FROM rollup_funnel_daily WHERE day >= ?", [first])
    cur.execute(
        f"INSERT INTO rollup_funnel_daily (day, {DIMENSIONS}, sessions, created, joined, "
        "talked, ended_normally) "
        f"SELECT day, {DIMENSIONS}, count(*), sum(created), sum(joined), sum(talked), "
        f"sum(ended_normally) FROM (SELECT CAST(created_at AS DATE) AS day, {DIMENSIONS}, "
        f"{FUNNEL_SQL} FROM sessions WHERE created_at >= ? AND created_at < ?) GROUP BY ALL",
        [since, until],
    )
    cur.execute("DELETE FROM rollup_transcripts_daily WHERE day >= ?", [first])
    cur.execute(
        f"INSERT INTO rollup_transcripts_daily (day, {DIMENSIONS}, sessions, turns, "
        "user_words, words) "
        f"SELECT CAST(s.created_at AS DATE), {DIMENSIONS}, count(*), sum(t.turns), "
        f"coalesce(sum(t.user_words), 0), sum(t.words) FROM ({TRANSCRIPT_SQL}) t "
        "JOIN sessions s USING (session_id) WHERE s.created_at >= ? AND s.created_at < ? "
        "GROUP BY ALL",
        [since, until],
    )


# --- active users -----------------------------------------------------------------------------


def _check_grain(grain: str) -> None:
    if grain not in ACTIVE_GRAINS:
        raise ValidationError(f"Grain {grain!r} is not known: use day, week or month")


def active_users(
    store: Store, f: Filters, grain: Literal["day", "week", "month"] = "day"
) -> pd.DataFrame:
    """Distinct users with a session per day, ISO week (its Monday) or month (its 1st):
    DAU, WAU, MAU. Periods without one are absent. Columns: period, active_users."""
    _check_grain(grain)
    cur = store.cursor()
    rows, params = user_day_rows(cur, f)
    return frame_of(
        cur,
        "SELECT CAST(date_trunc(?, day) AS DATE) AS period, "
        f"count(DISTINCT user_id) AS active_users FROM ({rows}) GROUP BY period ORDER BY period",
        [grain, *params],
    )


def new_vs_returning(
    store: Store, f: Filters, grain: Literal["day", "week", "month"] = "week"
) -> pd.DataFrame:
    """Active users per period split into new (their first session ever, whatever the
    filters, was in that period) and returning. Columns: period, kind, users."""
    _check_grain(grain)
    cur = store.cursor()
    rows, params = user_day_rows(cur, f)
    everything, all_params = user_day_rows(cur, Filters())
    return frame_of(
        cur,
        f"WITH firsts AS (SELECT user_id, min(day) AS first_day FROM ({everything}) "
        "GROUP BY user_id), "
        f"active AS (SELECT DISTINCT CAST(date_trunc(?, day) AS DATE) AS period, user_id "
        f"FROM ({rows})) "
        "SELECT a.period, CASE WHEN CAST(date_trunc(?, f.first_day) AS DATE) = a.period "
        "THEN 'new' ELSE 'returning' END AS kind, count(*) AS users "
        "FROM active a JOIN firsts f USING (user_id) GROUP BY ALL ORDER BY period, kind",
        [*all_params, grain, *params, grain],
    )


def retention_cohorts(store: Store, f: Filters) -> pd.DataFrame:
    """Weekly retention: users grouped by the ISO week of their first session matching ``f``
    (the cohort), and for each later week the share of the cohort with a session in it.

    Columns: cohort (the cohort week's Monday), week (weeks after the cohort's, 0 to
    ``MAX_COHORT_WEEKS``), cohort_users, active_users, share (0 to 1).
    """
    cur = store.cursor()
    rows, params = user_day_rows(cur, f)
    return frame_of(
        cur,
        "WITH weeks AS (SELECT DISTINCT user_id, CAST(date_trunc('week', day) AS DATE) AS week "
        f"FROM ({rows})), "
        "cohorts AS (SELECT user_id, min(week) AS cohort FROM weeks GROUP BY user_id), "
        "sizes AS (SELECT cohort, count(*) AS cohort_users FROM cohorts GROUP BY cohort), "
        "activity AS (SELECT c.cohort, CAST(date_diff('week', c.cohort, w.week) AS INTEGER) "
        "AS week, count(*) AS active_users FROM weeks w JOIN cohorts c USING (user_id) "
        "GROUP BY ALL) "
        "SELECT a.cohort, a.week, s.cohort_users, a.active_users, "
        "a.active_users / s.cohort_users AS share FROM activity a JOIN sizes s USING (cohort) "
        "WHERE a.week <= ? ORDER BY a.cohort, a.week",
        [*params, MAX_COHORT_WEEKS],
    )


def sessions_per_user(store: Store, f: Filters) -> pd.DataFrame:
    """How many users started how many sessions matching ``f``: sessions, users."""
    cur = store.cursor()
    rows, params = user_day_rows(cur, f)
    return frame_of(
        cur,
        "SELECT sessions, count(*) AS users FROM (SELECT user_id, "
        f"CAST(sum(sessions) AS BIGINT) AS sessions FROM ({rows}) GROUP BY user_id) "
        "GROUP BY sessions ORDER BY sessions",
        params,
    )


# --- per session ------------------------------------------------------------------------------


def _compare_column(by: str) -> str:
    if by not in COMPARE_BY:
        raise ValidationError(f"Cannot compare by {by!r}: use persona or session type")
    return COMPARE_BY[by]


def session_funnel(store: Store, f: Filters, by: str = "persona") -> pd.DataFrame:
    """Sessions reaching each funnel step (``FUNNEL_STEPS``), per persona or session type.

    Columns: group, step, step_order (0-3), sessions, share (of the group's sessions that
    reached the first step; None when none did).
    """
    column = _compare_column(by)
    cur = store.cursor()
    rows, params = funnel_rows(cur, f)
    steps = ", ".join(
        f"({order}, '{name}', {part})"
        for order, (name, part) in enumerate(
            zip(FUNNEL_STEPS, ("created", "joined", "talked", "ended_normally"), strict=True)
        )
    )
    return frame_of(
        cur,
        f"WITH totals AS (SELECT {column} AS grp, sum(created) AS created, sum(joined) AS "
        "joined, sum(talked) AS talked, sum(ended_normally) AS ended_normally "
        f"FROM ({rows}) GROUP BY {column}) "
        'SELECT grp AS "group", step, step_order, CAST(n AS BIGINT) AS sessions, '
        "n / nullif(created, 0) AS share FROM totals, "
        f"LATERAL (VALUES {steps}) v(step_order, step, n) ORDER BY grp, step_order",
        params,
    )


def transcript_engagement(store: Store, f: Filters, by: str = "persona") -> pd.DataFrame:
    """Turns per transcribed session and the user's share of the words, per persona or
    session type. Columns: group, sessions (with a transcript), turns_per_session,
    user_word_share (0 to 1; None without words)."""
    column = _compare_column(by)
    cur = store.cursor()
    rows, params = transcript_rows(cur, f)
    return frame_of(
        cur,
        f'SELECT {column} AS "group", CAST(sum(sessions) AS BIGINT) AS sessions, '
        "round(sum(turns) / sum(sessions), 2) AS turns_per_session, "
        "sum(user_words) / nullif(sum(words), 0) AS user_word_share "
        f"FROM ({rows}) GROUP BY {column} ORDER BY {column}",
        params,
    )
