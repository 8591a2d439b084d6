"""Audit log: who did what and when; filters and a CSV of what is shown."""

import streamlit as st

from awaknow import audit, signin, ui

LIMIT = 1000

viewer = signin.require_page(__file__)
svc = ui.service()
st.title("Audit log")
st.caption(
    "Every sign-in, session start and end, transcript or recording viewed, CSV downloaded, "
    "plan, user or role change, forced persona verification and refused page. Rows are "
    "never changed or deleted. Times are UTC."
)

bounds = audit.date_bounds(svc.store)
if bounds is None:
    st.info("Nothing recorded yet.", icon=":material/inbox:")
    st.stop()

with st.container(border=True):
    c1, c2, c3, c4 = st.columns([2, 2, 2, 2])
    picked = c1.date_input(
        "Dates (UTC)",
        value=bounds,
        min_value=bounds[0],
        max_value=bounds[1],
        key="au_dates",
        format="YYYY-MM-DD",
    )
    start, end = (picked[0], picked[-1]) if isinstance(picked, tuple | list) and picked else bounds
    actors = c2.multiselect("Who", audit.actors(svc.store), key="au_actors", placeholder="Anyone")
    actions = c3.multiselect(
        "Action",
        list(audit.ACTIONS),
        format_func=lambda a: f"{a} ({audit.ACTIONS[a]})",
        key="au_actions",
        placeholder="Any action",
    )
    search = c4.text_input("Search target or details", key="au_search", max_chars=200)

rows = audit.rows(
    svc.store,
    start=start,
    end=end,
    actors=tuple(actors),
    actions=tuple(actions),
    search=search or None,
    limit=LIMIT,
)
if rows.empty:
    st.info("No rows match these filters.", icon=":material/filter_alt_off:")
    st.stop()
st.caption(f"{'the newest ' if len(rows) >= LIMIT else ''}{len(rows):,} row(s)")
ui.table(
    rows,
    f"audit_{start:%Y%m%d}_{end:%Y%m%d}",
    key="audit",
    column_config={
        "logged_at": st.column_config.DatetimeColumn("When (UTC)", format="YYYY-MM-DD HH:mm:ss"),
        "actor": "Who",
        "role": "Role",
        "action": "Action",
        "target": "Target",
        "details": "Details",
    },
)
