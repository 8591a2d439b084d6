"""What pages and the CLI read from the service: typed records whose JSON keeps its shape."""

from pathlib import Path

import pytest

from awaknow import accounts
from awaknow.config import load_settings
from awaknow.service import AwakNowService, open_service
from awaknow.sessions import SESSION_COLUMNS, SessionRecord

# The keys `python -m awaknow status --json` has always printed, in this order.
STATUS_KEYS = [
    "mode",
    "reason",
    "verified",
    "strict",
    "persona_id",
    "persona_source",
    "persona_variable",
    "replica_id",
    "replica_source",
    "replica_variable",
    "api_key_configured",
    "api_key_source",
    "api_base_url",
    "callback_url_configured",
    "db_path",
]


@pytest.fixture
def service(tmp_path: Path) -> AwakNowService:
    svc = open_service(tmp_path / "r.duckdb", settings=load_settings(environ={}, env_file=""))
    accounts.add_user(svc.store, "cy", "awaknow_pro")
    yield svc
    svc.close()


def test_status_json_keeps_the_status_command_keys(service: AwakNowService) -> None:
    status = service.status()
    assert list(status.to_json()) == STATUS_KEYS
    assert (status.mode, status.verified, status.api_key_configured) == ("mock", False, False)
    assert status.to_json()["db_path"] == str(service.store.path)


def test_a_session_is_read_as_a_record_with_every_column_named(service: AwakNowService) -> None:
    started = service.start_session("cy", "resolve_together", "about chores")
    session = service.get_session(started.session_id)
    assert isinstance(session, SessionRecord)
    assert (session.user_id, session.status, session.mode) == ("cy", "active", "mock")
    assert session.running and session.context == "about chores"
    assert session.billing_started_at == session.started_at
    table_columns = [
        row[0]
        for row in service.store.cursor()
        .execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'sessions' ORDER BY ordinal_position"
        )
        .fetchall()
    ]
    assert list(SESSION_COLUMNS) == table_columns, "a new sessions column needs a field"
    service.end_session(started.session_id)
    ended = service.get_session(started.session_id)
    assert not ended.running and ended.seconds_used is not None
    assert service.active_session("cy") is None
    assert service.session_for_conversation(started.conversation_id) == ended


def test_duration_formats_say_what_they_return() -> None:
    from awaknow import ui

    assert ui.fmt_seconds_as_clock(172) == "2:52"
    assert ui.fmt_minutes_as_clock(2.5) == "2:30"
    assert ui.fmt_seconds_as_minutes(172) == "2.87"
    assert ui.fmt_seconds_as_clock(None) == ui.fmt_seconds_as_minutes(None) == "-"
