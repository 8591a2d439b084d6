"""Plotly figures for the analytics page: one function per chart, named after its query.

Each takes the frame the ``awaknow.analytics`` function of the same name returns and gives a
``plotly.graph_objects.Figure``; ``awaknow.chart_registry`` pairs them and pages pass the
figure to ``st.plotly_chart``. The same things keep the same colour on every chart (live,
mock, session types, outcomes, usage bands: ``awaknow.palette``), and an empty frame gives a
figure that says so instead of an exception or a blank axis.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from awaknow.analytics import AMBER_ABOVE, BANDS, DEFAULT_BIN_MINUTES, RED_ABOVE
from awaknow.palette import COLORS, NEUTRAL

TEMPLATE = "plotly_white"
NO_DATA = "No data for these filters"
MODE_ORDER = ["live", "mock"]
OUTCOME_ORDER = ["success", "failure"]
MINUTES = "Billed minutes"
SESSIONS = "Sessions"


def _styled(fig: go.Figure, title: str, x_title: str, y_title: str) -> go.Figure:
    """The look every chart shares: template, title, axis titles, legend above the plot."""
    fig.update_layout(
        template=TEMPLATE,
        title={"text": title},
        xaxis_title=x_title,
        yaxis_title=y_title,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0, "title": None},
        margin={"l": 10, "r": 10, "t": 70, "b": 10},
    )
    return fig


def _empty(title: str, x_title: str = "", y_title: str = "") -> go.Figure:
    """An empty chart with the reason in the middle: pages need not special-case it."""
    fig = go.Figure()
    fig.add_annotation(
        text=NO_DATA,
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        showarrow=False,
        font={"size": 16, "color": NEUTRAL},
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _styled(fig, title, x_title, y_title)


def _orders(frame: pd.DataFrame, column: str, preferred: list[str]) -> list[str]:
    """Known values in their usual order, then any others as they come."""
    present = [str(v) for v in frame[column].dropna().unique()]
    return [v for v in preferred if v in present] + [v for v in present if v not in preferred]


def _top_down(fig: go.Figure, rows: pd.Series) -> None:
    """Horizontal bars in the frame's order, its first row at the top."""
    fig.update_yaxes(categoryorder="array", categoryarray=list(rows), autorange="reversed")


def _minutes_by(
    frame: pd.DataFrame, column: str, title: str, axis: str, *, categories: bool = True
) -> go.Figure:
    """Billed minutes per value of ``column``, live and mock stacked; ``categories`` keeps
    the x axis categorical (ids, types) instead of letting plotly read it as dates or numbers."""
    if frame.empty:
        return _empty(title, axis, MINUTES)
    fig = px.bar(
        frame,
        x=column,
        y="minutes",
        color="mode",
        color_discrete_map=COLORS,
        category_orders={"mode": _orders(frame, "mode", MODE_ORDER)},
        hover_data={"sessions": True, "minutes": ":.2f"},
    )
    fig.update_layout(barmode="stack")
    if categories:
        fig.update_xaxes(type="category")
    return _styled(fig, title, axis, MINUTES)


def minutes_over_time(frame: pd.DataFrame, grain: str = "day") -> go.Figure:
    """Billed minutes per day or week, live and mock stacked (``analytics.minutes_over_time``)."""
    x_title = "Week starting (UTC)" if grain == "week" else "Day (UTC)"
    return _minutes_by(frame, "period", f"Billed minutes per {grain}", x_title, categories=False)


def sessions_per_day_by_type(frame: pd.DataFrame) -> go.Figure:
    """Sessions started per day, one colour per session type."""
    title = "Sessions per day by type"
    if frame.empty:
        return _empty(title, "Day (UTC)", SESSIONS)
    fig = px.bar(
        frame,
        x="day",
        y="sessions",
        color="session_type",
        color_discrete_map=COLORS,
        category_orders={"session_type": sorted(frame["session_type"].unique())},
    )
    fig.update_layout(barmode="stack")
    return _styled(fig, title, "Day (UTC)", SESSIONS)


def minutes_per_user(frame: pd.DataFrame) -> go.Figure:
    """The top users by billed minutes, largest at the top, coloured by plan."""
    title = f"Billed minutes per user (top {len(frame)})" if len(frame) else "Minutes per user"
    if frame.empty:
        return _empty(title, MINUTES, "User")
    fig = px.bar(
        frame,
        x="minutes",
        y="user_id",
        color="plan_id",
        orientation="h",
        color_discrete_map=COLORS,
        hover_data={"sessions": True, "minutes": ":.2f"},
    )
    _top_down(fig, frame["user_id"])
    return _styled(fig, title, MINUTES, "User")


