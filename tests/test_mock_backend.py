"""The mock backend: Tavus-shaped answers, expiry, events, and safety across threads."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import pytest

from awaknow import errors
from awaknow.mock import MOCK_PERSONA_NAME, MockTavus
from awaknow.tavus import TavusBackend

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


class Clock:
    """A settable clock so expiry is tested without sleeping."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def mock(clock: Clock) -> MockTavus:
    return MockTavus(
        persona_id="p7e13c73f41f", replica_id="r4317e64d25a", reason="no key", clock=clock
    )


def body(name: str = "awaknow_reflect_alone_s1", duration: int = 300) -> dict:
    return {"conversation_name": name, "properties": {"max_call_duration": duration}}


def test_interface_and_reason(mock: MockTavus) -> None:
    assert isinstance(mock, TavusBackend)
    assert mock.mode == "mock"
    assert mock.reason == "no key"
    with mock as same:
        assert same is mock


def test_persona(mock: MockTavus) -> None:
    persona = mock.get_persona("p7e13c73f41f", force=True)
    assert persona["persona_id"] == "p7e13c73f41f"
    assert persona["persona_name"] == MOCK_PERSONA_NAME
    assert persona["default_replica_id"] == "r4317e64d25a"
    assert persona["system_prompt"]
    assert {"llm", "tts", "stt"} <= persona["layers"].keys()
    assert persona["mock"] is True


def test_create_returns_tavus_shape_with_relative_url(mock: MockTavus) -> None:
    created = mock.create_conversation(body())
    cid = created["conversation_id"]
    assert re.fullmatch(r"c[0-9a-f]{16}", cid)
    assert created["conversation_url"] == f"/mock-room/{cid}"
    assert created["conversation_name"] == "awaknow_reflect_alone_s1"
    assert created["status"] == "active"
    assert created["callback_url"] is None
    assert created["persona_id"] == "p7e13c73f41f"
    assert created["replica_id"] == "r4317e64d25a"
    assert created["created_at"] == "2026-03-01T12:00:00.000000Z"


def test_create_honours_body_ids_and_room_path(clock: Clock) -> None:
    mock = MockTavus(persona_id="p1", replica_id="r1", reason="x", room_path="/rooms/", clock=clock)
    created = mock.create_conversation({"persona_id": "p2", "replica_id": "r2"})
    assert (created["persona_id"], created["replica_id"]) == ("p2", "r2")
    assert created["conversation_url"].startswith("/rooms/c")


def test_get_end_and_verbose_events(mock: MockTavus, clock: Clock) -> None:
    cid = mock.create_conversation(body())["conversation_id"]
    active = mock.get_conversation(cid, verbose=True)
    assert active["status"] == "active"
    assert [e["event_type"] for e in active["events"]] == ["system.replica_joined"]
    assert "events" not in mock.get_conversation(cid)

    clock.advance(42)
    mock.end_conversation(cid)
    mock.end_conversation(cid)
    ended = mock.get_conversation(cid, verbose=True)
    assert ended["status"] == "ended"
    assert ended["updated_at"] == "2026-03-01T12:00:42.000000Z"
    types = [e["event_type"] for e in ended["events"]]
    assert types == [
        "system.replica_joined",
        "system.shutdown",
        "application.transcription_ready",
    ]
    shutdown = ended["events"][1]
    assert shutdown["properties"]["shutdown_reason"] == "end_conversation_endpoint_hit"
    assert shutdown["properties"]["replica_id"] == "r4317e64d25a"
    assert all(ISO_Z.match(e["timestamp"]) for e in ended["events"])
    assert not any("recording" in t for t in types)


