"""Feedback: how conversations went, by persona, session type and week, and the worst ones."""

from typing import Any

import pandas as pd
import streamlit as st

from awaknow import analytics, signin, ui
from awaknow.access import Permission
from awaknow.chart_registry import FEEDBACK_CHARTS

SESSION_DETAIL_PATH = "/sessions"
LOWEST_RATED_COLUMNS: dict[str, Any] = {
    "session_id": None,
    "detail": st.column_config.LinkColumn("Session", display_text=r"session=(.{8})"),
    "day": st.column_config.DateColumn("Day (UTC)"),
    "user_id": "User",
    "persona_id": "Persona",
    "session_type": "Type",
    "minutes": st.column_config.NumberColumn("Minutes", format="%.2f"),
    "rating": st.column_config.NumberColumn("Rating", format="%d ★"),
    "note": "Note",
    "rated_by": "Rated by",
    "rated_at": None,
}


def session_links(session_ids: pd.Series) -> list[str]:
    """Links that open each session's detail on the Sessions page."""
    return [f"{SESSION_DETAIL_PATH}?session={session_id}" for session_id in session_ids]


viewer = signin.require_page(__file__)
svc = ui.service()
st.title("Feedback")

bounds = ui.query(analytics.date_bounds)
if bounds is None:
    ui.empty_state(
        "No sessions yet",
        "Ratings appear once sessions have ended and been rated. Start one on **Start a "
        "session**, or load demo data (with the app stopped):",
    )
    st.stop()

filters = ui.filter_bar("fb", bounds)
rated, average = ui.query(analytics.rating_summary, filters)
cols = st.columns(2)
cols[0].metric("Rated sessions", f"{rated:,}")
cols[1].metric("Average rating", "-" if average is None else f"{average:.2f} / 5")
st.caption(
    "One current rating (1 to 5) per session, given when it ends on **Start a session** or "
    "later from its detail on **Sessions**; dates are the days the sessions started."
)

with st.container(border=True):
    st.markdown("**Lowest-rated recent sessions**")
    lowest = ui.query(analytics.lowest_rated, filters)
    if not viewer.can(Permission.SEE_SENSITIVE):  # notes are as private as transcripts
        lowest = lowest.drop(columns=["note"])
    if lowest.empty:
        st.caption("No rated sessions for these filters.")
    else:
        ui.table(
            lowest.assign(detail=session_links(lowest["session_id"])),
            "lowest_rated",
            key="lowest_rated",
            column_config=LOWEST_RATED_COLUMNS,
        )

months = ui.months_between(*bounds)
for row in range(0, len(FEEDBACK_CHARTS), 2):
    pair = FEEDBACK_CHARTS[row : row + 2]
    for column, spec in zip(st.columns(2, gap="medium"), pair, strict=False):
        with column:
            ui.chart_card(spec, filters, months)
