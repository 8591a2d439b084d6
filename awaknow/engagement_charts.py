"""Plotly figures of the Engagement and Feedback pages, one per ``awaknow.analytics`` query.

Kept apart from ``awaknow.charts`` (whose shared look they use) so each module reads in one
sitting; ``awaknow.chart_registry`` pairs them with their queries.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from awaknow.charts import (
    SESSIONS,
    _axis,
    _bars_by,
    _empty,
    _figure,
    _orders,
)
from awaknow.palette import COLORS, NEUTRAL

# --- engagement -------------------------------------------------------------------------------

USERS = "Users"


def active_users(frame: pd.DataFrame, grain: str = "day") -> go.Figure:
    """Distinct active users per day, week or month: DAU, WAU or MAU."""
    short = {"day": "DAU", "week": "WAU", "month": "MAU"}.get(grain, "")
    title = f"Active users per {grain} ({short})"
    x_title = {"week": "Week starting (UTC)", "month": "Month (UTC)"}.get(grain, "Day (UTC)")
    if frame.empty:
        return _empty(title, x_title, USERS)
    line = {
        "type": "scatter",
        "mode": "lines+markers",
        "x": [str(period) for period in frame["period"]],
        "y": frame["active_users"].tolist(),
        "line": {"color": NEUTRAL},
        "hovertemplate": "%{x}: %{y} active users<extra></extra>",
    }
    return _figure([line], title, _axis(x_title), _axis(USERS, rangemode="tozero"))


def new_vs_returning(frame: pd.DataFrame) -> go.Figure:
    """Active users per week, new (first session ever) and returning stacked."""
    title = "New and returning users per week"
    if frame.empty:
        return _empty(title, "Week starting (UTC)", USERS)
    shown = frame.assign(period=frame["period"].astype(str))
    traces = _bars_by(
        shown,
        "period",
        "users",
        "kind",
        _orders(shown, "kind", ["new", "returning"]),
        hover="week=%{x}<br>users=%{y}",
    )
    return _figure(traces, title, _axis("Week starting (UTC)"), _axis(USERS), barmode="stack")


def retention_cohorts(frame: pd.DataFrame) -> go.Figure:
    """Weekly retention as a heatmap: one row per first-week cohort, one column per week
    after it, the share of the cohort active that week."""
    title = "Weekly retention by first-week cohort"
    if frame.empty:
        return _empty(title, "Weeks after the first", "Cohort (first week)")
    shares = frame.pivot(index="cohort", columns="week", values="share").sort_index()
    sizes = frame.groupby("cohort")["cohort_users"].first().reindex(shares.index)
    labels = [f"{cohort} ({int(size)})" for cohort, size in zip(shares.index, sizes, strict=True)]
    values = (shares.to_numpy() * 100).round(1)
    heat = {
        "type": "heatmap",
        "x": [int(week) for week in shares.columns],
        "y": labels,
        "z": [[None if pd.isna(v) else float(v) for v in row] for row in values],
        "zmin": 0,
        "zmax": 100,
        "colorscale": [[0, "#f1faee"], [1, COLORS["retention"]]],
        "colorbar": {"title": {"text": "%"}},
        "hovertemplate": "cohort %{y}<br>week %{x}: %{z:.1f} % active<extra></extra>",
    }
    return _figure(
        [heat],
        title,
        _axis("Weeks after the first", dtick=1),
        _axis("Cohort (first week, users)", type="category", autorange="reversed"),
    )


def sessions_per_user(frame: pd.DataFrame) -> go.Figure:
    """How many users started how many sessions."""
    title = "Sessions per user"
    if frame.empty:
        return _empty(title, SESSIONS, USERS)
    bar = {
        "type": "bar",
        "x": frame["sessions"].tolist(),
        "y": frame["users"].tolist(),
        "marker": {"color": NEUTRAL},
        "hovertemplate": "%{x} sessions: %{y} users<extra></extra>",
    }
    return _figure([bar], title, _axis("Sessions started"), _axis(USERS))


def _groups(frame: pd.DataFrame) -> list[str]:
    return sorted(frame["group"].astype(str).unique())


def session_funnel(frame: pd.DataFrame) -> go.Figure:
    """The per-session funnel, one bar per group at each step (persona or session type)."""
    title = "Session funnel"
    if frame.empty:
        return _empty(title, "Step", "Share of sessions (%)")
    shown = frame.assign(
        group=frame["group"].astype(str), percent=frame["share"].astype(float) * 100
    )
    traces = _bars_by(
        shown,
        "step",
        "percent",
        "group",
        _groups(shown),
        hover="%{x}<br>%{y:.1f} % of created<br>%{customdata[0]} sessions",
        custom=["sessions"],
    )
    return _figure(
        traces,
        title,
        _axis("Step", type="category"),
        _axis("Share of created conversations (%)", range=[0, 105]),
        barmode="group",
    )


def transcript_engagement(frame: pd.DataFrame) -> go.Figure:
    """Turns per transcribed session (bars) and the user's share of the words (diamonds, right
    axis), per persona or session type."""
    title = "Turns per session and the user's share of words"
    if frame.empty:
        return _empty(title, "", "Turns per session")
    groups = frame["group"].astype(str).tolist()
    share = frame["user_word_share"].astype(float) * 100
    traces = [
        {
            "type": "bar",
            "name": "turns per session",
            "x": groups,
            "y": frame["turns_per_session"].tolist(),
            "marker": {"color": [COLORS.get(group, NEUTRAL) for group in groups]},
            "customdata": frame[["sessions"]].to_numpy().tolist(),
            "hovertemplate": (
                "%{x}: %{y:.2f} turns per session<br>%{customdata[0]} transcribed sessions"
                "<extra></extra>"
            ),
        },
        {
            "type": "scatter",
            "mode": "markers",
            "name": "user's share of words (%)",
            "x": groups,
            "y": [None if pd.isna(v) else float(v) for v in share],
            "yaxis": "y2",
            "marker": {"symbol": "diamond", "size": 14, "color": COLORS["forecast"]},
            "hovertemplate": "%{x}: the user spoke %{y:.1f} % of the words<extra></extra>",
        },
    ]
    return _figure(
        traces,
        title,
        _axis("", type="category"),
        _axis("Turns per session", rangemode="tozero"),
        yaxis2={
            "title": {"text": "User's share of words (%)"},
            "overlaying": "y",
            "side": "right",
            "range": [0, 100],
        },
    )


# --- feedback ---------------------------------------------------------------------------------

RATING_COLORS = {1: "#d62828", 2: "#f77f00", 3: "#fcbf49", 4: "#90be6d", 5: "#2a9d8f"}


def ratings_by(frame: pd.DataFrame) -> go.Figure:
    """The distribution of ratings per group (persona, session type or week), 1 to 5 stacked
    to 100 %, with each group's average in the hover and above its bar."""
    title = "Ratings and their average"
    if frame.empty:
        return _empty(title, "", "Share of ratings (%)")
    groups = list(dict.fromkeys(frame["group"].astype(str)))
    traces = []
    for rating in sorted(frame["rating"].unique()):
        part = frame[frame["rating"] == rating]
        traces.append(
            {
                "type": "bar",
                "name": f"{int(rating)} ★",
                "x": part["group"].astype(str).tolist(),
                "y": (part["share"].astype(float) * 100).tolist(),
                "marker": {"color": RATING_COLORS.get(int(rating), NEUTRAL)},
                "customdata": part[["ratings", "average_rating"]].to_numpy().tolist(),
                "hovertemplate": (
                    f"%{{x}}<br>{int(rating)} ★: %{{customdata[0]}} ratings (%{{y:.1f}} %)"
                    "<br>average %{customdata[1]:.2f}<extra></extra>"
                ),
            }
        )
    averages = frame.groupby(frame["group"].astype(str))["average_rating"].first()
    notes = [
        {
            "text": f"avg {averages[group]:.2f}",
            "x": group,
            "y": 100,
            "xref": "x",
            "yref": "y",
            "yanchor": "bottom",
            "showarrow": False,
        }
        for group in groups
    ]
    return _figure(
        traces,
        title,
        _axis("", type="category", categoryorder="array", categoryarray=groups),
        _axis("Share of ratings (%)", range=[0, 112]),
        barmode="stack",
        annotations=notes,
    )


def rating_vs_duration(frame: pd.DataFrame) -> go.Figure:
    """Average rating per whole minute of billed duration, with how many ratings each holds."""
    title = "Rating against duration"
    x_title = "Billed duration (whole minutes)"
    if frame.empty:
        return _empty(title, x_title, "Average rating")
    line = {
        "type": "scatter",
        "mode": "lines+markers",
        "x": frame["minute"].tolist(),
        "y": frame["average_rating"].astype(float).tolist(),
        "customdata": frame[["ratings"]].to_numpy().tolist(),
        "marker": {"size": 10, "color": COLORS["actual"]},
        "hovertemplate": (
            "%{x} min and up: average %{y:.2f}<br>%{customdata[0]} ratings<extra></extra>"
        ),
    }
    return _figure([line], title, _axis(x_title, dtick=1), _axis("Average rating", range=[1, 5.2]))