def test_transcript_is_marked_and_timed_inside_the_call(mock: MockTavus, clock: Clock) -> None:
    cid = mock.create_conversation(body())["conversation_id"]
    start = clock.now.timestamp()
    clock.advance(60)
    mock.end_conversation(cid)
    events = mock.get_conversation(cid, verbose=True)["events"]
    transcript = events[-1]["properties"]["transcript"]
    assert transcript[0]["role"] == "system"
    assert "MOCK" in transcript[0]["content"]
    turns = transcript[1:]
    assert {t["role"] for t in turns} == {"user", "assistant"}
    assert all(t["content"].startswith("[mock]") for t in turns)
    offsets = [t["seconds_from_start"] for t in turns]
    assert offsets == sorted(offsets)
    assert offsets[0] > 0
    assert offsets[-1] < 60
    assert all(t["timestamp"] == pytest.approx(start + t["seconds_from_start"]) for t in turns)
    again = mock.get_conversation(cid, verbose=True)["events"][-1]["properties"]["transcript"]
    assert again == transcript


def test_expires_at_max_call_duration(mock: MockTavus, clock: Clock) -> None:
    cid = mock.create_conversation(body(duration=120))["conversation_id"]
    clock.advance(119)
    assert mock.get_conversation(cid)["status"] == "active"
    clock.advance(30)
    ended = mock.get_conversation(cid, verbose=True)
    assert ended["status"] == "ended"
    assert ended["updated_at"] == "2026-03-01T12:02:00.000000Z"
    shutdown = ended["events"][1]
    assert shutdown["properties"]["shutdown_reason"] == "max_call_duration reached"
    mock.end_conversation(cid)
    events = mock.get_conversation(cid, verbose=True)["events"]
    assert [e["event_type"] for e in events].count("system.shutdown") == 1


def test_unknown_conversation_is_reported_ended(mock: MockTavus) -> None:
    gone = mock.get_conversation("c0123456789abcdef", verbose=True)
    assert gone["status"] == "ended"
    assert gone["conversation_id"] == "c0123456789abcdef"
    assert gone["events"] == []
    mock.end_conversation("c0123456789abcdef")


def test_invalid_ids_are_refused(mock: MockTavus) -> None:
    with pytest.raises(errors.TavusNotFoundError):
        mock.get_conversation("../c1")
    with pytest.raises(errors.TavusNotFoundError):
        mock.end_conversation("c1/end")


def test_list_filters_pages_and_orders_newest_first(mock: MockTavus, clock: Clock) -> None:
    ids = []
    for index in range(5):
        ids.append(mock.create_conversation(body(f"n{index}"))["conversation_id"])
        clock.advance(1)
    mock.end_conversation(ids[0])
    everything = mock.list_conversations()
    assert everything["total_count"] == 5
    assert [c["conversation_id"] for c in everything["data"]] == ids[::-1]
    active = mock.list_conversations(status="active", limit=2, page=2)
    assert active["total_count"] == 4
    assert [c["conversation_id"] for c in active["data"]] == [ids[2], ids[1]]
    assert mock.list_conversations(status="ended")["data"][0]["conversation_id"] == ids[0]


def test_find_by_name(mock: MockTavus) -> None:
    cid = mock.create_conversation(body("awaknow_resolve_together_s9"))["conversation_id"]
    found = mock.find_conversation_by_name("awaknow_resolve_together_s9")
    assert found is not None and found["conversation_id"] == cid
    assert mock.find_conversation_by_name("awaknow_resolve_together_s9", status="ended") is None
    assert mock.find_conversation_by_name("nobody") is None


def test_results_are_copies(mock: MockTavus) -> None:
    cid = mock.create_conversation(body())["conversation_id"]
    mock.get_conversation(cid, verbose=True)["events"].clear()
    mock.get_conversation(cid)["status"] = "ended"
    assert mock.get_conversation(cid, verbose=True)["events"]
    assert mock.get_conversation(cid)["status"] == "active"


def test_threads_create_and_end_safely(mock: MockTavus) -> None:
    created: list[str] = []
    barrier = threading.Barrier(8)

    def worker(index: int) -> None:
        barrier.wait()
        for turn in range(25):
            cid = mock.create_conversation(body(f"t{index}_{turn}"))["conversation_id"]
            created.append(cid)
            mock.list_conversations(status="active")
            if turn % 2:
                mock.end_conversation(cid)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(created)) == 200
    assert mock.list_conversations(limit=1000)["total_count"] == 200
    assert mock.list_conversations(status="ended", limit=1000)["total_count"] == 96
