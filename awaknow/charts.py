"""Plotly figures for the analytics page: one function per chart, named after its query.

Each takes the frame the ``awaknow.analytics`` function of the same name returns and gives a
``plotly.graph_objects.Figure``; ``awaknow.chart_registry`` pairs them and pages pass the
figure to ``st.plotly_chart``. The same things keep the same colour on every chart (live,
mock, session types, outcomes, usage bands: ``awaknow.palette``), and an empty frame gives a
figure that says so instead of an exception or a blank axis.

Figures are built from plain trace and layout dicts with ``graph_objects``, the template
resolved once per process: plotly express re-derives all of that on every call, which cost
about 330 ms for the page's ten figures even for two-row frames (now a few ms in all).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from awaknow.analytics import AMBER_ABOVE, BANDS, DEFAULT_BIN_MINUTES, RED_ABOVE
from awaknow.palette import COLORS, NEUTRAL

TEMPLATE = "plotly_white"
NO_DATA = "No data for these filters"
MODE_ORDER = ["live", "mock"]
OUTCOME_ORDER = ["success", "failure"]
MINUTES = "Billed minutes"
SESSIONS = "Sessions"
_LEGEND = {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0, "title": {"text": ""}}
_MARGIN = {"l": 10, "r": 10, "t": 70, "b": 10}
_template: dict[str, Any] | None = None


def _shared_template() -> dict[str, Any]:
    """The template as plain data, resolved once per process (about 5 ms per figure else)."""
    global _template
    if _template is None:
        _template = pio.templates[TEMPLATE].to_plotly_json()
    return _template


def _figure(
    traces: list[dict[str, Any]],
    title: str,
    x_axis: dict[str, Any],
    y_axis: dict[str, Any],
    **layout: Any,
) -> go.Figure:
    """The look every chart shares: template, title, axis titles, legend above the plot.

    Plotly's per-property validation is skipped (``_validate=False``): the traces and layout
    here are fixed shapes, and the chart tests rebuild every figure with validation on.
    """
    return go.Figure(
        data=traces,
        layout={
            "template": _shared_template(),
            "title": {"text": title},
            "xaxis": x_axis,
            "yaxis": y_axis,
            "legend": _LEGEND,
            "margin": _MARGIN,
            **layout,
        },
        _validate=False,
    )


def _axis(title: str, **settings: Any) -> dict[str, Any]:
    return {"title": {"text": title}, **settings}


def _empty(title: str, x_title: str = "", y_title: str = "") -> go.Figure:
    """An empty chart with the reason in the middle: pages need not special-case it."""
    note = {
        "text": NO_DATA,
        "x": 0.5,
        "y": 0.5,
        "xref": "paper",
        "yref": "paper",
        "showarrow": False,
        "font": {"size": 16, "color": NEUTRAL},
    }
    return _figure(
        [],
        title,
        _axis(x_title, visible=False),
        _axis(y_title, visible=False),
        annotations=[note],
    )


def _orders(frame: pd.DataFrame, column: str, preferred: list[str]) -> list[str]:
    """Known values in their usual order, then any others as they come."""
    present = [str(v) for v in frame[column].dropna().unique()]
    return [v for v in preferred if v in present] + [v for v in present if v not in preferred]


def _top_down(rows: pd.Series, title: str) -> dict[str, Any]:
    """A y axis showing horizontal bars in the frame's order, its first row at the top."""
    return _axis(title, categoryorder="array", categoryarray=list(rows), autorange="reversed")


def _bars_by(
    frame: pd.DataFrame,
    x: str,
    y: str,
    color: str,
    order: list[str],
    *,
    horizontal: bool = False,
    hover: str = "",
    custom: list[str] | None = None,
    text: str | None = None,
) -> list[dict[str, Any]]:
    """One bar trace per value of ``color`` (in ``order``), coloured from the palette."""
    traces = []
    for value in order:
        part = frame[frame[color].astype(str) == value]
        trace: dict[str, Any] = {
            "type": "bar",
            "name": value,
            "legendgroup": value,
            "x": part[x].tolist(),
            "y": part[y].tolist(),
            "marker": {"color": COLORS.get(value, NEUTRAL)},
            "hovertemplate": f"{color}={value}<br>{hover}<extra></extra>",
        }
        if horizontal:
            trace["orientation"] = "h"
        if custom:
            trace["customdata"] = part[custom].to_numpy().tolist()
        if text:
            trace["text"] = part[text].tolist()
            trace["textposition"] = "auto"
        traces.append(trace)
    return traces


def _minutes_by(
    frame: pd.DataFrame, column: str, title: str, axis: str, *, categories: bool = True
) -> go.Figure:
    """Billed minutes per value of ``column``, live and mock stacked; ``categories`` keeps
    the x axis categorical (ids, types) instead of letting plotly read it as dates or numbers."""
    if frame.empty:
        return _empty(title, axis, MINUTES)
    traces = _bars_by(
        frame,
        column,
        "minutes",
        "mode",
        _orders(frame, "mode", MODE_ORDER),
        hover=f"{column}=%{{x}}<br>minutes=%{{y:.2f}}<br>sessions=%{{customdata[0]}}",
        custom=["sessions"],
    )
    x_axis = _axis(axis, type="category") if categories else _axis(axis)
    return _figure(traces, title, x_axis, _axis(MINUTES), barmode="stack")


