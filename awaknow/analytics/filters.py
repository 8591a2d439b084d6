"""What a person picked (``Filters``) as bound SQL conditions, and the helpers every query shares.

Every value a person picked reaches DuckDB as a bound parameter, never as SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

import duckdb
import pandas as pd

from awaknow.errors import ValidationError

ERROR_SHUTDOWN_GROUPS = (
    "bot_could_not_join_meeting_it_was_probably_ended",
    "daily_room_has_been_deleted",
    "exception_encountered_during_conversation_startup",
    "internal_error",
)
NOT_REPORTED = "not reported"
GRAINS = {"day": "day", "week": "week"}  # weeks start on Monday (ISO)
P90 = 0.9
DEFAULT_TOP_USERS = 20
DEFAULT_USER_MATCHES = 100  # user ids the user picker offers at a time
DEFAULT_BIN_MINUTES = 0.5
# A session's rows stop changing within this many days of its start: it ends within minutes
# (the reaper), and its Tavus events are polled for at most a day after it ended.


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


def where_sql(
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


def frame_of(cur: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> pd.DataFrame:
    return cur.execute(sql, params).df()


def to_minutes(seconds: float) -> float:
    return round(float(seconds) / 60, 2)


def like_pattern(text: str) -> str:
    """``text`` as a literal ILIKE pattern: its own % and _ match only themselves."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"{name} must be a whole number of at least 1, not {value!r}")


def covered_until(cur: duckdb.DuckDBPyConnection, f: Filters) -> date | None:
    """The first day the rollups do not cover, or None when the query must read raw rows."""
    if f.user_ids:
        return None
    row = cur.execute("SELECT max(covered_until) FROM rollup_state").fetchone()
    return row[0] if row else None
