"""Tavus events without HTTP: identity, processing, billing order, polling and the read helpers.

The webhook route over real loopback HTTP is in ``test_webhooks.py``; here the service is
opened on a temporary database and ``ingest_event`` is called directly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from awaknow import accounts, events, sessions
from awaknow.config import load_settings
from awaknow.errors import TavusError
from awaknow.events import EventRejected, ingest_event
from awaknow.events.registry import transcript_rows
from awaknow.logs import register_secret
from awaknow.service import AwakNowService, open_service
from awaknow.store import MIGRATIONS, Store, utcnow
from awaknow.tavus import TavusClient
from awaknow.tavus_names import PERCEPTION_ANALYSIS, REPLICA_JOINED, parse_tavus_time
from devtools.fake_tavus import FakeTavus
from tests.conftest import (
    STORED_EVENT_COLUMNS,
    craft_session,
    iso,
    new_cid,
    stored_events,
    wait_for,
)

SECRET = "cb-secret-for-event-tests"
KNOWN_REASONS = {
    "max_call_duration reached": "max_call_duration",
    "participant_left_timeout reached": "participant_left_timeout",
    "participant_left_timeout": "participant_left_timeout",
    "participant_absent_timeout reached": "participant_absent_timeout",
    "bot_could_not_join_meeting_it_was_probably_ended": (
        "bot_could_not_join_meeting_it_was_probably_ended"
    ),
    "daily_room_has_been_deleted": "daily_room_has_been_deleted",
    "exception_encountered_during_conversation_startup": (
        "exception_encountered_during_conversation_startup"
    ),
    "end_conversation_endpoint_hit": "end_conversation_endpoint_hit",
    "internal error occurred at step x": "internal_error",
    "internal error occurred at step 3": "internal_error",
    "  Max_Call_Duration   reached ": "max_call_duration",
}


@pytest.fixture
def service(tmp_path: Path) -> Iterator[AwakNowService]:
    settings = load_settings(environ={}, env_file="")
    svc = open_service(tmp_path / "events.duckdb", settings=settings)
    yield svc
    assert events.wait_for_background_syncs()
    svc.close()


def event(cid: str, event_type: str, when: datetime | str | None, **properties: Any) -> dict:
    payload: dict[str, Any] = {
        "conversation_id": cid,
        "event_type": event_type,
        "message_type": event_type.split(".")[0],
        "properties": properties,
    }
    if when is not None:
        payload["timestamp"] = iso(when) if isinstance(when, datetime) else when
    return payload


def one(svc: AwakNowService, sql: str, params: list | None = None) -> Any:
    row = svc.store.cursor().execute(sql, params or []).fetchone()
    return row if row is None or len(row) > 1 else row[0]


def bill(svc: AwakNowService, session_id: str) -> tuple | None:
    return one(
        svc,
        "SELECT seconds_used, clock, ended_at FROM tavus_usage WHERE session_id = ?",
        [session_id],
    )


def usage_rows(svc: AwakNowService, session_id: str) -> int:
    return one(svc, "SELECT count(*) FROM tavus_usage WHERE session_id = ?", [session_id])


# --- envelope and identity ------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        [],
        "x",
        None,
        {},
        {"conversation_id": "c1"},
        {"event_type": "system.shutdown"},
        {"conversation_id": "", "event_type": "system.shutdown"},
        {"conversation_id": "   ", "event_type": "system.shutdown"},
        {"conversation_id": 12, "event_type": "system.shutdown"},
        {"conversation_id": "c1", "event_type": ["system.shutdown"]},
        {"conversation_id": "c1", "event_type": None},
        {"conversation_id": "c" * 257, "event_type": "x"},
    ],
)
def test_envelope_without_usable_ids_is_rejected(payload: Any) -> None:
    with pytest.raises(EventRejected):
        events.validate_envelope(payload)


def test_identity_ignores_delivery_details_but_not_content() -> None:
    base = event("cabc", "system.shutdown", "2025-09-10T00:35:24.310570Z", shutdown_reason="x")
    same = dict(base, webhook_url="https://a/b?token=zzz", message_type="other")
    same_time_other_spelling = dict(base, timestamp="2025-09-10T00:35:24.310570+00:00")
    assert events.event_key(base) == events.event_key(same)
    assert events.event_key(base) == events.event_key(same_time_other_spelling)
    reordered = json.loads(json.dumps(base, sort_keys=True))
    assert events.event_key(reordered) == events.event_key(base)
    for changed in (
        dict(base, timestamp="2025-09-10T00:35:25.310570Z"),
        dict(base, properties={"shutdown_reason": "y"}),
        dict(base, conversation_id="cabd"),
        dict(base, event_type="system.replica_joined"),
    ):
        assert events.event_key(changed) != events.event_key(base)
    assert len(events.event_key(base)) == 64


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-09-10T00:35:24.310570Z", datetime(2025, 9, 10, 0, 35, 24, 310570)),
        ("2025-09-10T02:35:24+02:00", datetime(2025, 9, 10, 0, 35, 24)),
        ("2025-09-10T00:35:24", datetime(2025, 9, 10, 0, 35, 24)),
        (1757464524.5, datetime(2025, 9, 10, 0, 35, 24, 500000)),
        ("yesterday", None),
        ("", None),
        (None, None),
        (True, None),
        ({"t": 1}, None),
        (float("inf"), None),
        (-5, None),
        (10**30, None),
        ("9999-99-99T00:00:00Z", None),
    ],
)
def test_event_times_are_parsed_or_refused(value: Any, expected: datetime | None) -> None:
    assert parse_tavus_time(value) == expected


def test_shutdown_reason_groups_match_the_sql_macro(service: AwakNowService) -> None:
    cur = service.store.cursor()
    for reason, group in [*KNOWN_REASONS.items(), (None, None), ("", None)]:
        assert cur.execute("SELECT shutdown_reason_group(?)", [reason]).fetchone()[0] == group


def test_migrations_are_idempotent_and_persist_the_macro(tmp_path: Path) -> None:
    path = tmp_path / "m.duckdb"
    Store(path).close()
    store = Store(path)
    try:
        assert store.schema_version() == max(version for version, _, _ in MIGRATIONS)
        applied = store.cursor().execute("SELECT count(*) FROM schema_version").fetchone()[0]
        assert applied == len(MIGRATIONS)
        cur = store.cursor()
        assert cur.execute("SELECT shutdown_reason_group('x reached')").fetchone()[0] == "x"
        columns = {r[0] for r in cur.execute("DESCRIBE conversation_events").fetchall()}
        assert {"processed_at", "process_error", "attempts"} <= columns
        assert cur.execute("SELECT count(*) FROM conversation_polls").fetchone()[0] == 0
    finally:
        store.close()


# --- storing ----------------------------------------------------------------------------------


def test_duplicate_delivery_changes_nothing(service: AwakNowService) -> None:
    sid, cid, started = craft_session(service)
    payload = event(
        cid,
        "system.shutdown",
        started + timedelta(seconds=42.5),
        shutdown_reason="participant_left_timeout reached",
    )
    first = ingest_event(service.store, payload, "callback")
    assert (first.status, first.session_id, first.known_type, first.processed) == (
        "stored",
        sid,
        True,
        True,
    )
    before = one(
        service, "SELECT * FROM conversation_events WHERE event_key = ?", [first.event_key]
    )
    billed = bill(service, sid)
    again = ingest_event(service.store, payload, "callback")
    polled = ingest_event(service.store, dict(payload, webhook_url=None), "poll")
    assert again.status == polled.status == "duplicate"
    assert again.event_key == polled.event_key == first.event_key
    assert one(service, "SELECT count(*) FROM conversation_events") == 1
    assert (
        one(service, "SELECT * FROM conversation_events WHERE event_key = ?", [first.event_key])
        == before
    )
    assert bill(service, sid) == billed and usage_rows(service, sid) == 1


def test_unknown_type_and_unknown_conversation_are_stored_and_flagged(
    service: AwakNowService,
) -> None:
    sid, cid, _ = craft_session(service)
    odd = ingest_event(
        service.store, event(cid, "conversation.utterance", utcnow(), x=1), "callback"
    )
    assert odd.stored and not odd.known_type and odd.session_id == sid and odd.processed
    stranger = ingest_event(
        service.store, event(new_cid(), "system.shutdown", utcnow()), "callback"
    )
    assert stranger.stored and stranger.known_type and stranger.session_id is None
    assert not stranger.processed
    rows = (
        service.store.cursor()
        .execute(
            "SELECT event_type, known_type, session_id FROM conversation_events ORDER BY event_type"
        )
        .fetchall()
    )
    assert rows == [("conversation.utterance", False, sid), ("system.shutdown", True, None)]
    assert stranger.as_json() == {
        "status": "stored",
        "event_key": stranger.event_key,
        "known_type": True,
        "known_conversation": False,
        "processed": False,
    }


def test_event_that_came_before_its_session_knew_it_is_linked_by_the_poller(
    service: AwakNowService,
) -> None:
    """replica_joined can beat mark_active; the poller links and processes it later."""
    accounts.add_user(service.store, "early", "awaknow_pro")
    reservation = sessions.reserve(
        service.store,
        "early",
        "reflect_alone",
        mode="mock",
        mode_reason="t",
        persona_id="p7e13c73f41f",
        replica_id="r4317e64d25a",
        context=None,
    )
    cid = new_cid()
    joined_at = utcnow().replace(microsecond=0)
    result = ingest_event(service.store, event(cid, "system.replica_joined", joined_at), "callback")
    assert result.session_id is None and not result.processed
    sessions.mark_active(
        service.store,
        reservation.session_id,
        conversation={"conversation_id": cid},
        mode="mock",
        mode_reason="t",
        started_at=utcnow(),
    )
    assert service.poll_events() >= 1
    assert service.get_session(reservation.session_id).replica_joined_at == joined_at
    assert one(service, "SELECT session_id FROM conversation_events") == reservation.session_id


def test_webhook_secret_is_masked_and_odd_text_is_stored(service: AwakNowService) -> None:
    register_secret(SECRET)
    sid, cid, _ = craft_session(service)
    payload = event(
        cid,
        "application.perception_analysis",
        utcnow(),
        analysis="nul \x00 and lone surrogate \ud800 and ünïcode",
    )
    payload["webhook_url"] = f"https://x.example/api/tavus/callback?token={SECRET}"
    result = ingest_event(service.store, payload, "callback")
    assert result.processed
    stored = one(service, "SELECT payload FROM conversation_events")
    assert SECRET not in stored and "token=***" in stored
    assert json.loads(stored)["properties"]["analysis"].startswith("nul \x00")
    analysis = service.get_session(sid).perception_analysis
    assert "\x00" in analysis and "ünïcode" in analysis and "\ud800" not in analysis


def test_bad_source_is_a_programming_error(service: AwakNowService) -> None:
    with pytest.raises(ValueError, match="source"):
        ingest_event(service.store, event("c1", "x", None), "email")


# --- shutdown and billing ---------------------------------------------------------------------


def test_shutdown_before_manual_end_bills_tavus_clock_once(service: AwakNowService) -> None:
    sid, cid, started = craft_session(service)
    ingest_event(
        service.store,
        event(
            cid,
            "system.shutdown",
            started + timedelta(seconds=42.5),
            shutdown_reason="participant_left_timeout reached",
        ),
        "callback",
    )
    assert bill(service, sid)[:2] == (43, "tavus")
    ended = service.end_session(sid)
    assert (ended.seconds_used, ended.newly_billed) == (43, False)
    row = service.get_session(sid)
    assert (row.status, row.end_source, row.shutdown_reason) == (
        "completed",
        "tavus",
        "participant_left_timeout reached",
    )
    assert row.ended_at == started + timedelta(seconds=42.5)
    assert usage_rows(service, sid) == 1


def test_shutdown_after_manual_end_rebills_to_tavus_clock_once(service: AwakNowService) -> None:
    sid, cid, started = craft_session(service)
    assert service.end_session(sid).seconds_used >= 100  # the app's clock first
    ingest_event(
        service.store,
        event(
            cid,
            "system.shutdown",
            started + timedelta(seconds=61.25),
            shutdown_reason="end_conversation_endpoint_hit",
        ),
        "callback",
    )
    assert bill(service, sid)[:2] == (62, "tavus")
    # A second, different shutdown and a later manual End change nothing.
    ingest_event(
        service.store,
        event(
            cid,
            "system.shutdown",
            started + timedelta(seconds=90),
            shutdown_reason="max_call_duration reached",
        ),
        "poll",
    )
    assert service.end_session(sid).seconds_used == 62
    assert bill(service, sid)[:2] == (62, "tavus") and usage_rows(service, sid) == 1
    assert service.get_session(sid).shutdown_reason == "end_conversation_endpoint_hit"
    assert one(service, "SELECT count(*) FROM conversation_events") == 2


def test_shutdown_after_reaper_takes_tavus_time_and_reason(service: AwakNowService) -> None:
    sid, cid, started = craft_session(service, started_at=utcnow() - timedelta(seconds=1000))
    service.reap()
    assert bill(service, sid)[1] == "app"
    assert service.get_session(sid).shutdown_reason == "max_call_duration reached"
    ingest_event(
        service.store,
        event(
            cid,
            "system.shutdown",
            started + timedelta(seconds=299.2),
            shutdown_reason="participant_absent_timeout",
        ),
        "callback",
    )
    assert bill(service, sid)[:2] == (300, "tavus")
    assert service.get_session(sid).shutdown_reason == "participant_absent_timeout"


@pytest.mark.parametrize(
    "bad_time",
    [None, "garbage", "", 17, {"x": 1}, "2999-01-01T00:00:00Z", "1999-01-01T00:00:00Z"],
)
def test_shutdown_without_usable_time_closes_active_at_receipt_never_rebills(
    service: AwakNowService, bad_time: Any
) -> None:
    active_sid, active_cid, _ = craft_session(service)
    before = utcnow()
    result = ingest_event(
        service.store,
        event(
            active_cid, "system.shutdown", bad_time, shutdown_reason="daily_room_has_been_deleted"
        ),
        "poll",
    )
    assert result.processed
    seconds, clock, ended_at = bill(service, active_sid)
    assert clock == "app" and before <= ended_at <= utcnow() and 99 <= seconds <= 110
    assert service.get_session(active_sid).end_source == "tavus"

    billed_sid, billed_cid, _ = craft_session(service)
    first = service.end_session(billed_sid)
    ingest_event(
        service.store,
        event(
            billed_cid, "system.shutdown", bad_time, shutdown_reason="daily_room_has_been_deleted"
        ),
        "poll",
    )
    assert bill(service, billed_sid)[:2] == (first.seconds_used, "app")
    assert service.get_session(billed_sid).shutdown_reason == "daily_room_has_been_deleted"


def test_shutdown_of_a_failed_start_bills_nothing(service: AwakNowService) -> None:
    sid, cid, started = craft_session(service)
    sessions.mark_failed(service.store, sid, error_kind="X", error_message="boom")
    result = ingest_event(
        service.store, event(cid, "system.shutdown", started + timedelta(seconds=5)), "callback"
    )
    assert result.processed and usage_rows(service, sid) == 0


def test_out_of_order_events_reach_the_same_state(service: AwakNowService) -> None:
    def run(order: list[int]) -> tuple:
        sid, cid, started = craft_session(
            service, started_at=datetime(2030, 1, 1) - timedelta(days=3650)
        )  # a fixed start far in the past keeps the two runs comparable
        payloads = [
            event(cid, "system.replica_joined", started + timedelta(seconds=3)),
            event(
                cid,
                "system.shutdown",
                started + timedelta(seconds=30.5),
                shutdown_reason="participant_left_timeout",
            ),
            event(
                cid,
                "application.transcription_ready",
                started + timedelta(seconds=40),
                transcript=[{"role": "system", "content": "p"}, {"role": "user", "content": "hi"}],
            ),
            event(
                cid,
                "application.perception_analysis",
                started + timedelta(seconds=41),
                analysis="calm",
            ),
        ]
        received = started + timedelta(seconds=50)
        for index in order:
            ingest_event(service.store, payloads[index], "callback", received_at=received)
        row = service.get_session(sid)
        return (
            bill(service, sid)[:2],
            row.replica_joined_at - started,
            row.ended_at - started,
            row.shutdown_reason,
            row.perception_analysis,
            len(events.transcript(service.store, sid, include_system_prompt=True)),
        )

    assert run([0, 1, 2, 3]) == run([3, 2, 1, 0])


# --- transcripts, recordings, perception --------------------------------------------------------


def test_transcript_rows_with_missing_fields(service: AwakNowService) -> None:
    sid, cid, _ = craft_session(service)
    entries = [
        {"role": "system", "content": "You are the companion."},
        {
            "role": "assistant",
            "content": "Hello",
            "timestamp": 1757464524.25,
            "seconds_from_start": 1.5,
            "duration": "2.5",
            "inference_id": "i1",
        },
        {"content": "no role"},
        {"role": "user"},
        {
            "role": "user",
            "content": {"nested": True},
            "timestamp": "2025-09-10T00:35:24Z",
            "seconds_from_start": "soon",
            "duration": float("nan"),
        },
        "a bare string",
        42,
    ]
    ingest_event(
        service.store,
        event(cid, "application.transcription_ready", utcnow(), transcript=entries),
        "callback",
    )
    rows = (
        service.store.cursor()
        .execute(
            "SELECT seq, role, content, spoken_at, seconds_from_start, duration, session_id "
            "FROM transcripts ORDER BY seq"
        )
        .fetchall()
    )
    assert rows == [
        (0, "system", "You are the companion.", None, None, None, sid),
        (1, "assistant", "Hello", 1757464524.25, 1.5, 2.5, sid),
        (2, "unknown", "no role", None, None, None, sid),
        (3, "user", "", None, None, None, sid),
        (4, "user", '{"nested": true}', 1757464524.0, None, None, sid),
        (5, "unknown", "a bare string", None, None, None, sid),
        (6, "unknown", "42", None, None, None, sid),
    ]
    frame = events.transcript(service.store, sid)
    assert list(frame.columns) == events.TRANSCRIPT_COLUMNS
    assert list(frame["seq"]) == [1, 2, 3, 4, 5, 6] and not frame["is_system_prompt"].any()
    full = events.transcript(service.store, sid, include_system_prompt=True)
    assert list(full["is_system_prompt"]) == [True] + [False] * 6


@pytest.mark.parametrize("shape", [None, "one long text", {"role": "user", "content": "x"}, 7])
def test_non_list_transcripts_are_tolerated(service: AwakNowService, shape: Any) -> None:
    _, cid, _ = craft_session(service)
    result = ingest_event(
        service.store,
        event(cid, "application.transcription_ready", utcnow(), transcript=shape),
        "callback",
    )
    assert result.processed
    count = one(service, "SELECT count(*) FROM transcripts")
    assert count == (0 if shape is None else 1)


def test_a_later_shorter_transcript_replaces_the_first(service: AwakNowService) -> None:
    sid, cid, _ = craft_session(service)
    long = [{"role": "user", "content": str(n)} for n in range(5)]
    ingest_event(
        service.store,
        event(cid, "application.transcription_ready", "t1", transcript=long),
        "callback",
    )
    ingest_event(
        service.store,
        event(cid, "application.transcription_ready", "t2", transcript=long[:2]),
        "callback",
    )
    assert list(events.transcript(service.store, sid)["content"]) == ["0", "1"]


def test_recording_ready_and_copy_failed(service: AwakNowService) -> None:
    sid, cid, _ = craft_session(service)
    assert events.recording(service.store, sid) is None
    ingest_event(
        service.store,
        event(
            cid,
            "application.recording_copy_failed",
            utcnow(),
            recording_id="r1",
            s3_key="k",
            duration=12,
            error_code="AccessDenied",
            error_message="no access",
        ),
        "callback",
    )
    failed = events.recording(service.store, sid)
    assert failed["status"] == "copy_failed" and failed["error_code"] == "AccessDenied"
    ingest_event(
        service.store,
        event(
            cid,
            "application.recording_ready",
            utcnow(),
            bucket_name="b",
            s3_key="rec/c.mp4",
            duration=61,
            storage_provider="gcs",
            storage_uri="gs://b/rec/c.mp4",
        ),
        "callback",
    )
    ready = events.recording(service.store, sid)
    assert ready["status"] == "ready" and ready["uri"] == "gs://b/rec/c.mp4"
    assert (
        ready["bucket_name"],
        ready["s3_key"],
        ready["duration"],
        ready["storage_provider"],
    ) == ("b", "rec/c.mp4", 61.0, "gcs")
    # Older payloads without provider or URI still give a usable URI.
    sid2, cid2, _ = craft_session(service)
    ingest_event(
        service.store,
        event(
            cid2,
            "application.recording_ready",
            None,
            bucket_name="b",
            s3_key="k.mp4",
            duration="bad",
        ),
        "callback",
    )
    older = events.recording(service.store, sid2)
    assert older["uri"] == "s3://b/k.mp4" and older["duration"] is None


def test_replica_joined_keeps_the_earliest_time(service: AwakNowService) -> None:
    sid, cid, started = craft_session(service)
    later, earlier = started + timedelta(seconds=9), started + timedelta(seconds=2)
    ingest_event(service.store, event(cid, "system.replica_joined", later), "callback")
    ingest_event(service.store, event(cid, "system.replica_joined", earlier), "poll")
    ingest_event(service.store, event(cid, "system.replica_joined", later + timedelta(1)), "poll")
    assert service.get_session(sid).replica_joined_at == earlier


def test_processing_failure_is_recorded_and_retried(
    service: AwakNowService, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid, cid, _ = craft_session(service)
    original = events.EVENT_TYPES[PERCEPTION_ANALYSIS]

    def broken(event: events.EventContext) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(events.EVENT_TYPES, PERCEPTION_ANALYSIS, replace(original, apply=broken))
    payload = event(cid, "application.perception_analysis", utcnow(), analysis="ok")
    result = ingest_event(service.store, payload, "callback")
    assert result.stored and not result.processed and "disk on fire" in result.error
    row = one(service, "SELECT processed_at, process_error, attempts FROM conversation_events")
    assert row[0] is None and "disk on fire" in row[1] and row[2] == 1
    assert service.poll_events() == 0  # still broken: attempts counted
    assert one(service, "SELECT attempts FROM conversation_events") == 2

    monkeypatch.setitem(events.EVENT_TYPES, PERCEPTION_ANALYSIS, original)
    assert service.poll_events() == 1
    row = one(service, "SELECT processed_at, process_error FROM conversation_events")
    assert row[0] is not None and row[1] is None
    assert service.get_session(sid).perception_analysis == "ok"
    assert service.poll_events() == 0


def test_a_duplicate_retries_failed_processing(
    service: AwakNowService, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, cid, _ = craft_session(service)
    calls = []

    def flaky(event: events.EventContext) -> None:
        calls.append(event.session_id)
        if len(calls) == 1:
            raise RuntimeError("once")

    joined = events.EVENT_TYPES[REPLICA_JOINED]
    monkeypatch.setitem(events.EVENT_TYPES, REPLICA_JOINED, replace(joined, apply=flaky))
    payload = event(cid, "system.replica_joined", utcnow())
    assert not ingest_event(service.store, payload, "callback").processed
    again = ingest_event(service.store, payload, "callback")
    assert again.status == "duplicate" and again.processed
    assert ingest_event(service.store, payload, "callback").processed and len(calls) == 2


# --- polling ----------------------------------------------------------------------------------


def test_mock_session_end_fetches_events_without_a_public_url(service: AwakNowService) -> None:
    accounts.add_user(service.store, "mo", "awaknow_pro")
    started = service.start_session("mo", "reflect_alone")
    assert started.mode == "mock"
    ended = service.end_session(started.session_id)
    wait_for(lambda: len(events.transcript(service.store, started.session_id)) == 5)
    frame = events.transcript(service.store, started.session_id)
    assert frame["content"].str.startswith("[mock]").all()
    assert events.transcript(service.store, started.session_id, include_system_prompt=True)[
        "is_system_prompt"
    ].iloc[0]
    wait_for(
        lambda: (
            one(service, "SELECT count(*) FROM conversation_events WHERE processed_at IS NOT NULL")
            == 3
        )
    )
    assert (
        events.sync_conversation(service.store, service.backend_for, started.session_id) == 0
    )  # all duplicates
    row = service.get_session(started.session_id)
    assert row.shutdown_reason == "end_conversation_endpoint_hit"
    assert row.replica_joined_at == row.started_at
    seconds, clock, _ = bill(service, started.session_id)
    assert clock == "tavus" and seconds <= ended.seconds_used
    assert usage_rows(service, started.session_id) == 1
    sources = set(stored_events(service.store, started.conversation_id)["source"])
    assert sources == {"poll"}


def test_poll_pending_backs_off_and_respects_the_callback_grace(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"AWAKNOW_PUBLIC_URL": "https://x.example", "AWAKNOW_CALLBACK_SECRET": SECRET},
        env_file="",
    )
    svc = open_service(tmp_path / "poll.duckdb", settings=settings)
    try:
        live_sid, live_cid, _ = craft_session(svc, mode="live")
        mock_sid, mock_cid, _ = craft_session(svc, mode="mock")
        for sid in (live_sid, mock_sid):
            sessions.close_and_bill(svc.store, sid, ended_at=utcnow(), end_source="user")
        now = utcnow() + timedelta(seconds=1)
        svc.poll_events(now=now)

        def polls(cid: str) -> int | None:
            return one(svc, "SELECT polls FROM conversation_polls WHERE conversation_id = ?", [cid])

        assert polls(mock_cid) == 1  # mock: no callbacks will come, poll at once
        assert polls(live_cid) is None  # live with a public URL: callbacks get a grace period
        svc.poll_events(now=now + timedelta(seconds=30))
        assert (polls(mock_cid), polls(live_cid)) == (1, None)  # backing off; grace
        # Without a key the "live" session reads through the mock, which does not know it:
        # no events, so both stay pending and are polled again later.
        svc.poll_events(now=now + timedelta(seconds=events.CALLBACK_GRACE_SECONDS + 1))
        assert (polls(mock_cid), polls(live_cid)) == (2, 1)
        svc.poll_events(now=now + timedelta(hours=30))
        assert polls(mock_cid) == 2, "older than a day: left alone"
    finally:
        assert events.wait_for_background_syncs()
        svc.close()


def test_poll_due_schedule() -> None:
    now = datetime(2026, 1, 1, 12)
    ended = now - timedelta(seconds=10)
    assert events.poll_due(now, ended, None, None, expects_callbacks=False)
    assert not events.poll_due(now, ended, None, None, expects_callbacks=True)
    last = now - timedelta(seconds=59)
    assert not events.poll_due(now, ended, 1, last, False)
    assert events.poll_due(now, ended, 1, now - timedelta(seconds=60), False)
    assert not events.poll_due(now, ended, 3, now - timedelta(seconds=200), False)
    assert events.poll_due(now, ended, 3, now - timedelta(seconds=240), False)
    assert events.poll_due(now, ended, 40, now - timedelta(seconds=3600), False)


def test_live_session_without_public_url_reads_events_from_fake_tavus(tmp_path: Path) -> None:
    with FakeTavus(api_key="test-key", replica_join_delay=0.01) as fake:
        settings = load_settings(
            environ={
                "TAVUS_API_KEY": "test-key",
                "TAVUS_API_BASE_URL": fake.base_url,
                # Tavus records only into the account's bucket: without one, no recording.
                "TAVUS_RECORDING_S3_BUCKET_NAME": "awaknow-recordings",
                "TAVUS_RECORDING_S3_BUCKET_REGION": "us-east-1",
                "TAVUS_AWS_ASSUME_ROLE_ARN": "arn:aws:iam::123456789012:role/tavus",
            },
            env_file="",
        )
        svc = open_service(tmp_path / "live.duckdb", settings=settings)
        try:
            accounts.add_user(svc.store, "li", "awaknow_pro")
            started = svc.start_session("li", "reflect_alone", "A new job on Monday")
            assert started.mode == "live"
            assert "callback_url" not in fake.conversations[started.conversation_id]["request"]
            wait_for(lambda: fake.conversations[started.conversation_id]["events"])
            svc.end_session(started.session_id)
            wait_for(lambda: events.recording(svc.store, started.session_id))
            wait_for(
                lambda: (
                    one(
                        svc,
                        "SELECT count(*) FROM conversation_events WHERE processed_at IS NOT NULL",
                    )
                    == 5
                )
            )
            conv = fake.conversations[started.conversation_id]
            shutdown = next(e for e in conv["events"] if e["event_type"] == "system.shutdown")
            created = parse_tavus_time(conv["created_at"])
            ended_at = parse_tavus_time(shutdown["timestamp"])
            seconds, clock, billed_end = bill(svc, started.session_id)
            assert (seconds, clock, billed_end) == (
                sessions.billed_seconds(created, ended_at),
                "tavus",
                ended_at,
            )
            frame = events.transcript(svc.store, started.session_id)
            assert any("A new job on Monday" in text for text in frame["content"])
            assert frame["seconds_from_start"].notna().all()
            row = svc.get_session(started.session_id)
            assert row.perception_analysis.startswith("## Perception analysis")
            assert row.replica_joined_at is not None
            assert events.sync_conversation(svc.store, svc.backend_for, started.session_id) == 0
        finally:
            assert events.wait_for_background_syncs()
            svc.close()


def test_sync_of_unreachable_tavus_is_recorded_and_raised(tmp_path: Path) -> None:
    with FakeTavus(api_key="test-key", replica_join_delay=0.01) as fake:
        settings = load_settings(
            environ={"TAVUS_API_KEY": "test-key", "TAVUS_API_BASE_URL": fake.base_url},
            env_file="",
        )
        svc = open_service(
            tmp_path / "down.duckdb",
            settings=settings,
            client_factory=lambda s: TavusClient(
                s.api_key.value or "", s.api_base_url.value or "", backoff_seconds=0
            ),
        )
        try:
            sid, _, _ = craft_session(svc, mode="live")
            fake.set_fault("server_error", status=503)
            with pytest.raises(TavusError):
                events.sync_conversation(svc.store, svc.backend_for, sid)
            row = one(svc, "SELECT polls, last_error FROM conversation_polls")
            assert row[0] == 1 and row[1]
            events.sync_in_background(svc.store, svc.backend_for, sid)  # logs, never raises
        finally:
            assert events.wait_for_background_syncs()
            svc.close()


# --- read helpers -----------------------------------------------------------------------------


def test_timeline_has_milestones_and_events_in_order(service: AwakNowService) -> None:
    sid, cid, started = craft_session(service)
    ingest_event(
        service.store,
        event(
            cid, "system.replica_joined", started + timedelta(seconds=2), replica_id="r4317e64d25a"
        ),
        "callback",
    )
    ingest_event(
        service.store,
        event(
            cid,
            "system.shutdown",
            started + timedelta(seconds=20),
            shutdown_reason="participant_left_timeout",
        ),
        "callback",
    )
    ingest_event(service.store, event(cid, "vendor.new_thing", "not a time"), "callback")
    frame = events.session_timeline(service.store, sid)
    assert list(frame.columns) == events.TIMELINE_COLUMNS
    assert frame["time"].is_monotonic_increasing
    types = list(frame["event_type"])
    for expected in (
        "app.created",
        "app.started",
        "app.replica_joined",
        "app.ended",
        "app.billed",
        "system.replica_joined",
        "system.shutdown",
        "vendor.new_thing",
    ):
        assert expected in types
    summary = dict(zip(frame["event_type"], frame["summary"], strict=True))
    assert summary["system.shutdown"] == "shutdown: participant_left_timeout"
    assert "unknown event type" in summary["vendor.new_thing"]
    assert "by the tavus clock" in summary["app.billed"]
    assert set(frame["source"]) == {"app", "callback"}
    assert events.session_timeline(service.store, "nope").empty


def test_stored_events_keep_the_raw_payload(service: AwakNowService) -> None:
    _, cid, _ = craft_session(service)
    assert stored_events(service.store, cid).empty
    ingest_event(service.store, event(cid, "system.replica_joined", utcnow()), "callback")
    frame = stored_events(service.store, cid)
    assert list(frame.columns) == STORED_EVENT_COLUMNS and len(frame) == 1
    assert json.loads(frame["payload"].iloc[0])["event_type"] == "system.replica_joined"
    assert frame["processed_at"].notna().all() and (frame["attempts"] == 0).all()


def test_utc_epoch_transcript_time_round_trips() -> None:
    moment = datetime(2025, 9, 10, 0, 35, 24, tzinfo=UTC)
    rows = transcript_rows([{"role": "user", "content": "x", "timestamp": moment.isoformat()}])
    assert rows[0][2] == moment.timestamp()
