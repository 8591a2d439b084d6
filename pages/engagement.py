"""Engagement: whether people come back, and whether they talk once they are in a call."""

import streamlit as st

from awaknow import analytics, signin, ui
from awaknow.chart_registry import ENGAGEMENT_CHARTS

viewer = signin.require_page(__file__)
svc = ui.service()
st.title("Engagement")

bounds = ui.query(analytics.date_bounds)
if bounds is None:
    ui.empty_state(
        "No sessions yet",
        "Engagement appears once people have had sessions. Start one on **Start a session**, "
        "or load demo data (with the app stopped):",
    )
    st.stop()

filters = ui.filter_bar("en", bounds)
st.caption(
    "Active users count anyone who started a session (any outcome) that day, week or month; "
    "a new user's first session ever falls in the period. The funnel follows each session: "
    "conversation created, replica joined, at least a minute of talk after the replica "
    "joined, ended normally (the End button or the participant leaving, not a failure or a "
    "timeout). Turns and word shares come from Tavus transcripts. Compare two personas or "
    "session types with the Compare control; narrow with Persona or Session type above."
)
months = ui.months_between(*bounds)
for row in range(0, len(ENGAGEMENT_CHARTS), 2):
    pair = ENGAGEMENT_CHARTS[row : row + 2]
    for column, spec in zip(st.columns(2, gap="medium"), pair, strict=False):
        with column:
            ui.chart_card(spec, filters, months)
