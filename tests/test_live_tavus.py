"""The live path against the local Tavus server over real loopback HTTP.

Every fault is run in both fallbacks: ``strict`` must refuse and say why, ``mock`` must start a
visible mock session that keeps the reason.
"""

import io
import json
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from awaknow import (
    TavusAuthError,
    TavusConcurrencyError,
    TavusCreditsError,
    TavusNotFoundError,
    TavusRateLimitError,
    TavusServerError,
    TavusUnreachableError,
    accounts,
)
from awaknow.config import Settings, load_settings
from awaknow.logs import configure_logging
from awaknow.mode import LIVE_MODE, PERSONA_VERIFIED
from awaknow.service import AwakNowService, open_service
from awaknow.store import utcnow
from awaknow.tavus import TavusClient
from devtools.fake_tavus import FakeTavus

KEY = "tk_live_0123456789abcdef"


@pytest.fixture
def fake() -> Iterator[FakeTavus]:
    with FakeTavus(api_key=KEY) as server:
        yield server


def _service(
    tmp_path: Path, base_url: str, fallback: str = "mock", read_timeout: float = 5.0
) -> AwakNowService:
    settings = load_settings(
        environ={
            "TAVUS_API_KEY": KEY,
            "TAVUS_API_BASE_URL": base_url,
            "AWAKNOW_FALLBACK": fallback,
        },
        env_file="",
    )

    def client(s: Settings) -> TavusClient:
        timeout = httpx.Timeout(connect=1.0, read=read_timeout, write=1.0, pool=1.0)
        return TavusClient(
            s.api_key.value or "", s.api_base_url.value or "", timeout=timeout, backoff_seconds=0
        )

    svc = open_service(
        tmp_path / f"live-{fallback}.duckdb", settings=settings, client_factory=client
    )
    accounts.add_user(svc.store, "cy", "awaknow_pro")
    return svc


@pytest.fixture(params=["strict", "mock"])
def fallback(request: pytest.FixtureRequest) -> str:
    return request.param


def _requests(fake: FakeTavus, method: str, path_prefix: str) -> list:
    return [r for r in fake.requests if r.method == method and r.path.startswith(path_prefix)]


def test_persona_is_verified_once_and_cached(fake: FakeTavus, tmp_path: Path) -> None:
    svc = _service(tmp_path, fake.base_url)
    status = svc.status()
    assert status.mode == "live" and "verified" in status.reason
    svc.status()
    gets = _requests(fake, "GET", "/v2/personas/p7e13c73f41f")
    assert len(gets) == 1 and gets[0].headers["x-api-key"] == KEY
    svc.status(force=True)
    assert len(_requests(fake, "GET", "/v2/personas/")) == 2


def test_exact_create_body_end_and_bill_once(fake: FakeTavus, tmp_path: Path) -> None:
    svc = _service(tmp_path, fake.base_url)
    started = svc.start_session("cy", "resolve_together", "  Two siblings, one inheritance. ")
    assert started.mode == "live"
    (create,) = _requests(fake, "POST", "/v2/conversations")
    assert create.json == {
        "persona_id": "p7e13c73f41f",
        "replica_id": "r4317e64d25a",
        "conversation_name": f"awaknow_resolve_together_{started.session_id}",
        "conversational_context": "Two siblings, one inheritance.",
        "properties": {
            "max_call_duration": 300,
            "participant_left_timeout": 60,
            "participant_absent_timeout": 120,
            "enable_closed_captions": True,
            "language": "english",
        },
    }
    assert started.conversation_url.startswith("https://tavus.daily.co/")
    assert svc.conversation_status(svc.get_session(started.session_id)) == "active"
    ended = svc.end_session(started.session_id)
    assert ended.newly_billed
    assert len(_requests(fake, "POST", f"/v2/conversations/{started.conversation_id}/end")) == 1
    assert fake.conversations[started.conversation_id]["status"] == "ended"
    again = svc.end_session(started.session_id)
    assert not again.newly_billed and again.seconds_used == ended.seconds_used
    rows = (
        svc.store.cursor()
        .execute("SELECT mode, persona_id, replica_id, seconds_used FROM tavus_usage")
        .fetchall()
    )
    assert rows == [("live", "p7e13c73f41f", "r4317e64d25a", ended.seconds_used)]
    created = svc.get_session(started.session_id).started_at
    tavus_created = fake.conversations[started.conversation_id]["created_at"]
    assert created.isoformat() == tavus_created.rstrip("Z"), "billing starts at Tavus's creation"


