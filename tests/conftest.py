"""Shared pytest fixtures and helpers. Each says what it is for; add yours with a clear name.

Test modules import the plain helpers with ``from tests.conftest import ...``.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from awaknow import accounts, sessions
from awaknow.service import AwakNowService, close_shared_services
from awaknow.store import Store, utcnow

ROOT = Path(__file__).resolve().parent.parent

# Everything AwakNow reads from the environment. A clean test environment has none of them,
# so a developer's key, persona or .env never leaks into a test.
AWAKNOW_ENV_VARS = (
    "TAVUS_API_KEY",
    "VITE_TAVUS_API_KEY",
    "TAVUS_PERSONA_ID",
    "VITE_TAVUS_PERSONA_ID",
    "TAVUS_REPLICA_ID",
    "VITE_TAVUS_REPLICA_ID",
    "TAVUS_API_BASE_URL",
    "AWAKNOW_DB_PATH",
    "AWAKNOW_PUBLIC_URL",
    "AWAKNOW_CALLBACK_SECRET",
    "AWAKNOW_FALLBACK",
    "AWAKNOW_LOG_LEVEL",
    "TAVUS_RECORDING_S3_BUCKET_NAME",
    "TAVUS_RECORDING_S3_BUCKET_REGION",
    "TAVUS_AWS_ASSUME_ROLE_ARN",
    "AWAKNOW_ENV_FILE",
    "AWAKNOW_TAVUS_MINUTE_PRICE",
    "AWAKNOW_TAVUS_INCLUDED_MINUTES",
    "AWAKNOW_TAVUS_OVERAGE_PRICE",
    "AWAKNOW_TAVUS_MONTHLY_BUDGET",
    "AWAKNOW_ADMINS",
    "AWAKNOW_STAFF",
    "AWAKNOW_ANALYSTS",
    "AWAKNOW_TRANSCRIPT_ROLES",
    "AWAKNOW_GROUPS_CLAIM",
    "AWAKNOW_ACCESS_CONTACT",
    "AWAKNOW_ALLOW_REMOTE_WITHOUT_SIGNIN",
)


def clean_awaknow_env(db_path: Path | str, **extra: str) -> dict[str, str]:
    """A copy of ``os.environ`` without AwakNow's variables, on ``db_path``, with no .env."""
    env = {k: v for k, v in os.environ.items() if k not in AWAKNOW_ENV_VARS}
    env["AWAKNOW_DB_PATH"] = str(db_path)
    env["AWAKNOW_ENV_FILE"] = ""
    env.update(extra)
    return env


@pytest.fixture
def mock_mode_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Mock mode on a fresh DuckDB file in ``tmp_path``: no key, no .env, nothing inherited.

    ``shared_service()`` caches one service per Settings; the distinct database path makes
    this test's service its own, and it is closed afterwards.
    """
    for name in AWAKNOW_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    db_path = tmp_path / "awaknow.duckdb"
    monkeypatch.setenv("AWAKNOW_DB_PATH", str(db_path))
    monkeypatch.setenv("AWAKNOW_ENV_FILE", "")
    yield db_path
    close_shared_services(tmp_path)


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll until ``predicate`` returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.01)


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (nothing listens on it now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def iso(moment: datetime) -> str:
    """Tavus's timestamp shape for a naive UTC time: ISO-8601 with microseconds and ``Z``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_cid() -> str:
    """A fresh conversation id shaped like Tavus's."""
    return "c" + secrets.token_hex(8)


def craft_session(
    svc: AwakNowService,
    *,
    started_at: datetime | None = None,
    mode: str = "mock",
    user: str | None = None,
    conversation_id: str | None = None,
) -> tuple[str, str, datetime]:
    """An active session with a chosen creation time (default: 100 s ago), through the real
    session rules; returns (session_id, conversation_id, started_at)."""
    user = user or "u" + secrets.token_hex(4)
    accounts.add_user(svc.store, user, "awaknow_pro")
    started_at = started_at or utcnow() - timedelta(seconds=100)
    reservation = sessions.reserve(
        svc.store,
        user,
        "reflect_alone",
        mode=mode,
        mode_reason="test",
        persona_id="p7e13c73f41f",
        replica_id="r4317e64d25a",
        context=None,
        now=started_at,
    )
    cid = conversation_id or new_cid()
    sessions.mark_active(
        svc.store,
        reservation.session_id,
        conversation={"conversation_id": cid},
        mode=mode,
        mode_reason="test",
        started_at=started_at,
    )
    return reservation.session_id, cid, started_at


# Every stored Tavus event of a conversation, raw payload included (secret masked): what the
# event tests assert on. The product reads events through the timeline instead.
STORED_EVENT_COLUMNS = [
    "received_at",
    "event_timestamp",
    "event_type",
    "message_type",
    "source",
    "known_type",
    "session_id",
    "processed_at",
    "process_error",
    "attempts",
    "event_key",
    "payload",
]


def stored_events(store: Store, conversation_id: str) -> pd.DataFrame:
    """The rows of ``conversation_events`` for one conversation, oldest first."""
    frame = (
        store.cursor()
        .execute(
            "SELECT received_at, event_timestamp, event_type, message_type, source, known_type, "
            "session_id, processed_at, process_error, coalesce(attempts, 0) AS attempts, "
            "event_key, payload FROM conversation_events WHERE conversation_id = ? "
            "ORDER BY coalesce(event_timestamp, received_at), received_at",
            [conversation_id],
        )
        .df()
    )
    return frame[STORED_EVENT_COLUMNS]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One chromium for every browser test module: Playwright's sync API refuses a second
    instance while one is running in the process (a module-scoped one would meet the first)."""
    from tests.test_browser import CHROMIUM_ARGS, _chromium_or_skip

    sync_api = pytest.importorskip("playwright.sync_api")
    executable = _chromium_or_skip()
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