def minutes_over_time(frame: pd.DataFrame, grain: str = "day") -> go.Figure:
    """Billed minutes per day or week, live and mock stacked (``analytics.minutes_over_time``)."""
    x_title = "Week starting (UTC)" if grain == "week" else "Day (UTC)"
    return _minutes_by(frame, "period", f"Billed minutes per {grain}", x_title, categories=False)


def sessions_per_day_by_type(frame: pd.DataFrame) -> go.Figure:
    """Sessions started per day, one colour per session type."""
    title = "Sessions per day by type"
    if frame.empty:
        return _empty(title, "Day (UTC)", SESSIONS)
    traces = _bars_by(
        frame,
        "day",
        "sessions",
        "session_type",
        sorted(frame["session_type"].astype(str).unique()),
        hover="day=%{x}<br>sessions=%{y}",
    )
    return _figure(traces, title, _axis("Day (UTC)"), _axis(SESSIONS), barmode="stack")


def minutes_per_user(frame: pd.DataFrame) -> go.Figure:
    """The top users by billed minutes, largest at the top, coloured by plan."""
    title = f"Billed minutes per user (top {len(frame)})" if len(frame) else "Minutes per user"
    if frame.empty:
        return _empty(title, MINUTES, "User")
    plans = frame.assign(plan_id=frame["plan_id"].fillna("no plan"))
    traces = _bars_by(
        plans,
        "minutes",
        "user_id",
        "plan_id",
        _orders(plans, "plan_id", []),
        horizontal=True,
        hover="user=%{y}<br>minutes=%{x:.2f}<br>sessions=%{customdata[0]}",
        custom=["sessions"],
    )
    return _figure(
        traces, title, _axis(MINUTES), _top_down(frame["user_id"], "User"), barmode="relative"
    )


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
    traces = _bars_by(
        shown,
        "percent",
        "user_id",
        "band",
        [band for band in BANDS if band in set(shown["band"])],
        horizontal=True,
        hover=(
            "user=%{y}<br>share used=%{x:.1f} %<br>plan=%{customdata[0]}"
            "<br>minutes used=%{customdata[1]:.2f} of %{customdata[2]}"
        ),
        custom=["plan_id", "minutes_used", "minutes_limit"],
        text="label",
    )
    right = max(100.0, float(shown["percent"].max()) * 1.05)
    shapes: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    for low, high, band in ((AMBER_ABOVE, RED_ABOVE, "amber"), (RED_ABOVE, None, "red")):
        x0 = low * 100
        shapes.append(
            {
                "type": "rect",
                "x0": x0,
                "x1": right if high is None else high * 100,
                "xref": "x",
                "y0": 0,
                "y1": 1,
                "yref": "y domain",
                "fillcolor": COLORS[band],
                "opacity": 0.08,
                "line": {"width": 0},
                "layer": "below",
            }
        )
        shapes.append(
            {
                "type": "line",
                "x0": x0,
                "x1": x0,
                "xref": "x",
                "y0": 0,
                "y1": 1,
                "yref": "y domain",
                "line": {"dash": "dash", "color": COLORS[band]},
            }
        )
        notes.append(
            {
                "text": f"{low:.0%}",
                "x": x0,
                "xref": "x",
                "y": 1,
                "yref": "y domain",
                "yanchor": "bottom",
                "showarrow": False,
            }
        )
    return _figure(
        traces,
        title,
        _axis(x_title, range=[0, right], ticksuffix=" %"),
        _top_down(shown["user_id"], "User"),
        barmode="relative",
        shapes=shapes,
        annotations=notes,
    )


def outcomes(frame: pd.DataFrame) -> go.Figure:
    """Finished sessions that succeeded and failed, as a donut."""
    title = "Session outcomes"
    if frame.empty:
        return _empty(title)
    order = _orders(frame, "outcome", OUTCOME_ORDER)
    counts = frame.groupby(frame["outcome"].astype(str))["sessions"].sum()
    pie = {
        "type": "pie",
        "labels": order,
        "values": [int(counts[name]) for name in order],
        "hole": 0.55,
        "marker": {"colors": [COLORS.get(name, NEUTRAL) for name in order]},
        "textinfo": "label+percent",
        "sort": False,
        "hovertemplate": "%{label}: %{value} sessions<extra></extra>",
    }
    return _figure([pie], title, _axis(""), _axis(""))


def _counts(frame: pd.DataFrame, column: str, title: str, axis: str, color: str) -> go.Figure:
    """Sessions per category as horizontal bars, largest at the top."""
    if frame.empty:
        return _empty(title, SESSIONS, axis)
    bar = {
        "type": "bar",
        "x": frame["sessions"].tolist(),
        "y": frame[column].tolist(),
        "orientation": "h",
        "marker": {"color": color},
        "hovertemplate": f"{axis}: %{{y}}<br>{SESSIONS}: %{{x}}<extra></extra>",
    }
    return _figure([bar], title, _axis(SESSIONS), _top_down(frame[column], axis))


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
    bar = {
        "type": "bar",
        "x": buckets.tolist(),
        "y": frame["sessions"].tolist(),
        "width": width,
        "offset": 0,
        "marker": {"color": NEUTRAL, "line": {"width": 1, "color": "white"}},
        "hovertemplate": "%{x:.2f} min and up: %{y} sessions<extra></extra>",
    }
    return _figure([bar], title, _axis(x_title), _axis(SESSIONS))