def test_callback_url_sent_only_with_a_public_url(fake: FakeTavus, tmp_path: Path) -> None:
    settings = load_settings(
        environ={
            "TAVUS_API_KEY": KEY,
            "TAVUS_API_BASE_URL": fake.base_url,
            "AWAKNOW_PUBLIC_URL": "https://awaknow.example",
            "AWAKNOW_CALLBACK_SECRET": "cb-secret-value",
        },
        env_file="",
    )
    svc = open_service(tmp_path / "cb.duckdb", settings=settings)
    accounts.add_user(svc.store, "cy", "awaknow_pro")
    svc.start_session("cy", "reflect_alone")
    (create,) = _requests(fake, "POST", "/v2/conversations")
    assert create.json["callback_url"] == (
        "https://awaknow.example/api/tavus/callback?token=cb-secret-value"
    )


VERIFY_FAULTS = [
    ("bad_key", {}, TavusAuthError, "401"),
    ("unknown_persona", {}, TavusNotFoundError, "TAVUS_PERSONA_ID"),
    ("server_error", {}, TavusServerError, "500"),
    ("rate_limit", {}, TavusRateLimitError, "429"),
]
CREATE_FAULTS = [
    ("credits", {}, TavusCreditsError, "credits"),
    ("concurrency", {}, TavusConcurrencyError, "concurrent"),
    ("server_error", {"status": 503, "methods": ["POST"]}, TavusServerError, "503"),
]


@pytest.mark.parametrize(("kind", "options", "error", "hint"), VERIFY_FAULTS)
def test_persona_verification_faults(
    fake: FakeTavus, tmp_path: Path, fallback: str, kind: str, options: dict, error: type, hint: str
) -> None:
    fake.set_fault(kind, **options)
    svc = _service(tmp_path, fake.base_url, fallback)
    if fallback == "strict":
        with pytest.raises(error) as info:
            svc.start_session("cy", "reflect_alone")
        assert hint in str(info.value) and KEY not in str(info.value)
        assert svc.store.cursor().execute("SELECT count(*) FROM sessions").fetchone()[0] == 0
    else:
        started = svc.start_session("cy", "reflect_alone")
        assert started.mode == "mock" and hint in started.mode_reason
        assert svc.get_session(started.session_id).mode_reason == started.mode_reason
        assert _requests(fake, "POST", "/v2/conversations") == []
    status = svc.status()
    assert status.mode == ("unavailable" if fallback == "strict" else "mock")
    assert not status.verified
    assert hint in status.reason and KEY not in json.dumps(status.to_json())
    failed = [check for check in svc.diagnose() if check.outcome == "failed"]
    assert [check.name for check in failed][::2] == [PERSONA_VERIFIED, LIVE_MODE]
    assert len(failed) == 3, "one check names the kind of failure"
    assert all(KEY not in f"{check.detail} {check.action}" for check in failed)


@pytest.mark.parametrize(("kind", "options", "error", "hint"), CREATE_FAULTS)
def test_create_faults(
    fake: FakeTavus, tmp_path: Path, fallback: str, kind: str, options: dict, error: type, hint: str
) -> None:
    svc = _service(tmp_path, fake.base_url, fallback)
    assert svc.status().mode == "live"
    fake.set_fault(kind, **options)
    if fallback == "strict":
        with pytest.raises(error) as info:
            svc.start_session("cy", "reflect_alone")
        assert hint in str(info.value) and KEY not in str(info.value)
        (row,) = svc.store.cursor().execute("SELECT status, error_kind FROM sessions").fetchall()
        assert row == ("failed", error.__name__)
        assert svc.active_session("cy") is None, "a failed start frees the user's slot"
        assert svc.store.cursor().execute("SELECT count(*) FROM tavus_usage").fetchone()[0] == 0
    else:
        started = svc.start_session("cy", "reflect_alone")
        assert started.mode == "mock" and hint in started.mode_reason
        assert started.conversation_url.startswith("/mock-room/")
    creates = _requests(fake, "POST", "/v2/conversations")
    assert len(creates) == 1, "a create is never retried blindly"


