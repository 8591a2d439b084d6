"""Who may do what: the one place for roles, grants and permissions.

A person signs in with the company's OpenID provider (Streamlit's ``st.login``); this module
turns what the provider says about them (email, groups) into one role, and a role into
permissions. Roles come from two sources, both kept here:

- configuration (``AWAKNOW_ADMINS``, ``AWAKNOW_STAFF``, ``AWAKNOW_ANALYSTS``): the first admin
  must exist before anyone can use the admin page, and an operator can always fix access
  without the database;
- grants made by admins on the People and roles page (table ``role_grants``), each change
  written to the audit log in the same transaction.

A grant names an email address, a provider group or an email domain. The most specific match
wins: email, then group, then domain. At the same level configuration beats the page (the page
cannot lock out the configured admins), then the role with more rights (admin, staff, analyst).
The role ``none`` shuts one person or group out of a broader grant. No match means no access.

Without ``[auth]`` the app runs in local mode: one person at this machine, listening on the
loopback address only, with every right, audited as ``local``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from awaknow import audit
from awaknow.config import Settings
from awaknow.errors import AccessDeniedError, ConfigError, ValidationError
from awaknow.store import Store, utcnow

ROLES = ("admin", "staff", "analyst")
NO_ACCESS = "none"
GRANTABLE_ROLES = (*ROLES, NO_ACCESS)
SUBJECT_KINDS = ("email", "group", "domain")  # most specific first
SOURCES = ("config", "page")  # at the same level, configuration first
LOCAL_ACTOR = "local"
CONFIG_ROLE_VARIABLES = {
    "admin": "AWAKNOW_ADMINS",
    "staff": "AWAKNOW_STAFF",
    "analyst": "AWAKNOW_ANALYSTS",
}

_EMAIL = re.compile(r"^[^@\s,;]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_DOMAIN = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_GROUP = re.compile(r"^[^\s,;]{1,200}$")


class Permission(StrEnum):
    """What a page or an action needs. Roles hold sets of these (``ROLE_PERMISSIONS``)."""

    START_SESSIONS = "start and end sessions"
    SEE_OWN_SESSIONS = "see the sessions they started"
    SEE_ALL_SESSIONS = "see every session"
    SEE_ANALYTICS = "see usage analytics"
    SEE_SENSITIVE = "see transcripts, recordings and perception notes"
    SEE_SETUP = "see the persona and mode, and verify the persona"
    MANAGE_ACCOUNTS = "manage plans and users"
    MANAGE_ROLES = "manage people and roles"
    SEE_AUDIT = "read the audit log"


ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "admin": frozenset(Permission),
    "staff": frozenset(
        {Permission.START_SESSIONS, Permission.SEE_OWN_SESSIONS, Permission.SEE_SETUP}
    ),
    "analyst": frozenset(
        {Permission.SEE_ANALYTICS, Permission.SEE_ALL_SESSIONS, Permission.SEE_OWN_SESSIONS}
    ),
}

# Every page file and what it needs; a page missing here is refused to everyone but admins.
PAGE_PERMISSIONS: dict[str, Permission] = {
    "start_session.py": Permission.START_SESSIONS,
    "sessions.py": Permission.SEE_OWN_SESSIONS,
    "analytics.py": Permission.SEE_ANALYTICS,
    "costs.py": Permission.SEE_ANALYTICS,
    "engagement.py": Permission.SEE_ANALYTICS,
    "feedback.py": Permission.SEE_ANALYTICS,
    "persona.py": Permission.SEE_SETUP,
    "plans.py": Permission.MANAGE_ACCOUNTS,
    "people.py": Permission.MANAGE_ROLES,
    "audit.py": Permission.SEE_AUDIT,
}


@dataclass(frozen=True)
class Grant:
    """One rule: ``subject`` (an email, group or domain, lower-case) has ``role``."""

    kind: Literal["email", "group", "domain"]
    subject: str
    role: str
    source: Literal["config", "page"]
    granted_by: str | None = None

    @property
    def label(self) -> str:
        """How the rule is written in configuration: ``a@b.c``, ``group:x`` or ``@b.c``."""
        return {"email": "", "group": "group:", "domain": "@"}[self.kind] + self.subject


@dataclass(frozen=True)
class Identity:
    """What the identity provider says about a signed-in person."""

    email: str
    name: str | None = None
    groups: tuple[str, ...] = ()

    @property
    def domain(self) -> str:
        return self.email.rsplit("@", 1)[-1]

    @classmethod
    def from_claims(cls, claims: Mapping[str, object], groups_claim: str) -> Identity | None:
        """From ID-token claims (``st.user``); None without a usable email."""
        email = str(claims.get("email") or "").strip().lower()
        if not _EMAIL.match(email):
            return None
        raw_groups = claims.get(groups_claim)
        if isinstance(raw_groups, str):
            raw_groups = [raw_groups]
        groups = (
            tuple(sorted({str(g).strip().lower() for g in raw_groups if str(g).strip()}))
            if isinstance(raw_groups, list | tuple)
            else ()
        )
        name = claims.get("name")
        return cls(email=email, name=str(name) if name else None, groups=groups)


@dataclass(frozen=True)
class Viewer:
    """The person behind a page run: who (for the audit log), their role and rights.

    ``mode`` is ``signin`` (identity from the provider), ``local`` (no sign-in, loopback only)
    or ``open`` (no sign-in on another address: the documented override).
    """

    actor: str
    role: str | None
    mode: Literal["signin", "local", "open"]
    permissions: frozenset[Permission] = field(default_factory=frozenset)
    name: str | None = None
    decided_by: Grant | None = None

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def can_open(self, page_file: str) -> bool:
        """Whether this viewer may open ``pages/<page_file>`` (unknown pages: admins only)."""
        needed = PAGE_PERMISSIONS.get(page_file)
        return self.role == "admin" if needed is None else self.can(needed)


def permissions_of(role: str | None, sensitive_roles: Iterable[str]) -> frozenset[Permission]:
    """A role's rights; transcripts, recordings and notes only for ``sensitive_roles``."""
    if role not in ROLE_PERMISSIONS:
        return frozenset()
    rights = set(ROLE_PERMISSIONS[role]) - {Permission.SEE_SENSITIVE}
    if role in set(sensitive_roles):
        rights.add(Permission.SEE_SENSITIVE)
    return frozenset(rights)


