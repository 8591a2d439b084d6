"""The fake Tavus server over real loopback HTTP: contract, lifecycle, callbacks, faults, CLI.

Every live-mode test in the project trusts this server to behave like Tavus, so its own
behaviour is pinned here against the facts in ``tavus-api.md``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from devtools.fake_tavus import DEFAULT_PERSONA_ID, DEFAULT_REPLICA_ID, FakeTavus
from tests.conftest import ROOT, free_port, wait_for

ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


class _ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True
    received: list[dict[str, Any]]
    paths: list[str]


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: _ReceiverServer

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.server.received.append(json.loads(self.rfile.read(length)))
        self.server.paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean."""


@pytest.fixture
def receiver() -> Iterator[_ReceiverServer]:
    """A tiny callback receiver, standing in for AwakNow's callback route."""
    server = _ReceiverServer(("127.0.0.1", 0), _ReceiverHandler)
    server.received, server.paths = [], []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def receiver_url(server: _ReceiverServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/tavus/callback/s3cret"


@pytest.fixture
def fake() -> Iterator[FakeTavus]:
    with FakeTavus(replica_join_delay=0.01) as server:
        yield server


@pytest.fixture
def client(fake: FakeTavus) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=fake.base_url, headers={"x-api-key": "test-key"}, timeout=5, trust_env=False
    ) as http:
        yield http


