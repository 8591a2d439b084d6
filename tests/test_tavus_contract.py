"""What real Tavus accounts meet that the first local server did not show (issue 9), checked
against the local Tavus server over loopback HTTP: documented create-body names, recordings
only with a bucket, status ``error``, 403, and Tavus's shutdown time over ``updated_at``."""

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from awaknow import accounts, analytics, events, sessions
from awaknow.config import Settings, load_settings
from awaknow.errors import ConfigError, TavusForbiddenError
from awaknow.service import AwakNowService, open_service
from awaknow.store import utcnow
from awaknow.tavus import TavusClient
from awaknow.tavus_names import parse_tavus_time
from devtools.fake_tavus import FakeTavus
from tests.conftest import iso

KEY = "tk_contract_0123456789abcdef"
PERSONA = "p7e13c73f41f"
RECORDING_ENV = {
    "TAVUS_RECORDING_S3_BUCKET_NAME": "awaknow-recordings",
    "TAVUS_RECORDING_S3_BUCKET_REGION": "eu-west-1",
    "TAVUS_AWS_ASSUME_ROLE_ARN": "arn:aws:iam::123456789012:role/tavus-recorder",
}


@pytest.fixture
def fake() -> Iterator[FakeTavus]:
    with FakeTavus(api_key=KEY) as server:
        yield server


def _service(tmp_path: Path, fake: FakeTavus, **extra: str) -> AwakNowService:
    settings = load_settings(
        environ={
            "TAVUS_API_KEY": KEY,
            "TAVUS_API_BASE_URL": fake.base_url,
            "AWAKNOW_FALLBACK": "strict",
            **extra,
        },
        env_file="",
    )

    def client(s: Settings) -> TavusClient:
        timeout = httpx.Timeout(connect=1.0, read=5.0, write=1.0, pool=1.0)
        return TavusClient(
            s.api_key.value or "", s.api_base_url.value or "", timeout=timeout, backoff_seconds=0
        )

    svc = open_service(tmp_path / "contract.duckdb", settings=settings, client_factory=client)
    accounts.add_user(svc.store, "cy", "awaknow_pro")
    return svc


def _create_body(fake: FakeTavus) -> dict:
    (create,) = [r for r in fake.requests if r.method == "POST" and r.path == "/v2/conversations"]
    return create.json


def _bill(svc: AwakNowService, session_id: str) -> tuple[int, str]:
    row = (
        svc.store.cursor()
        .execute("SELECT seconds_used, clock FROM tavus_usage WHERE session_id = ?", [session_id])
        .fetchone()
    )
    assert row is not None
    return int(row[0]), str(row[1])


def _running_since(svc: AwakNowService, session_id: str, seconds: int) -> datetime:
    """Pretend the call was created ``seconds`` ago, so Tavus's end times lie in the past."""
    began = utcnow().replace(microsecond=0) - timedelta(seconds=seconds)
    svc.store.cursor().execute(
        "UPDATE sessions SET started_at = ? WHERE session_id = ?", [began, session_id]
    )
    return began


def test_create_body_uses_documented_captions_and_asks_no_recording_without_a_bucket(
    fake: FakeTavus, tmp_path: Path
) -> None:
    svc = _service(tmp_path, fake)
    started = svc.start_session("cy", "reflect_alone")
    properties = _create_body(fake)["properties"]
    assert properties["enable_closed_captions"] is True
    assert "enable_transcription" not in properties
    assert not properties.get("enable_recording")
    assert not any(name.startswith(("recording_", "aws_")) for name in properties)
    assert svc.get_session(started.session_id).recording_requested is False
    svc.end_session(started.session_id)
    events.wait_for_background_syncs()
    conv = fake.conversations[started.conversation_id]
    assert "application.recording_ready" not in [e["event_type"] for e in conv["events"]]


def test_a_configured_bucket_is_sent_with_the_recording_request(
    fake: FakeTavus, tmp_path: Path
) -> None:
    svc = _service(tmp_path, fake, **RECORDING_ENV)
    started = svc.start_session("cy", "reflect_alone")
    properties = _create_body(fake)["properties"]
    assert properties["enable_recording"] is True
    assert properties["recording_s3_bucket_name"] == "awaknow-recordings"
    assert properties["recording_s3_bucket_region"] == "eu-west-1"
    assert properties["aws_assume_role_arn"] == RECORDING_ENV["TAVUS_AWS_ASSUME_ROLE_ARN"]
    assert svc.get_session(started.session_id).recording_requested is True


@pytest.mark.parametrize(
    ("env", "hint"),
    [
        ({"TAVUS_RECORDING_S3_BUCKET_NAME": "awaknow-recordings"}, "half configured"),
        ({**RECORDING_ENV, "TAVUS_RECORDING_S3_BUCKET_NAME": "Bad_Bucket"}, "S3 bucket name"),
        ({**RECORDING_ENV, "TAVUS_RECORDING_S3_BUCKET_REGION": "europe"}, "AWS region"),
        ({**RECORDING_ENV, "TAVUS_AWS_ASSUME_ROLE_ARN": "role/x"}, "IAM role ARN"),
    ],
)
def test_recording_settings_are_all_or_nothing_and_well_formed(env: dict, hint: str) -> None:
    with pytest.raises(ConfigError, match=hint):
        load_settings(environ=env, env_file="")


