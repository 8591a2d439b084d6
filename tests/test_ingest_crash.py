"""Accepted callbacks survive the app process being killed before they are processed.

A real server process (``tests/crash_server.py``: the app's routes and lifespan under uvicorn)
accepts events with its processing worker paused, is killed with SIGKILL, and is started again
on the same database: every accepted event is then stored once and processed once, and each
session billed once, by the resume at start alone (the poller is off in that process).
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx

from awaknow import sessions
from awaknow.config import CALLBACK_PATH
from awaknow.service import open_service
from tests.conftest import clean_awaknow_env, craft_session, free_port, iso, wait_for

ROOT = Path(__file__).resolve().parent.parent
SECRET = "cb-" + secrets.token_urlsafe(24)


@contextmanager
def app_process(db: Path, *, paused: bool) -> Iterator[tuple[subprocess.Popen, httpx.Client]]:
    port = free_port()
    env = clean_awaknow_env(db, AWAKNOW_CALLBACK_SECRET=SECRET, AWAKNOW_LOG_LEVEL="WARNING")
    args = [sys.executable, "-m", "tests.crash_server", str(port)] + (["paused"] if paused else [])
    proc = subprocess.Popen(args, cwd=ROOT, env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base_url, timeout=10, trust_env=False) as http:

            def up() -> bool:
                assert proc.poll() is None, "the app process died"
                try:
                    return http.get("/_stcore/health").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(up, timeout=60)
            yield proc, http
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=20)


def events_for(cid: str, started: object, offset: int) -> list[dict]:
    joined = started + timedelta(seconds=2)  # type: ignore[operator]
    ended = started + timedelta(seconds=30 + offset, milliseconds=250)  # type: ignore[operator]
    return [
        {
            "conversation_id": cid,
            "event_type": "system.replica_joined",
            "message_type": "system",
            "timestamp": iso(joined),
            "properties": {},
        },
        {
            "conversation_id": cid,
            "event_type": "system.shutdown",
            "message_type": "system",
            "timestamp": iso(ended),
            "properties": {"shutdown_reason": "participant_left_timeout"},
        },
    ]


def test_killed_between_accept_and_process_then_resumed_exactly_once(mock_mode_env: Path) -> None:
    db = mock_mode_env  # this process's environment is clean too, for open_service
    svc = open_service(db)
    crafted = [craft_session(svc, mode="live") for _ in range(6)]
    svc.close()
    payloads = [
        event
        for offset, (_, cid, started) in enumerate(crafted)
        for event in events_for(cid, started, offset)
    ]
    deliveries = payloads + payloads  # every event twice, concurrently: Tavus retries

    def post(http: httpx.Client, payload: dict) -> dict:
        response = http.post(CALLBACK_PATH, params={"token": SECRET}, json=payload)
        assert response.status_code == 200, response.text
        return response.json()

    with app_process(db, paused=True) as (proc, http):
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda p: post(http, p), deliveries))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=20)
    keys = {a["event_key"] for a in answers}
    assert len(keys) == len(payloads)
    assert sum(a["status"] == "stored" for a in answers) == len(payloads)
    assert not any(a["processed"] for a in answers)

    svc = open_service(db)
    cur = svc.store.cursor()
    stored = cur.execute(
        "SELECT event_key, processed_at FROM conversation_events WHERE source = 'callback'"
    ).fetchall()
    assert sorted(k for k, _ in stored) == sorted(keys), "an accepted event was lost"
    assert all(done is None for _, done in stored), "the paused worker processed something"
    assert cur.execute("SELECT count(*) FROM tavus_usage").fetchone()[0] == 0
    svc.close()

    with app_process(db, paused=False) as (proc, http):

        def all_processed() -> bool:
            again = [post(http, p) for p in payloads]
            assert all(a["status"] == "duplicate" for a in again)
            return all(a["processed"] for a in again)

        wait_for(all_processed, timeout=30)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)

    svc = open_service(db)
    cur = svc.store.cursor()
    rows = cur.execute(
        "SELECT event_key, count(*), bool_and(processed_at IS NOT NULL) "
        "FROM conversation_events GROUP BY event_key"
    ).fetchall()
    assert {k for k, _, _ in rows} == keys
    assert all(count == 1 and done for _, count, done in rows), "lost, doubled or unprocessed"
    for offset, (sid, _cid, started) in enumerate(crafted):
        tavus_end = started + timedelta(seconds=30 + offset, milliseconds=250)
        assert cur.execute(
            "SELECT seconds_used, clock FROM tavus_usage WHERE session_id = ?", [sid]
        ).fetchall() == [(sessions.billed_seconds(started, tavus_end), "tavus")]
        assert svc.get_session(sid).replica_joined_at == started + timedelta(seconds=2)
    svc.close()
