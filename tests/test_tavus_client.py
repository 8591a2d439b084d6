"""The Tavus client against ``httpx.MockTransport``: error mapping, retries, cache, logging."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import httpx
import pytest

from awaknow import errors
from awaknow.tavus import TavusBackend, TavusClient, error_from_response

API_KEY = "tvs_live_SECRETKEY_0123456789abcdef"
BASE = "https://tavus.test"
PERSONA = {"persona_id": "p7e13c73f41f", "persona_name": "AwakNow", "default_replica_id": "r1"}

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that answers from a script and remembers every request."""

    def __init__(self, *answers: httpx.Response | Exception | Handler) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        return answer

    def paths(self) -> list[str]:
        return [f"{r.method} {r.url.path}" for r in self.requests]


def make_client(recorder: Recorder, **kwargs: object) -> TavusClient:
    options: dict[str, object] = {"max_retries": 2, "backoff_seconds": 0}
    options.update(kwargs)
    return TavusClient(API_KEY, BASE, transport=httpx.MockTransport(recorder), **options)  # type: ignore[arg-type]


@pytest.fixture
def debug_log(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> pytest.LogCaptureFixture:
    """Capture the client's log even if ``configure_logging`` stopped ``awaknow`` propagating."""
    monkeypatch.setattr(logging.getLogger("awaknow"), "propagate", True)
    caplog.set_level(logging.DEBUG, logger="awaknow.tavus")
    return caplog


ERROR_CASES = [
    pytest.param(
        400,
        {"error": "Invalid persona_id"},
        errors.TavusNotFoundError,
        "p7e13c73f41f",
        id="400-invalid-persona",
    ),
    pytest.param(
        400,
        {"error": "Invalid replica_uuid"},
        errors.TavusNotFoundError,
        "TAVUS_REPLICA_ID",
        id="400-invalid-replica",
    ),
    pytest.param(
        400,
        {"message": "Invalid conversation_id"},
        errors.TavusNotFoundError,
        "conversation",
        id="400-invalid-conversation-message",
    ),
    pytest.param(
        400,
        {"message": "User has reached maximum concurrent conversations"},
        errors.TavusConcurrencyError,
        "python -m awaknow sessions --active",
        id="400-concurrency",
    ),
    pytest.param(
        400,
        {"error": "properties.language is not supported"},
        errors.TavusBadRequestError,
        "language is not supported",
        id="400-other",
    ),
    pytest.param(
        401,
        {"message": "Invalid access token"},
        errors.TavusAuthError,
        "set a valid TAVUS_API_KEY",
        id="401",
    ),
    pytest.param(
        403,
        {"message": "Forbidden: IP address not allowed"},
        errors.TavusForbiddenError,
        "allow this server's outgoing IP",
        id="403",
    ),
    pytest.param(
        402,
        {"message": "The user is out of conversational credits"},
        errors.TavusCreditsError,
        "add credits in the Tavus dashboard",
        id="402",
    ),
    pytest.param(404, {"error": "Not found"}, errors.TavusNotFoundError, "does not know", id="404"),
    pytest.param(429, {"message": "Too many"}, errors.TavusRateLimitError, "wait", id="429"),
    pytest.param(500, {"error": "boom"}, errors.TavusServerError, "try again", id="500"),
    pytest.param(502, {"error": "bad gateway"}, errors.TavusServerError, "502", id="502"),
    pytest.param(503, {"message": "unavailable"}, errors.TavusServerError, "503", id="503"),
    pytest.param(
        502,
        "<html><body><h1>502 Bad Gateway</h1></body></html>",
        errors.TavusServerError,
        "502 Bad Gateway",
        id="502-non-json",
    ),
]


@pytest.mark.parametrize(("status", "body", "expected", "hint"), ERROR_CASES)
def test_status_maps_to_error_class(
    status: int, body: object, expected: type[errors.TavusError], hint: str
) -> None:
    content = body if isinstance(body, str) else json.dumps(body)
    recorder = Recorder(httpx.Response(status, text=content))
    with make_client(recorder, max_retries=0) as client, pytest.raises(expected) as caught:
        client.get_persona("p7e13c73f41f")
    error = caught.value
    assert type(error) is expected
    assert error.status == status
    assert error.body == body
    message = str(error)
    assert hint in message
    assert "\n" not in message
    assert API_KEY not in message
    assert API_KEY not in repr(error)


def test_not_found_message_names_the_persona_and_the_setting() -> None:
    recorder = Recorder(httpx.Response(400, json={"error": "Invalid persona_id"}))
    with make_client(recorder) as client, pytest.raises(errors.TavusNotFoundError) as caught:
        client.get_persona("p123")
    assert str(caught.value) == (
        "Tavus does not know persona p123 (400 Invalid persona_id): check TAVUS_PERSONA_ID"
    )


def test_auth_and_credits_messages_are_exact() -> None:
    auth = error_from_response(httpx.Response(401, json={"message": "Invalid access token"}))
    assert str(auth) == (
        "Tavus rejected the API key (401 Invalid access token): "
        "set a valid TAVUS_API_KEY in the environment or .env"
    )
    credits = error_from_response(httpx.Response(402, text=""))
    assert str(credits).startswith("The Tavus account is out of conversational credits (402")
    assert str(credits).endswith("add credits in the Tavus dashboard")


def test_invalid_replica_in_create_names_the_replica_from_the_body() -> None:
    recorder = Recorder(httpx.Response(400, json={"error": "Invalid replica_uuid"}))
    with make_client(recorder) as client, pytest.raises(errors.TavusNotFoundError) as caught:
        client.create_conversation({"persona_id": "p1", "replica_id": "rbad"})
    assert "replica rbad" in str(caught.value)


@pytest.mark.parametrize(
    ("failure", "name"),
    [
        pytest.param(httpx.ConnectTimeout("timed out"), "ConnectTimeout", id="timeout"),
        pytest.param(httpx.ConnectError("refused"), "ConnectError", id="connect-error"),
        pytest.param(httpx.ReadTimeout("slow"), "ReadTimeout", id="read-timeout"),
    ],
)
def test_transport_failures_are_unreachable(failure: Exception, name: str) -> None:
    recorder = Recorder(failure)
    with (
        make_client(recorder, max_retries=0) as client,
        pytest.raises(errors.TavusUnreachableError) as caught,
    ):
        client.get_conversation("c123")
    error = caught.value
    assert error.status is None
    assert str(error) == (
        f"Could not reach Tavus at {BASE} ({name}): check TAVUS_API_BASE_URL and the network"
    )
    assert isinstance(error.__cause__, httpx.TransportError)


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500, json={"error": "boom"}),
        httpx.Response(503, text="down"),
        httpx.Response(429, json={"message": "slow down"}),
        httpx.ConnectError("refused"),
    ],
    ids=["500", "503", "429", "unreachable"],
)
def test_safe_calls_retry_then_succeed(failure: httpx.Response | Exception) -> None:
    recorder = Recorder(failure, failure, httpx.Response(200, json={"status": "active"}))
    with make_client(recorder) as client:
        assert client.get_conversation("c1")["status"] == "active"
    assert len(recorder.requests) == 3