def create(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = client.post("/v2/conversations", json={"persona_id": DEFAULT_PERSONA_ID, **fields})
    assert response.status_code == 200, response.text
    return response.json()


def event_types(conversation: dict[str, Any]) -> list[str]:
    return [event["event_type"] for event in conversation["events"]]


def verbose(client: httpx.Client, conversation_id: str) -> dict[str, Any]:
    response = client.get(f"/v2/conversations/{conversation_id}", params={"verbose": "true"})
    assert response.status_code == 200
    return response.json()


# -- authentication and personas ----------------------------------------------------------


def test_every_request_needs_the_api_key(fake: FakeTavus) -> None:
    url = f"{fake.base_url}/v2/personas/{DEFAULT_PERSONA_ID}"
    for headers in ({}, {"x-api-key": ""}, {"x-api-key": "wrong"}):
        response = httpx.get(url, headers=headers, trust_env=False)
        assert response.status_code == 401
        assert response.json() == {"message": "Invalid access token"}
    assert httpx.get(url, headers={"x-api-key": "test-key"}, trust_env=False).status_code == 200


def test_any_non_empty_key_is_accepted_without_a_configured_key() -> None:
    with FakeTavus(api_key=None) as fake:
        url = f"{fake.base_url}/v2/personas/{DEFAULT_PERSONA_ID}"
        assert httpx.get(url, headers={"x-api-key": "anything"}).status_code == 200
        assert httpx.get(url, headers={"x-api-key": ""}).status_code == 401


def test_get_persona_is_flat_and_complete(client: httpx.Client) -> None:
    response = client.get(f"/v2/personas/{DEFAULT_PERSONA_ID}")
    assert response.status_code == 200
    persona = response.json()
    assert persona["persona_id"] == DEFAULT_PERSONA_ID
    assert persona["persona_name"] == "AwakNow Companion"
    assert persona["default_replica_id"] == DEFAULT_REPLICA_ID
    assert persona["pipeline_mode"] == "full"
    assert {"llm", "tts", "perception", "stt"} <= set(persona["layers"])
    assert "wellness" in persona["system_prompt"]
    assert ISO_Z.fullmatch(persona["created_at"]) and ISO_Z.fullmatch(persona["updated_at"])


def test_unknown_persona_is_400_invalid_persona_id(client: httpx.Client) -> None:
    response = client.get("/v2/personas/p000000000000")
    assert response.status_code == 400
    assert response.json() == {"error": "Invalid persona_id"}


def test_list_personas_and_add_persona(fake: FakeTavus, client: httpx.Client) -> None:
    fake.add_persona({"persona_id": "pabc", "persona_name": "Other", "default_replica_id": "rx1"})
    body = client.get("/v2/personas", params={"limit": 1, "page": 2}).json()
    assert body["total_count"] == 2
    assert [p["persona_id"] for p in body["data"]] == ["pabc"]
    # The added persona's default replica becomes known, so it can start conversations.
    assert create(client, persona_id="pabc")["replica_id"] == "rx1"


# -- creating conversations ---------------------------------------------------------------


def test_create_response_shape_and_stored_request(fake: FakeTavus, client: httpx.Client) -> None:
    properties = {"max_call_duration": 120, "enable_recording": True, "language": "english"}
    created = create(
        client,
        conversation_name="awaknow_solo_42",
        conversational_context="Had a stressful week.",
        callback_url="https://example.test/hook",
        properties=properties,
    )
    assert re.fullmatch(r"c[0-9a-f]{16}", created["conversation_id"])
    cid = created["conversation_id"]
    assert created == {
        "conversation_id": cid,
        "conversation_name": "awaknow_solo_42",
        "conversation_url": f"https://tavus.daily.co/{cid}",
        "status": "active",
        "callback_url": "https://example.test/hook",
        "created_at": created["created_at"],
        "persona_id": DEFAULT_PERSONA_ID,
        "replica_id": DEFAULT_REPLICA_ID,
    }
    assert ISO_Z.fullmatch(created["created_at"])

    recorded = fake.requests[-1]
    assert (recorded.method, recorded.path) == ("POST", "/v2/conversations")
    assert recorded.headers["x-api-key"] == "test-key"
    assert recorded.json["properties"] == properties
    assert fake.conversations[cid]["properties"] == properties

    fetched = client.get(f"/v2/conversations/{cid}").json()
    assert fetched["status"] == "active"
    assert fetched["updated_at"] and "events" not in fetched


def test_require_auth_adds_a_meeting_token(client: httpx.Client) -> None:
    assert create(client, require_auth=True)["meeting_token"]
    assert "meeting_token" not in create(client)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", {"message": "Request body must be valid JSON"}),
        (b"[1, 2]", {"message": "Request body must be a JSON object"}),
        (b'{"persona_id": "p000000000000"}', {"error": "Invalid persona_id"}),
        (
            b'{"persona_id": "p7e13c73f41f", "replica_id": "rnope"}',
            {"error": "Invalid replica_uuid"},
        ),
        (
            b'{"persona_id": "p7e13c73f41f", "test_mode": "yes"}',
            {"message": "test_mode must be a boolean"},
        ),
    ],
)
def test_create_rejects_bad_bodies(client: httpx.Client, body: bytes, expected: dict) -> None:
    response = client.post(
        "/v2/conversations", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == expected


def test_concurrency_limit_counts_active_conversations_only(client: httpx.Client) -> None:
    first = create(client)
    create(client)
    create(client)
    response = client.post("/v2/conversations", json={"persona_id": DEFAULT_PERSONA_ID})
    assert response.status_code == 400
    assert response.json() == {"message": "User has reached maximum concurrent conversations"}
    assert create(client, test_mode=True)["status"] == "ended"  # test_mode takes no slot
    assert client.post(f"/v2/conversations/{first['conversation_id']}/end").status_code == 200
    assert create(client)["status"] == "active"


def test_list_filters_by_status_and_paginates(client: httpx.Client) -> None:
    ended = create(client)["conversation_id"]
    active = [create(client)["conversation_id"] for _ in range(2)]
    client.post(f"/v2/conversations/{ended}/end")

    body = client.get("/v2/conversations", params={"status": "active"}).json()
    assert body["total_count"] == 2
    assert [c["conversation_id"] for c in body["data"]] == active[::-1]  # newest first
    body = client.get("/v2/conversations", params={"status": "ended"}).json()
    assert [c["conversation_id"] for c in body["data"]] == [ended]
    body = client.get("/v2/conversations", params={"limit": 2, "page": 2}).json()
    assert body["total_count"] == 3 and [c["conversation_id"] for c in body["data"]] == [ended]
    assert client.get("/v2/conversations", params={"limit": "x"}).status_code == 400


# -- ending, deleting, lifecycle events ---------------------------------------------------


def test_end_then_end_again_reports_already_ended(fake: FakeTavus, client: httpx.Client) -> None:
    cid = create(client)["conversation_id"]
    response = client.post(f"/v2/conversations/{cid}/end")
    assert (response.status_code, response.json()) == (200, {})
    assert fake.conversations[cid]["shutdown_reason"] == "end_conversation_endpoint_hit"
    assert ISO_Z.fullmatch(fake.conversations[cid]["ended_at"])
    again = client.post(f"/v2/conversations/{cid}/end")
    assert (again.status_code, again.json()) == (400, {"error": "Conversation has already ended"})
    assert client.get(f"/v2/conversations/{cid}").json()["status"] == "ended"


def test_unknown_and_malformed_conversation_ids(client: httpx.Client) -> None:
    for method, suffix in (("GET", ""), ("POST", "/end"), ("DELETE", "")):
        unknown = client.request(method, f"/v2/conversations/c0123456789abcdef{suffix}")
        assert (unknown.status_code, unknown.json()) == (404, {"message": "Conversation not found"})
        malformed = client.request(method, f"/v2/conversations/not-an-id{suffix}")
        assert malformed.status_code == 400
        assert malformed.json() == {"error": "Invalid conversation_id"}
    assert client.get("/v2/nothing-here").status_code == 404


def test_verbose_events_follow_the_lifecycle(client: httpx.Client) -> None:
    cid = create(
        client,
        conversational_context="The user starts a new job on Monday.",
        properties={"enable_recording": True, "recording_s3_bucket_name": "awaknow-rec"},
    )["conversation_id"]
    wait_for(lambda: event_types(verbose(client, cid)) == ["system.replica_joined"], timeout=3)
    client.post(f"/v2/conversations/{cid}/end")

    events = verbose(client, cid)["events"]
    assert event_types({"events": events}) == [
        "system.replica_joined",
        "system.shutdown",
        "application.transcription_ready",
        "application.recording_ready",
        "application.perception_analysis",
    ]
    for event in events:
        assert event["conversation_id"] == cid
        assert event["message_type"] == event["event_type"].split(".")[0]
        assert ISO_Z.fullmatch(event["timestamp"])
        assert event["webhook_url"] is None
    joined, shutdown, transcript, recording, perception = (e["properties"] for e in events)
    assert joined == {"replica_id": DEFAULT_REPLICA_ID}
    assert shutdown == {
        "replica_id": DEFAULT_REPLICA_ID,
        "shutdown_reason": "end_conversation_endpoint_hit",
    }
    turns = transcript["transcript"]
    assert turns[0]["role"] == "system" and "AwakNow Companion" in turns[0]["content"]
    assert {t["role"] for t in turns[1:]} == {"user", "assistant"}
    assert any("starts a new job on Monday" in t["content"] for t in turns)
    assert all(isinstance(t["timestamp"], float) for t in turns)
    assert {"seconds_from_start", "duration"} <= set(turns[1])
    assert recording["s3_key"] == f"recordings/{cid}.mp4"
    assert recording["storage_uri"] == f"s3://awaknow-rec/recordings/{cid}.mp4"
    assert recording["storage_provider"] == "s3" and isinstance(recording["duration"], int)
    assert perception["analysis"].startswith("## ")


def test_callbacks_reach_the_receiver(
    fake: FakeTavus, client: httpx.Client, receiver: _ReceiverServer
) -> None:
    url = receiver_url(receiver)
    cid = create(client, callback_url=url)["conversation_id"]
    wait_for(lambda: receiver.received, timeout=3)
    client.post(f"/v2/conversations/{cid}/end")
    wait_for(lambda: len(receiver.received) == 4, timeout=3)

    assert receiver.received == verbose(client, cid)["events"]
    assert set(receiver.paths) == {"/tavus/callback/s3cret"}
    assert [e["event_type"] for e in receiver.received][:2] == [
        "system.replica_joined",
        "system.shutdown",
    ]
    assert all(e["webhook_url"] == url for e in receiver.received)
    assert "application.recording_ready" not in [e["event_type"] for e in receiver.received]
    wait_for(lambda: len(fake.callbacks_sent) == 4, timeout=3)
    assert {(c["url"], c["status"], c["error"]) for c in fake.callbacks_sent} == {(url, 200, None)}


def test_unreachable_callback_is_recorded_as_an_error(
    fake: FakeTavus, client: httpx.Client
) -> None:
    port = free_port()  # a port that was free a moment ago refuses connections
    create(client, callback_url=f"http://127.0.0.1:{port}/hook")
    sent = wait_for(lambda: fake.callbacks_sent, timeout=3)
    assert sent[0]["status"] is None and "ConnectError" in sent[0]["error"]


def test_max_call_duration_ends_the_call(fake: FakeTavus, client: httpx.Client) -> None:
    cid = create(client, properties={"max_call_duration": 0.2})["conversation_id"]
    wait_for(lambda: client.get(f"/v2/conversations/{cid}").json()["status"] == "ended", timeout=3)
    shutdown = next(
        e for e in verbose(client, cid)["events"] if e["event_type"] == "system.shutdown"
    )
    assert shutdown["properties"]["shutdown_reason"] == "max_call_duration reached"
    assert fake.conversations[cid]["shutdown_reason"] == "max_call_duration reached"


def test_expire_due_uses_created_at(fake: FakeTavus, client: httpx.Client) -> None:
    cid = create(client, properties={"max_call_duration": 60})["conversation_id"]
    fake.conversations[cid]["created_at"] = "2020-01-01T00:00:00.000000Z"
    fake.expire_due()
    assert fake.conversations[cid]["status"] == "ended"


def test_test_mode_is_born_ended_without_events(
    fake: FakeTavus, client: httpx.Client, receiver: _ReceiverServer
) -> None:
    created = create(client, test_mode=True, callback_url=receiver_url(receiver))
    assert created["status"] == "ended"
    cid = created["conversation_id"]
    time.sleep(0.1)  # longer than the replica join delay: prove nothing is ever sent
    assert verbose(client, cid)["events"] == []
    assert receiver.received == [] and fake.callbacks_sent == []
    ended = client.post(f"/v2/conversations/{cid}/end")
    assert (ended.status_code, ended.json()) == (400, {"error": "Conversation has already ended"})


def test_delete_ends_and_hides_the_conversation(fake: FakeTavus, client: httpx.Client) -> None:
    soft, hard = create(client)["conversation_id"], create(client)["conversation_id"]
    response = client.delete(f"/v2/conversations/{soft}")
    assert response.status_code == 204 and response.content == b""
    assert client.get(f"/v2/conversations/{soft}").status_code == 404
    assert fake.conversations[soft]["shutdown_reason"] == "daily_room_has_been_deleted"
    assert fake.conversations[soft]["events"]
    assert client.delete(f"/v2/conversations/{hard}", params={"hard": "true"}).status_code == 204
    assert hard not in fake.conversations
    assert client.get("/v2/conversations").json()["total_count"] == 0


# -- faults -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "options", "status", "body"),
    [
        ("bad_key", {}, 401, {"message": "Invalid access token"}),
        ("server_error", {}, 500, {"message": "Internal server error"}),
        ("server_error", {"status": 503}, 503, {"message": "Internal server error"}),
        ("rate_limit", {}, 429, {"message": "Too many requests"}),
        ("credits", {}, 402, {"message": "The user is out of conversational credits"}),
        (
            "concurrency",
            {},
            400,
            {"message": "User has reached maximum concurrent conversations"},
        ),
        ("unknown_persona", {}, 400, {"error": "Invalid persona_id"}),
    ],
)
def test_fault_kinds_on_create(
    fake: FakeTavus,
    client: httpx.Client,
    kind: str,
    options: dict[str, Any],
    status: int,
    body: dict[str, str],
) -> None:
    fake.set_fault(kind, **options)
    for _ in range(2):  # without ``times`` the fault stays
        response = client.post("/v2/conversations", json={"persona_id": DEFAULT_PERSONA_ID})
        assert (response.status_code, response.json()) == (status, body)
    fake.set_fault(None)
    create(client)


