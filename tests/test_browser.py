"""The real app in Debian's chromium: every page renders, a mock call embeds, ends and is billed.

One server for the module: a seeded temporary database, ``streamlit run app.py`` on a free
loopback port with a clean environment (no key: mock mode), driven through Playwright's sync
API. Waits are on Streamlit's own connection and script-state attributes and on ``expect``;
there are no fixed sleeps. Screenshots go to ``artifacts/screenshots/`` (git-ignored).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.conftest import ROOT, clean_awaknow_env, free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
SERVER_START_TIMEOUT = 90.0
PAGE_TIMEOUT_MS = 30_000
READY = (
    "[data-testid=stApp][data-test-connection-state=CONNECTED][data-test-script-state=notRunning]"
)
ERRORS = "[data-testid=stException], [data-testid=stAlertContentError]"
STAFF = "staff_pro"

PAGES = [  # (url path, screenshot name, a heading the page must show)
    ("/", "start_session", "Start a session"),
    ("/sessions", "sessions", "Sessions"),
    ("/analytics", "analytics", "Usage analytics"),
    ("/costs", "costs", "Tavus costs"),
    ("/engagement", "engagement", "Engagement"),
    ("/feedback", "feedback", "Feedback"),
    ("/persona", "persona", "Persona and mode"),
    ("/plans", "plans", "Plans and users"),
]

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect


def _chromium_or_skip() -> str:
    if CHROMIUM.exists():
        return str(CHROMIUM)
    message = (
        f"{CHROMIUM} is missing: install Debian's chromium (scripts/ensure_chromium.sh); "
        "Playwright never downloads a browser here"
    )
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def _seed(db_path: Path, env: dict[str, str], log: Path) -> None:
    """Demo data BEFORE the server starts: DuckDB lets one process hold the file."""
    command = [
        sys.executable,
        "-m",
        "devtools.seed",
        "--db",
        str(db_path),
        "--users",
        "8",
        "--days",
        "14",
        "--sessions",
        "300",
    ]
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    log.write_text(done.stdout + done.stderr)
    assert done.returncode == 0, f"seed failed: {done.stderr.strip()[-500:]}"


def _wait_healthy(proc: subprocess.Popen, base_url: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"the app exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if client.get(f"{base_url}/_stcore/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)  # polling interval of the health probe, not a wait for content
    pytest.fail(f"the app did not become healthy in {SERVER_START_TIMEOUT:.0f} s")


@dataclass(frozen=True)
class Server:
    base_url: str
    log: Path
    detail_session_id: str | None  # a seeded session with events, transcript and recording


def _session_with_transcript(db_path: Path) -> str | None:
    """Read before the server opens the file (one process at a time)."""
    from awaknow.store import Store

    store = Store(db_path)
    try:
        row = (
            store.cursor()
            .execute(
                "SELECT s.session_id FROM sessions s JOIN transcripts t USING (conversation_id) "
                "ORDER BY s.created_at DESC LIMIT 1"
            )
            .fetchone()
        )
    finally:
        store.close()
    return row[0] if row else None


@pytest.fixture(scope="session")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The real server on a free loopback port, on a seeded temporary database."""
    folder = tmp_path_factory.mktemp("browser")
    db_path = folder / "awaknow.duckdb"
    env = clean_awaknow_env(db_path, PYTHONUNBUFFERED="1")
    _seed(db_path, env, folder / "seed.log")
    detail_session_id = _session_with_transcript(db_path)
    port = free_port()
    log = folder / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true",
             "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(proc, base_url, log)
        yield Server(base_url, log, detail_session_id)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(log, SCREENSHOTS.parent / "server.log")


@pytest.fixture
def page(browser: Browser, app_server: Server) -> Iterator[Page]:
    context = browser.new_context(
        base_url=app_server.base_url, viewport={"width": 1440, "height": 1000}
    )
    context.grant_permissions(["camera", "microphone"], origin=app_server.base_url)
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    expect.set_options(timeout=PAGE_TIMEOUT_MS)
    try:
        yield page
    finally:
        context.close()


def wait_ready(page: Page) -> None:
    """Connected to the server and no script run in progress."""
    page.locator(READY).wait_for(state="attached")


