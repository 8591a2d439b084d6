"""Demo data: deterministic, consistent with the billing rules, and safe around real data."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import httpx
import pytest

from awaknow import accounts, analytics, events, sessions
from awaknow.errors import ValidationError
from awaknow.store import Store
from awaknow.tavus import error_from_response
from devtools import seed

ROOT = Path(__file__).resolve().parent.parent
TODAY = date(2026, 3, 20)
SMALL = {"users": 12, "days": 45, "sessions": 600, "today": TODAY}
TABLES = (
    "users",
    "user_subscriptions",
    "sessions",
    "tavus_usage",
    "conversation_events",
    "transcripts",
    "recordings",
    "session_feedback",
)
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-a[0-9a-f]{3}-[0-9a-f]{12}$")


def fingerprint(store: Store) -> dict[str, str]:
    """An md5 per table over every column of every row, in a fixed order."""
    cur = store.cursor()
    return {
        table: cur.execute(
            f"SELECT md5(coalesce(string_agg(CAST(t AS VARCHAR), '|' "
            f"ORDER BY CAST(t AS VARCHAR)), '')) FROM {table} t"
        ).fetchone()[0]
        for table in TABLES
    }


def scalar(store: Store, sql: str, params: list | None = None):
    return store.cursor().execute(sql, params or []).fetchone()[0]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, dict[str, int]]:
    store = Store(tmp_path_factory.mktemp("seed") / "t.duckdb")
    return store, seed.seed_demo(store, **SMALL)


def test_same_arguments_same_rows(tmp_path: Path, seeded: tuple[Store, dict[str, int]]) -> None:
    store, _ = seeded
    again = Store(tmp_path / "again.duckdb")
    seed.seed_demo(again, **SMALL)
    assert fingerprint(again) == fingerprint(store)
    other = Store(tmp_path / "other.duckdb")
    seed.seed_demo(other, **{**SMALL, "seed": 8})
    assert fingerprint(other)["sessions"] != fingerprint(store)["sessions"]


def test_counts(seeded: tuple[Store, dict[str, int]]) -> None:
    store, counts = seeded
    assert counts["sessions"] == SMALL["sessions"] == scalar(store, "SELECT count(*) FROM sessions")
    assert counts["users"] == SMALL["users"] + len(seed.STAFF_USERS)
    assert counts["subscriptions"] == counts["users"]
    assert counts["completed"] + counts["failed"] == counts["sessions"]
    assert counts["usage_rows"] == counts["completed"] > 0 < counts["failed"]
    assert counts["events"] == 4 * seed.DETAIL_SESSIONS
    detail_rows = len(seed.DEMO_TRANSCRIPT) * seed.DETAIL_SESSIONS
    assert counts["transcript_rows"] == scalar(store, "SELECT count(*) FROM transcripts")
    assert counts["transcript_rows"] > detail_rows  # and generated ones for engagement
    assert counts["ratings"] == scalar(store, "SELECT count(*) FROM session_feedback") > 0
    assert counts["recordings"] == seed.DETAIL_SESSIONS
    for table, key in (("conversation_events", "events"), ("recordings", "recordings")):
        assert scalar(store, f"SELECT count(*) FROM {table}") == counts[key]


def test_bills_match_completed_sessions(seeded: tuple[Store, dict[str, int]]) -> None:
    store, _ = seeded
    unbilled = scalar(
        store,
        "SELECT count(*) FROM sessions s ANTI JOIN tavus_usage u USING (session_id) "
        "WHERE s.status = 'completed'",
    )
    wrong = scalar(
        store,
        "SELECT count(*) FROM tavus_usage u LEFT JOIN sessions s USING (session_id) "
        "WHERE s.status IS DISTINCT FROM 'completed' "
        "OR u.seconds_used <> s.seconds_used OR u.minutes_used <> s.seconds_used / 60 "
        "OR u.usage_date <> CAST(s.started_at AS DATE) OR u.user_id <> s.user_id "
        "OR u.plan_id <> s.plan_id OR u.persona_id <> s.persona_id OR u.mode <> s.mode "
        "OR u.session_type <> s.session_type OR u.conversation_id <> s.conversation_id "
        "OR u.started_at <> s.started_at OR u.ended_at <> s.ended_at "
        "OR u.clock NOT IN ('tavus', 'app')",
    )
    assert (unbilled, wrong) == (0, 0)
    for started, ended, seconds in (
        store.cursor().execute("SELECT started_at, ended_at, seconds_used FROM tavus_usage")
    ).fetchall():
        assert sessions.billed_seconds(started, ended) == seconds


def test_sessions_follow_the_rules(seeded: tuple[Store, dict[str, int]]) -> None:
    store, _ = seeded
    cur = store.cursor()
    assert scalar(store, "SELECT count(*) FROM active_sessions") == 0
    statuses = dict(cur.execute("SELECT status, count(*) FROM sessions GROUP BY 1").fetchall())
    assert set(statuses) == {"completed", "failed"}
    # group sessions only on plans that allow them; the session's plan is the user's
    assert not scalar(
        store,
        "SELECT count(*) FROM sessions s JOIN plans p USING (plan_id) "
        "JOIN user_subscriptions u USING (user_id) "
        "WHERE (s.session_type = 'resolve_together' AND NOT p.group_sessions) "
        "OR u.plan_id <> s.plan_id",
    )
    assert set(dict(cur.execute("SELECT mode, count(*) FROM sessions GROUP BY 1").fetchall())) == {
        "live",
        "mock",
    }
    types = cur.execute("SELECT DISTINCT session_type FROM sessions ORDER BY 1").fetchall()
    assert [t[0] for t in types] == list(sessions.SESSION_TYPES)
    failed = cur.execute(
        "SELECT DISTINCT error_kind, seconds_used, conversation_id IS NULL, error_message <> '' "
        "FROM sessions WHERE status = 'failed'"
    ).fetchall()
    assert {row[0] for row in failed} <= {kind for kind, _, _ in seed.FAILURES}
    assert {row[1:] for row in failed} == {(0, True, True)}
    assert scalar(store, "SELECT max(seconds_used) FROM sessions") <= sessions.MAX_CALL_SECONDS
    assert scalar(store, "SELECT min(seconds_used) FROM tavus_usage") > 0
    typical = scalar(
        store, "SELECT avg(CASE WHEN seconds_used BETWEEN 60 AND 300 THEN 1 ELSE 0 END) "
        "FROM tavus_usage",
    )  # fmt: skip
    assert typical > 0.8


def test_ids_names_and_window(seeded: tuple[Store, dict[str, int]]) -> None:
    store, _ = seeded
    rows = (
        store.cursor()
        .execute(
            "SELECT session_id, session_type, conversation_id, conversation_name, persona_id, "
            "replica_id, created_at FROM sessions"
        )
        .fetchall()
    )
    assert len({row[0] for row in rows}) == len(rows)
    first = datetime.combine(TODAY - timedelta(days=SMALL["days"]), datetime.min.time())
    for session_id, kind, conversation_id, name, persona, replica, created in rows:
        assert UUID.match(session_id)
        assert name == sessions.conversation_name(kind, session_id)
        assert conversation_id is None or re.fullmatch(r"c[0-9a-f]{16}", conversation_id)
        assert persona in ("p7e13c73f41f", seed.SECOND_PERSONA_ID)
        assert replica == "r4317e64d25a"
        assert first <= created < datetime.combine(TODAY, datetime.min.time())
    shares = dict(
        store.cursor().execute("SELECT persona_id, count(*) FROM sessions GROUP BY 1").fetchall()
    )
    assert shares["p7e13c73f41f"] > shares[seed.SECOND_PERSONA_ID] > 0


def test_users_plans_and_staff(seeded: tuple[Store, dict[str, int]]) -> None:
    store, _ = seeded
    subscriptions = (
        store.cursor()
        .execute(
            "SELECT u.user_id, s.plan_id, s.tavus_minutes_limit = p.minutes_per_month "
            "AND s.solo_sessions_per_day IS NOT DISTINCT FROM p.solo_sessions_per_day "
            "AND s.group_sessions = p.group_sessions AND s.status = 'active' "
            "FROM users u JOIN user_subscriptions s USING (user_id) JOIN plans p USING (plan_id)"
        )
        .fetchall()
    )
    assert all(row[2] for row in subscriptions)
    plans = {plan.plan_id for plan in accounts.list_plans(store)}
    demo_plans = {plan for user, plan, _ in subscriptions if user.startswith("demo_user_")}
    assert demo_plans == plans
    staff = {user: plan for user, plan, _ in subscriptions if user.startswith("staff_")}
    assert staff == {user: plan for user, (_, plan) in seed.STAFF_USERS.items()}
    assert not scalar(store, "SELECT count(*) FROM sessions WHERE user_id LIKE 'staff%'")
    assert "demo_user_001" in {user for user, _, _ in subscriptions}


def test_staff_can_start_right_away(seeded: tuple[Store, dict[str, int]]) -> None:
    store, _ = seeded
    now = datetime.combine(TODAY, datetime.min.time()) + timedelta(hours=9)
    for user in seed.STAFF_USERS:
        allowance = sessions.allowance(store.cursor(), user, now)
        assert sessions.check_allowed(allowance, "reflect_alone") == sessions.MAX_CALL_SECONDS


def test_this_month_shows_every_band(tmp_path: Path) -> None:
    """With the default size, most users stay under half their plan and a few pass 80 %."""
    store = Store(tmp_path / "t.duckdb")
    seed.seed_demo(store, today=TODAY)
    usage = analytics.usage_vs_limit(store, TODAY)
    demo = usage[usage["user_id"].str.startswith("demo_user_")]
    bands = demo["band"].value_counts()
    assert set(bands.index) == {"ok", "amber", "red"}
    assert bands["ok"] > bands["amber"] + bands["red"]
    assert (demo["fraction_used"] < 1).all()


def test_transcripts_and_ratings_for_engagement_and_feedback(
    seeded: tuple[Store, dict[str, int]],
) -> None:
    store, counts = seeded
    transcribed = scalar(store, "SELECT count(DISTINCT session_id) FROM transcripts")
    assert transcribed == min(
        seed.DETAIL_SESSIONS + seed.TALK_SESSIONS,
        scalar(
            store,
            "SELECT count(*) FROM sessions WHERE status = 'completed' AND mode = 'live' "
            "AND replica_joined_at IS NOT NULL",
        ),
    )
    share = counts["ratings"] / counts["completed"]
    assert abs(share - seed.RATED_SHARE) < 0.1
    ratings = (
        store.cursor()
        .execute("SELECT rating, count(*) FROM session_feedback GROUP BY rating ORDER BY rating")
        .fetchall()
    )
    assert len(ratings) >= 4 and all(1 <= rating <= 5 for rating, _ in ratings)
    unmatched = scalar(
        store,
        "SELECT count(*) FROM session_feedback f JOIN sessions s USING (session_id) "
        "WHERE s.status <> 'completed' OR f.persona_id <> s.persona_id "
        "OR f.seconds_used <> s.seconds_used OR f.day <> CAST(s.created_at AS DATE)",
    )
    assert unmatched == 0
    assert scalar(store, "SELECT count(*) FROM session_feedback WHERE note IS NOT NULL") > 0


def test_detail_events_are_stored_like_callbacks(seeded: tuple[Store, dict[str, int]]) -> None:
    store, _ = seeded
    stored = (
        store.cursor()
        .execute(
            "SELECT e.event_key, e.payload, e.session_id, s.conversation_id, e.processed_at "
            "FROM conversation_events e JOIN sessions s USING (session_id)"
        )
        .fetchall()
    )
    for key, payload, _session_id, conversation_id, processed in stored:
        envelope = json.loads(payload)
        assert events.event_key(envelope) == key
        assert envelope["conversation_id"] == conversation_id and processed is not None
    detailed = {row[2] for row in stored}
    assert len(detailed) == seed.DETAIL_SESSIONS
    timeline = events.session_timeline(store, next(iter(detailed)))
    assert "system.shutdown" in set(timeline["event_type"])


def test_refuses_a_database_with_sessions(seeded: tuple[Store, dict[str, int]]) -> None:
    store, _ = seeded
    with pytest.raises(ValidationError, match="already has 600 sessions: seed an empty") as err:
        seed.seed_demo(store, **SMALL)
    assert "\n" not in str(err.value)
    assert not seed.is_empty(store)


def test_replace_keeps_other_users_and_gives_the_same_rows(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.duckdb")
    assert seed.is_empty(store)
    accounts.add_user(store, "real_person", "awaknow_growth")
    start = datetime(2026, 3, 19, 12, 0)
    kept = sessions.reserve(
        store, "real_person", "reflect_alone", mode="mock", mode_reason="test",
        persona_id="p7e13c73f41f", replica_id="r4317e64d25a", context=None, now=start,
    )  # fmt: skip
    sessions.mark_failed(store, kept.session_id, error_kind="TavusServerError", error_message="x")
    seed.seed_demo(store, **SMALL, replace=True)
    first = fingerprint(store)
    seed.seed_demo(store, **SMALL, replace=True)
    assert fingerprint(store) == first
    assert scalar(store, "SELECT count(*) FROM sessions WHERE user_id = 'real_person'") == 1
    assert scalar(store, "SELECT count(*) FROM sessions") == SMALL["sessions"] + 1


def test_replace_refuses_to_drop_a_running_session(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.duckdb")
    seed.seed_demo(store, **{**SMALL, "sessions": 0})
    sessions.reserve(
        store, "staff_pro", "reflect_alone", mode="mock", mode_reason="test",
        persona_id="p7e13c73f41f", replica_id="r4317e64d25a", context=None,
    )  # fmt: skip
    with pytest.raises(ValidationError, match="staff_pro still has an active session"):
        seed.seed_demo(store, **SMALL, replace=True)


def test_users_without_sessions_refuse_a_second_seed(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.duckdb")
    counts = seed.seed_demo(store, **{**SMALL, "sessions": 0})
    assert counts["sessions"] == counts["usage_rows"] == counts["events"] == 0
    assert counts["users"] == SMALL["users"] + len(seed.STAFF_USERS)
    with pytest.raises(ValidationError, match="demo or staff users"):
        seed.seed_demo(store, **SMALL)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"users": 0}, "users must be"),
        ({"days": 0}, "days must be"),
        ({"sessions": -1}, "sessions must be"),
        ({"sessions": seed.MAX_SESSIONS + 1}, "sessions must be"),
        ({"today": "2026-03-20"}, "today must be a date"),
    ],
)
def test_bad_arguments(tmp_path: Path, arguments: dict, message: str) -> None:
    store = Store(tmp_path / "t.duckdb")
    with pytest.raises(ValidationError, match=message) as err:
        seed.seed_demo(store, **arguments)
    assert "\n" not in str(err.value)
    assert seed.is_empty(store)


def test_rollups_are_rebuilt_by_the_seed(
    tmp_path: Path, seeded: tuple[Store, dict[str, int]]
) -> None:
    raw, _ = seeded
    store = Store(tmp_path / "t.duckdb")
    seed.seed_demo(store, **SMALL)
    assert scalar(store, "SELECT count(*) FROM rollup_state") == 1
    assert scalar(store, "SELECT sum(sessions) FROM rollup_sessions_daily") == SMALL["sessions"]
    assert analytics.kpis(store) == analytics.kpis(raw)
    seed.seed_demo(store, **SMALL, replace=True)
    assert analytics.kpis(store) == analytics.kpis(raw)


@pytest.mark.parametrize(("status", "body", "kind", "message", "_weight"), seed.FAILURE_ANSWERS)
def test_failed_starts_say_what_the_tavus_client_says(
    status: int, body: dict[str, str], kind: str, message: str, _weight: float
) -> None:
    """The seed copies the client's messages (it must not import the client); keep them equal."""
    error = error_from_response(httpx.Response(status, json=body))
    assert (type(error).__name__, str(error)) == (kind, message)


