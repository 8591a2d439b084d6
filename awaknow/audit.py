"""The audit trail: who did what, when, with which role, to what.

Rows are only ever inserted (``record``); nothing in the app updates or deletes them. Details
are small JSON objects of ids, counts and names: never transcript text, notes or secrets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from awaknow.errors import ValidationError
from awaknow.logs import redact
from awaknow.store import Store, utcnow

# Every action the app writes, with how the Audit page describes it. A new one is one entry.
ACTIONS: dict[str, str] = {
    "sign_in": "signed in",
    "sign_out": "signed out",
    "access_denied": "was refused a page or action",
    "session_start": "started a session",
    "session_end": "ended a session",
    "transcript_view": "viewed a transcript",
    "recording_view": "viewed a recording",
    "perception_view": "viewed perception notes",
    "csv_export": "downloaded a CSV",
    "user_add": "added a user",
    "plan_change": "changed a user's plan",
    "role_grant": "granted a role",
    "role_remove": "removed a role",
    "persona_verify": "forced a persona verification",
    "user_forget": "erased a user's data",
}
MAX_DETAIL_CHARS = 2000

Writer = Store | duckdb.DuckDBPyConnection


def record(
    where: Writer,
    actor: str,
    role: str | None,
    action: str,
    target: str | None = None,
    details: Mapping[str, Any] | None = None,
    *,
    at: datetime | None = None,
) -> None:
    """Append one row. ``where`` is the store, or a transaction's cursor so that a change and
    its audit row commit together."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}: add it to audit.ACTIONS")
    text = redact(json.dumps(dict(details or {}), default=str, sort_keys=True))
    if len(text) > MAX_DETAIL_CHARS:
        raise ValueError(f"audit details for {action} exceed {MAX_DETAIL_CHARS} characters")
    cur = where.cursor() if isinstance(where, Store) else where
    cur.execute(
        "INSERT INTO audit_log (logged_at, actor, role, action, target, details) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [at or utcnow(), actor, role, action, target, text],
    )


def signed_in_before(store: Store, actor: str, issued_at: int | None) -> bool:
    """Whether this sign-in (the ID token's ``iat``) is already recorded: a new tab of the
    same browser reads the same identity cookie and is not a new sign-in."""
    if issued_at is None:
        return False
    row = (
        store.cursor()
        .execute(
            "SELECT 1 FROM audit_log WHERE action = 'sign_in' AND actor = ? "
            "AND json_extract(details, '$.issued_at')::BIGINT = ? LIMIT 1",
            [actor, int(issued_at)],
        )
        .fetchone()
    )
    return row is not None


COLUMNS = ("logged_at", "actor", "role", "action", "target", "details")


def rows(
    store: Store,
    *,
    start: date | None = None,
    end: date | None = None,
    actors: tuple[str, ...] = (),
    actions: tuple[str, ...] = (),
    search: str | None = None,
    limit: int = 1000,
) -> pd.DataFrame:
    """Newest first, at most ``limit``; ``end`` is inclusive; ``search`` matches the target
    or the details literally (case-insensitive)."""
    if limit < 1:
        raise ValidationError("limit must be at least 1")
    where: list[str] = ["TRUE"]
    params: list[object] = []
    if start is not None:
        where.append("logged_at >= ?")
        params.append(datetime.combine(start, datetime.min.time()))
    if end is not None:
        where.append("logged_at < ?")
        params.append(datetime.combine(end + timedelta(days=1), datetime.min.time()))
    if actors:
        where.append(f"actor IN ({', '.join('?' * len(actors))})")
        params.extend(actors)
    if actions:
        where.append(f"action IN ({', '.join('?' * len(actions))})")
        params.extend(actions)
    if search and search.strip():
        escaped = search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append("(target ILIKE ? ESCAPE '\\' OR details ILIKE ? ESCAPE '\\')")
        params.extend([f"%{escaped}%"] * 2)
    return (
        store.cursor()
        .execute(
            f"SELECT {', '.join(COLUMNS)} FROM audit_log WHERE {' AND '.join(where)} "
            "ORDER BY logged_at DESC, audit_id DESC LIMIT ?",
            [*params, limit],
        )
        .df()
    )


def actors(store: Store) -> list[str]:
    """Everyone who appears in the log, for the Audit page's filter."""
    found = store.cursor().execute("SELECT DISTINCT actor FROM audit_log ORDER BY actor")
    return [row[0] for row in found.fetchall()]


def date_bounds(store: Store) -> tuple[date, date] | None:
    row = (
        store.cursor()
        .execute("SELECT min(logged_at)::DATE, max(logged_at)::DATE FROM audit_log")
        .fetchone()
    )
    return (row[0], row[1]) if row and row[0] is not None else None
