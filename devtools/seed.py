"""Deterministic demo data, generated inside DuckDB: a million sessions in about 15 seconds.

Staff need a populated dashboard on a fresh install, and the analytics benchmark needs ten
million sessions; both come from here. Every value is derived from ``hash(row, seed, salt)``
rather than ``random()``: DuckDB's ``random()`` differs between threads and runs, while a hash
gives the same rows for the same arguments (on the same DuckDB version, whose ``hash`` is not
promised to be stable across releases).

The rows go through the same tables and follow the same rules as real sessions: one bill per
completed session with the session's own seconds, failed starts billed nothing, group sessions
only on plans that allow them, and no active sessions (the seed never holds a user's slot).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import NoReturn

import duckdb

from awaknow import analytics
from awaknow.config import DEFAULT_PERSONA_ID, DEFAULT_REPLICA_ID, load_settings
from awaknow.errors import AwakNowError, ValidationError
from awaknow.events import event_key
from awaknow.logs import configure_logging
from awaknow.sessions import (
    MAX_CALL_SECONDS,
    PARTICIPANT_ABSENT_TIMEOUT,
    PARTICIPANT_LEFT_TIMEOUT,
)
from awaknow.store import Store, one_row, scalar
from awaknow.tavus_names import (
    RECORDING_READY,
    REPLICA_JOINED,
    SHUTDOWN,
    TRANSCRIPTION_READY,
)

MAX_SESSIONS = 20_000_000
MAX_USERS = 1_000_000
MAX_DAYS = 3660

DEMO_USER_PREFIX = "demo_user_"
# Staff get one untouched user per plan, so they can start a session right after seeding.
STAFF_USERS = {
    "staff_free": ("Staff (Free)", "awaknow_free"),
    "staff_growth": ("Staff (Reflect+)", "awaknow_growth"),
    "staff_pro": ("Staff (Resolve Together)", "awaknow_pro"),
}
# LIKE patterns of the rows the seed owns: ``replace=True`` deletes these and nothing else.
_OWNED_USERS_SQL = (
    "(user_id LIKE 'demo\\_user\\_%' ESCAPE '\\' OR user_id LIKE 'staff\\_%' ESCAPE '\\')"
)

SECOND_PERSONA_ID = "pb2a0c5e19d38"
SECOND_PERSONA_SHARE = 0.1
MOCK_SHARE = 0.15
GROUP_SHARE_ON_GROUP_PLANS = 0.35
FAILED_SHARE_OF_LIVE = 0.04
VERY_SHORT_SHARE = 0.08
# Relative activity per plan: paying users talk more, which also keeps the free plan's small
# monthly allowance from being blown through by an even split of the sessions.
PLAN_ACTIVITY = {"awaknow_free": 2, "awaknow_growth": 4, "awaknow_pro": 8}
ACTIVITY_SPREAD = 5  # a user's activity is its plan's times 1..ACTIVITY_SPREAD
# Each user's monthly ceiling on the smaller plans, as (share of users, lowest, highest fraction
# of the plan's minutes): most stay under half, some go amber, a few red, so every usage band
# shows and nobody is over their limit.
MONTHLY_TARGETS = ((0.60, 0.05, 0.50), (0.20, 0.50, 0.80), (0.20, 0.80, 0.97))
SIGNUP_SPREAD_DAYS = 30  # demo users signed up during the month before the window
# Sessions happen in waking hours (UTC), from FIRST_HOUR for ACTIVE_HOURS hours.
FIRST_HOUR = 7
ACTIVE_HOURS = 16
# Talk time in seconds of an ordinary call (triangular between these) and of a very short one.
TALK_SECONDS = (60, MAX_CALL_SECONDS)
VERY_SHORT_SECONDS = (5, 45)
CREATE_LATENCY_SECONDS = (1, 3)
JOIN_DELAY_SECONDS = (4, 15)
FAILURE_LATENCY_SECONDS = (1, 10)
TIMEOUT_JITTER_SECONDS = 5  # Tavus ends a timed-out call within a few seconds of the timeout
BILLING_DELAY_SECONDS = 2

LIVE_ROOM_URL = "https://tavus.daily.co/"
MOCK_ROOM_URL = "/mock-room/"  # MockTavus's default room path, served by this app
LIVE_REASON = "Demo data: a live Tavus conversation"
MOCK_REASON = "Demo data: a mock conversation (no Tavus API key configured)"

ERROR_REASONS_WITH_SECONDS = {
    "bot_could_not_join_meeting_it_was_probably_ended": (5, 40),
    "exception_encountered_during_conversation_startup": (2, 20),
    "daily_room_has_been_deleted": (10, 200),
    "internal error occurred at step x": (5, 120),
}
# Shutdown reasons of completed sessions (None: no callback arrived), with relative weights.
LIVE_SHUTDOWN_REASONS: tuple[tuple[str | None, float], ...] = (
    ("end_conversation_endpoint_hit", 50),
    ("participant_left_timeout reached", 18),
    ("max_call_duration reached", 12),
    ("participant_absent_timeout reached", 6),
    (None, 6),
    ("bot_could_not_join_meeting_it_was_probably_ended", 3),
    ("exception_encountered_during_conversation_startup", 2),
    ("daily_room_has_been_deleted", 2),
    ("internal error occurred at step x", 1),
)
MOCK_SHUTDOWN_REASONS: tuple[tuple[str | None, float], ...] = (
    ("end_conversation_endpoint_hit", 70),
    ("max_call_duration reached", 20),
    (None, 10),
)
# Failed starts: the Tavus answer each stands for (status, body) and the error kind and message
# the Tavus client gives for it, copied so the seed needs neither the client nor httpx;
# tests/test_seed.py checks the client still says exactly this.
FAILURE_ANSWERS: tuple[tuple[int, dict[str, str], str, str, float], ...] = (
    (
        402,
        {"message": "The user is out of conversational credits"},
        "TavusCreditsError",
        "The Tavus account is out of conversational credits (402 The user is out of "
        "conversational credits): add credits in the Tavus dashboard",
        10,
    ),
    (
        400,
        {"message": "User has reached maximum concurrent conversations"},
        "TavusConcurrencyError",
        "Every concurrent conversation slot of the Tavus plan is in use (400 User has reached "
        "maximum concurrent conversations): end active conversations "
        "(python -m awaknow sessions --active) or raise the plan's limit",
        30,
    ),
    (
        429,
        {"message": "Too many requests"},
        "TavusRateLimitError",
        "Tavus is rate limiting requests (429 Too many requests): wait a few seconds and try again",
        15,
    ),
    (
        503,
        {"message": "Service Unavailable"},
        "TavusServerError",
        "Tavus had a server error (503 Service Unavailable): try again in a minute; if it "
        "persists, check the Tavus status page",
        45,
    ),
)
FAILURES: tuple[tuple[str, str, float], ...] = tuple(
    (kind, message, weight) for _, _, kind, message, weight in FAILURE_ANSWERS
)

FIRST_NAMES = (
    "Ava",
    "Ben",
    "Chloe",
    "Diego",
    "Elif",
    "Farah",
    "Gus",
    "Hana",
    "Ivan",
    "Jade",
    "Kofi",
    "Lena",
    "Mateo",
    "Nia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sami",
    "Tara",
    "Uma",
    "Viktor",
    "Wen",
    "Yara",
    "Zane",
)

DETAIL_SESSIONS = 5  # newest demo sessions that get callback events, a transcript, a recording
DEMO_TRANSCRIPT = (
    ("system", "You are the AwakNow companion. Listen with warmth and reflect feelings back."),
    ("assistant", "Hi, it's good to see you. How are you arriving today?"),
    ("user", "Honestly a bit scattered. Too many things at once."),
    ("assistant", "That sounds tiring. Which of those things is loudest right now?"),
    ("user", "The conversation I keep putting off with my sister."),
    ("assistant", "What would a first small step toward that conversation look like?"),
)
RECORDING_BUCKET = "awaknow-demo-recordings"
TALK_SESSIONS = 400  # further newest joined live sessions that get a generated transcript
MAX_TURNS = 14
REPLICA_LINES = (
    "How are you arriving today?",
    "That sounds heavy. What feels most pressing?",
    "I hear you. What would help right now?",
    "Let's slow down for a moment and breathe together.",
    "What did you notice in yourself when that happened?",
)
USER_LINES = (
    "Tired, but okay.",
    "Work has been a lot this week and I keep worrying at night.",
    "I think I need to talk to my partner about it.",
    "Better now, thank you.",
    "I noticed my chest got tight and I stopped listening.",
)
RATED_SHARE = 0.35  # of completed demo sessions
_ERROR_GROUPS = ", ".join(f"'{group}'" for group in analytics.ERROR_SHUTDOWN_GROUPS)
LOW_RATING_NOTES = (
    "The replica joined late.",
    "Felt rushed at the end.",
    "Hard to hear, the call kept freezing.",
    "Did not feel listened to.",
)


def _literal(value: str | None) -> str:
    """A SQL literal for one of this module's constants (never for a caller's value)."""
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


def _hash(key: str, salt: str) -> str:
    """A deterministic 64-bit number per ``key``, seed and salt.

    Hashed twice: DuckDB combines the hashes of several arguments almost linearly, so values
    for two salts of one row come out strongly correlated; the outer hash mixes that away.
    """
    return f"hash(hash({key}, $seed, '{salt}'))"


def _uniform(key: str, salt: str) -> str:
    """A deterministic uniform number in [0, 1) per ``key``, seed and salt."""
    return f"({_hash(key, salt)} / 18446744073709551616.0)"


def _between(key: str, salt: str, bounds: tuple[int, int]) -> str:
    """A deterministic whole number in [lo, hi] per row of ``key`` and seed."""
    lo, hi = bounds
    return f"({lo} + CAST({_hash(key, salt)} % {hi - lo + 1} AS INTEGER))"


def _choose(u: str, choices: Sequence[tuple[str | None, float]]) -> str:
    """CASE picking one value with probability proportional to its weight."""
    total = sum(weight for _, weight in choices)
    branches, upto = [], 0.0
    for value, weight in choices[:-1]:
        upto += weight / total
        branches.append(f"WHEN {u} < {upto!r} THEN {_literal(value)}")
    return f"CASE {' '.join(branches)} ELSE {_literal(choices[-1][0])} END"


def _target_fraction(u: str) -> str:
    """CASE mapping a uniform number onto MONTHLY_TARGETS."""
    branches, upto = [], 0.0
    for share, lo, hi in MONTHLY_TARGETS:
        start, upto = upto, upto + share
        branches.append(
            f"WHEN {u} < {upto!r} THEN {lo!r} + ({u} - {start!r}) / {share!r} * {hi - lo!r}"
        )
    return f"CASE {' '.join(branches)} ELSE {MONTHLY_TARGETS[-1][2]!r} END"


def _seconds_sql() -> str:
    """Billed seconds by shutdown reason: timeouts land on their timeout, errors are short."""
    errors = " ".join(
        f"WHEN {_literal(reason)} THEN {_between('i', 'err_seconds', bounds)}"
        for reason, bounds in ERROR_REASONS_WITH_SECONDS.items()
    )
    absent = (PARTICIPANT_ABSENT_TIMEOUT, PARTICIPANT_ABSENT_TIMEOUT + TIMEOUT_JITTER_SECONDS)
    lo, hi = TALK_SECONDS
    half = (hi - lo) // 2
    talk = (
        f"CASE WHEN {_uniform('i', 'short')} < {VERY_SHORT_SHARE!r} "
        f"THEN {_between('i', 'short_seconds', VERY_SHORT_SECONDS)} "
        f"ELSE {_between('i', 'talk_a', (lo, lo + half))} "
        f"+ {_between('i', 'talk_b', (0, half))} END"
    )
    return (
        f"CASE WHEN failed THEN 0 ELSE least({MAX_CALL_SECONDS}, CASE shutdown_reason "
        f"WHEN 'max_call_duration reached' THEN {MAX_CALL_SECONDS} "
        f"WHEN 'participant_absent_timeout reached' "
        f"THEN {_between('i', 'absent', absent)} "
        f"WHEN 'participant_left_timeout reached' THEN {talk} + {PARTICIPANT_LEFT_TIMEOUT} "
        f"{errors} ELSE {talk} END) END"
    )


_FAILURE_KIND = _choose(_uniform("i", "failure"), [(k, w) for k, _, w in FAILURES])
_FAILURE_MESSAGE = _choose(_uniform("i", "failure"), [(m, w) for _, m, w in FAILURES])
_NO_JOIN_REASONS = ", ".join(
    _literal(r)
    for r in (
        "bot_could_not_join_meeting_it_was_probably_ended",
        "exception_encountered_during_conversation_startup",
    )
)
_PLAN_ACTIVITY = " ".join(
    f"WHEN {_literal(plan)} THEN {weight}" for plan, weight in PLAN_ACTIVITY.items()
)

# One statement from range() to rows, run once per calendar month of the window (the months
# in order, so the table ends up in time order, as real appends would leave it): pick a user by
# activity-weighted slot, draw every attribute from hashes, hand each session that would take a
# user past their monthly target to a user on the roomiest plan (the cheap way to keep usage
# under the limits of the small plans), then derive ids and timestamps. A month is a unit
# because the target is monthly: its rows depend on no other month, so the months give the same
# rows as one statement over the window, while the window function and the sort only ever hold
# one month.
SESSIONS_SQL = f"""
INSERT INTO sessions BY NAME
WITH subscribed AS (
    SELECT u.user_id, s.plan_id, s.tavus_minutes_limit, s.group_sessions,
           {_uniform("u.user_id", "target")} AS t
    FROM users u JOIN user_subscriptions s USING (user_id)
    WHERE u.user_id LIKE 'demo\\_user\\_%' ESCAPE '\\'
),
demo AS (
    -- heavy users are the ones near their limit: activity and target share one draw
    SELECT user_id, plan_id, group_sessions,
           CASE plan_id {_PLAN_ACTIVITY} ELSE 1 END
               * (1 + CAST(floor(t * {ACTIVITY_SPREAD}) AS INTEGER)) AS weight,
           tavus_minutes_limit * 60 * ({_target_fraction("t")}) AS budget_seconds,
           tavus_minutes_limit = max(tavus_minutes_limit) OVER () AS roomy
    FROM subscribed
),
roomy AS (
    SELECT user_id, plan_id, row_number() OVER (ORDER BY user_id) - 1 AS roomy_slot
    FROM demo WHERE roomy
),
slots AS (
    SELECT *, CAST(sum(weight) OVER (ORDER BY user_id) AS BIGINT) - weight AS first_slot
    FROM demo
),
picks AS (
    SELECT user_id, plan_id, group_sessions, budget_seconds, roomy, first_slot + j AS slot
    FROM (SELECT *, unnest(range(weight)) AS j FROM slots)
),
dated AS (
    -- density grows linearly towards today, like a product that is picking up
    SELECT i, $window_start + CAST(least($days - 1, floor($days * sqrt({_uniform("i", "day")})))
            AS INTEGER) AS day
    FROM range($sessions) r(i)
),
numbered AS (
    SELECT i, day, CAST({_hash("i", "user")} % total.slots AS BIGINT) AS slot,
        CAST({_hash("i", "roomy")} % nullif(total.roomy, 0) AS BIGINT) AS roomy_slot
    FROM dated,
        (SELECT CAST(sum(weight) AS BIGINT) AS slots, count(*) FILTER (roomy) AS roomy
         FROM demo) total
    WHERE day >= $chunk_start AND day < $chunk_end
),
drawn AS (
    SELECT i, roomy_slot, p.user_id, p.plan_id, p.budget_seconds, p.roomy,
        CASE WHEN p.group_sessions AND {_uniform("i", "type")} < {GROUP_SHARE_ON_GROUP_PLANS!r}
             THEN 'resolve_together' ELSE 'reflect_alone' END AS session_type,
        CASE WHEN {_uniform("i", "mode")} < {MOCK_SHARE!r} THEN 'mock' ELSE 'live' END AS mode,
        CASE WHEN {_uniform("i", "persona")} < {SECOND_PERSONA_SHARE!r}
             THEN $second_persona ELSE $persona END AS persona_id,
        day,
        {_between("i", "time", (FIRST_HOUR * 3600, (FIRST_HOUR + ACTIVE_HOURS) * 3600 - 1))}
            AS time_of_day
    FROM numbered JOIN picks p USING (slot)
),
outcome AS (
    SELECT *,
        mode = 'live' AND {_uniform("i", "fail")} < {FAILED_SHARE_OF_LIVE!r} AS failed,
        CASE WHEN mode = 'live' AND {_uniform("i", "fail")} < {FAILED_SHARE_OF_LIVE!r} THEN NULL
             WHEN mode = 'live' THEN {_choose(_uniform("i", "reason"), LIVE_SHUTDOWN_REASONS)}
             ELSE {_choose(_uniform("i", "reason"), MOCK_SHUTDOWN_REASONS)} END
            AS shutdown_reason
    FROM drawn
),
timed AS (
    SELECT *, {_seconds_sql()} AS seconds FROM outcome
),
capped AS (
    SELECT *,
        NOT roomy AND sum(seconds) OVER (
            PARTITION BY user_id, date_trunc('month', day) ORDER BY day, time_of_day, i
        ) > budget_seconds AS over_target
    FROM timed
),
placed AS (
    SELECT c.* REPLACE (
            coalesce(r.user_id, c.user_id) AS user_id, coalesce(r.plan_id, c.plan_id) AS plan_id
        ),
        CAST(day AS TIMESTAMP) + to_seconds(time_of_day) AS created_at,
        md5(concat('awaknow-demo-session:', $seed, ':', i)) AS h,
        'c' || left(md5(concat('awaknow-demo-conversation:', $seed, ':', i)), 16) AS conv,
        {_between("i", "latency", CREATE_LATENCY_SECONDS)} AS latency,
        {_between("i", "join", JOIN_DELAY_SECONDS)} AS join_delay
    FROM capped c LEFT JOIN roomy r ON c.over_target AND r.roomy_slot = c.roomy_slot
),
ided AS (
    SELECT *,
        concat_ws('-', left(h, 8), substr(h, 9, 4), '4' || substr(h, 14, 3),
                  'a' || substr(h, 18, 3), substr(h, 21, 12)) AS session_id,
        created_at + to_seconds(latency) AS started
    FROM placed
)
SELECT
    session_id,
    user_id,
    session_type,
    CASE WHEN failed THEN 'failed' ELSE 'completed' END AS status,
    mode,
    CASE mode WHEN 'live' THEN $live_reason ELSE $mock_reason END AS mode_reason,
    plan_id,
    persona_id,
    $replica AS replica_id,
    CASE WHEN NOT failed THEN conv END AS conversation_id,
    'awaknow_' || session_type || '_' || session_id AS conversation_name,
    CASE WHEN failed THEN NULL
         WHEN mode = 'live' THEN $live_room || conv
         ELSE $mock_room || conv END AS conversation_url,
    {MAX_CALL_SECONDS} AS max_call_duration,
    created_at,
    CASE WHEN NOT failed THEN started END AS started_at,
    CASE WHEN NOT failed AND seconds > join_delay
              AND coalesce(shutdown_reason NOT IN ({_NO_JOIN_REASONS}), true)
         THEN started + to_seconds(join_delay) END AS replica_joined_at,
    CASE WHEN failed
         THEN created_at + to_seconds({_between("i", "fail_latency", FAILURE_LATENCY_SECONDS)})
         ELSE started + to_seconds(seconds) END AS ended_at,
    CASE WHEN failed THEN 'app'
         WHEN shutdown_reason IS NULL OR shutdown_reason = 'end_conversation_endpoint_hit'
             THEN 'user'
         WHEN mode = 'mock' THEN 'reaper'
         ELSE 'tavus' END AS end_source,
    shutdown_reason,
    CASE WHEN failed THEN {_FAILURE_KIND} END AS error_kind,
    CASE WHEN failed THEN {_FAILURE_MESSAGE} END AS error_message,
    seconds AS seconds_used
