"""Session rules: one active session per user, plan limits, minutes, billing exactly once."""

import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from awaknow import ParallelSessionError, UsageLimitError, ValidationError, accounts, sessions
from awaknow.config import load_settings
from awaknow.errors import NotFoundError
from awaknow.service import AwakNowService, open_service
from awaknow.store import utcnow


@pytest.fixture
def service(tmp_path: Path) -> AwakNowService:
    svc = open_service(tmp_path / "s.duckdb", settings=load_settings(environ={}, env_file=""))
    accounts.add_user(svc.store, "ana", "awaknow_free", "Ana")
    accounts.add_user(svc.store, "bo", "awaknow_growth")
    accounts.add_user(svc.store, "cy", "awaknow_pro")
    yield svc
    svc.close()


def _usage_rows(svc: AwakNowService, session_id: str) -> int:
    return (
        svc.store.cursor()
        .execute("SELECT count(*) FROM tavus_usage WHERE session_id = ?", [session_id])
        .fetchone()[0]
    )


def _bill_past_session(
    svc: AwakNowService,
    user: str,
    start: datetime,
    seconds: int,
    session_type: str = "reflect_alone",
) -> str:
    """A finished session at a chosen time, through the real rules."""
    r = sessions.reserve(
        svc.store,
        user,
        session_type,
        mode="mock",
        mode_reason="test",
        persona_id="p7e13c73f41f",
        replica_id="r4317e64d25a",
        context=None,
        now=start,
    )
    sessions.mark_active(
        svc.store,
        r.session_id,
        conversation={"conversation_id": "c" + "0" * 16},
        mode="mock",
        mode_reason="test",
        started_at=start,
    )
    sessions.close_and_bill(
        svc.store, r.session_id, ended_at=start + timedelta(seconds=seconds), end_source="user"
    )
    return r.session_id


def test_mock_session_start_and_end_bill_once(service: AwakNowService) -> None:
    started = service.start_session("cy", "resolve_together", "We argue about chores")
    assert started.mode == "mock"
    assert started.conversation_name == f"awaknow_resolve_together_{started.session_id}"
    assert started.conversation_url == f"/mock-room/{started.conversation_id}"
    assert service.active_session("cy").session_id == started.session_id
    first = service.end_session(started.session_id)
    again = service.end_session(started.session_id)
    assert first.newly_billed and not again.newly_billed
    assert first.seconds_used == again.seconds_used
    assert _usage_rows(service, started.session_id) == 1
    assert service.active_session("cy") is None
    row = service.get_session(started.session_id)
    assert row.status == "completed" and row.ended_at >= row.started_at
    assert row.context == "We argue about chores"


def test_minutes_are_seconds_over_sixty_kept_to_the_second(service: AwakNowService) -> None:
    start = utcnow().replace(microsecond=0) - timedelta(minutes=30)
    sid = _bill_past_session(service, "cy", start, 157)
    usage = (
        service.store.cursor()
        .execute("SELECT seconds_used, minutes_used FROM tavus_usage WHERE session_id = ?", [sid])
        .fetchone()
    )
    assert usage == (157, pytest.approx(157 / 60))
    assert sessions.billed_seconds(start, start + timedelta(seconds=59, milliseconds=1)) == 60
    assert sessions.billed_seconds(start, start + timedelta(seconds=59)) == 59
    assert sessions.billed_seconds(start, start - timedelta(seconds=5)) == 0


def test_one_active_session_per_user(service: AwakNowService) -> None:
    service.start_session("cy", "reflect_alone")
    with pytest.raises(ParallelSessionError, match="already has an active session"):
        service.start_session("cy", "reflect_alone")
    assert service.start_blocker("cy", "reflect_alone").startswith("cy already has an active")


def test_eight_simultaneous_starts_one_wins(service: AwakNowService) -> None:
    barrier = threading.Barrier(8)
    results: list[object] = []
    lock = threading.Lock()

    def attempt() -> None:
        barrier.wait()
        try:
            outcome: object = service.start_session("cy", "reflect_alone")
        except ParallelSessionError as exc:
            outcome = exc
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if not isinstance(r, Exception)]
    assert len(results) == 8 and len(winners) == 1
    count = (
        service.store.cursor()
        .execute("SELECT count(*) FROM sessions WHERE user_id = 'cy'")
        .fetchone()[0]
    )
    assert count == 1


def test_group_sessions_only_on_plans_that_allow_them(service: AwakNowService) -> None:
    for user in ("ana", "bo"):
        with pytest.raises(UsageLimitError, match="Resolve Together"):
            service.start_session(user, "resolve_together")
        assert "Resolve Together" in service.start_blocker(user, "resolve_together")
    assert service.start_blocker("cy", "resolve_together") is None
    count = service.store.cursor().execute("SELECT count(*) FROM sessions").fetchone()[0]
    assert count == 0, "a refused start writes nothing"


