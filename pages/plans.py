"""Plans and users: the plans' limits, adding a user, changing a plan, this month's usage."""

import pandas as pd
import streamlit as st

from awaknow import accounts, signin, ui
from awaknow.access import Permission

viewer = signin.require_page(__file__)
svc = ui.service()
st.title("Plans and users")
st.caption("Limits are per calendar month (UTC). A plan change keeps this month's minutes used.")

plans = accounts.list_plans(svc.store)
plan_ids = [p.plan_id for p in plans]
plan_names = {p.plan_id: p.name for p in plans}

st.subheader("Plans", anchor=False)
plans_frame = pd.DataFrame(
    [
        {
            "plan_id": p.plan_id,
            "name": p.name,
            "price_usd_per_month": p.price_usd,
            "tavus_minutes_per_month": p.minutes_per_month,
            "solo_sessions_per_day": (
                "unlimited" if p.solo_sessions_per_day is None else str(p.solo_sessions_per_day)
            ),
            "group_sessions": "yes" if p.group_sessions else "no",
        }
        for p in plans
    ]
)
ui.table(
    plans_frame,
    "plans",
    key="plans",
    column_config={
        "plan_id": "Plan id",
        "name": "Name",
        "price_usd_per_month": st.column_config.NumberColumn("Price / month", format="$%.2f"),
        "tavus_minutes_per_month": st.column_config.NumberColumn("Tavus minutes / month"),
        "solo_sessions_per_day": "Solo sessions / day",
        "group_sessions": "Resolve Together (group)",
    },
)


def _plan_label(plan_id: str) -> str:
    return f"{plan_names.get(plan_id, plan_id)} ({plan_id})"


ADD_ERROR_KEY = "add_user_error"


def _audited_add(user_id: str, plan_id: str, name: str | None) -> None:
    who = signin.require(Permission.MANAGE_ACCOUNTS)
    accounts.add_user(svc.store, user_id, plan_id, name)
    signin.audit_action(who, "user_add", user_id, plan=plan_id)


def _audited_set_plan(user_id: str, plan_id: str, previous: str | None) -> None:
    who = signin.require(Permission.MANAGE_ACCOUNTS)
    accounts.set_plan(svc.store, user_id, plan_id)
    signin.audit_action(who, "plan_change", user_id, plan=plan_id, previous=previous)


def _add_user() -> None:
    """Form callback: add, then clear the fields; on a refusal keep them and say why."""
    state = st.session_state
    user_id = str(state.get("add_user_id") or "").strip()
    plan_id = state.get("add_plan")
    name = str(state.get("add_user_name") or "").strip() or None
    error = ui.attempt(
        lambda: _audited_add(user_id, plan_id, name),
        success=f"Added {user_id} on {plan_names.get(plan_id, plan_id)}",
    )
    state[ADD_ERROR_KEY] = error
    if error is None:
        state["add_user_id"] = ""
        state["add_user_name"] = ""


add_col, change_col = st.columns(2, gap="large")
with add_col, st.container(border=True):
    st.subheader(":material/person_add: Add a user", anchor=False)
    with st.form("add_user", border=False):
        st.text_input(
            "User id",
            max_chars=64,
            placeholder="e.g. maya.lopez",
            help="1-64 letters, digits, '.', '_', '-' or '@'",
            key="add_user_id",
        )
        st.text_input("Display name (optional)", max_chars=120, key="add_user_name")
        st.selectbox("Plan", plan_ids, format_func=_plan_label, key="add_plan")
        st.form_submit_button("Add user", type="primary", icon=":material/add:", on_click=_add_user)
    add_error = st.session_state.pop(ADD_ERROR_KEY, None)
    if add_error:
        st.error(add_error, icon=":material/error:")

users = ui.users_frame()
with change_col, st.container(border=True):
    st.subheader(":material/swap_horiz: Change a user's plan", anchor=False)
    if users.empty:
        st.caption("No users yet.")
    else:
        current = dict(
            zip(
                users["user_id"].astype(str),
                users["plan_id"].fillna("no plan").astype(str),
                strict=True,
            )
        )
        who = st.selectbox(
            "User",
            list(current),
            key="change_user",
            format_func=lambda u: f"{u} · now {current.get(u, '?')}",
        )
        others = [p for p in plan_ids if p != current.get(who)] or plan_ids
        to_plan = st.selectbox("New plan", others, format_func=_plan_label, key="change_plan")
        if st.button("Change plan", icon=":material/check:", key="change_button") and (
            ui.run_action(
                lambda: _audited_set_plan(who, to_plan, current.get(who)),
                success=f"{who} is now on {plan_names.get(to_plan, to_plan)}",
            )
        ):
            st.rerun()

st.subheader(f"Usage this month ({ui.current_month():%B %Y})", anchor=False)
if users.empty:
    st.info(
        f"No users yet: add one above, or load demo data with `{ui.SEED_HINT}`.",
        icon=":material/group_off:",
    )
else:
    shown = users.copy()
    shown["minutes_left"] = (
        (shown["minutes_limit"].astype(float) - shown["minutes_used"].astype(float))
        .clip(lower=0)
        .round(2)
    )
    shown["used"] = shown["fraction_used"].astype(float).clip(0, 1)
    shown["band"] = shown["band"].fillna("no plan")
    columns = [
        "user_id",
        "display_name",
        "plan_name",
        "minutes_used",
        "minutes_limit",
        "minutes_left",
        "used",
        "band",
        "sessions",
    ]
    ui.table(
        shown[columns],
        f"users_{ui.current_month():%Y-%m}",
        key="users",
        colors={"band": ui.BAND_COLORS},
        column_config={
            "user_id": st.column_config.TextColumn("User", width="medium"),
            "display_name": st.column_config.TextColumn("Name", width="small"),
            "plan_name": st.column_config.TextColumn("Plan", width="small"),
            "minutes_used": st.column_config.NumberColumn("Used (min)", format="%.2f"),
            "minutes_limit": st.column_config.NumberColumn("Limit (min)"),
            "minutes_left": st.column_config.NumberColumn("Left (min)", format="%.2f"),
            "used": st.column_config.ProgressColumn(
                "Used", min_value=0.0, max_value=1.0, format="percent", width="small"
            ),
            "band": st.column_config.TextColumn(
                "Band", help="amber above 50 %, red above 80 %", width="small"
            ),
            "sessions": st.column_config.NumberColumn(
                "Sessions", help="billed this month", width="small"
            ),
        },
    )
    bands = users["band"].value_counts()
    low = int(users["running_low"].eq(True).sum())
    st.caption(
        f"{len(shown)} users · {int(bands.get('amber', 0))} above 50 % (amber) · "
        f"{int(bands.get('red', 0))} above 80 % (red) of their monthly minutes · "
        f"{low} running low (under {ui.RUNNING_LOW_MINUTES} minutes left)"
    )
