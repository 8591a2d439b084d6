"""The pages through Streamlit's AppTest (app.py as the page script), and the mock room route.

Each test runs on its own temporary DuckDB file in mock mode (no key, no .env): the
process-wide service is keyed by settings, so every test gets, and afterwards closes, its own.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest
from starlette.applications import Starlette
from streamlit.testing.v1 import AppTest

from awaknow import feedback, sessions
from awaknow.logs import register_secret
from awaknow.mock_room import MOCK_ROOM_PATH
from awaknow.server import routes
from awaknow.service import AwakNowService, shared_service
from awaknow.store import utcnow
from devtools import seed
from devtools.fake_tavus import FakeTavus
from tests.conftest import ROOT, craft_session

APP = str(ROOT / "app.py")
TIMEOUT = 60
PAGES = {
    "start": "pages/start_session.py",
    "sessions": "pages/sessions.py",
    "analytics": "pages/analytics.py",
    "costs": "pages/costs.py",
    "engagement": "pages/engagement.py",
    "feedback": "pages/feedback.py",
    "persona": "pages/persona.py",
    "plans": "pages/plans.py",
    "people": "pages/people.py",
    "audit": "pages/audit.py",
}


@pytest.fixture
def seeded_mock_service(mock_mode_env: Path) -> AwakNowService:
    """The app's own service on a small seeded database (demo users and three staff users)."""
    svc = shared_service()
    seed.seed_demo(svc.store, users=6, days=10, sessions=120)
    return svc


@pytest.fixture
def empty_mock_service(mock_mode_env: Path) -> AwakNowService:
    return shared_service()