def test_retries_stop_after_max_retries() -> None:
    recorder = Recorder(httpx.Response(500, json={"error": "boom"}))
    with make_client(recorder, max_retries=2) as client, pytest.raises(errors.TavusServerError):
        client.list_conversations()
    assert len(recorder.requests) == 3


def test_end_is_retried() -> None:
    recorder = Recorder(httpx.Response(502, text="bad gateway"), httpx.Response(200, text=""))
    with make_client(recorder) as client:
        client.end_conversation("c1")
    assert recorder.paths() == ["POST /v2/conversations/c1/end"] * 2


@pytest.mark.parametrize(
    "failure",
    [httpx.Response(500, json={"error": "boom"}), httpx.ReadTimeout("slow")],
    ids=["500", "timeout"],
)
def test_create_is_never_retried(failure: httpx.Response | Exception) -> None:
    recorder = Recorder(failure, httpx.Response(200, json={"conversation_id": "c1"}))
    with make_client(recorder) as client, pytest.raises(errors.TavusError):
        client.create_conversation({"persona_id": "p1"})
    assert len(recorder.requests) == 1


def test_client_errors_are_not_retried() -> None:
    recorder = Recorder(httpx.Response(401, json={"message": "Invalid access token"}))
    with make_client(recorder) as client, pytest.raises(errors.TavusAuthError):
        client.get_conversation("c1")
    assert len(recorder.requests) == 1