FROM ided
ORDER BY created_at, i
"""

# A bill for exactly the completed demo sessions, from their own rows: Tavus's clock when its
# shutdown callback arrived (a live session with a reason), the app's otherwise. Sessions are
# stored in time order and DuckDB keeps that order, so the bills are in time order too.
USAGE_SQL = f"""
INSERT INTO tavus_usage BY NAME
SELECT session_id, user_id, plan_id, persona_id, replica_id, session_type, mode,
       conversation_id, started_at, ended_at, seconds_used,
       seconds_used / 60 AS minutes_used,
       CAST(started_at AS DATE) AS usage_date,
       CASE WHEN mode = 'live' AND shutdown_reason IS NOT NULL THEN 'tavus' ELSE 'app' END
           AS clock,
       ended_at + to_seconds({BILLING_DELAY_SECONDS}) AS billed_at
FROM sessions
WHERE status = 'completed' AND user_id LIKE 'demo\\_user\\_%' ESCAPE '\\'
"""

# Demo users take the plans in turn (by price), so any three consecutive users cover them all;
# staff users get the plan named for them. Limits are copied from the plan, as
# accounts._subscribe does when a user subscribes.
USERS_SQL = (
    f"""
CREATE TEMP TABLE new_users AS
SELECT $prefix || lpad(CAST(k AS VARCHAR), $width, '0') AS user_id,
       list_element($first_names, CAST((k - 1) % len($first_names) + 1 AS INTEGER)) || ' '
           || chr(CAST(65 + ((k - 1) // len($first_names)) % 26 AS INTEGER)) || '.'
           AS display_name,
       list_element(
           (SELECT list(plan_id ORDER BY price_usd, plan_id) FROM plans),
           CAST((k - 1) % (SELECT count(*) FROM plans) + 1 AS INTEGER)) AS plan_id,
       CAST($window_start - {_between("k", "joined", (1, SIGNUP_SPREAD_DAYS))} AS TIMESTAMP)
           + to_seconds({FIRST_HOUR * 3600}) AS created_at
FROM range(1, $users + 1) r(k)
UNION ALL
SELECT unnest($staff_ids), unnest($staff_names), unnest($staff_plans),
       CAST($window_start AS TIMESTAMP)
""",
    "INSERT INTO users BY NAME SELECT user_id, display_name, created_at FROM new_users",
    """
INSERT INTO user_subscriptions BY NAME
SELECT n.user_id, p.plan_id, 'active' AS status, 'calendar_month' AS period,
       p.minutes_per_month AS tavus_minutes_limit, p.solo_sessions_per_day, p.group_sessions,
       n.created_at AS started_at, n.created_at AS updated_at
FROM new_users n JOIN plans p USING (plan_id)
""",
    "DROP TABLE new_users",
)


def _months(first: date, end: date) -> list[tuple[date, date]]:
    """The calendar months from ``first`` up to ``end`` (exclusive), clipped to that range."""
    chunks = []
    while first < end:
        next_month = (first.replace(day=1) + timedelta(days=32)).replace(day=1)
        chunks.append((first, min(next_month, end)))
        first = next_month
    return chunks


def is_empty(store: Store) -> bool:
    """True when there are no users and no sessions: the state a fresh install starts in."""
    row = (
        store.cursor()
        .execute("SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM sessions)")
        .fetchone()
    )
    return not row or row[0] == 0


def _validate(users: int, days: int, sessions: int, today: date | None) -> date:
    if not 1 <= users <= MAX_USERS:
        raise ValidationError(f"users must be between 1 and {MAX_USERS:,}, not {users}")
    if not 1 <= days <= MAX_DAYS:
        raise ValidationError(f"days must be between 1 and {MAX_DAYS:,}, not {days}")
    if not 0 <= sessions <= MAX_SESSIONS:
        raise ValidationError(f"sessions must be between 0 and {MAX_SESSIONS:,}, not {sessions}")
    if today is not None and (isinstance(today, datetime) or not isinstance(today, date)):
        raise ValidationError(f"today must be a date, not {today!r}")
    return today or datetime.now(UTC).date()


def _check_target(cur: duckdb.DuckDBPyConnection, replace: bool) -> None:
    """Refuse to mix demo rows into data, and to delete a demo user's running session."""
    if replace:
        active = cur.execute(
            f"SELECT user_id FROM active_sessions WHERE {_OWNED_USERS_SQL} ORDER BY user_id"
        ).fetchall()
        if active:
            names = ", ".join(row[0] for row in active)
            raise ValidationError(
                f"{names} still has an active session: end it before replacing the demo data"
            )
        return
    sessions = scalar(cur, "SELECT count(*) FROM sessions")
    if sessions:
        raise ValidationError(
            f"The database already has {sessions:,} sessions: seed an empty database "
            "(set AWAKNOW_DB_PATH to a new file)"
        )
    owned = scalar(cur, f"SELECT count(*) FROM users WHERE {_OWNED_USERS_SQL}")
    if owned:
        raise ValidationError(
            f"The database already has {owned:,} demo or staff users: seed an empty database "
            "(set AWAKNOW_DB_PATH to a new file)"
        )


def _delete_owned(cur: duckdb.DuckDBPyConnection) -> None:
    """Remove earlier demo and staff rows, children first; other users' rows stay."""
    owned_sessions = f"SELECT session_id FROM sessions WHERE {_OWNED_USERS_SQL}"
    for table in ("conversation_events", "transcripts", "recordings", "session_feedback"):
        cur.execute(f"DELETE FROM {table} WHERE session_id IN ({owned_sessions})")
    for table in ("tavus_usage", "sessions", "user_subscriptions", "users"):
        cur.execute(f"DELETE FROM {table} WHERE {_OWNED_USERS_SQL}")


def _detail_rows(cur: duckdb.DuckDBPyConnection) -> tuple[int, int, int]:
    """Callback events, a transcript and a recording for the newest live demo sessions.

    Stored as the webhook route stores them (raw envelope, ``events.event_key`` identity,
    already processed), so the session detail page has something to show.
    """
    sessions = cur.execute(
        "SELECT session_id, conversation_id, replica_id, shutdown_reason, replica_joined_at, "
        "ended_at, seconds_used FROM sessions "
        "WHERE status = 'completed' AND mode = 'live' AND replica_joined_at IS NOT NULL "
        "AND shutdown_reason IS NOT NULL AND user_id LIKE 'demo\\_user\\_%' ESCAPE '\\' "
        "ORDER BY created_at DESC, session_id LIMIT ?",
        [DETAIL_SESSIONS],
    ).fetchall()
    events: list[list[object]] = []
    transcripts: list[list[object]] = []
    recordings: list[list[object]] = []
    transcript = [{"role": role, "content": text} for role, text in DEMO_TRANSCRIPT]
    for session_id, conversation_id, replica_id, reason, joined, ended, seconds in sessions:
        s3_key = f"{conversation_id}/recording.mp4"
        received = ended + timedelta(seconds=BILLING_DELAY_SECONDS)
        for event_type, moment, properties in (
            (REPLICA_JOINED, joined, {"replica_id": replica_id}),
            (SHUTDOWN, ended, {"replica_id": replica_id, "shutdown_reason": reason}),
            (TRANSCRIPTION_READY, received, {"transcript": transcript}),
            (
                RECORDING_READY,
                received,
                {"bucket_name": RECORDING_BUCKET, "s3_key": s3_key, "duration": seconds},
            ),
        ):
            envelope = {
                "conversation_id": conversation_id,
                "event_type": event_type,
                "message_type": event_type.split(".", 1)[0],
                "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "properties": properties,
            }
            events.append(
                [
                    event_key(envelope),
                    conversation_id,
                    session_id,
                    event_type,
                    envelope["message_type"],
                    moment,
                    received,
                    json.dumps(envelope),
                    received,
                ]
            )
        transcripts.extend(
            [conversation_id, seq, session_id, role, text]
            for seq, (role, text) in enumerate(DEMO_TRANSCRIPT)
        )
        recordings.append(
            [
                conversation_id,
                session_id,
                RECORDING_BUCKET,
                s3_key,
                float(seconds),
                "s3",
                f"s3://{RECORDING_BUCKET}/{s3_key}",
                received,
            ]
        )
    if events:
        cur.executemany(
            "INSERT INTO conversation_events (event_key, conversation_id, session_id, "
            "event_type, message_type, event_timestamp, received_at, source, known_type, "
            "payload, processed_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'callback', true, ?, ?)",
            events,
        )
        cur.executemany(
            "INSERT INTO transcripts (conversation_id, seq, session_id, role, content) "
            "VALUES (?, ?, ?, ?, ?)",
            transcripts,
        )
        cur.executemany(
            "INSERT INTO recordings (conversation_id, session_id, bucket_name, s3_key, duration, "
            "storage_provider, storage_uri, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            recordings,
        )
    return len(events), len(transcripts), len(recordings)


def _talk_rows(cur: duckdb.DuckDBPyConnection, seed: int) -> int:
    """Generated transcripts for the ``TALK_SESSIONS`` newest joined live demo sessions
    without one: longer calls have more turns, and on the second persona people say more."""
    before = scalar(cur, "SELECT count(*) FROM transcripts")
    cur.execute(
        f"""
        INSERT INTO transcripts (conversation_id, seq, session_id, role, content)
        SELECT conversation_id, seq, session_id,
            CASE WHEN seq % 2 = 0 THEN 'replica' ELSE 'user' END,
            CASE WHEN seq % 2 = 0
                 THEN list_element($replica_lines, 1 + CAST({_hash("session_id || seq", "replica_line")} % len($replica_lines) AS INTEGER))
                 ELSE list_element($user_lines, 1 + CAST({_hash("session_id || seq", "user_line")} % len($user_lines) AS INTEGER))
                      || CASE WHEN persona_id = $second_persona
                              THEN ' ' || list_element($user_lines, 2) ELSE '' END
            END
        FROM (
            SELECT session_id, conversation_id, persona_id,
                least({MAX_TURNS}, 2 + CAST(seconds_used / 25 AS INTEGER)) AS turns
            FROM sessions
            WHERE {_OWNED_USERS_SQL} AND status = 'completed' AND mode = 'live'
                AND replica_joined_at IS NOT NULL
                AND conversation_id NOT IN (SELECT conversation_id FROM transcripts)
            ORDER BY created_at DESC, session_id LIMIT $talk_sessions
        ) picked, LATERAL range(0, picked.turns) r(seq)
        """,  # noqa: E501
        {
            "seed": seed,
            "replica_lines": list(REPLICA_LINES),
            "user_lines": list(USER_LINES),
            "second_persona": SECOND_PERSONA_ID,
            "talk_sessions": TALK_SESSIONS,
        },
    )
    return int(scalar(cur, "SELECT count(*) FROM transcripts")) - int(before)


def _rating_rows(cur: duckdb.DuckDBPyConnection, seed: int) -> int:
    """Ratings for ``RATED_SHARE`` of completed demo sessions: good calls rate higher, failed
    or very short ones lower, the second persona a little lower; notes on some low ones."""
    cur.execute(
        f"""
        INSERT INTO session_feedback (session_id, user_id, persona_id, session_type, mode,
            plan_id, day, seconds_used, rating, note, rated_by, rated_at)
        SELECT session_id, user_id, persona_id, session_type, mode, plan_id,
            CAST(created_at AS DATE), seconds_used, rating,
            CASE WHEN rating <= 2 AND {_uniform("session_id", "note")} < 0.6
                 THEN list_element($notes, 1 + CAST({_hash("session_id", "which_note")} % len($notes) AS INTEGER))
            END,
            'demo', ended_at + INTERVAL 90 SECOND
        FROM (
            SELECT *, CAST(greatest(1, least(5, round(
                CASE WHEN shutdown_reason_group(shutdown_reason) IN ({_ERROR_GROUPS}) THEN 1.8
                     WHEN seconds_used < 60 THEN 2.6
                     WHEN shutdown_reason_group(shutdown_reason) = 'max_call_duration' THEN 3.6
                     ELSE 4.2 END
                + CASE WHEN persona_id = $second_persona THEN -0.4 ELSE 0 END
                + ({_uniform("session_id", "rating")} - 0.5) * 2.2))) AS INTEGER) AS rating
            FROM sessions
            WHERE {_OWNED_USERS_SQL} AND status = 'completed'
                AND {_uniform("session_id", "rated")} < $rated_share
        )
        """,  # noqa: E501
        {
            "seed": seed,
            "notes": list(LOW_RATING_NOTES),
            "second_persona": SECOND_PERSONA_ID,
            "rated_share": RATED_SHARE,
        },
    )
    return int(scalar(cur, f"SELECT count(*) FROM session_feedback WHERE {_OWNED_USERS_SQL}"))


def seed_demo(
    store: Store,
    *,
    users: int = 40,
    days: int = 90,
    sessions: int = 3000,
    seed: int = 7,
    today: date | None = None,
    replace: bool = False,
) -> dict[str, int]:
    """Write demo users (``demo_user_NNN``), three staff users and their sessions; one transaction.

    Sessions fall on the ``days`` days before ``today`` (default: today, UTC), so none lies in
    the future of a session a staff member starts now. Each month, users on the smaller plans
    stay under a per-user share of their plan's minutes (most under 50 %, some amber, a few
    above 80 %); the sessions that would exceed it go to users on the roomiest plan. Daily
    solo-session limits are not enforced.
    ``replace`` first deletes earlier demo and staff users with all their rows.
    Returns the number of rows written per kind.
    """
    today = _validate(users, days, sessions, today)
    window_start = today - timedelta(days=days)
    with store.transaction() as cur:
        _check_target(cur, replace)
        if replace:
            _delete_owned(cur)
        user_params = {
            "prefix": DEMO_USER_PREFIX,
            "width": max(3, len(str(users))),
            "first_names": list(FIRST_NAMES),
            "window_start": window_start,
            "seed": seed,
            "users": users,
            "staff_ids": list(STAFF_USERS),
            "staff_names": [name for name, _ in STAFF_USERS.values()],
            "staff_plans": [plan for _, plan in STAFF_USERS.values()],
        }
        for statement in USERS_SQL:
            cur.execute(statement, user_params if "$" in statement else None)
        for chunk_start, chunk_end in _months(window_start, today):
            cur.execute(
                SESSIONS_SQL,
                {
                    "seed": seed,
                    "sessions": sessions,
                    "days": days,
                    "window_start": window_start,
                    "chunk_start": chunk_start,
                    "chunk_end": chunk_end,
                    "persona": DEFAULT_PERSONA_ID,
                    "second_persona": SECOND_PERSONA_ID,
                    "replica": DEFAULT_REPLICA_ID,
                    "live_reason": LIVE_REASON,
                    "mock_reason": MOCK_REASON,
                    "live_room": LIVE_ROOM_URL,
                    "mock_room": MOCK_ROOM_URL,
                },
            )
        cur.execute(USAGE_SQL)
        events, transcript_rows, recordings = _detail_rows(cur)
        transcript_rows += _talk_rows(cur, seed)
        ratings = _rating_rows(cur, seed)
        # The seed rewrites old days, which an incremental refresh would leave alone.
        analytics.refresh_rollups(cur, full=True)
        counts = one_row(
            cur,
            f"SELECT (SELECT count(*) FROM users WHERE {_OWNED_USERS_SQL}), "
            f"(SELECT count(*) FROM user_subscriptions WHERE {_OWNED_USERS_SQL}), "
            "count(*), count(*) FILTER (status = 'completed'), "
            "count(*) FILTER (status = 'failed'), "
            f"(SELECT count(*) FROM tavus_usage WHERE {_OWNED_USERS_SQL}) "
            f"FROM sessions WHERE {_OWNED_USERS_SQL}",
        )
    keys = ("users", "subscriptions", "sessions", "completed", "failed", "usage_rows")
    return {
        **dict(zip(keys, (int(c) for c in counts), strict=True)),
        "events": events,
        "transcript_rows": transcript_rows,
        "recordings": recordings,
        "ratings": ratings,
    }


class _Parser(argparse.ArgumentParser):
    """argparse prints usage plus an error; one line is what every command here promises."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {value!r}")
    return int(value)


def _count(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number, not {value!r}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m devtools.seed",
        description="Write deterministic demo data into the app's database.",
    )
    parser.add_argument(
        "--db", help="DuckDB file (default: AWAKNOW_DB_PATH or data/awaknow.duckdb)"
    )
    parser.add_argument("--users", type=_positive, default=40)
    parser.add_argument("--days", type=_positive, default=90)
    parser.add_argument("--sessions", type=_count, default=3000)
    parser.add_argument("--seed", type=_count, default=7)
    parser.add_argument("--replace", action="store_true", help="replace earlier demo data")
    parser.add_argument("--if-empty", action="store_true", help="do nothing if sessions exist")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Seed the configured database; an expected failure is one line on stderr and status 1."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings.log_level.value or "WARNING")
        store = Store(args.db if args.db is not None else settings.resolved_db_path())
    except AwakNowError as exc:
        print(f"seed: {exc}", file=sys.stderr)
        return 1
    try:
        if args.if_empty and not is_empty(store):
            print(f"{store.path} already has sessions: left as it is")
            return 0
        counts = seed_demo(
            store,
            users=args.users,
            days=args.days,
            sessions=args.sessions,
            seed=args.seed,
            replace=args.replace,
        )
    except AwakNowError as exc:
        print(f"seed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        store.close()
    print("seeded " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