# --- rules --------------------------------------------------------------------------------------


def parse_subject(text: str) -> tuple[Literal["email", "group", "domain"], str]:
    """``a@b.c`` -> email, ``@b.c`` -> domain, ``group:x`` -> group; lower-cased.

    Raises ValidationError with the accepted forms for anything else.
    """
    entry = text.strip()
    lowered = entry.lower()
    if lowered.startswith("group:") and _GROUP.match(lowered[6:].strip()):
        return "group", lowered[6:].strip()
    if lowered.startswith("@") and _DOMAIN.match(lowered[1:]):
        return "domain", lowered[1:]
    if _EMAIL.match(lowered):
        return "email", lowered
    raise ValidationError(
        f"{entry!r} is not an email address (alice@example.com), a domain (@example.com) "
        "or a group (group:awaknow-admins)"
    )


def config_grants(settings: Settings) -> list[Grant]:
    """The grants written in configuration (``AWAKNOW_ADMINS`` and friends)."""
    grants: list[Grant] = []
    for role, text in (
        ("admin", settings.admins.value),
        ("staff", settings.staff.value),
        ("analyst", settings.analysts.value),
    ):
        for entry in re.split(r"[\s,;]+", text or ""):
            if not entry:
                continue
            try:
                kind, subject = parse_subject(entry)
            except ValidationError as exc:
                raise ConfigError(f"{CONFIG_ROLE_VARIABLES[role]}: {exc}") from None
            grants.append(Grant(kind, subject, role, "config"))
    return grants


def check_settings(settings: Settings) -> None:
    """Raise ConfigError, naming the variable, for a role entry or role name that cannot work:
    before the database opens, so a typo never silently leaves someone without access."""
    config_grants(settings)
    parse_roles(settings.transcript_roles.value, "AWAKNOW_TRANSCRIPT_ROLES")


def parse_roles(text: str | None, variable: str) -> tuple[str, ...]:
    """A comma list of role names (``AWAKNOW_TRANSCRIPT_ROLES``); unknown names refused."""
    roles = tuple(r for r in re.split(r"[\s,;]+", (text or "").strip().lower()) if r)
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ConfigError(f"{variable}: unknown role {unknown[0]!r}; use {', '.join(ROLES)}")
    return roles


def _matches(grant: Grant, identity: Identity) -> bool:
    if grant.kind == "email":
        return grant.subject == identity.email
    if grant.kind == "group":
        return grant.subject in identity.groups
    return grant.subject == identity.domain


def _rank(grant: Grant) -> tuple[int, int, int]:
    return (
        SUBJECT_KINDS.index(grant.kind),
        SOURCES.index(grant.source),
        GRANTABLE_ROLES.index(grant.role),
    )


def deciding_grant(identity: Identity, grants: Iterable[Grant]) -> Grant | None:
    """The grant that decides this person's role: the most specific match (see module doc)."""
    matching = [grant for grant in grants if _matches(grant, identity)]
    return min(matching, key=_rank) if matching else None


def decide(identity: Identity, grants: Iterable[Grant], sensitive_roles: Sequence[str]) -> Viewer:
    """The viewer for a signed-in person: their role (None: no access) and its rights."""
    grant = deciding_grant(identity, grants)
    role = grant.role if grant is not None and grant.role in ROLES else None
    return Viewer(
        actor=identity.email,
        role=role,
        mode="signin",
        permissions=permissions_of(role, sensitive_roles),
        name=identity.name,
        decided_by=grant,
    )