def test_unreachable_tavus(tmp_path: Path, fallback: str) -> None:
    with FakeTavus(api_key=KEY) as gone:
        base_url = gone.base_url
    svc = _service(tmp_path, base_url, fallback)
    status = svc.status()
    assert "Could not reach Tavus" in status.reason
    reachable = next(check for check in svc.diagnose() if check.name == "Tavus reachable")
    assert reachable.outcome == "failed" and base_url in reachable.detail
    if fallback == "strict":
        with pytest.raises(TavusUnreachableError):
            svc.start_session("cy", "reflect_alone")
    else:
        assert svc.start_session("cy", "reflect_alone").mode == "mock"


def test_slow_tavus_within_the_timeout_still_works(fake: FakeTavus, tmp_path: Path) -> None:
    svc = _service(tmp_path, fake.base_url, "strict")
    fake.set_fault("latency", seconds=0.3)
    started = svc.start_session("cy", "reflect_alone")
    assert started.mode == "live"


def test_transient_server_errors_on_reads_are_retried(fake: FakeTavus, tmp_path: Path) -> None:
    fake.set_fault("server_error", times=2)
    svc = _service(tmp_path, fake.base_url, "strict")
    assert svc.status().mode == "live"
    assert len(_requests(fake, "GET", "/v2/personas/")) == 3


def test_orphaned_conversations_are_ended_on_the_concurrency_limit(
    fake: FakeTavus, tmp_path: Path
) -> None:
    svc = _service(tmp_path, fake.base_url, "strict")
    with httpx.Client(base_url=fake.base_url, headers={"x-api-key": KEY}) as raw:
        for n in range(3):  # the fake's limit: three running calls nobody here knows about
            raw.post(
                "/v2/conversations",
                json={"persona_id": "p7e13c73f41f", "conversation_name": f"awaknow_orphan_{n}"},
            )
    started = svc.start_session("cy", "reflect_alone")
    assert started.mode == "live"
    ended = [
        c
        for c in fake.conversations.values()
        if c["conversation_name"].startswith("awaknow_orphan_") and c["status"] == "ended"
    ]
    assert len(ended) == 3


def test_create_that_times_out_is_reconciled_by_name(fake: FakeTavus, tmp_path: Path) -> None:
    svc = _service(tmp_path, fake.base_url, "strict", read_timeout=0.3)
    assert svc.status().mode == "live"
    fake.set_fault("latency", seconds=0.8, methods=["POST"], times=1)
    with pytest.raises(TavusUnreachableError):
        svc.start_session("cy", "reflect_alone")
    (row,) = svc.store.cursor().execute("SELECT session_id, status FROM sessions").fetchall()
    assert row[1] == "unknown", "its outcome is unknown until Tavus is asked again"
    assert _wait_for(lambda: len(fake.conversations) == 1), "Tavus creates it late"
    reaped = svc.reap(now=utcnow() + timedelta(seconds=10))
    assert [r.session_id for r in reaped] == [row[0]]
    (conversation,) = fake.conversations.values()
    assert conversation["status"] == "ended"
    assert svc.get_session(row[0]).status == "completed"
    assert svc.store.cursor().execute("SELECT count(*) FROM tavus_usage").fetchone()[0] == 1


def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_debug_log_shows_requests_but_never_the_key(fake: FakeTavus, tmp_path: Path) -> None:
    buffer = io.StringIO()
    svc = _service(tmp_path, fake.base_url)
    configure_logging("DEBUG", stream=buffer)
    try:
        started = svc.start_session("cy", "reflect_alone")
        svc.end_session(started.session_id)
        fake.set_fault("bad_key")
        with pytest.raises(TavusAuthError):
            svc.client.get_persona("p7e13c73f41f", force=True)
    finally:
        configure_logging("WARNING", stream=io.StringIO())
    text = buffer.getvalue()
    assert "POST /v2/conversations" in text and "billed session" in text
    assert "401" in text
    assert KEY not in text