def app_on(page: str | None = None, **query: str) -> AppTest:
    """The app, run once on its default page, then switched to ``page`` when given."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(query)
    at.run()
    if page is not None:
        at.switch_page(PAGES[page]).run()
    return at


def texts(at: AppTest) -> str:
    """Every text-like element of the page, one per line, for loose assertions."""
    parts: list[str] = []
    for kind in (
        "title",
        "header",
        "subheader",
        "markdown",
        "caption",
        "info",
        "warning",
        "success",
        "error",
        "code",
        "text",
    ):
        parts.extend(str(getattr(e, "value", "")) for e in getattr(at, kind))
    return "\n".join(parts)


def no_failure(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def start_button(at: AppTest):
    return next(b for b in at.button if b.label == "Start session")


# --- every page ---------------------------------------------------------------------------


def test_default_page_and_sidebar_badge(seeded_mock_service: AwakNowService) -> None:
    at = app_on()
    no_failure(at)
    assert [t.value for t in at.title] == ["Start a session"]
    sidebar = [m.value for m in at.sidebar.markdown]
    assert any("MOCK" in value for value in sidebar), sidebar
    assert any("No Tavus API key" in c.value for c in at.sidebar.caption)


@pytest.mark.parametrize("page", list(PAGES))
def test_each_page_renders(seeded_mock_service: AwakNowService, page: str) -> None:
    at = app_on(page)
    no_failure(at)
    assert len(at.title) == 1


def test_persona_page_shows_ids_sources_and_troubleshooting(
    seeded_mock_service: AwakNowService,
) -> None:
    at = app_on("persona")
    no_failure(at)
    body = texts(at)
    assert "MOCK" in body
    assert "p7e13c73f41f" in body and "r4317e64d25a" in body
    assert "built-in default" in body
    assert "AwakNow Companion (mock)" in body
    assert "API key configured" in body and "Set TAVUS_API_KEY" in body
    assert "What applies here:** API key configured" in body
    assert "Live mode active" in body
    assert "Recordings are not configured" in body and "no recording is requested" in body
    assert "no 403" in body
    at.button(key="verify_now").click().run()
    no_failure(at)
    assert "MOCK" in texts(at)


def test_analytics_page_draws_charts_and_kpis(seeded_mock_service: AwakNowService) -> None:
    at = app_on("analytics")
    no_failure(at)
    assert len(at.get("plotly_chart")) >= 8
    labels = {m.label: m.value for m in at.metric}
    assert {
        "Sessions",
        "Minutes",
        "Active users",
        "Success rate",
        "Avg duration",
        "p90 duration",
    } <= labels.keys()
    assert int(labels["Sessions"].replace(",", "")) > 0
    assert len(at.get("download_button")) >= 8  # every table shown has its CSV

    at.multiselect(key="an_users").set_value(["staff_pro"]).run()
    no_failure(at)
    assert "No sessions match these filters" in texts(at)


def test_costs_page_draws_spend_breakdowns_and_margin(
    seeded_mock_service: AwakNowService,
) -> None:
    from awaknow.chart_registry import COST_CHARTS

    at = app_on("costs")
    no_failure(at)
    assert len(at.get("plotly_chart")) == len(COST_CHARTS)
    labels = {m.label: m.value for m in at.metric}
    assert labels["Budget used"] == "no budget"
    assert labels["Forecast to month end"].startswith("$")
    body = texts(at)
    assert "Forecast: the live minutes billed so far this month" in body
    assert "mock minutes" in body and "cost nothing" in body
    assert len(at.get("download_button")) >= len(COST_CHARTS)


@pytest.mark.parametrize(
    ("budget", "alert"),
    [("0.25", "Over budget: $"), ("0.35", "Budget nearly spent: $"), ("1000", None)],
    ids=["over", "nearly", "within"],
)
def test_costs_page_alerts_past_80_and_100_percent_of_the_budget(
    mock_mode_env: Path, monkeypatch: pytest.MonkeyPatch, budget: str, alert: str | None
) -> None:
    """One live minute this month at the example price ($0.30 a minute): $0.30 is 120 % of a
    $0.25 budget, 86 % of $0.35."""
    monkeypatch.setenv("AWAKNOW_TAVUS_MONTHLY_BUDGET", budget)
    svc = shared_service()
    started = utcnow() - timedelta(seconds=60)
    session_id, _, _ = craft_session(svc, mode="live", started_at=started)
    sessions.close_and_bill(
        svc.store, session_id, ended_at=started + timedelta(seconds=60), end_source="user"
    )
    at = app_on("costs")
    assert not at.exception
    shown = [e.value for e in (*at.error, *at.warning)]
    if alert is None:
        assert shown == []
    else:
        assert len(shown) == 1 and shown[0].startswith(alert), shown


def test_engagement_page_draws_every_chart(seeded_mock_service: AwakNowService) -> None:
    from awaknow.chart_registry import ENGAGEMENT_CHARTS

    at = app_on("engagement")
    no_failure(at)
    assert len(at.get("plotly_chart")) == len(ENGAGEMENT_CHARTS)
    assert "ended normally" in texts(at)
    at.segmented_control(key="en_funnel_by").set_value("session type").run()
    no_failure(at)
    assert len(at.get("plotly_chart")) == len(ENGAGEMENT_CHARTS)


def test_feedback_page_shows_ratings_and_links_the_lowest_rated(
    seeded_mock_service: AwakNowService,
) -> None:
    from awaknow.chart_registry import FEEDBACK_CHARTS

    at = app_on("feedback")
    no_failure(at)
    assert len(at.get("plotly_chart")) == len(FEEDBACK_CHARTS)
    labels = {m.label: m.value for m in at.metric}
    assert int(labels["Rated sessions"].replace(",", "")) > 0
    assert labels["Average rating"].endswith("/ 5")
    lowest = at.dataframe[0].value
    assert lowest["detail"].str.startswith("/sessions?session=").all()
    assert lowest["rating"].is_monotonic_increasing
    at.segmented_control(key="fb_by").set_value("week").run()
    no_failure(at)


def test_rate_a_session_when_it_ends_then_change_it_from_its_detail(
    seeded_mock_service: AwakNowService,
) -> None:
    svc = seeded_mock_service
    at = app_on(user="staff_pro")
    start_button(at).click().run()
    active = svc.active_session("staff_pro")
    assert active is not None
    at.button(key="end_button").click().run()
    no_failure(at)
    at.segmented_control(key="summary_rating").set_value(4).run()
    at.text_input(key="summary_note").input("Warm and calm").run()
    at.button(key="summary_save").click().run()
    no_failure(at)
    rating = feedback.session_rating(svc.store, active.session_id)
    assert rating is not None and (rating.rating, rating.note, rating.rated_by) == (
        4,
        "Warm and calm",
        "local",
    )

    # The detail, opened by the link the Feedback page gives it.
    detail = AppTest.from_file(str(ROOT / PAGES["sessions"]), default_timeout=TIMEOUT)
    detail.query_params["session"] = active.session_id
    detail.run()
    no_failure(detail)
    assert "Rated 4 of 5 by local" in texts(detail)
    detail.segmented_control(key="detail_rating").set_value(2).run()
    detail.text_input(key="detail_note").input("").run()
    detail.button(key="detail_save").click().run()
    no_failure(detail)
    rating = feedback.session_rating(svc.store, active.session_id)
    assert rating is not None and (rating.rating, rating.note) == (2, None)


def test_sessions_page_table_and_detail(seeded_mock_service: AwakNowService) -> None:
    at = app_on("sessions")
    no_failure(at)
    assert len(at.dataframe) >= 1
    first = (
        seeded_mock_service.store.cursor()
        .execute("SELECT session_id FROM sessions ORDER BY created_at DESC LIMIT 1")
        .fetchone()[0]
    )
    at.selectbox(key="se_pick_none").set_value(first).run()
    no_failure(at)
    assert len(at.tabs) == 4
    assert "Session id" in texts(at)


def test_plans_page_add_user_and_change_plan(seeded_mock_service: AwakNowService) -> None:
    def maya_plan() -> tuple | None:
        return (
            seeded_mock_service.store.cursor()
            .execute("SELECT plan_id FROM user_subscriptions WHERE user_id = 'maya.lopez'")
            .fetchone()
        )

    at = app_on("plans")
    no_failure(at)
    assert "awaknow_free" in texts(at) or len(at.dataframe) >= 2

    at.text_input(key="add_user_id").input("maya.lopez")
    at.selectbox(key="add_plan").set_value("awaknow_growth")
    next(b for b in at.button if b.label == "Add user").click().run()
    no_failure(at)
    assert maya_plan() == ("awaknow_growth",)

    at.text_input(key="add_user_id").input("no spaces please")
    next(b for b in at.button if b.label == "Add user").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "not valid" in at.error[0].value
    assert "\n" not in at.error[0].value

    at.selectbox(key="change_user").set_value("maya.lopez")
    at.selectbox(key="change_plan").set_value("awaknow_pro")
    at.button(key="change_button").click().run()
    no_failure(at)
    assert maya_plan() == ("awaknow_pro",)


# --- the start page's rules -----------------------------------------------------------------


def test_start_disabled_while_the_user_has_an_active_session(
    seeded_mock_service: AwakNowService,
) -> None:
    started = seeded_mock_service.start_session("staff_growth", "reflect_alone")
    at = app_on(user="staff_growth")
    no_failure(at)
    assert start_button(at).disabled
    assert any("already has an active session" in w.value for w in at.warning)
    # The running session is found from the database and shown again, call embedded.
    assert started.conversation_id in texts(at)
    assert len(at.get("iframe")) == 1


def test_start_disabled_when_the_monthly_minutes_are_used(
    seeded_mock_service: AwakNowService,
) -> None:
    svc = seeded_mock_service
    started = svc.start_session("staff_growth", "reflect_alone")
    sessions.close_and_bill(
        svc.store,
        started.session_id,
        ended_at=utcnow() + timedelta(minutes=101),
        end_source="user",
    )
    at = app_on(user="staff_growth")
    no_failure(at)
    assert start_button(at).disabled
    assert any("All 100 Tavus minutes of this month are used" in w.value for w in at.warning)
    assert "no minutes left" in texts(at)


def test_free_user_cannot_start_resolve_together(seeded_mock_service: AwakNowService) -> None:
    at = app_on(user="staff_free")
    no_failure(at)
    assert not start_button(at).disabled
    at.radio(key="start_type").set_value("resolve_together").run()
    no_failure(at)
    assert start_button(at).disabled
    assert any("not part of the awaknow_free plan" in w.value for w in at.warning)


def test_start_and_end_a_mock_session_through_the_widgets(
    seeded_mock_service: AwakNowService,
) -> None:
    svc = seeded_mock_service
    at = app_on(user="staff_pro")
    no_failure(at)
    at.text_area(key="start_context").input("Talking about a hard week.")
    start_button(at).click().run()
    no_failure(at)
    active = svc.active_session("staff_pro")
    assert active is not None and active.mode == "mock"
    assert active.context == "Talking about a hard week."
    assert re.fullmatch(r"/mock-room/c[0-9a-f]+", active.conversation_url)
    body = texts(at)
    assert active.conversation_id in body and active.conversation_name in body
    assert "Mock because: No Tavus API key" in body
    assert len(at.get("iframe")) == 1
    assert start_button(at).disabled

    at.button(key="end_button").click().run()
    no_failure(at)
    assert svc.active_session("staff_pro") is None
    labels = {m.label: m.value for m in at.metric}
    assert "Minutes billed" in labels and re.fullmatch(r"\d+\.\d\d", labels["Minutes billed"])
    billed = (
        svc.store.cursor()
        .execute("SELECT count(*) FROM tavus_usage WHERE session_id = ?", [active.session_id])
        .fetchone()[0]
    )
    assert billed == 1
    assert "Session ended" in texts(at)
    assert len(at.get("iframe")) == 0


# --- empty database -------------------------------------------------------------------------


def test_empty_database_has_clear_empty_states(empty_mock_service: AwakNowService) -> None:
    at = app_on()
    no_failure(at)
    assert "No users yet" in texts(at)

    for page in ("analytics", "costs", "engagement", "feedback", "sessions"):
        at.switch_page(PAGES[page]).run()
        no_failure(at)
        body = texts(at)
        assert "No sessions yet" in body
        assert "python -m devtools.seed" in body
        assert not at.get("plotly_chart")

    for page in ("persona", "plans"):
        at.switch_page(PAGES[page]).run()
        no_failure(at)


def test_bad_setting_is_one_line_not_a_traceback(
    mock_mode_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAVUS_PERSONA_ID", "not-a-persona")
    at = app_on()
    assert not at.exception
    assert len(at.error) == 1 and "TAVUS_PERSONA_ID" in at.error[0].value
    at.switch_page(PAGES["persona"]).run()
    assert not at.exception
    assert "TAVUS_PERSONA_ID" in at.error[0].value


# --- helpers and the mock room --------------------------------------------------------------


def test_error_text_is_one_line_and_masks_secrets() -> None:
    from awaknow import ui
    from awaknow.errors import TavusAuthError

    register_secret("sk-test-abcdef123456")
    exc = TavusAuthError("Tavus rejected key sk-test-abcdef123456: fix it\nTraceback: ...")
    assert ui.error_text(exc) == "Tavus rejected key ***: fix it"


def test_only_urls_reach_the_iframe() -> None:
    from awaknow import ui

    assert ui.embeddable_url("/mock-room/cabc1234") == "/mock-room/cabc1234"
    assert ui.embeddable_url("https://tavus.daily.co/c123") == "https://tavus.daily.co/c123"
    for bad in (
        "<script>alert(1)</script>",
        "javascript:alert(1)",
        "/mock-room/../x",
        "/other/cabc1234",
        "https://x.y/<b>",
        "",
        None,
    ):
        assert ui.embeddable_url(bad) is None, bad


def _get_room(conversation_id: str) -> httpx.Response:
    """GET the mock room through the app's real route table, in-process.

    In a thread of its own: the browser suite's Playwright (sync API) may hold this thread's
    event loop for the whole session.
    """

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=Starlette(routes=routes()))
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.get(f"{MOCK_ROOM_PATH}/{conversation_id}")

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, get()).result()


def test_mock_room_shows_the_conversation_and_its_session(
    seeded_mock_service: AwakNowService,
) -> None:
    started = seeded_mock_service.start_session("staff_pro", "reflect_alone")
    response = _get_room(started.conversation_id)
    body = response.text
    assert response.status_code == 200
    assert "Mock conversation" in body
    assert f'id="conversation-id">{started.conversation_id}<' in body
    assert 'id="session-status">active<' in body
    assert "p7e13c73f41f" in body and "r4317e64d25a" in body
    assert "getUserMedia" in body
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'self'" in csp and "default-src 'none'" in csp
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    assert f'<script nonce="{nonce}">' in body
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "http" not in re.sub(r"https?://(www\.)?w3\.org\S*", "", body).replace(
        "http-equiv", ""
    )  # no external asset


def test_mock_room_serves_only_rooms_of_existing_mock_sessions(
    empty_mock_service: AwakNowService,
) -> None:
    for bad in ("zzz", "c<script>", "C123456", "c12", "c" + "a" * 40):
        assert _get_room(bad).status_code == 404, bad
    response = _get_room("cdeadbeef")  # well formed, but no session of this app has it
    assert response.status_code == 404
    assert "No such mock conversation" in response.text
    _, live_id, _ = craft_session(empty_mock_service, mode="live")
    assert _get_room(live_id).status_code == 404  # a live call has no mock room


def test_the_page_closes_a_session_that_tavus_ended(seeded_mock_service: AwakNowService) -> None:
    from awaknow import ui

    svc = seeded_mock_service
    started = svc.start_session("staff_pro", "reflect_alone")
    at = app_on(user="staff_pro")
    no_failure(at)
    assert len(at.get("iframe")) == 1
    # The call ends on Tavus's side (here: the mock); the next status poll notices it.
    svc.backend_for("mock").end_conversation(started.conversation_id)
    ui.invalidate()  # skip the few seconds the shared status cache would otherwise hold
    at.run()
    no_failure(at)
    assert svc.active_session("staff_pro") is None
    assert svc.get_session(started.session_id).status == "completed"
    assert "Tavus reported the call ended" in texts(at)
    assert len(at.get("iframe")) == 0


# --- live mode against the local fake Tavus -------------------------------------------------

FAKE_KEY = "fake-tavus-key-0123456789"


@pytest.fixture
def fake_tavus() -> Iterator[FakeTavus]:
    with FakeTavus(api_key=FAKE_KEY, replica_join_delay=0.01) as server:
        yield server


def _live_env(monkeypatch: pytest.MonkeyPatch, fake: FakeTavus, key: str = FAKE_KEY) -> None:
    monkeypatch.setenv("TAVUS_API_KEY", key)
    monkeypatch.setenv("TAVUS_API_BASE_URL", fake.base_url)


def _all_text(at: AppTest) -> str:
    return (
        texts(at)
        + "\n"
        + "\n".join(
            str(e.value) for kind in ("markdown", "caption") for e in getattr(at.sidebar, kind)
        )
    )


def test_live_mode_persona_page(
    mock_mode_env: Path, monkeypatch: pytest.MonkeyPatch, fake_tavus: FakeTavus
) -> None:
    _live_env(monkeypatch, fake_tavus)
    at = app_on()
    no_failure(at)
    assert any("LIVE" in m.value for m in at.sidebar.markdown)
    at.switch_page(PAGES["persona"]).run()
    no_failure(at)
    body = _all_text(at)
    assert "Everything checks out" in body
    assert "env (TAVUS_API_KEY)" in body
    assert fake_tavus.base_url in body
    assert FAKE_KEY not in body and FAKE_KEY[:8] not in body


def test_live_mode_start_embeds_the_tavus_room(
    mock_mode_env: Path, monkeypatch: pytest.MonkeyPatch, fake_tavus: FakeTavus
) -> None:
    _live_env(monkeypatch, fake_tavus)
    svc = shared_service()
    seed.seed_demo(svc.store, users=3, days=3, sessions=10)
    at = app_on(user="staff_pro")
    start_button(at).click().run()
    no_failure(at)
    active = svc.active_session("staff_pro")
    assert active is not None and active.mode == "live"
    assert active.conversation_url.startswith("http")
    assert len(at.get("iframe")) == 1
    assert "Mock because" not in texts(at)
    at.button(key="end_button").click().run()
    no_failure(at)
    assert fake_tavus.conversations[active.conversation_id]["status"] == "ended"


@pytest.mark.parametrize(
    ("key", "persona", "problem"),
    [
        ("wrong-key-0123456789", None, "Tavus rejected the key (401)"),
        (FAKE_KEY, "p0000000000a", "Tavus does not know persona p0000000000a"),
    ],
    ids=["401", "404"],
)
def test_troubleshooting_names_the_cause(
    mock_mode_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake_tavus: FakeTavus,
    key: str,
    persona: str | None,
    problem: str,
) -> None:
    _live_env(monkeypatch, fake_tavus, key)
    if persona:
        monkeypatch.setenv("TAVUS_PERSONA_ID", persona)
    at = app_on("persona")
    no_failure(at)
    body = _all_text(at)
    assert problem in body
    assert "MOCK" in body and "Persona verification failed" in body
    assert "sessions fall back to the mock" in body
    assert key not in body


def test_strict_fallback_shows_the_tavus_error_in_one_line(
    mock_mode_env: Path, monkeypatch: pytest.MonkeyPatch, fake_tavus: FakeTavus
) -> None:
    _live_env(monkeypatch, fake_tavus, "wrong-key-0123456789")
    monkeypatch.setenv("AWAKNOW_FALLBACK", "strict")
    svc = shared_service()
    seed.seed_demo(svc.store, users=3, days=3, sessions=10)
    at = app_on(user="staff_pro")
    assert any("UNAVAILABLE" in m.value for m in at.sidebar.markdown)
    start_button(at).click().run()
    assert not at.exception
    assert len(at.error) == 1
    assert "\n" not in at.error[0].value and "wrong-key" not in at.error[0].value
    assert svc.active_session("staff_pro") is None
    assert not at.get("iframe")


def test_usage_bar_turns_amber_then_red_and_says_running_low() -> None:
    def script() -> None:
        from awaknow import ui

        for used in (10, 13, 21, 25):
            ui.usage_bar(used, 25)

    from awaknow import ui

    at = AppTest.from_function(script).run()
    assert not at.exception
    bars, lines = at.markdown[0::2], at.markdown[1::2]
    assert [ui.BAND_COLORS["ok"] in b.value for b in bars] == [True, False, False, False]
    assert [ui.BAND_COLORS["amber"] in b.value for b in bars] == [False, True, False, False]
    assert [ui.BAND_COLORS["red"] in b.value for b in bars] == [False, False, True, True]
    assert "running low" in lines[2].value and "4.00 min left" in lines[2].value
    assert "no minutes left" in lines[3].value
    assert "running low" not in lines[0].value


def test_chart_figures_are_rebuilt_only_when_their_data_changes() -> None:
    from awaknow import ui
    from awaknow.chart_registry import CHARTS

    spec = next(chart for chart in CHARTS if chart.name == "outcomes")
    frame = pd.DataFrame({"outcome": ["success", "failure"], "sessions": [7, 2]})
    same = frame.copy()
    changed = frame.assign(sessions=[7, 3])
    assert ui.data_version(frame) == ui.data_version(same) != ui.data_version(changed)
    assert ui.data_version(frame) != ui.data_version(frame.rename(columns={"sessions": "n"}))

    def build(data: pd.DataFrame) -> tuple[str, object]:
        return ui._titled_figure(spec.name, (), ui.data_version(data), spec, data)

    title, figure = build(frame)
    assert title == "Session outcomes" and not figure.layout.title.text
    assert build(same)[1] is figure  # same data: the cached figure, not a new one
    rebuilt = build(changed)[1]
    assert rebuilt is not figure and list(rebuilt.data[0].values) == [7, 3]


def test_user_picker_offers_the_users_found(seeded_mock_service: AwakNowService) -> None:
    at = app_on("analytics")
    at.text_input(key="an_user_search").input("staff").run()
    no_failure(at)
    offered = at.multiselect(key="an_users").options
    assert offered and all("staff" in user for user in offered)
    at.multiselect(key="an_users").set_value([offered[0]]).run()
    at.text_input(key="an_user_search").input("demo").run()
    no_failure(at)
    assert offered[0] in at.multiselect(key="an_users").options  # a pick stays offered
    assert at.multiselect(key="an_users").value == [offered[0]]


def test_query_refuses_functions_without_a_stable_name() -> None:
    from awaknow import ui

    with pytest.raises(TypeError, match="module-level function"):
        ui.query(lambda store: store)
