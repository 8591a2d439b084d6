"""Usage analytics: who used how many Tavus minutes, on what, and how sessions ended."""

import streamlit as st

from awaknow import analytics, signin, ui
from awaknow.chart_registry import USAGE_CHARTS

viewer = signin.require_page(__file__)
svc = ui.service()
st.title("Usage analytics")

bounds = ui.query(analytics.date_bounds)
if bounds is None:
    ui.empty_state(
        "No sessions yet",
        "Charts appear once sessions have been billed. Start one on **Start a session**, or "
        "load demo data (with the app stopped):",
    )
    st.stop()

filters = ui.filter_bar("an", bounds)

kpis = ui.query(analytics.kpis, filters)
if not kpis.sessions:
    ui.empty_state(
        "No sessions match these filters",
        "Widen the date range or clear a filter.",
        hint=False,
    )
    st.stop()

success = kpis.success_rate
cols = st.columns(6)
cols[0].metric("Sessions", f"{kpis.sessions:,}")
cols[1].metric("Minutes", f"{kpis.minutes:,.2f}")
cols[2].metric("Active users", f"{kpis.active_users:,}")
cols[3].metric("Success rate", "-" if success is None else f"{success * 100:.1f} %")
cols[4].metric("Avg duration", ui.fmt_minutes_as_clock(kpis.avg_minutes))
cols[5].metric("p90 duration", ui.fmt_minutes_as_clock(kpis.p90_minutes))
st.caption(
    f"Billed minutes: {kpis.live_minutes:,.2f} live · {kpis.mock_minutes:,.2f} mock. "
    f"Sessions: {kpis.succeeded:,} succeeded · {kpis.failed:,} failed · "
    f"{kpis.in_progress:,} running. Durations are per billed session (min:s)."
)

months = ui.months_between(*bounds)
for row in range(0, len(USAGE_CHARTS), 2):
    for column, spec in zip(st.columns(2, gap="medium"), USAGE_CHARTS[row : row + 2], strict=False):
        with column:
            ui.chart_card(spec, filters, months)
