"""Who is here, on every page run: Streamlit glue for ``awaknow.access`` and ``audit``.

``app.py`` calls ``gate`` before routing (signed out, no role or an open server get one
screen, ``entry_screen``, and nothing else); every page starts with
``viewer = signin.require_page(__file__)``; every action calls ``signin.require(Permission.X)``
when it runs (a forced widget or a role removed meanwhile is refused) and
``signin.audit_action`` after it. The identity comes from Streamlit's ``st.user`` (the
provider's ID token, kept in a signed cookie), never from anything the browser sends otherwise.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from awaknow import access, audit, server
from awaknow.access import Permission, Viewer
from awaknow.errors import AccessDeniedError, AwakNowError
from awaknow.logs import get_logger
from awaknow.service import AwakNowService, shared_service

log = get_logger("signin")


AUDITED_KEY = "awaknow_audited"
SIGNED_IN_KEY = "awaknow_signed_in"


signin_configured = server.signin_configured
listen_address = server.listen_address


def service_or_none() -> AwakNowService | None:
    """The process's service, or None when it cannot open (the page then says why)."""
    try:
        return shared_service()
    except AwakNowError:
        return None


def exposure_refusal() -> str | None:
    """The one line that stops every page when the server is open without sign-in."""
    svc = service_or_none()
    allow_open = svc is not None and svc.settings.open_without_signin
    return access.exposure(listen_address(), signin=signin_configured(), allow_open=allow_open)


def viewer() -> Viewer | None:
    """The person behind this run, decided on the server every run; None when sign-in is
    configured and nobody is signed in. Roles changed on the People page apply at once."""
    if not signin_configured():
        return access.local_viewer(open_to_network=not access.is_loopback(listen_address()))
    if not st.user.is_logged_in:
        return None
    svc = service_or_none()
    claims = st.user.to_dict()
    groups_claim = svc.settings.groups_claim.value if svc is not None else "groups"
    identity = access.Identity.from_claims(claims, groups_claim or "groups")
    if identity is None or svc is None:  # no usable email, or no database to read grants
        email = str(claims.get("email") or "signed-in person without an email claim")
        return Viewer(actor=email, role=None, mode="signin")
    return access.decide(
        identity,
        access.all_grants(svc.store, svc.settings),
        access.parse_roles(svc.settings.transcript_roles.value, "AWAKNOW_TRANSCRIPT_ROLES"),
    )


def audit_action(who: Viewer, action: str, target: str | None = None, **details: object) -> None:
    """One audit row for what ``who`` just did; a failed write is logged, never shown."""
    svc = service_or_none()
    if svc is None:
        return
    try:
        audit.record(svc.store, who.actor, who.role, action, target, details)
    except Exception:
        log.exception("could not write the audit row for %s", action)


def audit_once(who: Viewer, action: str, target: str, **details: object) -> None:
    """``audit_action`` once per browser session and target (a rerun is not a new view)."""
    done = st.session_state.setdefault(AUDITED_KEY, set())
    if (action, target) not in done:
        audit_action(who, action, target, **details)
        done.add((action, target))


def _record_sign_in(who: Viewer) -> None:
    if who.mode != "signin" or st.session_state.get(SIGNED_IN_KEY) == who.actor:
        return
    st.session_state[SIGNED_IN_KEY] = who.actor
    issued = st.user.to_dict().get("iat")
    issued_at = int(issued) if isinstance(issued, int | float) else None
    svc = service_or_none()
    if svc is not None and not audit.signed_in_before(svc.store, who.actor, issued_at):
        audit_action(who, "sign_in", who.actor, issued_at=issued_at, role=who.role)


def gate() -> Viewer | None:
    """Decide who is here before any page runs: the viewer when they have a role, else None
    (the app then shows only ``entry_screen``). Records each new sign-in."""
    if exposure_refusal() is not None:
        return None
    who = viewer()
    if who is None:
        return None
    _record_sign_in(who)
    return who if who.role is not None else None


def entry_screen() -> None:
    """The only page for anyone ``gate`` turned away: why, and what to do."""
    refusal = exposure_refusal()
    if refusal is not None:
        st.error(refusal, icon=":material/lock:")
    elif viewer() is None:
        sign_in_screen()
    else:
        no_access_screen()


def sign_in_screen() -> None:
    """What a visitor sees before signing in: nothing of the app, one button."""
    st.title("AwakNow")
    st.write("Sign in with your company account to continue.")
    if st.button("Sign in", type="primary", icon=":material/login:", key="sign_in"):
        st.login()


def no_access_screen() -> None:
    """A signed-in person without a role: their email, who can help, and Sign out."""
    who = viewer()
    st.title("No access yet")
    email = who.actor if who is not None else "unknown"
    st.write(f"You are signed in as **{email}**, but no role has been given to this account.")
    svc = service_or_none()
    contact = svc.settings.access_contact.value if svc is not None else None
    admins = access.grantors(svc.settings, svc.store) if svc is not None else []
    if contact:
        st.write(f"Ask {contact} for access.")
    elif admins:
        st.write("An AwakNow admin can grant access: " + ", ".join(admins) + ".")
    else:
        st.write("An AwakNow admin can grant access on the People and roles page.")
    if who is not None and st.button("Sign out", icon=":material/logout:", key="sign_out"):
        sign_out(who)


def sign_out(who: Viewer) -> None:
    audit_action(who, "sign_out", who.actor)
    st.session_state.pop(SIGNED_IN_KEY, None)
    st.logout()


def access_notice(who: Viewer) -> None:
    """The slim local-mode line, or the warning of an open server, on every page."""
    if who.mode == "local":
        st.caption(f":material/lock: {access.LOCAL_NOTICE}")
    elif who.mode == "open":
        st.warning(
            access.OPEN_WARNING.format(address=listen_address() or "every interface"),
            icon=":material/warning:",
        )


def sidebar_identity(who: Viewer) -> None:
    """Who is signed in, their role and Sign out; or which mode runs without sign-in."""
    if who.mode == "signin":
        st.markdown(f":material/account_circle: **{who.name or who.actor}**")
        st.caption(f"{who.actor} · role **{who.role}**")
        if st.button("Sign out", icon=":material/logout:", key="sidebar_sign_out"):
            sign_out(who)
    else:
        st.caption(f"No sign-in ({who.mode} mode) · actions recorded as `{who.actor}`")


def require_page(page_file: str) -> Viewer:
    """The first line of every page: the viewer when they may open it (with the local-mode
    notice or the open-server warning above the page), else a refusal (and an audit row) and
    the page stops. A direct URL or a crafted request changes nothing."""
    who = viewer()
    name = Path(page_file).name
    if who is not None and who.role is not None and who.can_open(name):
        access_notice(who)
        return who
    if who is not None:
        audit_action(who, "access_denied", f"page {name}")
    st.error("Your role does not give access to this page.", icon=":material/block:")
    st.stop()
    raise AssertionError("unreachable: st.stop() ends the run")


def require(permission: Permission) -> Viewer:
    """Before an action (a button's effect, a download): the viewer if allowed, else the
    refusal is audited and raised as AccessDeniedError (shown as one line)."""
    who = viewer()
    if who is not None and who.can(permission):
        return who
    if who is not None:
        audit_action(who, "access_denied", str(permission))
    raise AccessDeniedError(f"Your role does not allow this: {permission}.")