def test_retry_after_is_honoured_and_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr("awaknow.tavus.time.sleep", waits.append)
    recorder = Recorder(
        httpx.Response(429, headers={"Retry-After": "2"}, json={}),
        httpx.Response(429, headers={"Retry-After": "3600"}, json={}),
        httpx.Response(200, json={"data": [], "total_count": 0}),
    )
    with make_client(recorder) as client:
        client.list_conversations()
    assert waits == [2.0, 5.0]


def test_persona_is_cached_until_forced() -> None:
    recorder = Recorder(httpx.Response(200, json=PERSONA))
    with make_client(recorder) as client:
        first = client.get_persona("p7e13c73f41f")
        first["persona_name"] = "mutated by a caller"
        assert client.get_persona("p7e13c73f41f") == PERSONA
        assert len(recorder.requests) == 1
        client.get_persona("p7e13c73f41f", force=True)
        assert len(recorder.requests) == 2


def test_persona_cache_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("awaknow.tavus.time.monotonic", lambda: now[0])
    recorder = Recorder(httpx.Response(200, json=PERSONA))
    with make_client(recorder, persona_cache_seconds=60) as client:
        client.get_persona("p7e13c73f41f")
        now[0] += 59
        client.get_persona("p7e13c73f41f")
        assert len(recorder.requests) == 1
        now[0] += 2
        client.get_persona("p7e13c73f41f")
        assert len(recorder.requests) == 2


def test_persona_failure_is_not_cached() -> None:
    recorder = Recorder(
        httpx.Response(401, json={"message": "Invalid access token"}),
        httpx.Response(200, json=PERSONA),
    )
    with make_client(recorder) as client:
        with pytest.raises(errors.TavusAuthError):
            client.get_persona("p7e13c73f41f")
        assert client.get_persona("p7e13c73f41f") == PERSONA
    assert len(recorder.requests) == 2


@pytest.mark.parametrize("payload", [PERSONA, {"data": [PERSONA]}], ids=["flat", "wrapped"])
def test_persona_shapes(payload: dict) -> None:
    with make_client(Recorder(httpx.Response(200, json=payload))) as client:
        assert client.get_persona("p7e13c73f41f") == PERSONA


def test_persona_empty_data_is_not_found() -> None:
    recorder = Recorder(httpx.Response(200, json={"data": [], "total_count": 0}))
    with make_client(recorder) as client, pytest.raises(errors.TavusNotFoundError):
        client.get_persona("p7e13c73f41f")


def test_non_json_success_is_a_server_error() -> None:
    recorder = Recorder(httpx.Response(200, text="<html>captive portal</html>"))
    with make_client(recorder) as client, pytest.raises(errors.TavusServerError):
        client.get_conversation("c1")


def test_end_ok_on_2xx() -> None:
    recorder = Recorder(httpx.Response(200, json={}))
    with make_client(recorder) as client:
        client.end_conversation("c1")
    assert recorder.paths() == ["POST /v2/conversations/c1/end"]


def test_end_already_ended_is_ok() -> None:
    recorder = Recorder(
        httpx.Response(400, json={"error": "Conversation has already ended"}),
        httpx.Response(200, json={"conversation_id": "c1", "status": "ended"}),
    )
    with make_client(recorder) as client:
        client.end_conversation("c1")
    assert recorder.paths() == ["POST /v2/conversations/c1/end", "GET /v2/conversations/c1"]


def test_end_404_is_ok() -> None:
    recorder = Recorder(httpx.Response(404, json={"error": "Not found"}))
    with make_client(recorder) as client:
        client.end_conversation("c1")
    assert recorder.paths() == ["POST /v2/conversations/c1/end", "GET /v2/conversations/c1"]