def local_viewer(*, open_to_network: bool) -> Viewer:
    """The one person at this machine (or, with the override, anyone who can connect)."""
    return Viewer(
        actor=LOCAL_ACTOR,
        role="admin",
        mode="open" if open_to_network else "local",
        permissions=frozenset(Permission),
    )


# --- where the server listens -------------------------------------------------------------------

LOCAL_NOTICE = "Local mode: no sign-in, only this machine can connect."
OPEN_WARNING = (
    "No sign-in, and this server listens on {address}: anyone who can reach it can start "
    "calls and read transcripts. Configure [auth] in .streamlit/secrets.toml, or unset "
    "AWAKNOW_ALLOW_REMOTE_WITHOUT_SIGNIN and listen on 127.0.0.1."
)
REFUSAL = (
    "Refusing to listen on {address} without sign-in: configure [auth] in "
    ".streamlit/secrets.toml (see the README), listen on 127.0.0.1, or set "
    "AWAKNOW_ALLOW_REMOTE_WITHOUT_SIGNIN=1 to accept the risk."
)


def is_loopback(address: str | None) -> bool:
    """Whether ``address`` (Streamlit's ``server.address``) reaches this machine only.

    Unset means every interface, as does a host name other than ``localhost``.
    """
    text = (address or "").strip().strip("[]")
    if text.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def exposure(address: str | None, *, signin: bool, allow_open: bool) -> str | None:
    """None when the app may serve on ``address``; else the one-line refusal."""
    if signin or is_loopback(address) or allow_open:
        return None
    return REFUSAL.format(address=address or "every interface")


# --- grants made on the page --------------------------------------------------------------------


def page_grants(store: Store) -> list[Grant]:
    rows = (
        store.cursor()
        .execute(
            "SELECT subject_kind, subject, role, granted_by FROM role_grants ORDER BY "
            "CASE subject_kind WHEN 'email' THEN 0 WHEN 'group' THEN 1 ELSE 2 END, subject"
        )
        .fetchall()
    )
    return [Grant(kind, subject, role, "page", by) for kind, subject, role, by in rows]


def all_grants(store: Store, settings: Settings) -> list[Grant]:
    return [*config_grants(settings), *page_grants(store)]


def grant_role(store: Store, subject_text: str, role: str, by: Viewer) -> Grant:
    """Give ``role`` to an email, group or domain (replacing its page grant); audited."""
    _require_manager(by)
    kind, subject = parse_subject(subject_text)
    if role not in GRANTABLE_ROLES:
        raise ValidationError(f"Unknown role {role!r}: use {', '.join(GRANTABLE_ROLES)}")
    grant = Grant(kind, subject, role, "page", by.actor)
    with store.transaction() as cur:
        previous = cur.execute(
            "SELECT role FROM role_grants WHERE subject_kind = ? AND subject = ?", [kind, subject]
        ).fetchone()
        cur.execute(
            "DELETE FROM role_grants WHERE subject_kind = ? AND subject = ?", [kind, subject]
        )
        cur.execute(
            "INSERT INTO role_grants (subject_kind, subject, role, granted_by, granted_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [kind, subject, role, by.actor, utcnow()],
        )
        audit.record(
            cur,
            by.actor,
            by.role,
            "role_grant",
            grant.label,
            {"role": role, "previous": previous[0] if previous else None},
        )
    return grant


def remove_grant(store: Store, subject_text: str, by: Viewer) -> None:
    """Remove the page grant of an email, group or domain; audited. Config grants stay."""
    _require_manager(by)
    kind, subject = parse_subject(subject_text)
    with store.transaction() as cur:
        previous = cur.execute(
            "SELECT role FROM role_grants WHERE subject_kind = ? AND subject = ?", [kind, subject]
        ).fetchone()
        if previous is None:
            raise ValidationError(
                f"No grant for {subject_text.strip()!r} was made on this page "
                "(configured grants change in the configuration)"
            )
        cur.execute(
            "DELETE FROM role_grants WHERE subject_kind = ? AND subject = ?", [kind, subject]
        )
        audit.record(
            cur,
            by.actor,
            by.role,
            "role_remove",
            Grant(kind, subject, previous[0], "page").label,
            {"role": previous[0]},
        )


def _require_manager(viewer: Viewer) -> None:
    if not viewer.can(Permission.MANAGE_ROLES):
        raise AccessDeniedError(f"{viewer.actor} may not manage roles (admins only)")


def grantors(settings: Settings, store: Store) -> list[str]:
    """Who can grant access: the admins named by email, configured first."""
    emails = [
        g.subject for g in all_grants(store, settings) if g.role == "admin" and g.kind == "email"
    ]
    return list(dict.fromkeys(emails))
