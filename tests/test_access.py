"""The role rules, the audit writer and where the server may listen (no Streamlit here)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest

from awaknow import access, audit
from awaknow.access import Grant, Identity, Permission
from awaknow.config import load_settings
from awaknow.errors import AccessDeniedError, ConfigError, ValidationError
from awaknow.store import Store, utcnow
from tests.conftest import ROOT


def settings(**env: str):
    return load_settings({"AWAKNOW_DB_PATH": ":memory:", **env}, env_file="")


@pytest.fixture
def store(tmp_path: Path):
    opened = Store(tmp_path / "access.duckdb")
    yield opened
    opened.close()


ADMIN = access.local_viewer(open_to_network=False)


def role_of(identity: Identity, grants: list[Grant]) -> str | None:
    return access.decide(identity, grants, ("admin",)).role


# --- role rules -----------------------------------------------------------------------------


def test_subjects_parse_as_email_domain_or_group() -> None:
    assert access.parse_subject(" Alice@Example.COM ") == ("email", "alice@example.com")
    assert access.parse_subject("@Example.com") == ("domain", "example.com")
    assert access.parse_subject("group:AwakNow-Admins") == ("group", "awaknow-admins")
    for bad in ("", "alice", "@", "group:", "a@b", "two words@example.com"):
        with pytest.raises(ValidationError, match="not an email address"):
            access.parse_subject(bad)


def test_configured_grants_and_a_bad_entry_is_a_config_error() -> None:
    grants = access.config_grants(
        settings(
            AWAKNOW_ADMINS="boss@example.com",
            AWAKNOW_STAFF="group:front-desk; @staff.example.com",
            AWAKNOW_ANALYSTS="ann@example.com",
        )
    )
    assert {(g.kind, g.subject, g.role) for g in grants} == {
        ("email", "boss@example.com", "admin"),
        ("group", "front-desk", "staff"),
        ("domain", "staff.example.com", "staff"),
        ("email", "ann@example.com", "analyst"),
    }
    with pytest.raises(ConfigError, match="AWAKNOW_STAFF: 'not-an-entry' is not an email"):
        access.check_settings(settings(AWAKNOW_STAFF="not-an-entry"))
    with pytest.raises(ConfigError, match="AWAKNOW_TRANSCRIPT_ROLES: unknown role 'owner'"):
        access.check_settings(settings(AWAKNOW_TRANSCRIPT_ROLES="admin,owner"))


def test_each_kind_of_grant_matches() -> None:
    person = Identity("maya@example.com", groups=("front-desk",))
    assert role_of(person, [Grant("email", "maya@example.com", "staff", "config")]) == "staff"
    assert role_of(person, [Grant("group", "front-desk", "analyst", "page")]) == "analyst"
    assert role_of(person, [Grant("domain", "example.com", "analyst", "page")]) == "analyst"
    # A domain is matched exactly: a look-alike or a parent domain is not the same company.
    assert role_of(person, [Grant("domain", "ample.com", "admin", "page")]) is None
    assert (
        role_of(Identity("x@sub.example.com"), [Grant("domain", "example.com", "admin", "config")])
        is None
    )


def test_the_most_specific_grant_wins() -> None:
    grants = [
        Grant("domain", "example.com", "admin", "config"),
        Grant("group", "analysts", "analyst", "page"),
        Grant("email", "maya@example.com", "staff", "page"),
    ]
    assert role_of(Identity("maya@example.com", groups=("analysts",)), grants) == "staff"
    assert role_of(Identity("li@example.com", groups=("analysts",)), grants) == "analyst"
    assert role_of(Identity("bo@example.com"), grants) == "admin"


def test_same_level_configuration_first_then_more_rights() -> None:
    person = Identity("maya@example.com", groups=("a", "b"))
    assert (
        role_of(
            person,
            [
                Grant("email", "maya@example.com", "analyst", "page"),
                Grant("email", "maya@example.com", "staff", "config"),
            ],
        )
        == "staff"
    )
    assert (
        role_of(
            person, [Grant("group", "a", "analyst", "page"), Grant("group", "b", "staff", "page")]
        )
        == "staff"
    )


def test_no_grant_or_role_none_means_no_access() -> None:
    grants = [
        Grant("domain", "example.com", "analyst", "config"),
        Grant("email", "gone@example.com", "none", "page"),
    ]
    nobody = access.decide(Identity("who@elsewhere.org"), grants, ("admin",))
    assert nobody.role is None and not nobody.permissions
    shut_out = access.decide(Identity("gone@example.com"), grants, ("admin",))
    assert shut_out.role is None and shut_out.decided_by == grants[1]
    assert not any(shut_out.can_open(page) for page in access.PAGE_PERMISSIONS)


def test_permissions_per_role_and_sensitive_roles() -> None:
    def rights(role: str, sensitive: tuple[str, ...] = ("admin",)) -> frozenset[Permission]:
        return access.decide(
            Identity("p@example.com"), [Grant("email", "p@example.com", role, "config")], sensitive
        ).permissions

    assert rights("admin") == frozenset(Permission)
    assert rights("staff") == {
        Permission.START_SESSIONS,
        Permission.SEE_OWN_SESSIONS,
        Permission.SEE_SETUP,
    }
    assert Permission.SEE_ANALYTICS in rights("analyst")
    assert Permission.START_SESSIONS not in rights("analyst")
    assert Permission.SEE_SENSITIVE not in rights("analyst")
    assert Permission.SEE_SENSITIVE in rights("analyst", ("admin", "analyst"))
    assert Permission.SEE_SENSITIVE not in rights("admin", ("analyst",))


def test_pages_by_role_and_unknown_pages_only_for_admins() -> None:
    def pages(role: str) -> set[str]:
        viewer = access.decide(
            Identity("p@example.com"), [Grant("email", "p@example.com", role, "config")], ()
        )
        return {page for page in [*access.PAGE_PERMISSIONS, "new_page.py"] if viewer.can_open(page)}

    assert pages("staff") == {"start_session.py", "sessions.py", "persona.py"}
    assert pages("analyst") == {
        "sessions.py",
        "analytics.py",
        "costs.py",
        "engagement.py",
        "feedback.py",
    }
    assert pages("admin") == {*access.PAGE_PERMISSIONS, "new_page.py"}


def test_identity_from_claims() -> None:
    person = Identity.from_claims(
        {"email": "Maya@Example.com", "name": "Maya", "roles": ["Front-Desk", " "]}, "roles"
    )
    assert person == Identity("maya@example.com", "Maya", ("front-desk",))
    assert Identity.from_claims({"email": "a@b.co", "groups": "solo"}, "groups").groups == ("solo",)
    assert Identity.from_claims({"name": "no email"}, "groups") is None
    assert Identity.from_claims({"email": "not-an-email"}, "groups") is None


# --- grants on the page, audited --------------------------------------------------------------


def test_grant_and_remove_write_audit_rows(store: Store) -> None:
    access.grant_role(store, "Maya@Example.com", "staff", ADMIN)
    access.grant_role(store, "maya@example.com", "analyst", ADMIN)
    access.grant_role(store, "group:night-shift", "none", ADMIN)
    grants = access.page_grants(store)
    assert [(g.label, g.role, g.granted_by) for g in grants] == [
        ("maya@example.com", "analyst", "local"),
        ("group:night-shift", "none", "local"),
    ]
    access.remove_grant(store, "maya@example.com", ADMIN)
    assert [g.label for g in access.page_grants(store)] == ["group:night-shift"]
    with pytest.raises(ValidationError, match="No grant"):
        access.remove_grant(store, "maya@example.com", ADMIN)
    log = audit.rows(store).iloc[::-1]
    assert list(log["action"]) == ["role_grant", "role_grant", "role_grant", "role_remove"]
    assert list(log["target"]) == [
        "maya@example.com",
        "maya@example.com",
        "group:night-shift",
        "maya@example.com",
    ]
    assert json.loads(log["details"].iloc[1]) == {"previous": "staff", "role": "analyst"}
    assert set(log["actor"]) == {"local"} and set(log["role"]) == {"admin"}


def test_only_admins_manage_roles_and_a_refusal_changes_nothing(store: Store) -> None:
    analyst = access.decide(
        Identity("ann@example.com"), [Grant("email", "ann@example.com", "analyst", "config")], ()
    )
    with pytest.raises(AccessDeniedError, match="may not manage roles"):
        access.grant_role(store, "ann@example.com", "admin", analyst)
    with pytest.raises(ValidationError, match="Unknown role"):
        access.grant_role(store, "ann@example.com", "owner", ADMIN)
    assert access.page_grants(store) == []
    assert audit.rows(store).empty


def test_grantors_are_the_admins_named_by_email(store: Store) -> None:
    configured = settings(AWAKNOW_ADMINS="boss@example.com, group:admins")
    access.grant_role(store, "second@example.com", "admin", ADMIN)
    access.grant_role(store, "staff@example.com", "staff", ADMIN)
    assert access.grantors(configured, store) == ["boss@example.com", "second@example.com"]


# --- the audit writer -------------------------------------------------------------------------


def test_audit_record_and_filters(store: Store) -> None:
    earlier = utcnow() - timedelta(days=3)
    audit.record(store, "a@example.com", "admin", "sign_in", "a@example.com", at=earlier)
    audit.record(store, "b@example.com", "staff", "session_start", "s-1", {"user": "maya"})
    audit.record(store, "local", "admin", "csv_export", "awaknow_plans.csv", {"rows": 3})
    everything = audit.rows(store)
    assert list(everything.columns) == list(audit.COLUMNS)
    assert list(everything["action"]) == ["csv_export", "session_start", "sign_in"]
    assert list(audit.rows(store, actors=("b@example.com",))["target"]) == ["s-1"]
    assert list(audit.rows(store, actions=("sign_in",))["actor"]) == ["a@example.com"]
    assert list(audit.rows(store, search="MAYA")["target"]) == ["s-1"]
    assert len(audit.rows(store, start=utcnow().date())) == 2
    assert len(audit.rows(store, end=earlier.date())) == 1
    assert len(audit.rows(store, limit=1)) == 1
    assert audit.actors(store) == ["a@example.com", "b@example.com", "local"]
    assert audit.date_bounds(store) == (earlier.date(), utcnow().date())


def test_audit_refuses_unknown_actions_and_masks_secrets(store: Store) -> None:
    from awaknow.logs import register_secret

    with pytest.raises(ValueError, match="unknown audit action"):
        audit.record(store, "local", "admin", "coffee_made")
    register_secret("sk-test-audit-secret-123")
    audit.record(
        store, "local", "admin", "persona_verify", None, {"note": "sk-test-audit-secret-123"}
    )
    assert "sk-test-audit-secret-123" not in audit.rows(store)["details"].iloc[0]


def test_sign_in_is_recorded_once_per_token(store: Store) -> None:
    assert not audit.signed_in_before(store, "a@example.com", 1700000000)
    audit.record(
        store, "a@example.com", "admin", "sign_in", "a@example.com", {"issued_at": 1700000000}
    )
    assert audit.signed_in_before(store, "a@example.com", 1700000000)
    assert not audit.signed_in_before(store, "a@example.com", 1700000500)
    assert not audit.signed_in_before(store, "b@example.com", 1700000000)
    assert not audit.signed_in_before(store, "a@example.com", None)


def test_the_app_never_updates_or_deletes_audit_rows() -> None:
    """Append-only by construction: no statement in the app or its pages changes the table."""
    pattern = re.compile(
        r"(UPDATE\s+audit_log|DELETE\s+FROM\s+audit_log|DROP\s+TABLE\s+audit_log)", re.I
    )
    sources = [*ROOT.glob("awaknow/**/*.py"), *ROOT.glob("pages/*.py"), ROOT / "app.py"]
    offenders = [str(p.relative_to(ROOT)) for p in sources if pattern.search(p.read_text())]
    assert offenders == []


# --- where the server may listen --------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        (None, False),
        ("", False),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
    ],
)
def test_loopback_addresses(address: str | None, loopback: bool) -> None:
    assert access.is_loopback(address) is loopback


def test_exposure_needs_sign_in_or_the_override() -> None:
    assert access.exposure("127.0.0.1", signin=False, allow_open=False) is None
    assert access.exposure("0.0.0.0", signin=True, allow_open=False) is None
    assert access.exposure("0.0.0.0", signin=False, allow_open=True) is None
    refusal = access.exposure(None, signin=False, allow_open=False)
    assert refusal is not None and "every interface" in refusal
    assert "AWAKNOW_ALLOW_REMOTE_WITHOUT_SIGNIN" in refusal
    assert settings(AWAKNOW_ALLOW_REMOTE_WITHOUT_SIGNIN="yes").open_without_signin
    assert not settings(AWAKNOW_ALLOW_REMOTE_WITHOUT_SIGNIN="later").open_without_signin