def test_endpoint_specific_faults_leave_other_endpoints_alone(
    fake: FakeTavus, client: httpx.Client
) -> None:
    fake.set_fault("unknown_persona")
    assert client.get(f"/v2/personas/{DEFAULT_PERSONA_ID}").status_code == 400
    assert client.get("/v2/conversations").status_code == 200
    fake.set_fault("credits", times=1)
    assert client.get(f"/v2/personas/{DEFAULT_PERSONA_ID}").status_code == 200  # not consumed
    assert client.post("/v2/conversations", json={}).status_code == 402
    create(client)


def test_times_clears_the_fault_after_n_requests(fake: FakeTavus, client: httpx.Client) -> None:
    fake.set_fault("server_error", status=502, times=2)
    statuses = [client.get("/v2/conversations").status_code for _ in range(3)]
    assert statuses == [502, 502, 200]
    fake.set_fault("rate_limit", times=1, retry_after=3)
    limited = client.get("/v2/conversations")
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "3")
    assert client.get("/v2/conversations").status_code == 200


def test_methods_restricts_the_fault(fake: FakeTavus, client: httpx.Client) -> None:
    fake.set_fault("server_error", methods=["post"])
    assert client.get("/v2/conversations").status_code == 200
    assert client.post("/v2/conversations", json={}).status_code == 500


