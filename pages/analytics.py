"""Usage analytics: who used how many Tavus minutes, on what, and how sessions ended."""

import streamlit as st

from awaknow import charts, ui

svc = ui.service()
st.title("Usage analytics")

bounds = ui.query("date_bounds")
if bounds is None:
    ui.empty_state(
        "No sessions yet",
        "Charts appear once sessions have been billed. Start one on **Start a session**, or "
        "load demo data (with the app stopped):",
    )
    st.stop()

filters = ui.filter_bar("an", bounds)

kpis = ui.query("kpis", filters)
if not kpis or not kpis.get("sessions"):
    ui.empty_state(
        "No sessions match these filters",
        "Widen the date range or clear a filter.",
        hint=False,
    )
    st.stop()

success = kpis.get("success_rate")
cols = st.columns(6)
cols[0].metric("Sessions", f"{kpis['sessions']:,}")
cols[1].metric("Minutes", f"{kpis['minutes']:,.2f}")
cols[2].metric("Active users", f"{kpis['active_users']:,}")
cols[3].metric("Success rate", "-" if success is None else f"{success * 100:.1f} %")
cols[4].metric("Avg duration", ui.fmt_minutes_as_clock(kpis.get("avg_minutes")))
cols[5].metric("p90 duration", ui.fmt_minutes_as_clock(kpis.get("p90_minutes")))
st.caption(
    f"Billed minutes: {kpis['live_minutes']:,.2f} live · {kpis['mock_minutes']:,.2f} mock. "
    f"Sessions: {kpis['completed']:,} succeeded · {kpis['failed']:,} failed · "
    f"{kpis['in_progress']:,} running. Durations are per billed session (min:s)."
)


def chart_card(name: str, load, draw, controls=None) -> None:
    """A bordered card: the chart's title beside its controls, the chart, and the table behind
    it with its CSV download. ``controls`` draws widgets and returns the extra arguments for
    ``load`` and ``draw``."""
    with st.container(border=True):
        head, ctrl = st.columns([3, 2], vertical_alignment="bottom")
        args: tuple = ()
        if controls is not None:
            with ctrl:
                args = controls()
        frame = load(*args)
        figure = draw(frame, *args)
        head.markdown(f"**{ui.take_title(figure)}**")
        if frame is None or frame.empty:
            st.caption("No data for these filters.")
            return
        ui.chart(figure, key=f"chart_{name}")
        with st.expander("Table", icon=":material/table:"):
            ui.table(frame, name.format(*args), key=name)


def _grain() -> tuple[str]:
    picked = st.segmented_control("Minutes per", ["day", "week"], default="day", key="an_grain")
    return (picked or "day",)


def _top_n() -> tuple[int]:
    return (
        st.slider(
            "Top users",
            min_value=5,
            max_value=50,
            value=10,
            step=5,
            key="an_top",
        ),
    )


def _month() -> tuple[str]:
    months = ui.months_between(*bounds)
    return (st.selectbox("Month", months, index=len(months) - 1, key="an_month", width=180),)


def plain(name: str):
    """Loader and drawer for a chart that needs only the filters."""
    return (lambda: ui.query(name, filters)), getattr(charts, name)


left, right = st.columns(2, gap="medium")
with left:
    chart_card(
        "minutes_over_time_{0}",
        lambda grain: ui.query("minutes_over_time", filters, grain),
        charts.minutes_over_time,
        _grain,
    )
with right:
    chart_card("sessions_per_day_by_type", *plain("sessions_per_day_by_type"))

left, right = st.columns(2, gap="medium")
with left:
    chart_card(
        "minutes_per_user",
        lambda n: ui.query("minutes_per_user", filters, n),
        lambda frame, n: charts.minutes_per_user(frame),
        _top_n,
    )
with right:
    chart_card("minutes_per_persona", *plain("minutes_per_persona"))

left, right = st.columns(2, gap="medium")
with left:
    chart_card("minutes_per_session_type", *plain("minutes_per_session_type"))
with right:
    chart_card(
        "usage_vs_limit_{0}",
        lambda month: ui.query("usage_vs_limit", month, filters, 20),
        lambda frame, month: charts.usage_vs_limit(frame),
        _month,
    )

left, right = st.columns(2, gap="medium")
with left:
    chart_card("outcomes", *plain("outcomes"))
with right:
    chart_card("shutdown_reasons", *plain("shutdown_reasons"))

left, right = st.columns(2, gap="medium")
with left:
    chart_card("duration_distribution", *plain("duration_distribution"))
with right:
    chart_card("failures", *plain("failures"))
