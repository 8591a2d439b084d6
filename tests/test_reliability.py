"""Issue 8: no paid conversation left running, no End that lies, bad input refused in one line.

The process-level bad-input matrix is in test_cli.py; these are the same rules one layer down.
"""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import duckdb
import httpx
import pytest

from awaknow import accounts, events, sessions
from awaknow.analytics.limits import parse_month
from awaknow.config import Settings, load_settings
from awaknow.errors import (
    AwakNowError,
    ConfigError,
    DatabaseFileError,
    TavusEndNotConfirmedError,
    TavusUnreachableError,
    ValidationError,
    shorten,
)
from awaknow.service import START_RECHECK_SECONDS, AwakNowService, open_service
from awaknow.sessions import MAX_CALL_SECONDS, REAPER_GRACE_SECONDS
from awaknow.store import SCHEMA_VERSION, Store, utcnow
from awaknow.tavus import TavusClient
from devtools.fake_tavus import FakeTavus
from tests.conftest import ROOT, clean_awaknow_env, free_port, wait_for

# --- case 7: bad input ----------------------------------------------------------------------


def test_shorten_keeps_short_values_and_cuts_long_ones_with_their_length() -> None:
    assert shorten("ana") == "'ana'"
    cut = shorten("x" * 10_000)
    assert cut.endswith("…' (10000 chars)") and len(cut) < 80
    assert shorten("y" * 58) == repr("y" * 58)


def test_database_under_a_regular_file_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DatabaseFileError, match="is a file, not a folder") as info:
        Store(blocker / "sub" / "db.duckdb")
    assert "\n" not in str(info.value) and blocker.read_text() == "x"


def test_database_under_proc_is_one_line() -> None:
    with pytest.raises(DatabaseFileError) as info:
        Store("/proc/awaknow-nowhere/db.duckdb")
    assert "\n" not in str(info.value) and "AWAKNOW_DB_PATH" in str(info.value)


def test_database_path_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatabaseFileError, match="is a folder"):
        Store(tmp_path)