def test_latency_delays_answers_and_times_out_clients(fake: FakeTavus) -> None:
    fake.set_fault("latency", seconds=0.3, times=2)
    headers = {"x-api-key": "test-key"}
    started = time.monotonic()
    response = httpx.get(f"{fake.base_url}/v2/conversations", headers=headers)
    assert response.status_code == 200 and time.monotonic() - started >= 0.3
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{fake.base_url}/v2/conversations", headers=headers, timeout=0.05)
    started = time.monotonic()
    assert httpx.get(f"{fake.base_url}/v2/conversations", headers=headers).status_code == 200
    assert time.monotonic() - started < 0.3


def test_set_fault_rejects_typos(fake: FakeTavus) -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        fake.set_fault("credit")
    with pytest.raises(ValueError, match="does not take"):
        fake.set_fault("credits", status=503)
    with pytest.raises(ValueError, match="times"):
        fake.set_fault("credits", times=0)


def test_fault_and_state_over_http(fake: FakeTavus, client: httpx.Client) -> None:
    control = httpx.Client(base_url=fake.base_url, trust_env=False)  # no key needed
    with control:
        answer = control.post("/_fake/fault", json={"kind": "credits", "times": 1})
        assert answer.status_code == 200
        assert answer.json()["fault"] == {"kind": "credits", "times": 1, "methods": None}
        assert client.post("/v2/conversations", json={}).status_code == 402
        assert control.get("/_fake/state").json()["fault"] is None

        cid = create(client)["conversation_id"]
        state = control.get("/_fake/state").json()
        assert state["conversations"][cid]["status"] == "active"

        rejected = control.post("/_fake/fault", json={"kind": "nope"})
        assert rejected.status_code == 400 and "unknown fault kind" in rejected.json()["message"]
        control.post("/_fake/fault", json={"kind": "bad_key"})
        assert client.get("/v2/conversations").status_code == 401
        assert control.post("/_fake/fault", json={"kind": None}).json() == {"fault": None}
        assert client.get("/v2/conversations").status_code == 200
    assert all(not r.path.startswith("/_fake") for r in fake.requests)