def test_free_plan_allows_one_solo_session_a_day(service: AwakNowService) -> None:
    first = service.start_session("ana", "reflect_alone")
    service.end_session(first.session_id)
    with pytest.raises(UsageLimitError, match="1 solo session"):
        service.start_session("ana", "reflect_alone")
    service.start_session("bo", "reflect_alone")  # growth: unlimited per day


def test_failed_start_does_not_count_against_the_daily_limit(service: AwakNowService) -> None:
    r = sessions.reserve(
        service.store,
        "ana",
        "reflect_alone",
        mode="live",
        mode_reason="",
        persona_id="p7e13c73f41f",
        replica_id="r4317e64d25a",
        context=None,
    )
    sessions.mark_failed(
        service.store, r.session_id, error_kind="TavusServerError", error_message="boom"
    )
    assert service.start_blocker("ana", "reflect_alone") is None


def test_monthly_minutes_cap_the_call_and_then_refuse(service: AwakNowService) -> None:
    now = utcnow().replace(microsecond=0)
    month_start = now.replace(day=1, hour=0, minute=0, second=0)
    # growth allows 100 minutes a month; 98 min 1 s of them are used by a session this month
    start = max(month_start, now - timedelta(hours=1))
    _bill_past_session(service, "bo", start, 98 * 60 + 1)
    r = sessions.reserve(
        service.store,
        "bo",
        "reflect_alone",
        mode="mock",
        mode_reason="",
        persona_id="p7e13c73f41f",
        replica_id="r4317e64d25a",
        context=None,
    )
    assert r.max_call_duration == 2 * 60 - 1, "the smaller of 300 s and the seconds left"
    sessions.close_and_bill(
        service.store, r.session_id, ended_at=utcnow() + timedelta(seconds=200), end_source="user"
    )
    with pytest.raises(UsageLimitError, match="All 100 Tavus minutes"):
        service.start_session("bo", "reflect_alone")


def test_last_month_usage_does_not_count_this_month(service: AwakNowService) -> None:
    now = utcnow()
    last_month = (now.replace(day=1) - timedelta(days=1)).replace(
        hour=12, minute=0, second=0, microsecond=0
    )
    _bill_past_session(service, "bo", last_month, 100 * 60)
    assert service.allowance("bo").seconds_used == 0
    assert service.start_blocker("bo", "reflect_alone") is None


def test_tavus_clock_corrects_an_app_clock_bill_once(service: AwakNowService) -> None:
    start = utcnow().replace(microsecond=0) - timedelta(minutes=10)
    sid = _bill_past_session(service, "cy", start, 100)
    bill = sessions.close_and_bill(
        service.store,
        sid,
        ended_at=start + timedelta(seconds=90),
        end_source="tavus",
        shutdown_reason="x",
        tavus_clock=True,
    )
    assert (bill.seconds_used, bill.clock, bill.newly_billed) == (90, "tavus", False)
    later = sessions.close_and_bill(
        service.store, sid, ended_at=start + timedelta(seconds=400), end_source="user"
    )
    assert later.seconds_used == 90
    again = sessions.close_and_bill(
        service.store,
        sid,
        ended_at=start + timedelta(seconds=95),
        end_source="tavus",
        tavus_clock=True,
    )
    assert again.seconds_used == 90
    assert _usage_rows(service, sid) == 1


def test_unknown_user_type_and_session(service: AwakNowService) -> None:
    with pytest.raises(NotFoundError, match="users add"):
        service.start_session("nobody", "reflect_alone")
    with pytest.raises(ValidationError, match="reflect_alone or resolve_together"):
        service.start_session("cy", "group_therapy")
    with pytest.raises(ValidationError):
        service.start_session("bad id; drop", "reflect_alone")
    with pytest.raises(NotFoundError):
        service.end_session("no-such-session")
    with pytest.raises(ValidationError, match="Context"):
        service.start_session("cy", "reflect_alone", "x" * 5000)


def test_reaper_ends_stale_sessions_at_their_maximum(service: AwakNowService) -> None:
    started = service.start_session("cy", "reflect_alone")
    row = service.get_session(started.session_id)
    due = row.started_at + timedelta(seconds=row.max_call_duration)
    assert service.reap(now=due + timedelta(seconds=10)) == []  # inside the grace period
    ended = service.reap(now=due + timedelta(seconds=sessions.REAPER_GRACE_SECONDS + 1))
    assert [e.session_id for e in ended] == [started.session_id]
    assert ended[0].seconds_used == row.max_call_duration
    assert service.get_session(started.session_id).end_source == "reaper"
    assert service.reap(now=due + timedelta(hours=1)) == []


def test_plan_change_keeps_usage_and_changes_limits(service: AwakNowService) -> None:
    accounts.set_plan(service.store, "ana", "awaknow_pro")
    assert service.allowance("ana").minutes_limit == 15000
    assert service.start_blocker("ana", "resolve_together") is None
    with pytest.raises(NotFoundError, match="Unknown plan"):
        accounts.set_plan(service.store, "ana", "gold")
    with pytest.raises(ValidationError, match="already exists"):
        accounts.add_user(service.store, "ana", "awaknow_free")