def test_end_400_on_active_conversation_is_not_confirmed() -> None:
    recorder = Recorder(
        httpx.Response(400, json={"error": "cannot end now"}),
        httpx.Response(200, json={"conversation_id": "c1", "status": "active"}),
    )
    with (
        make_client(recorder) as client,
        pytest.raises(errors.TavusEndNotConfirmedError) as caught,
    ):
        client.end_conversation("c1")
    assert caught.value.status == 400
    assert "cannot end now" in str(caught.value)
    assert isinstance(caught.value.__cause__, errors.TavusBadRequestError)


def test_end_auth_failure_is_not_confirmed_without_lookup() -> None:
    recorder = Recorder(httpx.Response(401, json={"message": "Invalid access token"}))
    with (
        make_client(recorder) as client,
        pytest.raises(errors.TavusEndNotConfirmedError) as caught,
    ):
        client.end_conversation("c1")
    assert len(recorder.requests) == 1
    assert isinstance(caught.value.__cause__, errors.TavusAuthError)


def test_headers_and_request_shapes() -> None:
    recorder = Recorder(httpx.Response(200, json={"conversation_id": "c1", "status": "active"}))
    with make_client(recorder) as client:
        client.create_conversation({"persona_id": "p1", "conversation_name": "awaknow_x_1"})
        client.get_conversation("c1", verbose=True)
    create, get = recorder.requests
    assert create.headers["x-api-key"] == API_KEY
    assert create.headers["content-type"] == "application/json"
    assert create.url == f"{BASE}/v2/conversations"
    assert json.loads(create.content) == {"persona_id": "p1", "conversation_name": "awaknow_x_1"}
    assert get.url.params["verbose"] == "true"


def test_list_normalises_and_sends_filters() -> None:
    recorder = Recorder(httpx.Response(200, json={"data": [{"conversation_id": "c1"}]}))
    with make_client(recorder) as client:
        listing = client.list_conversations(status="active", limit=10, page=2)
    assert listing == {"data": [{"conversation_id": "c1"}], "total_count": 1}
    params = recorder.requests[0].url.params
    assert (params["status"], params["limit"], params["page"]) == ("active", "10", "2")


