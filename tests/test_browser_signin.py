"""Sign-in in Debian's chromium: the real app against a real OpenID provider.

``oidc-provider-mock`` runs on a free loopback port with the example people of
``devtools.signin_dev`` (the same ones ``scripts/run_signin.sh`` offers); the app runs with a
``secrets.toml`` whose ``[auth]`` points at it and with the same role configuration. Each test
signs one person in through the provider's own form and checks what they see and are refused
(navigation, pages by direct URL), then signs out through the provider.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from devtools import signin_dev
from tests.conftest import ROOT, clean_awaknow_env, free_port
from tests.test_browser import (
    PAGE_TIMEOUT_MS,
    _seed,
    _session_with_transcript,
    _wait_healthy,
    screenshot,
    wait_ready,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

ADMIN, STAFF, ANALYST, NOBODY = signin_dev.PEOPLE
ALL_PAGES = (
    "Start a session",
    "Sessions",
    "Usage analytics",
    "Tavus costs",
    "Persona and mode",
    "Plans and users",
    "People and roles",
    "Audit log",
)


@dataclass(frozen=True)
class SignInServer:
    base_url: str
    log: Path
    transcript_session_id: str


@pytest.fixture(scope="module")
def signin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignInServer]:
    folder = tmp_path_factory.mktemp("signin")
    db_path = folder / "awaknow.duckdb"
    env = clean_awaknow_env(db_path, PYTHONUNBUFFERED="1", **signin_dev.ROLE_ENV)
    _seed(db_path, env, folder / "seed.log")
    transcript_session_id = _session_with_transcript(db_path)
    assert transcript_session_id, "the demo data has no session with a transcript"
    app_port, provider_port = free_port(), free_port()
    secrets_file = signin_dev.write_secrets(folder, app_port=app_port, provider_port=provider_port)
    log = folder / "server.log"
    with signin_dev.running_provider(provider_port, folder / "provider.log"):
        with log.open("w") as out:
            proc = subprocess.Popen(
                signin_dev.app_command(app_port, secrets_file, "--server.headless", "true"),
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        base_url = f"http://127.0.0.1:{app_port}"
        try:
            _wait_healthy(proc, base_url, log)
            yield SignInServer(base_url, log, transcript_session_id)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)


@pytest.fixture
def page(browser: Browser, signin_server: SignInServer) -> Iterator[Page]:
    """A fresh browser profile: no identity cookie from an earlier test."""
    context = browser.new_context(
        base_url=signin_server.base_url,
        viewport={"width": 1440, "height": 1000},
        accept_downloads=True,
    )
    context.grant_permissions(["camera", "microphone"], origin=signin_server.base_url)
    opened = context.new_page()
    opened.set_default_timeout(PAGE_TIMEOUT_MS)
    expect.set_options(timeout=PAGE_TIMEOUT_MS)
    try:
        yield opened
    finally:
        context.close()


def sign_in(page: Page, person: signin_dev.Person) -> None:
    """Through the app's Sign in button and the provider's own authorization form."""
    page.goto("/")
    wait_ready(page)
    expect(page.get_by_role("heading", name="AwakNow", exact=True)).to_be_visible()
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Authorize Client")).to_be_visible()
    page.get_by_role("button", name=person.email, exact=True).click()
    page.locator("[data-testid=stApp]").wait_for(state="attached")  # back from the provider
    wait_ready(page)


def nav_links(page: Page) -> list[str]:
    nav = page.locator("[data-testid=stSidebarNav]")
    if nav.count() == 0:
        return []
    # Each link's text is its icon's name, then its title.
    return [text.strip().splitlines()[-1] for text in nav.get_by_role("link").all_inner_texts()]


def heading(page: Page, name: str):
    return page.get_by_role("heading", name=name, exact=True)


def open_by_url(page: Page, path: str) -> None:
    page.goto(path)
    wait_ready(page)


def pick_session(page: Page, session_id: str) -> None:
    search = page.get_by_placeholder("user, conversation id or name, session id...")
    search.fill(session_id)
    page.keyboard.press("Enter")
    expect(page.get_by_text(re.compile(r"^1 session\(s\)"))).to_be_visible()
    wait_ready(page)
    page.get_by_role("combobox", name="Session", exact=True).click()
    page.keyboard.press("ArrowDown")
    expect(page.get_by_role("option")).to_have_count(1)
    page.get_by_role("option").first.click()
    wait_ready(page)
    expect(page.get_by_role("tab", name="Timeline")).to_be_visible()


def confirm_provider_logout(page: Page) -> None:
    """The provider's own end-session page asks to confirm; then it sends the browser back."""
    page.wait_for_url(re.compile(r"/oauth2/end_session"))
    page.get_by_role("button", name="End session").click()


def sign_out(page: Page) -> None:
    """Sign out in the app; the provider asks to confirm its own logout, then the app is back
    at its sign-in screen with no identity."""
    open_by_url(page, "/")
    page.locator("[data-testid=stSidebar]").get_by_role("button", name="Sign out").click()
    confirm_provider_logout(page)
    page.locator("[data-testid=stApp]").wait_for(state="attached")  # back from the provider
    wait_ready(page)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    open_by_url(page, "/sessions")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(heading(page, "Sessions")).to_have_count(0)


def test_signed_out_visitor_sees_only_the_sign_in_button(page: Page) -> None:
    for path in ("/", "/sessions", "/analytics", "/plans", "/audit"):
        open_by_url(page, path)
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        assert nav_links(page) == []
        expect(page.locator("[data-testid=stDataFrame]")).to_have_count(0)
    screenshot(page, "signin_signed_out")


def test_person_without_a_role_sees_who_they_are_and_who_can_help(page: Page) -> None:
    sign_in(page, NOBODY)
    expect(heading(page, "No access yet")).to_be_visible()
    expect(page.get_by_text(NOBODY.email)).to_be_visible()
    expect(page.get_by_text(ADMIN.email)).to_be_visible()
    assert nav_links(page) == []
    for path in ("/sessions", "/analytics", "/audit"):
        open_by_url(page, path)
        expect(heading(page, "No access yet")).to_be_visible()
        expect(page.locator("[data-testid=stDataFrame]")).to_have_count(0)
    screenshot(page, "signin_no_role")
    open_by_url(page, "/")  # an unknown URL leaves Streamlit's page-not-found dialog open
    page.get_by_role("button", name="Sign out").click()
    confirm_provider_logout(page)
    page.locator("[data-testid=stApp]").wait_for(state="attached")  # back from the provider
    wait_ready(page)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_server_log_has_no_traceback_and_no_secret(signin_server: SignInServer) -> None:
    text = signin_server.log.read_text()
    assert "Traceback" not in text, text[-3000:]
    secrets_text = (signin_server.log.parent / "secrets.toml").read_text()
    cookie_secret = re.search(r'cookie_secret = "([^"]+)"', secrets_text).group(1)
    assert cookie_secret not in text
