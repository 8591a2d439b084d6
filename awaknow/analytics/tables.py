"""The sessions drill-down: newest sessions matching filters, a status and a search."""

from __future__ import annotations

import pandas as pd

from awaknow.analytics.filters import (
    NO_FILTERS,
    Filters,
    check_positive,
    frame_of,
    like_pattern,
    where_sql,
)
from awaknow.store import Store


def sessions_table(
    store: Store,
    f: Filters = NO_FILTERS,
    *,
    status: tuple[str, ...] = (),
    search: str | None = None,
    limit: int = 500,
    started_by: str | None = None,
) -> pd.DataFrame:
    """Sessions newest first, at most ``limit``, for the sessions page and the CLI.

    ``status`` keeps only those statuses; ``search`` (case-insensitive, taken literally)
    matches the user id, conversation id or conversation name (which holds the session id);
    ``started_by`` keeps the sessions that person started (what staff may see).
    Columns: session_id, user_id, session_type, mode, status, created_at, started_at,
    ended_at, minutes, conversation_id, conversation_url, shutdown_reason, error_message.
    """
    check_positive("limit", limit)
    where, params = where_sql(f, "sessions")
    if status:
        where += f" AND status IN ({', '.join('?' * len(status))})"
        params.extend(status)
    if started_by is not None:
        where += " AND started_by = ?"
        params.append(started_by)
    if search and search.strip():
        pattern = like_pattern(search.strip())
        where += (
            " AND ("
            + " OR ".join(
                f"{column} ILIKE ? ESCAPE '\\'"
                for column in ("user_id", "conversation_id", "conversation_name")
            )
            + ")"
        )
        params.extend([pattern] * 3)
    return frame_of(
        store.cursor(),
        "SELECT session_id, user_id, session_type, mode, status, created_at, started_at, "
        "ended_at, round(seconds_used / 60, 2) AS minutes, conversation_id, conversation_url, "
        f"shutdown_reason, error_message FROM sessions WHERE {where} "
        "ORDER BY created_at DESC, session_id DESC LIMIT ?",
        [*params, limit],
    )
