"""Ratings analytics: how conversations went, from ``session_feedback`` (``awaknow.feedback``).

Each rated session has one current rating, stored with the session's dimensions and day, so
these queries read that one table (one row per rated session, a small share of sessions)
and follow the usual filters by the day the session started. A changed rating counts at
once: there is nothing to refresh.
"""

from __future__ import annotations

import pandas as pd

from awaknow.analytics.filters import Filters, check_positive, frame_of, where_sql
from awaknow.errors import ValidationError
from awaknow.store import Store, one_row

RATINGS_BY = {"persona": "persona_id", "session type": "session_type", "week": "week"}
LOWEST_RATED_SHOWN = 10


def _rated(f: Filters) -> tuple[str, list]:
    where, params = where_sql(f, "session_days")
    return f"SELECT * FROM session_feedback WHERE {where}", params


def rating_summary(store: Store, f: Filters) -> tuple[int, float | None]:
    """How many sessions matching ``f`` are rated, and their average rating (None if none)."""
    rows, params = _rated(f)
    count, average = one_row(store.cursor(), f"SELECT count(*), avg(rating) FROM ({rows})", params)
    return int(count), None if average is None else float(average)


def ratings_by(store: Store, f: Filters, by: str = "persona") -> pd.DataFrame:
    """The distribution of ratings per persona, session type or ISO week (its Monday), with
    each group's average. Columns: group, rating (1-5), ratings, share (of the group's
    ratings), average_rating (the group's)."""
    if by not in RATINGS_BY:
        raise ValidationError(f"Cannot group ratings by {by!r}: use persona, session type or week")
    column = RATINGS_BY[by]
    group = "CAST(date_trunc('week', day) AS DATE)" if column == "week" else column
    rows, params = _rated(f)
    return frame_of(
        store.cursor(),
        f"WITH counted AS (SELECT CAST({group} AS VARCHAR) AS grp, rating, count(*) AS ratings "
        f"FROM ({rows}) GROUP BY ALL) "
        'SELECT grp AS "group", rating, ratings, '
        "ratings / sum(ratings) OVER (PARTITION BY grp) AS share, "
        "sum(rating * ratings) OVER (PARTITION BY grp) / sum(ratings) OVER (PARTITION BY grp) "
        "AS average_rating FROM counted ORDER BY grp, rating",
        params,
    )


def lowest_rated(store: Store, f: Filters, limit: int = LOWEST_RATED_SHOWN) -> pd.DataFrame:
    """The lowest-rated sessions matching ``f``, the most recent first among equal ratings.

    Columns: session_id, day, user_id, persona_id, session_type, minutes, rating, note,
    rated_by, rated_at.
    """
    check_positive("limit", limit)
    rows, params = _rated(f)
    return frame_of(
        store.cursor(),
        "SELECT session_id, day, user_id, persona_id, session_type, "
        "round(seconds_used / 60, 2) AS minutes, rating, note, rated_by, rated_at "
        f"FROM ({rows}) ORDER BY rating, day DESC, rated_at DESC, session_id LIMIT ?",
        [*params, limit],
    )


def rating_vs_duration(store: Store, f: Filters) -> pd.DataFrame:
    """Average rating per whole minute of billed duration (a session of 2:30 is in minute 2).

    Columns: minute, ratings, average_rating.
    """
    rows, params = _rated(f)
    return frame_of(
        store.cursor(),
        "SELECT CAST(floor(coalesce(seconds_used, 0) / 60) AS BIGINT) AS minute, "
        "count(*) AS ratings, avg(rating) AS average_rating "
        f"FROM ({rows}) GROUP BY minute ORDER BY minute",
        params,
    )
