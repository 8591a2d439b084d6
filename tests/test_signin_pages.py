"""Sign-in mode through AppTest: what each role sees, is refused, and what the audit log holds.

``at.secrets`` carries an ``[auth]`` section (sign-in mode) and ``at.user`` the claims the
identity provider would have given; grants come from configuration (the environment) and from
the ``role_grants`` table. The browser suite does the same against the real provider.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from awaknow import access, audit
from awaknow.service import AwakNowService, shared_service
from devtools import seed
from tests.test_pages import APP, PAGES, TIMEOUT, no_failure, texts

AUTH = {
    "auth": {
        "redirect_uri": "http://127.0.0.1:9/oauth2callback",
        "cookie_secret": "test-cookie-secret-not-used-by-apptest",
        "client_id": "awaknow",
        "client_secret": "test-client-secret",
        "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
    }
}
ADMIN = "ada@awaknow.example"
STAFF = "sam@awaknow.example"
ANALYST = "ann@partner.example"
NOBODY = "nick@elsewhere.example"


@pytest.fixture
def signin_service(
    mock_mode_env: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AwakNowService]:
    """Roles from configuration (an admin by email, staff by group, analysts by domain) on a
    small seeded database; the grant environment is set before the service reads it."""
    monkeypatch.setenv("AWAKNOW_ADMINS", ADMIN)
    monkeypatch.setenv("AWAKNOW_STAFF", "group:front-desk")
    monkeypatch.setenv("AWAKNOW_ANALYSTS", "@partner.example")
    svc = shared_service()
    seed.seed_demo(svc.store, users=6, days=10, sessions=120)
    yield svc


def as_person(
    email: str | None, *, groups: tuple[str, ...] = (), page: str | None = None
) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.secrets.update(AUTH)
    if email is None:
        at.user = {"is_logged_in": False}
    else:
        at.user = {
            "is_logged_in": True,
            "email": email,
            "name": email.split("@")[0].title(),
            "groups": list(groups),
            "iat": 1_800_000_000,
        }
    at.run()
    if page is not None:
        at.switch_page(PAGES[page]).run()
    return at


def assert_refused(email: str | None, page: str, groups: tuple[str, ...] = ()) -> None:
    """The page is not in this person's navigation (a URL to it cannot select it), and the
    page file run on its own (as if routing were bypassed) refuses before drawing anything."""
    at = as_person(email, groups=groups)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(PAGES[page])
    alone = AppTest.from_file(str(Path(APP).parent / PAGES[page]), default_timeout=TIMEOUT)
    alone.secrets.update(AUTH)
    alone.user = dict(at.user)
    alone.run()
    assert not alone.exception
    assert [e.value for e in alone.error] == ["Your role does not give access to this page."]
    assert not alone.title and not alone.dataframe and not alone.button


def titles(at: AppTest) -> list[str]:
    return [t.value for t in at.title]


def log(svc: AwakNowService) -> pd.DataFrame:
    return audit.rows(svc.store).iloc[::-1].reset_index(drop=True)


def test_signed_out_sees_only_the_sign_in_screen(signin_service: AwakNowService) -> None:
    at = as_person(None)
    no_failure(at)
    assert titles(at) == ["AwakNow"]
    assert [b.label for b in at.button] == ["Sign in"]
    assert not at.sidebar.markdown and not at.dataframe
    for page in PAGES:
        assert_refused(None, page)
    assert log(signin_service).empty


def test_no_role_page_names_the_email_and_who_can_grant(signin_service: AwakNowService) -> None:
    at = as_person(NOBODY)
    no_failure(at)
    assert titles(at) == ["No access yet"]
    body = texts(at)
    assert NOBODY in body and ADMIN in body
    assert [b.label for b in at.button] == ["Sign out"]
    assert_refused(NOBODY, "sessions")
    rows = log(signin_service)
    assert list(rows["action"]) == ["sign_in", "access_denied"]  # the bypass is recorded
    assert list(rows["target"]) == [NOBODY, "page sessions.py"]
    assert set(rows["actor"]) == {NOBODY} and rows["role"].isna().all()


def test_analyst_sees_analytics_and_sessions_without_transcripts(
    signin_service: AwakNowService,
) -> None:
    at = as_person(ANALYST)
    no_failure(at)
    assert titles(at) == ["Sessions"]
    assert "role **analyst**" in texts(at)
    for page in ("start", "persona", "plans", "people", "audit"):
        assert_refused(ANALYST, page)
    at = as_person(ANALYST, page="analytics")
    no_failure(at)
    assert titles(at) == ["Usage analytics"]
    at = as_person(ANALYST, page="sessions")
    first = (
        signin_service.store.cursor()
        .execute(
            "SELECT s.session_id FROM sessions s JOIN transcripts t USING (conversation_id) "
            "ORDER BY s.created_at DESC LIMIT 1"
        )
        .fetchone()[0]
    )
    at.text_input(key="se_search").input(first).run()
    at.selectbox(key="se_pick_none").set_value(first).run()
    no_failure(at)
    assert [t.label for t in at.tabs] == ["Timeline"]
    assert "shown only to roles granted them" in texts(at)
    assert not at.chat_message
    assert "transcript_view" not in set(log(signin_service)["action"])


def test_staff_start_and_see_only_their_sessions(signin_service: AwakNowService) -> None:
    at = as_person(STAFF, groups=("Front-Desk",))
    no_failure(at)
    assert titles(at) == ["Start a session"]
    assert "role **staff**" in texts(at)
    at.selectbox(key="start_user").set_value("staff_pro").run()
    next(b for b in at.button if b.label == "Start session").click().run()
    no_failure(at)
    started = signin_service.active_session("staff_pro")
    assert started is not None and started.started_by == STAFF
    at.button(key="end_button").click().run()
    no_failure(at)

    at = as_person(STAFF, groups=("front-desk",), page="sessions")
    no_failure(at)
    assert list(at.dataframe[0].value["session_id"]) == [started.session_id]
    at.selectbox(key="se_pick_none").set_value(started.session_id).run()
    assert [t.label for t in at.tabs] == ["Timeline"]
    for page in ("analytics", "plans", "people", "audit"):
        assert_refused(STAFF, page, groups=("front-desk",))

    rows = log(signin_service)
    acted = rows[rows["action"].isin(["session_start", "session_end"])]
    assert list(acted["action"]) == ["session_start", "session_end"]
    assert set(acted["actor"]) == {STAFF} and set(acted["role"]) == {"staff"}
    assert set(acted["target"]) == {started.session_id}
    assert json.loads(acted["details"].iloc[0])["user"] == "staff_pro"
    # One sign-in row for this token, however many page runs and tabs.
    assert list(rows["action"]).count("sign_in") == 1


def test_admin_sees_everything_and_transcript_views_are_audited(
    signin_service: AwakNowService,
) -> None:
    at = as_person(ADMIN)
    no_failure(at)
    assert "role **admin**" in texts(at)
    assert any(b.label == "Sign out" for b in at.sidebar.button)
    for page, title in (
        ("sessions", "Sessions"),
        ("analytics", "Usage analytics"),
        ("persona", "Persona and mode"),
        ("plans", "Plans and users"),
    ):
        assert titles(as_person(ADMIN, page=page)) == [title]
    at = as_person(ADMIN, page="sessions")
    first = (
        signin_service.store.cursor()
        .execute(
            "SELECT s.session_id FROM sessions s JOIN transcripts t USING (conversation_id) "
            "ORDER BY s.created_at DESC LIMIT 1"
        )
        .fetchone()[0]
    )
    at.text_input(key="se_search").input(first).run()
    at.selectbox(key="se_pick_none").set_value(first).run()
    no_failure(at)
    assert len(at.tabs) == 4 and at.chat_message
    at.run()  # a rerun is not a second view
    views = log(signin_service).query("action == 'transcript_view'")
    assert list(views["target"]) == [first] and list(views["actor"]) == [ADMIN]


def test_page_grants_apply_on_the_next_run(signin_service: AwakNowService) -> None:
    admin = access.local_viewer(open_to_network=False)
    assert titles(as_person("li@elsewhere.example")) == ["No access yet"]
    access.grant_role(signin_service.store, "li@elsewhere.example", "analyst", admin)
    assert titles(as_person("li@elsewhere.example")) == ["Sessions"]
    # "none" for one person beats the domain grant of their company.
    access.grant_role(signin_service.store, ANALYST, "none", admin)
    assert titles(as_person(ANALYST)) == ["No access yet"]


def test_local_mode_notice_and_local_actor(mock_mode_env: Path) -> None:
    svc = shared_service()
    seed.seed_demo(svc.store, users=3, days=5, sessions=20)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    no_failure(at)
    assert access.LOCAL_NOTICE in texts(at)
    assert "actions recorded as `local`" in texts(at)
    at.switch_page(PAGES["persona"]).run()
    at.button(key="verify_now").click().run()
    rows = log(svc)
    assert list(rows["action"]) == ["persona_verify"]
    assert list(rows["actor"]) == ["local"]


def test_admin_grants_and_removes_roles_on_the_page_and_reads_the_audit_log(
    signin_service: AwakNowService,
) -> None:
    at = as_person(ADMIN, page="people")
    no_failure(at)
    assert "ada@awaknow.example" in texts(at) or len(at.dataframe) == 1
    at.text_input(key="grant_subject").input("group:Night-Shift")
    at.selectbox(key="grant_role").set_value("analyst")
    next(b for b in at.button if b.label == "Grant").click().run()
    no_failure(at)
    assert [(g.label, g.role) for g in access.page_grants(signin_service.store)] == [
        ("group:night-shift", "analyst")
    ]
    assert titles(as_person("kim@elsewhere.example", groups=("night-shift",))) == ["Sessions"]

    at.text_input(key="grant_subject").input("nobody")
    next(b for b in at.button if b.label == "Grant").click().run()
    assert [e.value for e in at.error] == [
        "'nobody' is not an email address (alice@example.com), a domain (@example.com) or a "
        "group (group:awaknow-admins)"
    ]
    at.text_input(key="check_email").input("kim@elsewhere.example")
    at.text_input(key="check_groups").input("night-shift").run()
    assert "role **analyst**" in texts(at)

    at.selectbox(key="remove_grant").set_value("group:night-shift")
    at.button(key="remove_button").click().run()
    no_failure(at)
    assert access.page_grants(signin_service.store) == []

    at = as_person(ADMIN, page="audit")
    no_failure(at)
    shown = at.dataframe[0].value
    assert {"role_grant", "role_remove", "sign_in"} <= set(shown["action"])
    at.multiselect(key="au_actions").set_value(["role_grant"]).run()
    assert list(at.dataframe[0].value["target"]) == ["group:night-shift"]
    assert list(at.dataframe[0].value["actor"]) == [ADMIN]
    assert len(at.get("download_button")) == 1