def minutes_per_persona(frame: pd.DataFrame) -> go.Figure:
    """Billed minutes per persona, live and mock stacked."""
    return _minutes_by(frame, "persona_id", "Billed minutes per persona", "Persona")


def minutes_per_session_type(frame: pd.DataFrame) -> go.Figure:
    """Billed minutes per session type, live and mock stacked."""
    return _minutes_by(frame, "session_type", "Billed minutes per session type", "Session type")


def usage_vs_limit(frame: pd.DataFrame) -> go.Figure:
    """Share of the plan's monthly minutes each user has used, coloured by band.

    The amber and red zones (above 50 % and 80 %) are shaded behind the bars and marked with
    reference lines, so a bar's colour and its position say the same thing.
    """
    title = "Minutes used against the plan's monthly limit"
    x_title = "Share of monthly minutes used (%)"
    if frame.empty:
        return _empty(title, x_title, "User")
    shown = frame.assign(
        percent=frame["fraction_used"].astype(float) * 100,
        label=[
            f"{used:,.1f} of {limit:,.0f} min" + (" · running low" if low else "")
            for used, limit, low in zip(
                frame["minutes_used"], frame["minutes_limit"], frame["running_low"], strict=True
            )
        ],
    )
    fig = px.bar(
        shown,
        x="percent",
        y="user_id",
        color="band",
        orientation="h",
        text="label",
        color_discrete_map=COLORS,
        category_orders={"band": list(BANDS)},
        hover_data={
            "plan_id": True,
            "minutes_used": ":.2f",
            "minutes_limit": True,
            "percent": ":.1f",
            "label": False,
        },
    )
    right = max(100.0, float(shown["percent"].max()) * 1.05)
    for low, high, band in ((AMBER_ABOVE, RED_ABOVE, "amber"), (RED_ABOVE, None, "red")):
        fig.add_vrect(
            x0=low * 100,
            x1=right if high is None else high * 100,
            fillcolor=COLORS[band],
            opacity=0.08,
            line_width=0,
            layer="below",
        )
        fig.add_vline(
            x=low * 100,
            line_dash="dash",
            line_color=COLORS[band],
            annotation_text=f"{low:.0%}",
            annotation_position="top",
        )
    fig.update_traces(textposition="auto")
    fig.update_xaxes(range=[0, right], ticksuffix=" %")
    _top_down(fig, shown["user_id"])
    return _styled(fig, title, x_title, "User")


def outcomes(frame: pd.DataFrame) -> go.Figure:
    """Finished sessions that succeeded and failed, as a donut."""
    title = "Session outcomes"
    if frame.empty:
        return _empty(title)
    fig = px.pie(
        frame,
        names="outcome",
        values="sessions",
        hole=0.55,
        color="outcome",
        color_discrete_map=COLORS,
        category_orders={"outcome": _orders(frame, "outcome", OUTCOME_ORDER)},
    )
    fig.update_traces(textinfo="label+percent", sort=False)
    return _styled(fig, title, "", "")


def _counts(frame: pd.DataFrame, column: str, title: str, axis: str, color: str) -> go.Figure:
    """Sessions per category as horizontal bars, largest at the top."""
    if frame.empty:
        return _empty(title, SESSIONS, axis)
    fig = px.bar(frame, x="sessions", y=column, orientation="h")
    fig.update_traces(marker_color=color)
    _top_down(fig, frame[column])
    return _styled(fig, title, SESSIONS, axis)


def shutdown_reasons(frame: pd.DataFrame) -> go.Figure:
    """How completed calls ended, by Tavus's shutdown reason."""
    return _counts(frame, "shutdown_reason", "Shutdown reasons", "Shutdown reason", NEUTRAL)


def failures(frame: pd.DataFrame) -> go.Figure:
    """Failed sessions by error class or error shutdown reason."""
    return _counts(frame, "failure_kind", "Failures by kind", "Failure", COLORS["failure"])


def duration_distribution(frame: pd.DataFrame) -> go.Figure:
    """Histogram of billed durations: one bar per bucket, from its lower bound."""
    title = "Billed duration per session"
    x_title = "Billed duration (minutes)"
    if frame.empty:
        return _empty(title, x_title, SESSIONS)
    buckets = frame["bucket"].astype(float)
    width = float(buckets.diff().min()) if len(buckets) > 1 else DEFAULT_BIN_MINUTES
    fig = go.Figure(
        go.Bar(
            x=buckets,
            y=frame["sessions"],
            width=width,
            offset=0,
            marker_color=NEUTRAL,
            marker_line={"width": 1, "color": "white"},
            hovertemplate="%{x:.2f} min and up: %{y} sessions<extra></extra>",
        )
    )
    return _styled(fig, title, x_title, SESSIONS)