def test_status_error_is_billed_reaped_and_a_failure(fake: FakeTavus, tmp_path: Path) -> None:
    svc = _service(tmp_path, fake)
    started = svc.start_session("cy", "reflect_alone")
    began = _running_since(svc, started.session_id, 100)
    fake.fail_conversation(started.conversation_id)
    stopped = parse_tavus_time(fake.conversations[started.conversation_id]["updated_at"])
    assert stopped is not None
    assert [e.session_id for e in svc.reap()] == [started.session_id]
    row = svc.get_session(started.session_id)
    assert row.status == "completed" and row.end_source == "reaper"
    assert row.error_kind == sessions.TAVUS_STATUS_ERROR_KIND
    assert _bill(svc, started.session_id) == (
        sessions.billed_seconds(began, stopped),
        "estimated",
    )
    assert svc.active_session("cy") is None
    assert analytics.outcomes(svc.store)["outcome"].tolist() == ["failure"]
    failures = analytics.failures(svc.store)
    assert failures["failure_kind"].tolist() == [sessions.TAVUS_STATUS_ERROR_KIND]
    assert svc.reap() == [], "reaped once"
    ends = [r for r in fake.requests if r.method == "POST" and r.path.endswith("/end")]
    assert ends == [], "a conversation Tavus already stopped is not ended again"


def test_shutdown_time_wins_over_updated_at(fake: FakeTavus, tmp_path: Path) -> None:
    svc = _service(tmp_path, fake)
    started = svc.start_session("cy", "reflect_alone")
    with TavusClient(KEY, fake.base_url) as other:  # Tavus ends the call on its own
        other.end_conversation(started.conversation_id)
    conv = fake.conversations[started.conversation_id]
    (shutdown,) = [e for e in conv["events"] if e["event_type"] == "system.shutdown"]
    shutdown_at = parse_tavus_time(shutdown["timestamp"])
    assert shutdown_at is not None
    with fake._lock:  # later events move updated_at; the bill must not follow it
        conv["updated_at"] = iso(shutdown_at + timedelta(seconds=30))
    svc.end_session(started.session_id)
    row = svc.get_session(started.session_id)
    assert row.ended_at == shutdown_at
    assert row.shutdown_reason == "end_conversation_endpoint_hit"
    expected = sessions.billed_seconds(row.billing_started_at, shutdown_at)
    assert _bill(svc, started.session_id) == (expected, "tavus")


def test_updated_at_is_an_estimate_until_the_shutdown_event_arrives(
    fake: FakeTavus, tmp_path: Path
) -> None:
    svc = _service(tmp_path, fake)
    started = svc.start_session("cy", "reflect_alone")
    created = _running_since(svc, started.session_id, 100)
    with fake._lock:  # ended at Tavus, but its shutdown event is not listed yet
        fake.conversations[started.conversation_id].update(
            status="ended", updated_at=iso(created + timedelta(seconds=80))
        )
    svc.end_session(started.session_id)
    events.wait_for_background_syncs()
    assert _bill(svc, started.session_id) == (80, "estimated")
    assert (
        "estimated" in sessions.CLOCK_NOTES[str(sessions.bill_clock(svc.store, started.session_id))]
    )
    events.ingest_event(
        svc.store,
        {
            "conversation_id": started.conversation_id,
            "event_type": "system.shutdown",
            "message_type": "system",
            "timestamp": iso(created + timedelta(seconds=65)),
            "properties": {"shutdown_reason": "participant_left_timeout reached"},
        },
        "callback",
        received_at=utcnow(),
    )
    assert _bill(svc, started.session_id) == (65, "tavus")
    billed = svc.store.cursor().execute("SELECT count(*) FROM tavus_usage").fetchone()
    assert billed == (1,), "corrected, never billed twice"


def test_403_has_its_own_error_and_message(fake: FakeTavus, tmp_path: Path) -> None:
    fake.set_fault("forbidden")
    svc = _service(tmp_path, fake)
    with pytest.raises(TavusForbiddenError) as caught:
        svc.start_session("cy", "reflect_alone")
    message = str(caught.value)
    assert caught.value.status == 403
    assert "restricted" in message and "IP" in message and KEY not in message
    assert "check the session settings" not in message
    status = svc.status()
    assert "403" in status.reason


def test_local_server_records_only_into_a_given_bucket(fake: FakeTavus) -> None:
    headers = {"x-api-key": KEY}
    with httpx.Client(base_url=fake.base_url, headers=headers, trust_env=False) as http:
        no_bucket = http.post(
            "/v2/conversations",
            json={"persona_id": PERSONA, "properties": {"enable_recording": True}},
        ).json()["conversation_id"]
        bucket = http.post(
            "/v2/conversations",
            json={
                "persona_id": PERSONA,
                "properties": {
                    "enable_recording": True,
                    "recording_s3_bucket_name": "awaknow-recordings",
                },
            },
        ).json()["conversation_id"]
        for cid in (no_bucket, bucket):
            assert http.post(f"/v2/conversations/{cid}/end").status_code == 200
        kinds = {
            cid: [
                e["event_type"]
                for e in http.get(f"/v2/conversations/{cid}?verbose=true").json()["events"]
            ]
            for cid in (no_bucket, bucket)
        }
    assert "application.recording_ready" not in kinds[no_bucket]
    assert "application.recording_ready" in kinds[bucket]
