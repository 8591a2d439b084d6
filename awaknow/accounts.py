"""Users, plans and subscriptions: who may use how many Tavus minutes."""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb

from awaknow.errors import NotFoundError, ValidationError, shorten
from awaknow.store import Store, utcnow

_USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


@dataclass(frozen=True)
class Plan:
    plan_id: str
    name: str
    price_usd: float
    minutes_per_month: int
    solo_sessions_per_day: int | None
    group_sessions: bool


def validate_user_id(user_id: str) -> str:
    """User ids end up in conversation names and CSV files, so keep them plain."""
    user_id = (user_id or "").strip()
    if not _USER_ID.match(user_id):
        raise ValidationError(
            f"User id {shorten(user_id)} is not valid: "
            "use 1-64 letters, digits, '.', '_', '-' or '@'"
        )
    return user_id


def list_plans(store: Store) -> list[Plan]:
    rows = (
        store.cursor()
        .execute(
            "SELECT plan_id, name, price_usd, minutes_per_month, solo_sessions_per_day, "
            "group_sessions FROM plans ORDER BY price_usd"
        )
        .fetchall()
    )
    return [Plan(r[0], r[1], float(r[2]), r[3], r[4], bool(r[5])) for r in rows]


def get_plan(store: Store, plan_id: str) -> Plan:
    for plan in list_plans(store):
        if plan.plan_id == plan_id:
            return plan
    known = ", ".join(p.plan_id for p in list_plans(store))
    raise NotFoundError(f"Unknown plan {shorten(plan_id)}: choose one of {known}")


def _subscribe(cur: duckdb.DuckDBPyConnection, user_id: str, plan: Plan) -> None:
    now = utcnow()
    cur.execute("DELETE FROM user_subscriptions WHERE user_id = ?", [user_id])
    cur.execute(
        "INSERT INTO user_subscriptions (user_id, plan_id, status, period, "
        "tavus_minutes_limit, solo_sessions_per_day, group_sessions, started_at, updated_at) "
        "VALUES (?, ?, 'active', 'calendar_month', ?, ?, ?, ?, ?)",
        [
            user_id,
            plan.plan_id,
            plan.minutes_per_month,
            plan.solo_sessions_per_day,
            plan.group_sessions,
            now,
            now,
        ],
    )


def add_user(store: Store, user_id: str, plan_id: str, display_name: str | None = None) -> None:
    user_id = validate_user_id(user_id)
    plan = get_plan(store, plan_id)
    with store.transaction() as cur:
        if cur.execute("SELECT 1 FROM users WHERE user_id = ?", [user_id]).fetchone():
            raise ValidationError(
                f"User {shorten(user_id)} already exists: change the plan instead"
            )
        cur.execute(
            "INSERT INTO users (user_id, display_name, created_at) VALUES (?, ?, ?)",
            [user_id, (display_name or "").strip() or None, utcnow()],
        )
        _subscribe(cur, user_id, plan)


def set_plan(store: Store, user_id: str, plan_id: str) -> None:
    """Change plan; this month's minutes already used still count against the new limit."""
    plan = get_plan(store, plan_id)
    with store.transaction() as cur:
        if not cur.execute("SELECT 1 FROM users WHERE user_id = ?", [user_id]).fetchone():
            raise NotFoundError(f"Unknown user {shorten(user_id)}: add it first")
        _subscribe(cur, user_id, plan)


def require_user(cur: duckdb.DuckDBPyConnection, user_id: str) -> None:
    if not cur.execute("SELECT 1 FROM users WHERE user_id = ?", [user_id]).fetchone():
        raise NotFoundError(
            f"Unknown user {shorten(user_id)}: add it with `python -m awaknow users add {user_id} "
            "--plan awaknow_free`"
        )