def open_page(page: Page, path: str, heading: str) -> None:
    page.goto(path)
    wait_ready(page)
    expect(page.get_by_role("heading", name=heading, exact=True).first).to_be_visible()
    wait_ready(page)


def assert_no_error_box(page: Page) -> None:
    boxes = page.locator(ERRORS)
    texts = boxes.all_inner_texts()
    assert boxes.count() == 0, f"error boxes on the page: {texts}"


def screenshot(page: Page, name: str) -> None:
    """The whole page: Streamlit scrolls inside its main block, so grow the viewport to it."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    viewport = page.viewport_size or {"width": 1440, "height": 1000}
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=stMain], "
        "[data-testid=stMainBlockContainer]')].map(e => e.scrollHeight), 0)"
    )
    page.set_viewport_size(
        {"width": viewport["width"], "height": max(viewport["height"], min(int(height) + 60, 8000))}
    )
    wait_ready(page)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    page.set_viewport_size(viewport)


def sidebar_mode(page: Page) -> None:
    sidebar = page.locator("[data-testid=stSidebar]")
    expect(sidebar.get_by_text(re.compile(r"\bMOCK\b")).first).to_be_visible()


def page_loaded(page: Page, name: str) -> None:
    """The content that shows a page finished drawing (widgets and charts load lazily)."""
    if name == "start_session":
        expect(page.get_by_role("button", name="Start session")).to_be_visible()
        expect(page.get_by_text("min used this month")).to_be_visible()
    elif name == "sessions":
        expect(page.locator("[data-testid=stDataFrame]").first).to_be_visible()
    elif name in ("analytics", "costs", "engagement", "feedback"):
        if name != "engagement":
            expect(page.locator("[data-testid=stMetric]").first).to_be_visible()
        charts = page.locator("[data-testid=stPlotlyChart]")
        expect(charts.first).to_be_visible()
        for index in range(charts.count()):
            expect(charts.nth(index).locator(".main-svg").first).to_be_attached()
    elif name == "persona":
        expect(page.get_by_text("p7e13c73f41f").first).to_be_visible()
        expect(page.get_by_text("r4317e64d25a").first).to_be_visible()
        expect(page.get_by_text("What applies here")).to_be_visible()
    elif name == "plans":
        expect(page.get_by_role("button", name="Add user")).to_be_visible()
        expect(page.locator("[data-testid=stDataFrame]").nth(1)).to_be_visible()
    wait_ready(page)


@pytest.mark.parametrize(("path", "name", "heading"), PAGES, ids=[p[1] for p in PAGES])
def test_page_renders_without_errors(page: Page, path: str, name: str, heading: str) -> None:
    open_page(page, path, heading)
    sidebar_mode(page)
    page_loaded(page, name)
    assert_no_error_box(page)
    screenshot(page, name)


def test_sidebar_navigation_keeps_the_mode_badge(page: Page) -> None:
    open_page(page, "/", "Start a session")
    for _path, name, heading in PAGES[1:]:
        page.locator("[data-testid=stSidebarNav]").get_by_role("link", name=heading).click()
        expect(page.get_by_role("heading", name=heading, exact=True).first).to_be_visible()
        wait_ready(page)
        sidebar_mode(page)
        page_loaded(page, name)
        assert_no_error_box(page)


def test_session_detail_shows_timeline_and_transcript(page: Page, app_server: Server) -> None:
    assert app_server.detail_session_id, "the demo data has no session with a transcript"
    open_page(page, "/sessions", "Sessions")
    page_loaded(page, "sessions")
    search = page.get_by_placeholder("user, conversation id or name, session id...")
    search.fill(app_server.detail_session_id)
    page.keyboard.press("Enter")
    # The rerun for the search has finished once the table says so.
    expect(page.get_by_text(re.compile(r"^1 session\(s\)"))).to_be_visible()
    wait_ready(page)
    page.get_by_role("combobox", name="Session", exact=True).click()
    page.keyboard.press("ArrowDown")  # opens the list (a click alone may only focus it)
    expect(page.get_by_role("option")).to_have_count(1)
    page.get_by_role("option").first.click()
    wait_ready(page)
    expect(page.get_by_role("tab", name="Timeline")).to_be_visible()
    expect(page.get_by_text("Session id:")).to_be_visible()
    expect(
        page.get_by_role("tabpanel", name="Timeline").locator("[data-testid=stDataFrame]")
    ).to_be_visible()
    page.get_by_role("tab", name="Transcript").click()
    expect(page.locator("[data-testid=stChatMessage]").first).to_be_visible()
    page.get_by_role("tab", name="Recording").click()
    expect(page.get_by_text("recording.mp4")).to_be_visible()
    assert_no_error_box(page)
    screenshot(page, "sessions_detail")


def _kpi(page: Page, label: str) -> str:
    metric = page.locator("[data-testid=stMetric]").filter(has_text=label).first
    return metric.locator("[data-testid=stMetricValue]").inner_text().strip()


def test_mock_session_embeds_ends_and_is_billed(page: Page) -> None:
    open_page(page, "/analytics", "Usage analytics")
    sessions_before = int(_kpi(page, "Sessions").replace(",", ""))

    open_page(page, f"/?user={STAFF}", "Start a session")
    expect(page.get_by_text("unlimited solo sessions · group sessions included")).to_be_visible()
    start = page.get_by_role("button", name="Start session")
    expect(start).to_be_enabled()
    start.click()

    frame = page.locator("iframe[data-testid=stIFrame]")
    expect(frame).to_be_visible()
    allow = frame.get_attribute("allow") or ""
    assert "camera" in allow and "microphone" in allow, allow
    src = frame.get_attribute("src") or ""
    match = re.fullmatch(r"/mock-room/(c[0-9a-f]{6,32})", src)
    assert match, f"iframe src is not the mock room: {src!r}"
    conversation_id = match.group(1)
    assert (
        int((frame.get_attribute("height") or "0").removesuffix("px") or 0) >= 400
        or frame.bounding_box()["height"] >= 400
    )
    room = page.frame_locator("iframe[data-testid=stIFrame]")
    expect(room.locator("#conversation-id")).to_have_text(conversation_id)
    expect(room.get_by_text("Mock conversation")).to_be_visible()
    expect(room.locator("#session-status")).to_have_text("active")
    expect(page.get_by_text(conversation_id).first).to_be_visible()
    expect(
        page.locator("[data-testid=stMain]").get_by_text(re.compile(r"\bMOCK\b")).first
    ).to_be_visible()
    wait_ready(page)
    assert_no_error_box(page)
    screenshot(page, "start_session_call")

    # A reload (or another tab) finds the running session in the database again.
    page.reload()
    wait_ready(page)
    expect(page.locator(f"iframe[src='/mock-room/{conversation_id}']")).to_be_visible()
    expect(page.get_by_role("button", name="Start session")).to_be_disabled()

    page.get_by_role("button", name="End session").click()
    expect(page.get_by_text("Session ended")).to_be_visible()
    expect(page.locator("[data-testid=stMetric]").filter(has_text="Minutes billed")).to_be_visible()
    expect(page.locator("iframe[data-testid=stIFrame]")).to_have_count(0)
    wait_ready(page)
    assert_no_error_box(page)
    screenshot(page, "start_session_ended")

    open_page(page, "/analytics", "Usage analytics")
    expect(
        page.locator("[data-testid=stMetric]")
        .filter(has_text="Sessions")
        .first.locator("[data-testid=stMetricValue]")
    ).to_have_text(f"{sessions_before + 1:,}")
    users = page.locator("[data-testid=stMultiSelect]").filter(has_text="User")
    users.locator("input").fill(STAFF)
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")  # close the option list
    wait_ready(page)
    expect(
        page.locator("[data-testid=stMetric]")
        .filter(has_text="Active users")
        .first.locator("[data-testid=stMetricValue]")
    ).to_have_text("1")
    expect(page.locator("[data-testid=stPlotlyChart]").first).to_be_visible()
    assert_no_error_box(page)
    screenshot(page, "analytics_staff")


def test_server_log_has_no_traceback(app_server: Server) -> None:
    """Errors the pages did not expect would be logged with a traceback by the server."""
    text = app_server.log.read_text()
    assert "Traceback" not in text, text[-3000:]