def test_find_conversation_by_name_pages_through() -> None:
    def pages(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        rows = [
            {"conversation_id": f"c{page}x{i}", "conversation_name": f"n{page}_{i}"}
            for i in range(100 if page < 3 else 5)
        ]
        return httpx.Response(200, json={"data": rows, "total_count": 205})

    recorder = Recorder(pages)
    with make_client(recorder) as client:
        found = client.find_conversation_by_name("n3_4", status="active")
        assert found == {"conversation_id": "c3x4", "conversation_name": "n3_4"}
        assert client.find_conversation_by_name("missing") is None
    assert len(recorder.requests) == 6
    assert recorder.requests[0].url.params["status"] == "active"


@pytest.mark.parametrize("bad", ["../personas/p1", "c1/end", "c1?x=1", "", "a" * 65, "c 1"])
def test_invalid_ids_are_rejected_before_sending(bad: str) -> None:
    recorder = Recorder(httpx.Response(200, json={}))
    with make_client(recorder) as client:
        with pytest.raises(errors.TavusNotFoundError):
            client.get_conversation(bad)
        with pytest.raises(errors.TavusNotFoundError):
            client.end_conversation(bad)
        with pytest.raises(errors.TavusNotFoundError):
            client.get_persona(bad)
    assert recorder.requests == []


def test_debug_log_has_request_facts_but_no_secrets(debug_log: pytest.LogCaptureFixture) -> None:
    callback = "https://app.example/api/tavus/callback?token=CALLBACKTOKEN123"
    recorder = Recorder(
        httpx.Response(
            200,
            json={
                "conversation_id": "c1",
                "callback_url": callback,
                "meeting_token": "MEETINGTOKEN",
                "echo": API_KEY,
            },
        )
    )
    with make_client(recorder) as client:
        client.create_conversation(
            {"persona_id": "p7e13c73f41f", "callback_url": callback, "x-api-key": API_KEY}
        )
    text = "\n".join(record.getMessage() for record in debug_log.records)
    assert "POST /v2/conversations -> 200" in text
    assert "persona=p7e13c73f41f" in text
    assert " ms " in text
    assert API_KEY not in text
    assert "CALLBACKTOKEN123" not in text
    assert "MEETINGTOKEN" not in text
    assert "x-api-key" not in text


def test_retries_are_logged_at_info(debug_log: pytest.LogCaptureFixture) -> None:
    recorder = Recorder(httpx.Response(503, text="down"), httpx.Response(200, json={}))
    with make_client(recorder) as client:
        client.get_conversation("c1")
    infos = [r.getMessage() for r in debug_log.records if r.levelno == logging.INFO]
    assert infos == ["Retrying GET /v2/conversations/c1 (attempt 2 of 3) after HTTP 503 in 0.00 s"]


def test_key_never_in_repr_and_missing_key_is_an_auth_error() -> None:
    with make_client(Recorder(httpx.Response(200, json={}))) as client:
        assert API_KEY not in repr(client)
        assert API_KEY not in repr(vars(client))
    with pytest.raises(errors.TavusAuthError, match="TAVUS_API_KEY"):
        TavusClient("")


def test_client_satisfies_backend_protocol() -> None:
    with make_client(Recorder(httpx.Response(200, json={}))) as client:
        assert isinstance(client, TavusBackend)
        assert client.mode == "live"


def test_end_is_not_confirmed_when_the_lookup_fails_too() -> None:
    recorder = Recorder(
        httpx.Response(400, json={"error": "cannot end now"}),
        httpx.Response(500, json={"error": "boom"}),
    )
    with (
        make_client(recorder) as client,
        pytest.raises(errors.TavusEndNotConfirmedError) as caught,
    ):
        client.end_conversation("c1")
    assert isinstance(caught.value.__cause__, errors.TavusBadRequestError)
    assert "cannot end now" in str(caught.value) and "500" in str(caught.value)
    assert len(recorder.requests) == 2, "the confirming read is one quick try"


def test_end_returns_the_read_that_confirms_an_earlier_end() -> None:
    ended = {"conversation_id": "c1", "status": "ended", "updated_at": "2026-01-01T00:00:05Z"}
    recorder = Recorder(
        httpx.Response(400, json={"error": "Conversation has already ended"}),
        httpx.Response(200, json=ended),
    )
    with make_client(recorder) as client:
        assert client.end_conversation("c1") == ended
    recorder = Recorder(httpx.Response(200, json={}))
    with make_client(recorder) as client:
        assert client.end_conversation("c1") is None


def test_end_timeout_is_not_retried_and_a_quick_read_decides() -> None:
    recorder = Recorder(
        httpx.ReadTimeout("slow"),
        httpx.Response(200, json={"conversation_id": "c1", "status": "error"}),
    )
    with make_client(recorder) as client:
        assert client.end_conversation("c1") == {"conversation_id": "c1", "status": "error"}
    assert recorder.paths() == ["POST /v2/conversations/c1/end", "GET /v2/conversations/c1"]


def test_quick_read_is_one_try() -> None:
    recorder = Recorder(httpx.Response(503, text="down"), httpx.Response(200, json={}))
    with make_client(recorder) as client, pytest.raises(errors.TavusServerError):
        client.get_conversation("c1", quick=True)
    assert len(recorder.requests) == 1


def test_listing_follows_total_count_past_short_pages() -> None:
    def pages(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        rows = [
            {"conversation_id": f"c{page}x{i}", "conversation_name": f"n{page}_{i}"}
            for i in range(10)
        ]
        return httpx.Response(200, json={"data": rows if page <= 4 else [], "total_count": 40})

    recorder = Recorder(pages)
    with make_client(recorder) as client:
        assert client.find_conversation_by_name("n4_9")["conversation_id"] == "c4x9"
    assert len(recorder.requests) == 4, "pages of 10 when 100 were asked for are not the last"


def test_connection_refused_means_the_request_was_not_sent() -> None:
    refusing = make_client(Recorder(httpx.ConnectError("refused")))
    with refusing as client, pytest.raises(errors.TavusUnreachableError) as refused:
        client.create_conversation({"persona_id": "p1"})
    assert refused.value.request_sent is False
    timing_out = make_client(Recorder(httpx.ReadTimeout("slow")))
    with timing_out as client, pytest.raises(errors.TavusUnreachableError) as lost:
        client.create_conversation({"persona_id": "p1"})
    assert lost.value.request_sent is True
