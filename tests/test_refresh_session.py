"""refresh_session: a call Tavus ended is closed and billed once, by the service, not the page."""

from pathlib import Path

import pytest

from awaknow import accounts
from awaknow.config import load_settings
from awaknow.service import AwakNowService, open_service
from awaknow.sessions import SessionRecord


@pytest.fixture
def service(tmp_path: Path) -> AwakNowService:
    svc = open_service(tmp_path / "r.duckdb", settings=load_settings(environ={}, env_file=""))
    accounts.add_user(svc.store, "cy", "awaknow_pro")
    yield svc
    svc.close()


def _bills(svc: AwakNowService) -> int:
    return svc.store.cursor().execute("SELECT count(*) FROM tavus_usage").fetchone()[0]


def test_a_running_call_stays_running(service: AwakNowService) -> None:
    started = service.start_session("cy", "reflect_alone")
    refresh = service.refresh_session(started.session_id)
    assert (refresh.outcome, refresh.remote_status, refresh.ended) == ("running", "active", None)
    assert refresh.session.running and _bills(service) == 0


def test_a_call_tavus_ended_is_closed_and_billed_once(service: AwakNowService) -> None:
    started = service.start_session("cy", "reflect_alone")
    service.backend_for("mock").end_conversation(started.conversation_id)
    refresh = service.refresh_session(started.session_id)
    assert (refresh.outcome, refresh.remote_status) == ("ended_by_tavus", "ended")
    assert refresh.ended is not None and refresh.ended.newly_billed
    assert refresh.session.status == "completed" and refresh.session.end_source == "tavus"
    assert refresh.session.seconds_used == refresh.ended.seconds_used
    assert service.active_session("cy") is None and _bills(service) == 1
    again = service.refresh_session(started.session_id)
    assert (again.outcome, again.ended) == ("ended_elsewhere", None)
    assert _bills(service) == 1, "a second look never bills again"


def test_a_session_ended_elsewhere_is_reported_without_asking_tavus(
    service: AwakNowService,
) -> None:
    started = service.start_session("cy", "reflect_alone")
    service.end_session(started.session_id, end_source="cli")
    asked: list[SessionRecord] = []

    def remote_status(session: SessionRecord) -> str:
        asked.append(session)
        return "ended"

    refresh = service.refresh_session(started.session_id, remote_status=remote_status)
    assert (refresh.outcome, refresh.remote_status, refresh.ended) == (
        "ended_elsewhere",
        "completed",
        None,
    )
    assert refresh.session.end_source == "cli" and asked == []


def test_the_callers_status_lookup_decides(service: AwakNowService) -> None:
    """Pages pass a lookup shared by every tab; its answer, not a fresh Tavus call, counts."""
    started = service.start_session("cy", "reflect_alone")
    refresh = service.refresh_session(started.session_id, remote_status=lambda s: "unknown")
    assert (refresh.outcome, refresh.remote_status) == ("running", "unknown")
    ended = service.refresh_session(started.session_id, remote_status=lambda s: "ended")
    assert ended.outcome == "ended_by_tavus" and ended.session.end_source == "tavus"
    assert _bills(service) == 1
