"""The Tavus callback route on the REAL app over loopback HTTP.

``app.py`` is imported as a module (so it builds ``app = st.App(...)`` with the real routes and
lifespan) and served by ``uvicorn.Server`` in a background thread, in this process, so the test
shares the app's one DuckDB connection through ``shared_service()``. Uvicorn's access log is
left ON here (``streamlit run`` turns it off) so the secret-in-logs check covers request lines.
The local Tavus server posts real callbacks to the route for the full loop.
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from awaknow import accounts, events, sessions
from awaknow.config import CALLBACK_PATH
from awaknow.service import AwakNowService, close_shared_services, shared_service
from awaknow.store import utcnow
from awaknow.tavus_names import parse_tavus_time
from awaknow.webhooks import MAX_BODY_BYTES
from devtools.fake_tavus import FakeTavus
from tests.conftest import craft_session, iso, stored_events, wait_for

SECRET = "cb-" + secrets.token_urlsafe(24)
API_KEY = "test-key-" + secrets.token_hex(8)


@dataclass
class AppServer:
    base_url: str
    service: AwakNowService
    fake: FakeTavus
    http: httpx.Client
    root: Path  # every database this module opens lies here, closed at the end

    def post(
        self,
        body: Any = None,
        *,
        token: str | None = SECRET,
        raw: bytes | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        params = {} if token is None else {"token": token}
        content = raw if raw is not None else json.dumps(body).encode()
        response = self.http.post(CALLBACK_PATH, params=params, content=content, **kwargs)
        # Processing runs after the answer, in the background: wait for it before asserting.
        assert events.wait_for_event_processing(self.service.store)
        return response

    def count(self, sql: str, params: list | None = None) -> int:
        return self.service.store.cursor().execute(sql, params or []).fetchone()[0]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"
    fake = FakeTavus(api_key=API_KEY, replica_join_delay=0.05).start()
    root = tmp_path_factory.mktemp("callbacks")
    db = root / "app.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith(("TAVUS_", "VITE_TAVUS_", "AWAKNOW_")):
                mp.delenv(name)
        for name, value in {
            "AWAKNOW_DB_PATH": str(db),
            "AWAKNOW_ENV_FILE": "",
            "AWAKNOW_PUBLIC_URL": base_url,
            "AWAKNOW_CALLBACK_SECRET": SECRET,
            "AWAKNOW_LOG_LEVEL": "INFO",
            "TAVUS_API_KEY": API_KEY,
            "TAVUS_API_BASE_URL": fake.base_url,
            # Tavus records only into the account's bucket: the full loop has one.
            "TAVUS_RECORDING_S3_BUCKET_NAME": "awaknow-fake-recordings",
            "TAVUS_RECORDING_S3_BUCKET_REGION": "us-east-1",
            "TAVUS_AWS_ASSUME_ROLE_ARN": "arn:aws:iam::123456789012:role/tavus",
        }.items():
            mp.setenv(name, value)
        app_module = importlib.import_module("app")  # imported, not run: builds the st.App
        config = uvicorn.Config(app_module.app, log_level="info", lifespan="on")
        uv = uvicorn.Server(config)
        thread = threading.Thread(
            target=uv.run, kwargs={"sockets": [sock]}, name="app-server", daemon=True
        )
        thread.start()
        wait_for(lambda: uv.started or not thread.is_alive(), timeout=60)
        assert uv.started, "the app did not start"
        with httpx.Client(base_url=base_url, timeout=10, trust_env=False) as http:
            try:
                yield AppServer(base_url, shared_service(), fake, http, root)
            finally:
                uv.should_exit = True
                thread.join(timeout=20)
                fake.stop()
                sock.close()
                events.wait_for_background_syncs()
                close_shared_services(root)
                _forget_streamlit_runtime()


def _forget_streamlit_runtime() -> None:
    """The in-process server created Streamlit's Runtime singleton; later tests (AppTest)
    expect none, as under a fresh process."""
    from streamlit.runtime.runtime import Runtime

    Runtime._instance = None


class LogCapture:
    """Everything the process logs while active: AwakNow's own (redacting) handler output,
    uvicorn/streamlit/root loggers, and UNFILTERED records of the callback and event modules
    (so the check proves they never hand the secret to logging at all)."""

    def __enter__(self) -> LogCapture:
        self.text = io.StringIO()
        self.raw = io.StringIO()
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        self.handler = logging.StreamHandler(self.text)
        self.handler.setFormatter(formatter)
        self.raw_handler = logging.StreamHandler(self.raw)
        self.raw_handler.setFormatter(formatter)
        ours = logging.getLogger("awaknow")
        self.awaknow_handler = next(h for h in ours.handlers if getattr(h, "_awaknow", False))
        self.old_stream = self.awaknow_handler.setStream(self.text)
        self.levels: dict[str, int] = {}
        for name in ("awaknow", "uvicorn.access", "uvicorn.error"):
            self.levels[name] = logging.getLogger(name).level
            logging.getLogger(name).setLevel(logging.DEBUG)
        # Not "httpx": the FAKE Tavus's sender logs the callback URL it posts to; that is
        # Tavus's side of the wire, not this app's logs.
        self.shared = ("", "uvicorn", "uvicorn.access", "uvicorn.error", "streamlit")
        for name in self.shared:
            logging.getLogger(name).addHandler(self.handler)
        self.unfiltered = ("awaknow.webhooks", "awaknow.events")
        for name in self.unfiltered:
            logging.getLogger(name).addHandler(self.raw_handler)
        return self

    def __exit__(self, *exc: object) -> None:
        self.awaknow_handler.setStream(self.old_stream)
        for name in self.shared:
            logging.getLogger(name).removeHandler(self.handler)
        for name in self.unfiltered:
            logging.getLogger(name).removeHandler(self.raw_handler)
        for name, level in self.levels.items():
            logging.getLogger(name).setLevel(level)

    @property
    def output(self) -> str:
        return self.text.getvalue() + self.raw.getvalue()


def shutdown(cid: str, when: datetime | str, reason: str = "participant_left_timeout") -> dict:
    return {
        "conversation_id": cid,
        "event_type": "system.shutdown",
        "message_type": "system",
        "timestamp": iso(when) if isinstance(when, datetime) else when,
        "webhook_url": f"http://127.0.0.1/api/tavus/callback?token={SECRET}",
        "properties": {"replica_id": "r4317e64d25a", "shutdown_reason": reason},
    }


def billed(server: AppServer, session_id: str) -> tuple:
    return (
        server.service.store.cursor()
        .execute(
            "SELECT seconds_used, clock, ended_at FROM tavus_usage WHERE session_id = ?",
            [session_id],
        )
        .fetchall()
    )


# --- authentication, size, shape ----------------------------------------------------------------


def test_missing_or_wrong_token_is_401_and_stores_nothing(server: AppServer) -> None:
    before = server.count("SELECT count(*) FROM conversation_events")
    body = shutdown("c" + secrets.token_hex(8), utcnow())
    for token in (None, "", "wrong", SECRET + "x", SECRET[:-1], "ü" * 8):
        response = server.post(body, token=token)
        assert response.status_code == 401, token
        assert response.json() == {"error": "missing or wrong token"}
        assert SECRET not in response.text
    # The secret in a header or the path does not count.
    assert server.http.post(CALLBACK_PATH, json=body, headers={"token": SECRET}).status_code == 401
    assert server.http.post(f"{CALLBACK_PATH}/{SECRET}", json=body).status_code in (404, 405)
    # (A GET gets Streamlit's page shell, like any unknown path; it never reaches the route.)
    server.http.get(CALLBACK_PATH, params={"token": SECRET})
    assert server.count("SELECT count(*) FROM conversation_events") == before


def test_no_secret_configured_is_401_and_broken_config_is_503(
    server: AppServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWAKNOW_DB_PATH", str(server.root / "no-secret.duckdb"))
    monkeypatch.delenv("AWAKNOW_PUBLIC_URL")
    monkeypatch.delenv("AWAKNOW_CALLBACK_SECRET")
    body = shutdown("c" + secrets.token_hex(8), utcnow())
    assert server.post(body, token=SECRET).status_code == 401
    assert server.post(body, token="").status_code == 401
    monkeypatch.setenv("TAVUS_PERSONA_ID", "not-a-persona")  # load_settings raises ConfigError
    response = server.post(body)
    assert response.status_code == 503 and "error" in response.json()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "not JSON"),
        (b"not json", "not JSON"),
        (b'{"conversation_id": "c1", "event_type": "x"', "not JSON"),
        (b"\xff\xfe{}", "not JSON"),
        (b'{"conversation_id": "c1", "event_type": "x", "n": NaN}', "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
        (b"[]", "JSON object"),
        (b'"text"', "JSON object"),
        (b"null", "JSON object"),
        (b"{}", "conversation_id"),
        (b'{"event_type": "system.shutdown"}', "conversation_id"),
        (b'{"conversation_id": "c1"}', "event_type"),
        (b'{"conversation_id": "", "event_type": "x"}', "conversation_id"),
        (b'{"conversation_id": 5, "event_type": "x"}', "conversation_id"),
        (b'{"conversation_id": "c1", "event_type": {"a": 1}}', "event_type"),
        (b'{"conversation_id": "c1", "event_type": "  "}', "event_type"),
    ],
)
def test_malformed_bodies_are_400(server: AppServer, raw: bytes, reason: str) -> None:
    before = server.count("SELECT count(*) FROM conversation_events")
    response = server.post(raw=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert reason in response.json()["error"] and len(response.text) < 200
    assert server.count("SELECT count(*) FROM conversation_events") == before


def _body_of_size(size: int, cid: str) -> bytes:
    empty = json.dumps({"conversation_id": cid, "event_type": "vendor.big", "pad": ""}).encode()
    body = json.dumps(
        {"conversation_id": cid, "event_type": "vendor.big", "pad": "x" * (size - len(empty))}
    ).encode()
    assert len(body) == size
    return body


def test_body_over_one_megabyte_is_413_declared_or_streamed(server: AppServer) -> None:
    cid = "c" + secrets.token_hex(8)
    at_limit = server.post(raw=_body_of_size(MAX_BODY_BYTES, cid))
    assert at_limit.status_code == 200 and at_limit.json()["status"] == "stored"
    other = "c" + secrets.token_hex(8)
    over = server.post(raw=_body_of_size(MAX_BODY_BYTES + 1, other))
    assert over.status_code == 413 and "error" in over.json()
    huge = server.post(raw=b"x" * (5 * MAX_BODY_BYTES))
    assert huge.status_code == 413

    def chunks(total: int) -> Iterator[bytes]:  # no Content-Length: chunked transfer
        body = _body_of_size(total, other)
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    streamed = server.http.post(
        CALLBACK_PATH, params={"token": SECRET}, content=chunks(MAX_BODY_BYTES + 10)
    )
    assert streamed.status_code == 413
    small_streamed = server.http.post(CALLBACK_PATH, params={"token": SECRET}, content=chunks(1000))
    assert small_streamed.status_code == 200
    assert (
        server.count("SELECT count(*) FROM conversation_events WHERE conversation_id = ?", [other])
        == 1
    )


# --- storing, duplicates, flags -----------------------------------------------------------------


def test_duplicate_delivery_is_stored_once(server: AppServer) -> None:
    sid, cid, started = craft_session(server.service, mode="live")
    body = shutdown(cid, started + timedelta(seconds=33.3))
    first = server.post(body)
    assert first.status_code == 200
    assert first.json() == {
        "status": "stored",
        "event_key": first.json()["event_key"],
        "known_type": True,
        "known_conversation": True,
        "processed": False,  # answered once stored; processed afterwards
    }
    assert server.count(
        "SELECT count(*) FROM conversation_events WHERE conversation_id = ? "
        "AND processed_at IS NOT NULL",
        [cid],
    )
    again = server.post(body)
    reordered = server.post(raw=json.dumps(dict(reversed(list(body.items())))).encode())
    assert again.json()["status"] == reordered.json()["status"] == "duplicate"
    assert again.json()["event_key"] == first.json()["event_key"]
    assert (
        server.count("SELECT count(*) FROM conversation_events WHERE conversation_id = ?", [cid])
        == 1
    )
    assert billed(server, sid)[0][:2] == (34, "tavus")


def test_concurrent_duplicates_are_stored_and_billed_once(server: AppServer) -> None:
    """Sixteen deliveries of one shutdown at once share batched commits: one is stored."""
    sid, cid, started = craft_session(server.service, mode="live")
    body = json.dumps(shutdown(cid, started + timedelta(seconds=12.5))).encode()

    def deliver(_: int) -> dict:
        response = server.http.post(CALLBACK_PATH, params={"token": SECRET}, content=body)
        assert response.status_code == 200
        return response.json()

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(deliver, range(16)))
    assert sorted(a["status"] for a in answers) == ["duplicate"] * 15 + ["stored"]
    assert len({a["event_key"] for a in answers}) == 1
    assert events.wait_for_event_processing(server.service.store)
    assert (
        server.count("SELECT count(*) FROM conversation_events WHERE conversation_id = ?", [cid])
        == 1
    )
    assert billed(server, sid)[0][:2] == (13, "tavus")


def test_unknown_event_type_is_stored_and_flagged(server: AppServer) -> None:
    sid, cid, _ = craft_session(server.service, mode="live")
    response = server.post(
        {
            "conversation_id": cid,
            "event_type": "conversation.new_thing",
            "timestamp": iso(utcnow()),
            "properties": {"a": [1, 2]},
        }
    )
    assert response.status_code == 200
    assert response.json()["known_type"] is False and response.json()["status"] == "stored"
    row = (
        server.service.store.cursor()
        .execute(
            "SELECT known_type, session_id, source FROM conversation_events "
            "WHERE conversation_id = ?",
            [cid],
        )
        .fetchone()
    )
    assert row == (False, sid, "callback")


def test_unknown_conversation_is_stored_and_flagged(server: AppServer) -> None:
    cid = "c" + secrets.token_hex(8)
    response = server.post(shutdown(cid, utcnow()))
    assert response.status_code == 200
    assert response.json()["known_conversation"] is False
    assert response.json()["processed"] is False
    row = (
        server.service.store.cursor()
        .execute(
            "SELECT known_type, session_id, payload FROM conversation_events "
            "WHERE conversation_id = ?",
            [cid],
        )
        .fetchone()
    )
    assert row[0] is True and row[1] is None
    assert SECRET not in row[2] and "token=***" in row[2]


# --- billing order --------------------------------------------------------------------------------


def test_shutdown_before_manual_end_is_billed_once_on_tavus_clock(server: AppServer) -> None:
    sid, cid, started = craft_session(server.service, mode="live")
    tavus_end = started + timedelta(seconds=42.5)
    assert server.post(shutdown(cid, tavus_end)).json()["status"] == "stored"
    ended = server.service.end_session(sid)
    assert (ended.seconds_used, ended.newly_billed) == (43, False)
    assert billed(server, sid) == [(43, "tavus", tavus_end)]
    row = server.service.get_session(sid)
    assert (row.status, row.end_source, row.ended_at) == ("completed", "tavus", tavus_end)
    assert row.shutdown_reason == "participant_left_timeout"


def test_shutdown_after_manual_end_rebills_once_on_tavus_clock(server: AppServer) -> None:
    sid, cid, started = craft_session(server.service, mode="live")
    app_bill = server.service.end_session(sid)
    assert app_bill.newly_billed and app_bill.seconds_used >= 100
    tavus_end = started + timedelta(seconds=57.01)
    assert server.post(shutdown(cid, tavus_end, "end_conversation_endpoint_hit")).status_code == 200
    assert billed(server, sid) == [(58, "tavus", tavus_end)]
    # Another End, a repeated callback, and a later different shutdown change nothing.
    assert server.service.end_session(sid).seconds_used == 58
    assert (
        server.post(shutdown(cid, tavus_end, "end_conversation_endpoint_hit")).json()["status"]
        == "duplicate"
    )
    server.post(shutdown(cid, tavus_end + timedelta(seconds=30), "max_call_duration reached"))
    assert billed(server, sid) == [(58, "tavus", tavus_end)]
    assert server.service.get_session(sid).shutdown_reason == "end_conversation_endpoint_hit"


def test_garbage_shutdown_time_never_bills_from_it(server: AppServer) -> None:
    sid, cid, _ = craft_session(server.service, mode="live")
    first = server.service.end_session(sid)
    assert server.post(shutdown(cid, "3000-01-01T00:00:00Z")).status_code == 200
    assert server.post(shutdown(cid, "soon")).status_code == 200
    assert billed(server, sid)[0][:2] == (first.seconds_used, "app")


# --- the full loop with the local Tavus server ---------------------------------------------


def test_full_loop_callbacks_from_fake_tavus(server: AppServer) -> None:
    svc = server.service
    user = "loop" + secrets.token_hex(3)
    accounts.add_user(svc.store, user, "awaknow_pro")
    with LogCapture() as logs:
        started = svc.start_session(user, "reflect_alone", "Starting a new job on Monday")
        assert started.mode == "live"
        conv = server.fake.conversations[started.conversation_id]
        assert conv["callback_url"] == svc.settings.callback_url
        assert conv["callback_url"] == f"{server.base_url}{CALLBACK_PATH}?token={SECRET}"
        wait_for(lambda: svc.get_session(started.session_id).replica_joined_at, timeout=10)
        svc.end_session(started.session_id)

        def delivered() -> bool:
            with server.fake._lock:
                sent = [
                    c
                    for c in server.fake.callbacks_sent
                    if c["payload"]["conversation_id"] == started.conversation_id
                ]
            return len(sent) == 5 and all(c["status"] == 200 for c in sent)

        wait_for(delivered, timeout=10)
        assert events.wait_for_event_processing(svc.store)
        frame = stored_events(svc.store, started.conversation_id)
        assert len(frame) == 5 and set(frame["source"]) == {"callback"}
        assert frame["processed_at"].notna().all() and frame["known_type"].all()

    row = svc.get_session(started.session_id)
    assert row.shutdown_reason == "end_conversation_endpoint_hit"
    assert row.perception_analysis.startswith("## Perception analysis")
    shutdown_event = next(e for e in conv["events"] if e["event_type"] == "system.shutdown")
    created = parse_tavus_time(conv["created_at"])
    tavus_end = parse_tavus_time(shutdown_event["timestamp"])
    assert billed(server, started.session_id) == [
        (sessions.billed_seconds(created, tavus_end), "tavus", tavus_end)
    ]
    assert row.ended_at == tavus_end and row.started_at == created
    transcript = events.transcript(svc.store, started.session_id)
    assert len(transcript) == 5 and set(transcript["role"]) == {"user", "assistant"}
    assert any("Starting a new job on Monday" in text for text in transcript["content"])
    recording = events.recording(svc.store, started.session_id)
    assert (
        recording["uri"] == f"s3://awaknow-fake-recordings/recordings/{conv['conversation_id']}.mp4"
    )
    timeline = events.session_timeline(svc.store, started.session_id)
    assert {
        "app.created",
        "app.started",
        "app.replica_joined",
        "app.ended",
        "app.billed",
        "system.shutdown",
        "application.transcription_ready",
    } <= set(timeline["event_type"])
    # The same events read back by polling are duplicates: nothing changes.
    assert events.sync_conversation(svc.store, svc.backend_for, started.session_id) == 0
    assert len(stored_events(svc.store, started.conversation_id)) == 5
    # The secret is in no log line and no stored payload.
    assert "/api/tavus/callback" in logs.output and "token=***" in logs.output
    assert SECRET not in logs.output
    assert not any(SECRET in payload for payload in frame["payload"])


def test_secret_never_logged_on_refusals_and_errors(server: AppServer) -> None:
    with LogCapture() as logs:
        server.post({"conversation_id": "c1"})
        server.post(raw=b"{nope")
        server.post(raw=b"x" * (MAX_BODY_BYTES + 1))
        server.post(shutdown("c" + secrets.token_hex(8), utcnow()), token=SECRET + "-wrong")
        server.post(shutdown("c" + secrets.token_hex(8), utcnow()))
    assert "refused" in logs.output and "413" in logs.output
    assert SECRET not in logs.output


def test_poller_in_the_lifespan_is_wired(server: AppServer) -> None:
    """One pass of what the reaper loop runs, through the shared service: no exception."""
    assert shared_service().poll_events() >= 0


# --- property: malformed payloads never break the route ----------------------------------------

_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
_json = st.recursive(
    _leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=15,
)
_ids = st.one_of(
    st.from_regex(r"c[0-9a-f]{16}", fullmatch=True),
    st.text(max_size=20),
    st.sampled_from(["", " ", "\t", "\ud800", "c\x00x", "c" * 256, "c" * 257]),
    _json,
)
_types = st.one_of(
    st.sampled_from(sorted(events.EVENT_TYPES)),
    st.text(max_size=30),
    st.sampled_from(["", "x" * 257]),
    _json,
)
_times = st.one_of(
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1)).map(iso),
    st.text(max_size=30),
    _json,
)
_properties = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "shutdown_reason": st.text(max_size=40) | _json,
            "transcript": st.lists(
                st.fixed_dictionaries(
                    {}, optional={"role": _json, "content": _json, "timestamp": _json}
                )
                | _json,
                max_size=5,
            )
            | _json,
            "analysis": _json,
            "bucket_name": _json,
            "duration": _json,
        },
    ),
    _json,
)
_envelopes = st.fixed_dictionaries(
    {},
    optional={
        "conversation_id": _ids,
        "event_type": _types,
        "timestamp": _times,
        "message_type": _json,
        "webhook_url": st.just(f"https://x/api/tavus/callback?token={SECRET}") | _json,
        "properties": _properties,
        "pad": st.sampled_from([0, 10, 300_000, MAX_BODY_BYTES - 400, MAX_BODY_BYTES + 50]).map(
            lambda n: "p" * n
        ),
    },
)
_bodies = st.one_of(
    st.tuples(_envelopes, st.booleans()).map(
        lambda t: json.dumps(t[0], ensure_ascii=t[1]).encode("utf-8", "surrogatepass")
    ),
    _json.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
)


def _expected_status(body: bytes) -> int:
    """The contract, written independently of the route's code."""
    if len(body) > MAX_BODY_BYTES:
        return 413

    def no_constants(name: str) -> None:
        raise ValueError(name)

    try:
        payload = json.loads(body.decode("utf-8"), parse_constant=no_constants)
    except (ValueError, RecursionError):
        return 400
    if not isinstance(payload, dict):
        return 400
    for name in ("conversation_id", "event_type"):
        value = payload.get(name)
        if not isinstance(value, str) or not value.strip() or len(value) > 256:
            return 400
    return 200


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(body=_bodies, resend=st.booleans())
def test_property_malformed_payloads_never_500_and_store_once(
    server: AppServer, body: bytes, resend: bool
) -> None:
    callbacks = "SELECT count(*) FROM conversation_events WHERE source = 'callback'"
    before = server.count(callbacks)
    response = server.post(raw=body)
    expected = _expected_status(body)
    assert response.status_code == expected, response.text[:200]
    assert SECRET not in response.text
    if expected != 200:
        assert server.count(callbacks) == before
        return
    answer = response.json()
    assert answer["status"] in ("stored", "duplicate")
    key = answer["event_key"]
    assert server.count("SELECT count(*) FROM conversation_events WHERE event_key = ?", [key]) == 1
    assert server.count(callbacks) == before + (answer["status"] == "stored")
    if answer["status"] == "stored":
        sent = json.loads(body.decode("utf-8"))
        stored = (
            server.service.store.cursor()
            .execute("SELECT payload FROM conversation_events WHERE event_key = ?", [key])
            .fetchone()[0]
        )
        assert SECRET not in stored
        if "webhook_url" not in sent:
            assert json.loads(stored) == sent, "nothing accepted is lost or altered"
    if resend:
        again = server.post(raw=body)
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
        assert again.json()["event_key"] == key
        assert (
            server.count("SELECT count(*) FROM conversation_events WHERE event_key = ?", [key]) == 1
        )