def test_stop_closes_kept_alive_connections() -> None:
    fake = FakeTavus().start()
    with httpx.Client(base_url=fake.base_url, headers={"x-api-key": "test-key"}) as http:
        assert http.get("/v2/conversations").status_code == 200
        fake.stop()
        with pytest.raises(httpx.TransportError):
            http.get("/v2/conversations")


# -- command line -------------------------------------------------------------------------


def test_cli_serves_until_terminated() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.fake_tavus", "--port", "0", "--api-key", "cli-key"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        match = re.fullmatch(r"fake Tavus listening on (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        url = f"{match.group(1)}/v2/personas/{DEFAULT_PERSONA_ID}"
        assert httpx.get(url, headers={"x-api-key": "cli-key"}).status_code == 200
        assert httpx.get(url, headers={"x-api-key": "other"}).status_code == 401
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=5)
    assert process.returncode == 0
    assert "Traceback" not in stderr


def test_cli_reports_a_busy_port(fake: FakeTavus) -> None:
    port = fake.base_url.rsplit(":", 1)[1]
    result = subprocess.run(
        [sys.executable, "-m", "devtools.fake_tavus", "--port", port],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "cannot listen" in result.stderr and "Traceback" not in result.stderr


def test_timestamps_are_utc_now(client: httpx.Client) -> None:
    created = create(client)["created_at"]
    moment = datetime.strptime(created, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - moment).total_seconds()) < 5
