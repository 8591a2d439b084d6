"""People and roles: who has which role, from configuration and from this page."""

import pandas as pd
import streamlit as st

from awaknow import access, signin, ui
from awaknow.access import GRANTABLE_ROLES, Permission

viewer = signin.require_page(__file__)
svc = ui.service()
st.title("People and roles")
st.caption(
    "The most specific grant wins: email, then group, then domain; at the same level a "
    "configured grant beats one made here. `none` shuts a person or group out of a broader "
    "grant. Changes apply on the person's next click and are written to the audit log."
)

grants = access.all_grants(svc.store, svc.settings)
ui.table(
    pd.DataFrame(
        [
            {
                "grant": g.label,
                "kind": g.kind,
                "role": g.role,
                "source": "configuration" if g.source == "config" else "this page",
                "granted_by": g.granted_by or "-",
            }
            for g in grants
        ],
        columns=["grant", "kind", "role", "source", "granted_by"],
    ),
    "role_grants",
    key="grants",
    column_config={
        "grant": "Email, @domain or group:",
        "kind": "Kind",
        "role": "Role",
        "source": "Source",
        "granted_by": "Granted by",
    },
)

GRANT_ERROR_KEY = "grant_error"


def _grant() -> None:
    state = st.session_state
    subject = str(state.get("grant_subject") or "")
    role = str(state.get("grant_role") or "")
    state[GRANT_ERROR_KEY] = ui.attempt(
        lambda: access.grant_role(
            svc.store, subject, role, signin.require(Permission.MANAGE_ROLES)
        ),
        success=f"{subject.strip()} now has the role {role}",
    )
    if state[GRANT_ERROR_KEY] is None:
        state["grant_subject"] = ""


grant_col, remove_col = st.columns(2, gap="large")
with grant_col, st.container(border=True):
    st.subheader(":material/person_add: Grant a role", anchor=False)
    with st.form("grant", border=False):
        st.text_input(
            "Email, @domain or group:name",
            key="grant_subject",
            max_chars=200,
            placeholder="e.g. maya@example.com, @example.com, group:awaknow-staff",
        )
        st.selectbox("Role", GRANTABLE_ROLES, key="grant_role")
        st.form_submit_button("Grant", type="primary", icon=":material/check:", on_click=_grant)
    grant_error = st.session_state.pop(GRANT_ERROR_KEY, None)
    if grant_error:
        st.error(grant_error, icon=":material/error:")

page_grants = [g.label for g in grants if g.source == "page"]
with remove_col, st.container(border=True):
    st.subheader(":material/person_remove: Remove a grant", anchor=False)
    if not page_grants:
        st.caption("No grants made on this page yet. Configured grants change in configuration.")
    else:
        to_remove = st.selectbox("Grant", page_grants, key="remove_grant")
        if st.button("Remove", icon=":material/delete:", key="remove_button") and ui.run_action(
            lambda: access.remove_grant(
                svc.store, to_remove, signin.require(Permission.MANAGE_ROLES)
            ),
            success=f"Removed the grant for {to_remove}",
        ):
            st.rerun()

with st.container(border=True):
    st.subheader(":material/manage_search: Check a person", anchor=False)
    c1, c2 = st.columns(2)
    email = c1.text_input("Email", key="check_email", max_chars=200)
    groups = c2.text_input("Groups (comma separated)", key="check_groups", max_chars=500)
    if email.strip():
        identity = access.Identity.from_claims(
            {"email": email, "groups": [g for g in groups.split(",") if g.strip()]}, "groups"
        )
        if identity is None:
            st.caption("Not an email address.")
        else:
            decided = access.deciding_grant(identity, grants)
            if decided is None or decided.role == access.NO_ACCESS:
                st.markdown(f"**{identity.email}**: no access")
            else:
                st.markdown(f"**{identity.email}**: role **{decided.role}**")
            if decided is not None:
                st.caption(f"Decided by `{decided.label}` ({decided.source})")