def test_sqlite_file_is_recognised_before_duckdb_opens_it(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.commit()
    before = path.read_bytes()
    with pytest.raises(DatabaseFileError, match="SQLite file, not DuckDB") as info:
        Store(path)
    assert "\n" not in str(info.value) and "extension" not in str(info.value)
    assert path.read_bytes() == before


def test_other_files_are_not_duckdb_and_an_empty_file_is_a_new_database(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a database at all\n")
    with pytest.raises(DatabaseFileError, match="not a DuckDB file"):
        Store(text)
    empty = tmp_path / "empty.duckdb"
    empty.touch()
    store = Store(empty)
    try:
        assert store.schema_version() == SCHEMA_VERSION
    finally:
        store.close()


def test_a_newer_schema_is_refused_naming_both_versions_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    path = tmp_path / "future.duckdb"
    Store(path).close()
    with duckdb.connect(str(path)) as conn:
        conn.execute(
            "INSERT INTO schema_version (version, description, applied_at) "
            "VALUES (?, 'future', now())",
            [SCHEMA_VERSION + 3],
        )
        conn.execute("DROP TABLE rollup_state")  # a migration would recreate it
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    with pytest.raises(DatabaseFileError) as info:
        Store(path)
    message = str(info.value)
    assert f"schema version {SCHEMA_VERSION + 3}" in message and f"{SCHEMA_VERSION}" in message
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    with duckdb.connect(str(path), read_only=True) as conn:
        rows = conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        tables = {row[0] for row in rows}
    assert "rollup_state" not in tables


def test_a_failed_open_releases_the_file(tmp_path: Path) -> None:
    path = tmp_path / "future.duckdb"
    Store(path).close()
    with duckdb.connect(str(path)) as conn:
        conn.execute(
            "INSERT INTO schema_version (version, description, applied_at) "
            "VALUES (99, 'future', now())"
        )
    with pytest.raises(DatabaseFileError):
        Store(path)
    with duckdb.connect(str(path)) as conn:  # would fail with a lock error if still held
        assert conn.execute("SELECT max(version) FROM schema_version").fetchone() == (99,)


def test_close_closes_every_thread_cursor(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.duckdb")
    cur = store.cursor()
    store.close()
    with pytest.raises(duckdb.ConnectionException):
        cur.execute("SELECT 1")


def test_a_binary_env_file_is_one_config_error(tmp_path: Path) -> None:
    env_file = tmp_path / "binary.env"
    env_file.write_bytes(bytes([0x9E]) + bytes(range(256)))
    with pytest.raises(ConfigError, match="AWAKNOW_ENV_FILE") as info:
        load_settings(environ={}, env_file=env_file)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("value", ["http://[::1", "http://h:99999", "http://", "https://a b"])
@pytest.mark.parametrize("name", ["TAVUS_API_BASE_URL", "AWAKNOW_PUBLIC_URL"])
def test_urls_that_break_httpx_are_refused_naming_the_variable(name: str, value: str) -> None:
    environ = {name: value, "AWAKNOW_CALLBACK_SECRET": "s" * 32}
    with pytest.raises(ConfigError) as info:
        load_settings(environ=environ, env_file="")
    message = str(info.value)
    assert name in message and repr(value) in message and "\n" not in message


def test_long_url_values_are_shortened() -> None:
    value = "http://[" + "1" * 5000
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"TAVUS_API_BASE_URL": value}, env_file="")
    assert "(5008 chars)" in str(info.value) and len(str(info.value)) < 300


@pytest.mark.parametrize("month", ["0000-01", "9999-12", "1999-12", "3000-01"])
def test_months_outside_2000_to_2999_are_validation_errors(month: str) -> None:
    with pytest.raises(ValidationError, match="out of range"):
        parse_month(month)
    assert parse_month("2000-01").year == 2000 and parse_month("2999-12").month == 12


# --- Tavus faults against the local server ---------------------------------------------------

KEY = "tk_reliability_0123456789"
READ_TIMEOUT = 0.4  # the test client's read timeout; faults below last longer
SLOW = 1.0  # a hang or a late answer, past READ_TIMEOUT
CALLS = ("persona", "create", "get", "end", "list")


def route_of(request: httpx.Request) -> str:
    """Which Tavus call a request is, in the fake's short route names."""
    path = request.url.path.rstrip("/")
    if path.startswith("/v2/personas"):
        return "persona"
    if path == "/v2/conversations":
        return "create" if request.method == "POST" else "list"
    return "end" if path.endswith("/end") else "get"


class RefusingTransport(httpx.BaseTransport):
    """Sends the chosen calls to a closed loopback port: a real "connection refused"."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.refused: set[str] = set()
        self._closed_port = free_port()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if route_of(request) in self.refused:
            request.url = request.url.copy_with(port=self._closed_port)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


def live_service(
    path: Path, fake: FakeTavus, fallback: str, transport: httpx.BaseTransport | None = None
) -> AwakNowService:
    """A live service on the fake with short timeouts; the persona is verified on every start."""
    settings = load_settings(
        environ={
            "TAVUS_API_KEY": KEY,
            "TAVUS_API_BASE_URL": fake.base_url,
            "AWAKNOW_FALLBACK": fallback,
        },
        env_file="",
    )

    def client(s: Settings) -> TavusClient:
        return TavusClient(
            KEY,
            fake.base_url,
            timeout=httpx.Timeout(connect=1.0, read=READ_TIMEOUT, write=1.0, pool=5.0),
            transport=transport,
            max_retries=1,
            backoff_seconds=0.01,
            persona_cache_seconds=0,
            quick_read_timeout=READ_TIMEOUT,
        )

    return open_service(path, settings=settings, client_factory=client)


def apply_fault(fake: FakeTavus, transport: RefusingTransport, call: str, fault: str) -> None:
    """One fault on one call: the fake's HTTP faults, or a closed port for "refused"."""
    if fault == "refused":
        transport.refused = {call}
        return
    kinds: dict[str, tuple[str, dict]] = {
        "401": ("bad_key", {}),
        "400_invalid_id": ("invalid_id", {}),
        "402": ("credits", {}),
        "400_concurrency": ("concurrency", {}),
        "429": ("rate_limit", {}),
        "5xx": ("server_error", {"status": 503}),
        "read_timeout": ("hang", {"seconds": SLOW}),
        "slow_answer": ("slow_answer", {"seconds": SLOW}),
    }
    kind, options = kinds[fault]
    fake.set_fault(kind, routes=[call], **options)


def clear_faults(fake: FakeTavus, transport: RefusingTransport) -> None:
    fake.set_fault(None)
    transport.refused = set()


def owned(svc: AwakNowService) -> tuple[set[str], set[str]]:
    """Names and ids of conversations a session of this database may still own."""
    rows = (
        svc.store.cursor()
        .execute(
            "SELECT conversation_name, conversation_id FROM sessions "
            "WHERE status IN ('starting', 'active', 'unknown')"
        )
        .fetchall()
    )
    return {r[0] for r in rows}, {r[1] for r in rows if r[1]}


def fake_snapshot(fake: FakeTavus) -> list[dict]:
    with fake._lock:
        return [dict(c) for c in fake.conversations.values()]


def assert_nothing_untracked_and_nothing_ended_by_another(
    svc: AwakNowService, fake: FakeTavus
) -> None:
    """No live call runs that no session owns; no session that owns a call had it ended."""
    names, ids = owned(svc)
    conversations = fake_snapshot(fake)
    for conv in conversations:
        if conv["status"] == "active":
            assert conv["conversation_name"] in names or conv["conversation_id"] in ids, conv[
                "conversation_name"
            ]
    by_id = {c["conversation_id"]: c for c in conversations}
    rows = (
        svc.store.cursor()
        .execute(
            "SELECT session_id, conversation_id FROM sessions "
            "WHERE status IN ('active', 'unknown') AND mode = 'live' "
            "AND conversation_id IS NOT NULL"
        )
        .fetchall()
    )
    for session_id, conversation_id in rows:
        assert by_id[conversation_id]["status"] == "active", (
            f"session {session_id} still owns {conversation_id}, which was ended"
        )


def settle_everything(svc: AwakNowService, fake: FakeTavus) -> None:
    """End what runs, then reap as if every call's maximum had passed; check the books."""
    for (session_id,) in (
        svc.store.cursor()
        .execute("SELECT session_id FROM sessions WHERE status = 'active'")
        .fetchall()
    ):
        with contextlib.suppress(AwakNowError):
            svc.end_session(session_id)
    svc.reap()
    svc.reap(now=utcnow() + timedelta(seconds=MAX_CALL_SECONDS + REAPER_GRACE_SECONDS + 5))
    cur = svc.store.cursor()
    left = cur.execute(
        "SELECT status, count(*) FROM sessions WHERE status IN ('starting', 'active', 'unknown') "
        "GROUP BY status"
    ).fetchall()
    assert left == [], left
    assert [c["conversation_id"] for c in fake_snapshot(fake) if c["status"] == "active"] == []
    mismatched = cur.execute(
        "SELECT s.session_id FROM sessions s LEFT JOIN tavus_usage u USING (session_id) "
        "WHERE s.status = 'completed' "
        "AND (u.session_id IS NULL OR u.seconds_used <> s.seconds_used)"
    ).fetchall()
    assert mismatched == []


@pytest.fixture(scope="module", params=["mock", "strict"])
def matrix(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[AwakNowService, FakeTavus, RefusingTransport]]:
    """One fake and one service per fallback, shared by the matrix cases (each cleans up)."""
    with FakeTavus(api_key=KEY, max_concurrent=3) as fake:
        transport = RefusingTransport()
        path = tmp_path_factory.mktemp("matrix") / f"{request.param}.duckdb"
        svc = live_service(path, fake, request.param, transport)
        try:
            yield svc, fake, transport
        finally:
            svc.close()


MATRIX_FAULTS = (
    "401",
    "400_invalid_id",
    "402",
    "400_concurrency",
    "429",
    "5xx",
    "read_timeout",
    "slow_answer",
    "refused",
)


@pytest.mark.parametrize("fault", MATRIX_FAULTS)
@pytest.mark.parametrize("call", CALLS)
def test_fault_matrix_leaves_nothing_untracked_and_ends_nobody_elses_call(
    matrix: tuple[AwakNowService, FakeTavus, RefusingTransport], call: str, fault: str
) -> None:
    svc, fake, transport = matrix
    owner, other = f"a_{call}_{fault}", f"b_{call}_{fault}"
    for user in (owner, other):
        accounts.add_user(svc.store, user, "awaknow_pro")
    svc.mode_status(force=True)
    running = svc.start_session(owner, "reflect_alone")
    assert running.mode == "live"
    apply_fault(fake, transport, call, fault)
    try:
        with contextlib.suppress(AwakNowError):
            svc.start_session(other, "resolve_together")
        assert_nothing_untracked_and_nothing_ended_by_another(svc, fake)
        svc.conversation_status(svc.get_session(running.session_id))
        try:
            svc.end_session(running.session_id)
        except AwakNowError:
            session = svc.get_session(running.session_id)
            assert session.status == "active" and session.end_not_confirmed
        assert_nothing_untracked_and_nothing_ended_by_another(svc, fake)
        svc.reap()
        assert_nothing_untracked_and_nothing_ended_by_another(svc, fake)
    finally:
        clear_faults(fake, transport)
        svc.mode_status(force=True)
    settle_everything(svc, fake)


# --- the six cases of issue 8, each failing before the change --------------------------------


@pytest.fixture
def fake() -> Iterator[FakeTavus]:
    with FakeTavus(api_key=KEY, max_concurrent=2) as server:
        yield server


@pytest.fixture
def transport() -> Iterator[RefusingTransport]:
    refusing = RefusingTransport()
    yield refusing
    refusing.close()


def _users(svc: AwakNowService, *names: str) -> None:
    for name in names:
        accounts.add_user(svc.store, name, "awaknow_pro")


def test_case1_a_start_at_the_limit_never_ends_a_call_whose_create_is_in_flight(
    fake: FakeTavus, tmp_path: Path
) -> None:
    svc = live_service(tmp_path / "db.duckdb", fake, "mock")
    _users(svc, "ana", "bo", "cy")
    first = svc.start_session("ana", "reflect_alone")
    # bo's start is between its reservation and Tavus's answer: the conversation exists at
    # Tavus under its name, the session is still 'starting'.
    pending = sessions.reserve(
        svc.store,
        "bo",
        "reflect_alone",
        mode="live",
        mode_reason="test",
        persona_id="p7e13c73f41f",
        replica_id="r4317e64d25a",
        context=None,
    )
    body = sessions.create_body(
        pending,
        persona_id="p7e13c73f41f",
        replica_id="r4317e64d25a",
        callback_url=None,
        context=None,
        recording={},
    )
    assert svc.client is not None
    in_flight = svc.client.create_conversation(body)
    third = svc.start_session("cy", "reflect_alone")  # at the limit of 2: sweep, then mock
    assert third.mode == "mock" and "concurrent" in third.mode_reason
    assert fake.conversations[in_flight["conversation_id"]]["status"] == "active"
    assert fake.conversations[first.conversation_id]["status"] == "active"
    svc.close()


def test_case2_mock_fallback_keeps_a_timed_out_create_on_the_books(
    fake: FakeTavus, transport: RefusingTransport, tmp_path: Path
) -> None:
    svc = live_service(tmp_path / "db.duckdb", fake, "mock", transport)
    _users(svc, "ana")
    fake.set_fault("latency", seconds=SLOW, routes=["create"], times=1)  # Tavus creates it late
    transport.refused = {"list"}  # and the lookup by name fails
    started = svc.start_session("ana", "reflect_alone")
    transport.refused = set()
    assert started.mode == "mock", "the user still gets a session"
    rows = (
        svc.store.cursor()
        .execute("SELECT session_id, status, mode FROM sessions ORDER BY created_at")
        .fetchall()
    )
    (unknown,) = [r for r in rows if r[1] == "unknown"]
    assert unknown[2] == "live" and svc.get_session(unknown[0]).status_label == "awaiting Tavus"
    assert wait_for(lambda: len(fake.conversations) == 1, timeout=5)
    (late,) = fake.conversations.values()
    reaped = svc.reap()
    assert [r.session_id for r in reaped] == [unknown[0]]
    assert late["status"] == "ended"
    assert svc.get_session(unknown[0]).conversation_id == late["conversation_id"]
    assert svc.reap() == [] and svc.get_session(unknown[0]).status == "completed"
    bills = (
        svc.store.cursor()
        .execute("SELECT count(*) FROM tavus_usage WHERE session_id = ?", [unknown[0]])
        .fetchone()
    )
    assert bills == (1,)
    svc.close()


def test_case3_an_end_tavus_refuses_is_not_reported_as_done(
    fake: FakeTavus, tmp_path: Path
) -> None:
    svc = live_service(tmp_path / "db.duckdb", fake, "strict")
    _users(svc, "ana")
    started = svc.start_session("ana", "reflect_alone")
    fake.set_fault("end_refused")
    with pytest.raises(TavusEndNotConfirmedError, match="Invalid conversation_id"):
        svc.end_session(started.session_id)
    session = svc.get_session(started.session_id)
    assert session.status == "active" and session.end_not_confirmed
    assert "Invalid conversation_id" in (session.error_message or "")
    assert fake.conversations[started.conversation_id]["status"] == "active"
    assert svc.store.cursor().execute("SELECT count(*) FROM tavus_usage").fetchone() == (0,)
    assert svc.reap() == [], "still refused: the reaper tries, and keeps it active"
    fake.set_fault(None)
    (reaped,) = svc.reap()
    assert reaped.session_id == started.session_id and reaped.newly_billed
    assert fake.conversations[started.conversation_id]["status"] == "ended"
    session = svc.get_session(started.session_id)
    assert session.status == "completed" and session.error_kind is None
    svc.close()


def test_case3_the_cli_end_fails_in_one_line_when_tavus_refuses(
    fake: FakeTavus, tmp_path: Path
) -> None:
    env = clean_awaknow_env(
        tmp_path / "cli.duckdb", TAVUS_API_KEY=KEY, TAVUS_API_BASE_URL=fake.base_url
    )
    run = [sys.executable, "-m", "awaknow"]
    options: dict = {"cwd": ROOT, "env": env, "capture_output": True, "text": True, "timeout": 120}
    assert (
        subprocess.run([*run, "users", "add", "ana", "--plan", "awaknow_pro"], **options).returncode
        == 0
    )
    started = subprocess.run(
        [*run, "start", "--user", "ana", "--type", "reflect_alone", "--json"], **options
    )
    session_id = json.loads(started.stdout)["session_id"]
    fake.set_fault("end_refused")
    ended = subprocess.run([*run, "end", session_id], **options)
    assert ended.returncode == 1
    assert len(ended.stderr.strip().splitlines()) == 1 and "Traceback" not in ended.stderr
    assert "did not confirm" in ended.stderr
    (conversation,) = fake.conversations.values()
    assert conversation["status"] == "active"


def test_case4_strict_keeps_looking_for_a_timed_out_create_until_it_appears(
    fake: FakeTavus, tmp_path: Path
) -> None:
    svc = live_service(tmp_path / "db.duckdb", fake, "strict")
    _users(svc, "ana")
    fake.set_fault("latency", seconds=1.5, routes=["create"], times=1)
    with pytest.raises(TavusUnreachableError, match="keeps looking"):
        svc.start_session("ana", "reflect_alone")
    (session_id,) = svc.store.cursor().execute("SELECT session_id FROM sessions").fetchone()
    assert svc.reap() == [], "Tavus has not created it yet"
    assert svc.get_session(session_id).status == "unknown", "looked once, still on the books"
    assert wait_for(lambda: len(fake.conversations) == 1, timeout=5)
    (reaped,) = svc.reap()
    assert reaped.session_id == session_id and reaped.newly_billed
    (late,) = fake.conversations.values()
    assert late["status"] == "ended"
    assert svc.reap() == []
    svc.close()


def test_case4_an_unknown_create_is_settled_only_after_it_could_have_ended(
    fake: FakeTavus, transport: RefusingTransport, tmp_path: Path
) -> None:
    svc = live_service(tmp_path / "db.duckdb", fake, "strict", transport)
    _users(svc, "ana")
    fake.set_fault("hang", seconds=SLOW, routes=["create"], times=1)  # never created
    with pytest.raises(TavusUnreachableError):
        svc.start_session("ana", "reflect_alone")
    (session_id,) = svc.store.cursor().execute("SELECT session_id FROM sessions").fetchone()
    later = utcnow() + timedelta(seconds=MAX_CALL_SECONDS + REAPER_GRACE_SECONDS + 5)
    svc.reap()
    assert svc.get_session(session_id).status == "unknown", "it could still be running"
    transport.refused = {"list"}
    svc.reap(now=later)
    assert svc.get_session(session_id).status == "unknown", "no listing, no verdict"
    transport.refused = set()
    svc.reap(now=later)
    session = svc.get_session(session_id)
    assert (session.status, session.end_source, session.seconds_used) == ("failed", "reconciled", 0)
    svc.close()


def test_case5_one_failed_persona_check_does_not_poison_later_starts(
    fake: FakeTavus, tmp_path: Path
) -> None:
    svc = live_service(tmp_path / "db.duckdb", fake, "mock")
    _users(svc, *(f"u{i}" for i in range(7)))
    fake.set_fault("credits", routes=["persona"])
    persona_reads = lambda: sum(1 for r in fake.requests if r.path.startswith("/v2/personas"))  # noqa: E731
    started = [svc.start_session(f"u{i}", "reflect_alone") for i in range(5)]
    assert {s.mode for s in started} == {"mock"}
    assert persona_reads() <= 2, "a broken Tavus is not asked on every start"
    assert svc.mode_status().mode == "mock", "pages show the failure from cache"
    fake.set_fault(None)
    time.sleep(START_RECHECK_SECONDS + 0.1)
    assert svc.start_session("u5", "reflect_alone").mode == "live", "the next start re-checks"
    svc.close()


def test_case6_end_asks_tavus_first_and_a_slow_read_does_not_hold_it(
    fake: FakeTavus, tmp_path: Path
) -> None:
    svc = live_service(tmp_path / "db.duckdb", fake, "strict")
    _users(svc, "ana", "bo")
    started = svc.start_session("ana", "reflect_alone")
    fake.set_fault("latency", seconds=5, routes=["get"])
    before = len(fake.requests)
    clicked = utcnow()
    t0 = time.monotonic()
    ended = svc.end_session(started.session_id)
    assert time.monotonic() - t0 < 2.0
    calls = [(r.method, r.path) for r in fake.requests[before:]]
    assert calls == [("POST", f"/v2/conversations/{started.conversation_id}/end")]
    session = svc.get_session(started.session_id)
    assert session.ended_at is not None and abs((session.ended_at - clicked).total_seconds()) < 1
    assert ended.seconds_used == session.seconds_used
    # A hanging End costs one read timeout plus one quick read, not minutes.
    fake.set_fault(None)
    second = svc.start_session("bo", "reflect_alone")
    fake.set_fault("hang", seconds=SLOW, routes=["end", "get"])
    t0 = time.monotonic()
    with pytest.raises(TavusEndNotConfirmedError):
        svc.end_session(second.session_id)
    assert time.monotonic() - t0 < 3 * READ_TIMEOUT + 1.0
    fake.set_fault(None)
    svc.close()


def test_a_strict_start_after_a_failed_reconcile_is_one_stderr_line(
    fake: FakeTavus, tmp_path: Path
) -> None:
    env = clean_awaknow_env(
        tmp_path / "cli.duckdb",
        TAVUS_API_KEY=KEY,
        TAVUS_API_BASE_URL=fake.base_url,
        AWAKNOW_FALLBACK="strict",
    )
    options: dict = {"cwd": ROOT, "env": env, "capture_output": True, "text": True, "timeout": 120}
    run = [sys.executable, "-m", "awaknow"]
    assert (
        subprocess.run([*run, "users", "add", "ana", "--plan", "awaknow_pro"], **options).returncode
        == 0
    )
    fake.set_fault("hang", seconds=0, routes=["create", "list"])  # dropped, and so is the lookup
    result = subprocess.run([*run, "start", "--user", "ana", "--type", "reflect_alone"], **options)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "keeps looking" in result.stderr and "Traceback" not in result.stderr


# --- the storm ----------------------------------------------------------------------------------

STORM_THREADS = 16
STORM_CYCLES = 20  # per thread: 320 start/end cycles
STORM_FAULTS = (
    ("credits", {}),
    ("concurrency", {}),
    ("rate_limit", {}),
    ("server_error", {"status": 502}),
    ("hang", {"seconds": 0.6}),
    ("slow_answer", {"seconds": 0.6}),
    ("invalid_id", {}),
    ("bad_key", {}),
    ("latency", {"seconds": 0.6}),
)


def test_storm_of_starts_and_ends_with_random_faults_and_a_real_concurrency_cap(
    tmp_path: Path,
) -> None:
    rng = random.Random(8)
    local = threading.local()
    violations: list[str] = []

    with FakeTavus(api_key=KEY, max_concurrent=4, replica_join_delay=0) as fake:
        svc_box: list[AwakNowService] = []

        class WatchingClient(TavusClient):
            """Records every End that a session did not ask for its own conversation."""

            def end_conversation(self, conversation_id: str) -> dict | None:
                if getattr(local, "own", None) != conversation_id:
                    with fake._lock:
                        name = fake.conversations[conversation_id]["conversation_name"]
                    owners = (
                        svc_box[0]
                        .store.cursor()
                        .execute(
                            "SELECT session_id, status FROM sessions WHERE "
                            "(conversation_name = ? OR conversation_id = ?) "
                            "AND status IN ('starting', 'active', 'unknown') "
                            "AND coalesce(error_kind, '') <> ?",
                            [name, conversation_id, sessions.END_NOT_CONFIRMED],
                        )
                        .fetchall()
                    )
                    if owners and getattr(local, "role", "") != "reaper":
                        violations.append(f"{conversation_id} ended while owned by {owners}")
                return super().end_conversation(conversation_id)

        settings = load_settings(
            environ={"TAVUS_API_KEY": KEY, "TAVUS_API_BASE_URL": fake.base_url},
            env_file="",
        )
        svc = open_service(
            tmp_path / "storm.duckdb",
            settings=settings,
            client_factory=lambda s: WatchingClient(
                KEY,
                fake.base_url,
                timeout=httpx.Timeout(connect=1.0, read=READ_TIMEOUT, write=1.0, pool=5.0),
                max_retries=1,
                backoff_seconds=0.01,
                persona_cache_seconds=0.5,
                quick_read_timeout=READ_TIMEOUT,
            ),
        )
        svc_box.append(svc)
        users = [f"storm{i}" for i in range(24)]
        _users(svc, *users)
        stop = threading.Event()
        attempts = {"started": 0, "refused": 0}
        counter_lock = threading.Lock()

        def cycle(seed: int) -> None:
            r = random.Random(seed)
            for _ in range(STORM_CYCLES):
                try:
                    started = svc.start_session(r.choice(users), "reflect_alone")
                except AwakNowError:
                    with counter_lock:
                        attempts["refused"] += 1
                    continue
                with counter_lock:
                    attempts["started"] += 1
                local.own = started.conversation_id
                time.sleep(r.uniform(0, 0.02))
                for _ in range(3):
                    try:
                        svc.end_session(started.session_id)
                        break
                    except AwakNowError:
                        time.sleep(0.05)
                local.own = None

        def faults() -> None:
            while not stop.wait(rng.uniform(0.03, 0.1)):
                if rng.random() < 0.3:
                    fake.set_fault(None)
                    continue
                kind, options = rng.choice(STORM_FAULTS)
                route = rng.choice(CALLS)
                fake.set_fault(kind, routes=[route], times=rng.randint(1, 3), **options)

        def reaper() -> None:
            local.role = "reaper"
            while not stop.wait(0.3):
                with contextlib.suppress(AwakNowError):
                    svc.reap()

        def monitor() -> None:
            while not stop.wait(0.05):
                doubled = (
                    svc.store.cursor()
                    .execute(
                        "SELECT user_id, count(*) FROM sessions WHERE status = 'active' "
                        "GROUP BY user_id HAVING count(*) > 1"
                    )
                    .fetchall()
                )
                if doubled:
                    violations.append(f"two active sessions: {doubled}")

        helpers = [threading.Thread(target=f, daemon=True) for f in (faults, reaper, monitor)]
        for thread in helpers:
            thread.start()
        workers = [
            threading.Thread(target=cycle, args=(n,), daemon=True) for n in range(STORM_THREADS)
        ]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join(timeout=120)
        stop.set()
        for thread in helpers:
            thread.join(timeout=10)
        assert not any(t.is_alive() for t in workers + helpers), "the storm did not finish"
        fake.set_fault(None)
        svc.mode_status(force=True)
        local.role = "reaper"
        settle_everything(svc, fake)
        assert violations == []
        assert attempts["started"] + attempts["refused"] == STORM_THREADS * STORM_CYCLES
        assert attempts["started"] > STORM_THREADS * STORM_CYCLES // 4
        cur = svc.store.cursor()
        billed, session_seconds = cur.execute(
            "SELECT (SELECT coalesce(sum(seconds_used), 0) FROM tavus_usage), "
            "(SELECT coalesce(sum(seconds_used), 0) FROM sessions WHERE status = 'completed')"
        ).fetchone()
        assert billed == session_seconds
        duplicates = cur.execute(
            "SELECT session_id FROM tavus_usage GROUP BY session_id HAVING count(*) > 1"
        ).fetchall()
        assert duplicates == []
        # Hundreds of ended sessions queue their event fetches; let them all finish first.
        assert events.wait_for_background_syncs(timeout=180)
        svc.close()
