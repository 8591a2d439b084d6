"""The DuckDB file: one connection per process, a cursor per thread, ordered migrations.

DuckDB lets a single process write a file, so the app, its callback route and its reaper share
one connection (``Store``) and each thread takes its own cursor. A second process that tries to
open the file gets ``DatabaseLockedError`` with a sentence instead of DuckDB's IO error.

The path is checked before DuckDB sees it: DuckDB's own errors for a folder, a file in place of
a folder or an SQLite file are multi-line, and for SQLite it even tries to download an
extension. A database written by a newer AwakNow is refused rather than migrated backwards.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from awaknow.errors import DatabaseFileError, DatabaseLockedError, shorten
from awaknow.logs import get_logger

log = get_logger("store")

T = TypeVar("T")

PLANS_SQL = """
INSERT INTO plans (plan_id, name, price_usd, minutes_per_month, solo_sessions_per_day,
    group_sessions) VALUES
    ('awaknow_free', 'Free', 0.00, 25, 1, false),
    ('awaknow_growth', 'Reflect+', 9.99, 100, NULL, false),
    ('awaknow_pro', 'Resolve Together', 19.99, 15000, NULL, true)
ON CONFLICT DO NOTHING
"""

# Ordered and append-only: a released migration is never edited, a new one is added.
MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "plans, users, subscriptions, sessions, usage",
        """
        CREATE TABLE IF NOT EXISTS plans (
            plan_id VARCHAR PRIMARY KEY,
            name VARCHAR NOT NULL,
            price_usd DECIMAL(8, 2) NOT NULL,
            minutes_per_month INTEGER NOT NULL,
            solo_sessions_per_day INTEGER,          -- NULL means unlimited
            group_sessions BOOLEAN NOT NULL
        );
        CREATE TABLE IF NOT EXISTS users (
            user_id VARCHAR PRIMARY KEY,
            display_name VARCHAR,
            created_at TIMESTAMP NOT NULL
        );
        -- Limits are copied from the plan when the user subscribes, so a later price or
        -- limit change of a plan does not silently change existing subscriptions.
        CREATE TABLE IF NOT EXISTS user_subscriptions (
            user_id VARCHAR PRIMARY KEY,
            plan_id VARCHAR NOT NULL,
            status VARCHAR NOT NULL,                 -- active | cancelled
            period VARCHAR NOT NULL,                 -- calendar_month
            tavus_minutes_limit INTEGER NOT NULL,
            solo_sessions_per_day INTEGER,
            group_sessions BOOLEAN NOT NULL,
            started_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL
        );
        CREATE TABLE IF NOT EXISTS sessions (
            session_id VARCHAR PRIMARY KEY,
            user_id VARCHAR NOT NULL,
            session_type VARCHAR NOT NULL,           -- reflect_alone | resolve_together
            status VARCHAR NOT NULL,                 -- starting | active | completed | failed
            mode VARCHAR NOT NULL,                   -- live | mock
            mode_reason VARCHAR,
            plan_id VARCHAR,
            persona_id VARCHAR NOT NULL,
            replica_id VARCHAR NOT NULL,
            conversation_id VARCHAR,
            conversation_name VARCHAR NOT NULL,
            conversation_url VARCHAR,
            context VARCHAR,
            max_call_duration INTEGER NOT NULL,
            created_at TIMESTAMP NOT NULL,           -- row written, before any Tavus call
            started_at TIMESTAMP,                    -- conversation created: billing starts
            replica_joined_at TIMESTAMP,
            ended_at TIMESTAMP,
            end_source VARCHAR,                      -- user | reaper | tavus | cli
            shutdown_reason VARCHAR,
            error_kind VARCHAR,
            error_message VARCHAR,
            seconds_used INTEGER,
            perception_analysis VARCHAR
        );
        CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_id);
        CREATE INDEX IF NOT EXISTS sessions_conversation ON sessions (conversation_id);
        -- The one-active-session rule lives here: a row per user with a running session,
        -- inserted in the same transaction as the session and guarded by the primary key.
        CREATE TABLE IF NOT EXISTS active_sessions (
            user_id VARCHAR PRIMARY KEY,
            session_id VARCHAR NOT NULL,
            reserved_at TIMESTAMP NOT NULL
        );
        -- One row per billed session: the primary key is what makes billing happen once.
        CREATE TABLE IF NOT EXISTS tavus_usage (
            session_id VARCHAR PRIMARY KEY,
            user_id VARCHAR NOT NULL,
            plan_id VARCHAR,
            persona_id VARCHAR NOT NULL,
            replica_id VARCHAR NOT NULL,
            session_type VARCHAR NOT NULL,
            mode VARCHAR NOT NULL,
            conversation_id VARCHAR,
            started_at TIMESTAMP NOT NULL,
            ended_at TIMESTAMP NOT NULL,
            seconds_used INTEGER NOT NULL,
            minutes_used DOUBLE NOT NULL,
            usage_date DATE NOT NULL,
            clock VARCHAR NOT NULL,                  -- app | tavus: whose end time was billed
            billed_at TIMESTAMP NOT NULL
        );
        CREATE INDEX IF NOT EXISTS usage_user_date ON tavus_usage (user_id, usage_date);
        """,
    ),
    (2, "the three AwakNow plans", PLANS_SQL),
    (
        3,
        "Tavus callback events, transcripts, recordings",
        """
        CREATE TABLE IF NOT EXISTS conversation_events (
            event_key VARCHAR PRIMARY KEY,           -- hash of the event's identity
            conversation_id VARCHAR NOT NULL,
            session_id VARCHAR,                      -- NULL: a conversation we do not know
            event_type VARCHAR NOT NULL,
            message_type VARCHAR,
            event_timestamp TIMESTAMP,
            received_at TIMESTAMP NOT NULL,
            source VARCHAR NOT NULL,                 -- callback | poll
            known_type BOOLEAN NOT NULL,
            payload VARCHAR NOT NULL                 -- the raw JSON as received
        );
        CREATE INDEX IF NOT EXISTS events_conversation ON conversation_events (conversation_id);
        CREATE TABLE IF NOT EXISTS transcripts (
            conversation_id VARCHAR NOT NULL,
            seq INTEGER NOT NULL,
            session_id VARCHAR,
            role VARCHAR NOT NULL,
            content VARCHAR NOT NULL,
            spoken_at DOUBLE,                        -- Unix epoch seconds, when Tavus sends it
            seconds_from_start DOUBLE,
            duration DOUBLE,
            PRIMARY KEY (conversation_id, seq)
        );
        CREATE TABLE IF NOT EXISTS recordings (
            conversation_id VARCHAR PRIMARY KEY,
            session_id VARCHAR,
            bucket_name VARCHAR,
            s3_key VARCHAR,
            duration DOUBLE,
            storage_provider VARCHAR,
            storage_uri VARCHAR,
            received_at TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        4,
        "event processing state, conversation polls, shutdown reason groups",
        r"""
        -- Raw events are stored before they are processed; these say whether processing is
        -- done, and why it failed, so the poller can retry and a person can see it.
        ALTER TABLE conversation_events ADD COLUMN IF NOT EXISTS processed_at TIMESTAMP;
        ALTER TABLE conversation_events ADD COLUMN IF NOT EXISTS process_error VARCHAR;
        ALTER TABLE conversation_events ADD COLUMN IF NOT EXISTS attempts INTEGER DEFAULT 0;
        -- One row per conversation whose events were fetched with ?verbose=true (backoff).
        CREATE TABLE IF NOT EXISTS conversation_polls (
            conversation_id VARCHAR PRIMARY KEY,
            session_id VARCHAR,
            polls INTEGER NOT NULL,
            last_polled_at TIMESTAMP NOT NULL,
            last_error VARCHAR,
            events_stored INTEGER NOT NULL
        );
        -- Tavus's shutdown reasons as analytics groups; sessions.shutdown_reason keeps what
        -- Tavus sent. 'participant_left_timeout reached' and the bare variant are one group.
        -- Mirrors awaknow.events.normalize_shutdown_reason.
        CREATE OR REPLACE MACRO shutdown_reason_group(reason) AS
            CASE
                WHEN reason IS NULL OR trim(reason) = '' THEN NULL
                WHEN lower(trim(reason)) LIKE 'internal error%' THEN 'internal_error'
                ELSE regexp_replace(
                    regexp_replace(lower(trim(reason)), '\s+reached$', ''), '\s+', '_', 'g')
            END;
        """,
    ),
    (
        5,
        "analytics rollups of settled days",
        """
        -- Maintained only by analytics.refresh_rollups; until its first run (empty
        -- rollup_state) analytics reads the raw tables.
        CREATE TABLE IF NOT EXISTS rollup_state (
            covered_until DATE NOT NULL,            -- the rollups hold every day before this one
            refreshed_at TIMESTAMP NOT NULL
        );
        CREATE TABLE IF NOT EXISTS rollup_sessions_daily (
            day DATE NOT NULL,                      -- CAST(sessions.created_at AS DATE)
            persona_id VARCHAR NOT NULL,
            session_type VARCHAR NOT NULL,
            mode VARCHAR NOT NULL,
            plan_id VARCHAR,
            status VARCHAR NOT NULL,
            shutdown_reason VARCHAR,
            error_kind VARCHAR,
            sessions BIGINT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS rollup_usage_daily (
            usage_date DATE NOT NULL,
            persona_id VARCHAR NOT NULL,
            session_type VARCHAR NOT NULL,
            mode VARCHAR NOT NULL,
            plan_id VARCHAR,
            seconds_used INTEGER NOT NULL,   -- sessions counted per exact duration: exact p90
            sessions BIGINT NOT NULL
        );
        """,
    ),
    (
        6,
        "per-user monthly rollups of billed usage and of sessions",
        """
        -- Maintained by analytics.refresh_rollups with the daily rollups (same watermark:
        -- a month's row holds its days before rollup_state.covered_until).
        CREATE TABLE IF NOT EXISTS rollup_user_monthly (
            month DATE NOT NULL,                    -- first day of the usage month
            user_id VARCHAR NOT NULL,
            seconds_used BIGINT NOT NULL,
            sessions BIGINT NOT NULL
        );
        -- Sessions (any status) per user and month of creation: distinct active users.
        CREATE TABLE IF NOT EXISTS rollup_user_sessions_monthly (
            month DATE NOT NULL,
            user_id VARCHAR NOT NULL,
            sessions BIGINT NOT NULL
        );
        """,
    ),
    (
        7,
        "live seconds in the per-user monthly rollup, for costs",
        """
        -- Only live minutes cost money: per user and month they price the cost figures.
        ALTER TABLE rollup_user_monthly ADD COLUMN IF NOT EXISTS live_seconds BIGINT DEFAULT 0;
        -- Rows rolled up before this column existed hold 0 in it: drop the watermark, so
        -- analytics reads raw rows until the next refresh, which then rebuilds everything.
        DELETE FROM rollup_state;
        """,
    ),
    (
        8,
        "drop the unused bills index on user and date",
        """
        -- DuckDB never scans this two-column index for the one query it was made for (one
        -- user's bills over a date range): measured at a million sessions, that query takes
        -- the same time without it, while every bill and the demo seed pay to maintain it.
        DROP INDEX IF EXISTS usage_user_date;
        """,
    ),
    (
        9,
        "sign-in: audit log, role grants, who started each session",
        """
        -- Append-only: the app inserts rows (awaknow.audit.record) and never changes them.
        CREATE SEQUENCE IF NOT EXISTS audit_log_ids;
        CREATE TABLE IF NOT EXISTS audit_log (
            audit_id BIGINT PRIMARY KEY DEFAULT nextval('audit_log_ids'),
            logged_at TIMESTAMP NOT NULL,            -- UTC
            actor VARCHAR NOT NULL,                  -- an email, or 'local' without sign-in
            role VARCHAR,                            -- the actor's role at the time
            action VARCHAR NOT NULL,                 -- a key of awaknow.audit.ACTIONS
            target VARCHAR,                          -- session id, user id, grant, file ...
            details VARCHAR NOT NULL                 -- small JSON object, nothing sensitive
        );
        CREATE INDEX IF NOT EXISTS audit_log_time ON audit_log (logged_at);
        -- Roles granted on the People and roles page (configuration grants live in the
        -- environment); one role per email, group or domain.
        CREATE TABLE IF NOT EXISTS role_grants (
            subject_kind VARCHAR NOT NULL,           -- email | group | domain
            subject VARCHAR NOT NULL,                -- lower-case
            role VARCHAR NOT NULL,                   -- admin | staff | analyst | none
            granted_by VARCHAR NOT NULL,
            granted_at TIMESTAMP NOT NULL,
            PRIMARY KEY (subject_kind, subject)
        );
        ALTER TABLE sessions ADD COLUMN IF NOT EXISTS started_by VARCHAR;
        """,
    ),
    (
        10,
        "engagement rollups: users per day, session funnel, transcript turns and words",
        """
        -- Maintained by analytics.refresh_rollups with the others (same watermark).
        CREATE TABLE IF NOT EXISTS rollup_user_daily (
            day DATE NOT NULL,                      -- CAST(sessions.created_at AS DATE)
            user_id VARCHAR NOT NULL,
            sessions BIGINT NOT NULL
        );
        -- Sessions reaching each funnel step (analytics.engagement.FUNNEL_SQL).
        CREATE TABLE IF NOT EXISTS rollup_funnel_daily (
            day DATE NOT NULL,
            persona_id VARCHAR NOT NULL,
            session_type VARCHAR NOT NULL,
            mode VARCHAR NOT NULL,
            plan_id VARCHAR,
            sessions BIGINT NOT NULL,
            created BIGINT NOT NULL,
            joined BIGINT NOT NULL,
            talked BIGINT NOT NULL,
            ended_normally BIGINT NOT NULL
        );
        -- Transcribed sessions with their turns and words (user's and everyone's).
        CREATE TABLE IF NOT EXISTS rollup_transcripts_daily (
            day DATE NOT NULL,
            persona_id VARCHAR NOT NULL,
            session_type VARCHAR NOT NULL,
            mode VARCHAR NOT NULL,
            plan_id VARCHAR,
            sessions BIGINT NOT NULL,
            turns BIGINT NOT NULL,
            user_words BIGINT NOT NULL,
            words BIGINT NOT NULL
        );
        -- The new rollups are empty: read raw rows until the next (then full) refresh.
        DELETE FROM rollup_state;
        """,
    ),
    (
        11,
        "session feedback: one current rating per session",
        """
        -- Written by awaknow.feedback.rate_session; the session's dimensions are copied so
        -- that rating analytics read this table alone (like tavus_usage for minutes).
        CREATE TABLE IF NOT EXISTS session_feedback (
            session_id VARCHAR PRIMARY KEY,
            user_id VARCHAR NOT NULL,
            persona_id VARCHAR NOT NULL,
            session_type VARCHAR NOT NULL,
            mode VARCHAR NOT NULL,
            plan_id VARCHAR,
            day DATE NOT NULL,                      -- the session's start day (UTC)
            seconds_used INTEGER,                   -- billed seconds, kept in step by billing
            rating INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
            note VARCHAR,                           -- sensitive: never logged
            rated_by VARCHAR NOT NULL,
            rated_at TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        12,
        "whether each session asked Tavus to record",
        """
        -- Tavus records only into the account's own bucket; a session started without one
        -- never gets a recording, and its detail says so instead of waiting. NULL: before
        -- this was recorded.
        ALTER TABLE sessions ADD COLUMN IF NOT EXISTS recording_requested BOOLEAN;
        """,
    ),
)


CONFLICT_ATTEMPTS = 5
SCHEMA_VERSION = max(version for version, _, _ in MIGRATIONS)
# A DuckDB file starts with an 8-byte checksum, then this magic; SQLite files with theirs.
DUCKDB_MAGIC = b"DUCK"
DUCKDB_MAGIC_OFFSET = 8
SQLITE_MAGIC = b"SQLite format 3\0"
# No network from a database open: an SQLite or Parquet file must not trigger a download.
CONNECT_CONFIG = {"autoload_known_extensions": False, "autoinstall_known_extensions": False}
_FIX_PATH = "set AWAKNOW_DB_PATH (or --db) to a DuckDB file in a writable folder"


def retry_on_conflict(action: Callable[[], T]) -> T:
    """Run ``action`` (which opens its own transactions), retrying write-write conflicts.

    DuckDB resolves two transactions updating one row by failing the later commit; for AwakNow
    that is a manual End racing Tavus's shutdown callback, and a retry then sees the winner.
    """
    attempt = 1
    while True:
        try:
            return action()
        except duckdb.TransactionException:
            if attempt == CONFLICT_ATTEMPTS:
                raise
            log.info("write conflict (attempt %d of %d); retrying", attempt, CONFLICT_ATTEMPTS)
            time.sleep(0.01 * attempt)
            attempt += 1


def one_row(cur: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> tuple:
    """The single row of an aggregate query (which always has one), typed as present."""
    row = cur.execute(sql, params or []).fetchone()
    if row is None:  # only a query that is not an aggregate can get here: a programming error
        raise LookupError(f"expected one row from: {sql[:80]}")
    return row


def scalar(cur: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    """The first column of ``one_row``."""
    return one_row(cur, sql, params)[0]


def utcnow() -> datetime:
    """Naive UTC, the convention of every TIMESTAMP column here."""
    return datetime.now(UTC).replace(tzinfo=None)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def check_database_path(path: Path) -> None:
    """Refuse a path DuckDB cannot use as a database, in one line, before DuckDB opens it.

    Creates the missing parent folders; an empty file counts as a new database (DuckDB itself
    refuses one, so it is removed first: it holds nothing).
    """
    shown = shorten(str(path))
    try:
        for ancestor in reversed(path.parents):
            if ancestor.exists() and not ancestor.is_dir():
                raise DatabaseFileError(
                    f"Cannot create the database {shown}: {shorten(str(ancestor))} is a file, "
                    f"not a folder: {_FIX_PATH}"
                )
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise DatabaseFileError(f"The database path {shown} is a folder: {_FIX_PATH}")
        if not path.exists():
            return
        with path.open("rb") as file:
            header = file.read(DUCKDB_MAGIC_OFFSET + len(SQLITE_MAGIC))
        if not header:
            path.unlink()
            return
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise DatabaseFileError(f"Cannot use the database {shown}: {reason}: {_FIX_PATH}") from None
    if header.startswith(SQLITE_MAGIC):
        raise DatabaseFileError(
            f"The database {shown} is an SQLite file, not DuckDB: AwakNow stores its data in "
            f"DuckDB; {_FIX_PATH}"
        )
    magic = header[DUCKDB_MAGIC_OFFSET : DUCKDB_MAGIC_OFFSET + len(DUCKDB_MAGIC)]
    if magic != DUCKDB_MAGIC:
        raise DatabaseFileError(f"The database {shown} is not a DuckDB file: {_FIX_PATH}")


class Store:
    """The process's one DuckDB connection."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            check_database_path(self.path)
        try:
            self._conn = duckdb.connect(str(path), config=dict(CONNECT_CONFIG))
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise DatabaseLockedError(
                    f"The database {shorten(str(self.path))} is in use by another process "
                    "(usually the running app): stop it, or use the app, or set AWAKNOW_DB_PATH "
                    "to another file"
                ) from None
            raise DatabaseFileError(
                f"Cannot open the database {shorten(str(self.path))} ({_first_line(exc)}): "
                f"{_FIX_PATH}"
            ) from None
        except duckdb.Error as exc:
            raise DatabaseFileError(
                f"Cannot open the database {shorten(str(self.path))} ({_first_line(exc)}): "
                f"{_FIX_PATH}"
            ) from None
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursors_lock = threading.Lock()
        self._migrate_lock = threading.Lock()
        try:
            self.migrate()
        except BaseException:
            self.close()  # a half-open store would leak its connection at exit
            raise

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor: DuckDB connections must not be shared between threads."""
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._conn.cursor()
            self._local.cursor = cur
            with self._cursors_lock:
                self._cursors.append(cur)
        return cur

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A fresh cursor in BEGIN/COMMIT; rolled back on any exception."""
        cur = self._conn.cursor()
        cur.begin()
        try:
            yield cur
        except BaseException:
            with contextlib.suppress(duckdb.Error):  # a failed COMMIT already ended it
                cur.rollback()
            raise
        else:
            cur.commit()
        finally:
            cur.close()

    def migrate(self) -> int:
        """Apply the migrations not yet recorded; return the schema version.

        A database from a newer AwakNow is refused before anything is written: older code
        would write rows its schema no longer means.
        """
        with self._migrate_lock:
            cur = self.cursor()
            found = self._recorded_version(cur)
            if found > SCHEMA_VERSION:
                raise DatabaseFileError(
                    f"The database {shorten(str(self.path))} has schema version {found}, newer "
                    f"than this AwakNow's {SCHEMA_VERSION}: update AwakNow, or set "
                    "AWAKNOW_DB_PATH to another file"
                )
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "version INTEGER PRIMARY KEY, description VARCHAR, applied_at TIMESTAMP)"
            )
            done = {row[0] for row in cur.execute("SELECT version FROM schema_version").fetchall()}
            for version, description, sql in MIGRATIONS:
                if version in done:
                    continue
                with self.transaction() as tx:
                    tx.execute(sql)
                    tx.execute(
                        "INSERT INTO schema_version (version, description, applied_at) "
                        "VALUES (?, ?, ?)",
                        [version, description, utcnow()],
                    )
                log.info("applied migration %s: %s", version, description)
            return SCHEMA_VERSION

    @staticmethod
    def _recorded_version(cur: duckdb.DuckDBPyConnection) -> int:
        """The highest applied migration, 0 for a new file; reads only."""
        exists = scalar(
            cur,
            "SELECT count(*) FROM duckdb_tables() "
            "WHERE table_name = 'schema_version' AND schema_name = 'main'",
        )
        if not exists:
            return 0
        return int(scalar(cur, "SELECT coalesce(max(version), 0) FROM schema_version"))

    def schema_version(self) -> int:
        row = self.cursor().execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0] or 0) if row else 0

    def close(self) -> None:
        """Close every thread's cursor, then the connection (idempotent).

        Cursors left open until interpreter exit make DuckDB's bindings print
        ``nanobind: leaked ... instances!`` on stderr after the CLI's one line.
        """
        with self._cursors_lock:
            cursors, self._cursors = self._cursors, []
        for cur in cursors:
            with contextlib.suppress(duckdb.Error):
                cur.close()
        self._local = threading.local()
        self._conn.close()