def run_seed(db: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    """``python -m devtools.seed`` as run.sh and staff run it: one line on stderr when it fails."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TAVUS_", "VITE_TAVUS_", "AWAKNOW_"))
    }
    env.update({"AWAKNOW_DB_PATH": str(db), "AWAKNOW_ENV_FILE": ""})
    result = subprocess.run(
        [sys.executable, "-m", "devtools.seed", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, (result.stdout, result.stderr)
    if code:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result


@pytest.mark.parametrize("args", [("--users", "0"), ("--sessions", "many"), ("extra",)])
def test_malformed_seed_command_lines_exit_2_with_one_line(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    run_seed(tmp_path / "cli.duckdb", *args, code=2)


def test_seed_command_once_then_refuse_or_skip(tmp_path: Path) -> None:
    db = tmp_path / "cli.duckdb"
    out = run_seed(db, "--users", "5", "--days", "10", "--sessions", "80").stdout
    assert out.startswith("seeded ")
    assert "already has" in run_seed(db, "--sessions", "10", code=1).stderr
    assert "left as it is" in run_seed(db, "--if-empty").stdout


def test_seed_command_says_a_held_database_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "held.duckdb"
    holder = duckdb.connect(str(db))
    try:
        assert "in use by another process" in run_seed(db, code=1).stderr
    finally:
        holder.close()


def test_months_seeded_apart_are_stored_in_time_order(seeded: tuple[Store, dict[str, int]]) -> None:
    """The months are generated one by one; the table must still read in time order."""
    store, _ = seeded
    months = scalar(store, "SELECT count(DISTINCT date_trunc('month', created_at)) FROM sessions")
    backwards = scalar(
        store,
        "SELECT count(*) FROM (SELECT created_at < lag(created_at) OVER (ORDER BY rowid) AS back "
        "FROM sessions) WHERE back",
    )
    assert months >= 2 and backwards == 0
