"""Plotly figures of the Tavus costs page, one per ``awaknow.analytics`` cost query.

Kept apart from ``awaknow.charts`` (whose shared look they use) so each module reads in one
sitting; ``awaknow.chart_registry`` pairs them with their queries.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

from awaknow.charts import (
    _axis,
    _bars_by,
    _empty,
    _figure,
    _orders,
    _top_down,
)
from awaknow.palette import COLORS, NEUTRAL
from awaknow.pricing import BUDGET_EXCEEDED_AT, BUDGET_WARNING_AT

USD = "Tavus cost (USD)"


def spend_vs_budget(frame: pd.DataFrame) -> go.Figure:
    """The month's cumulative spend, its forecast (dashed) and the budget's 80 % and 100 %
    marks (``analytics.spend_vs_budget``)."""
    title = "Spend this month against the budget"
    if frame.empty:
        return _empty(title, "Day (UTC)", USD)
    traces = []
    for kind, dash in (("actual", "solid"), ("forecast", "dash")):
        part = frame[frame["kind"] == kind]
        if part.empty:
            continue
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers" if kind == "actual" else "lines",
                "name": "spend" if kind == "actual" else "forecast at this pace",
                "x": [str(day) for day in part["day"]],
                "y": part["spend_usd"].tolist(),
                "customdata": part[["live_minutes"]].to_numpy().tolist(),
                "line": {"color": COLORS[kind], "dash": dash},
                "hovertemplate": (
                    f"{kind}: %{{x}}<br>$%{{y:,.2f}}<br>%{{customdata[0]:,.2f}} live min"
                    "<extra></extra>"
                ),
            }
        )
    budget = frame["budget_usd"].dropna()
    shapes: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    top = float(frame["spend_usd"].max())
    if not budget.empty:
        amount = float(budget.iloc[0])
        top = max(top, amount)
        for share, band, label in (
            (BUDGET_WARNING_AT, "amber", f"{BUDGET_WARNING_AT:.0%} of budget"),
            (BUDGET_EXCEEDED_AT, "red", f"budget ${amount:,.2f}"),
        ):
            level = amount * share
            shapes.append(
                {
                    "type": "line",
                    "x0": 0,
                    "x1": 1,
                    "xref": "x domain",
                    "y0": level,
                    "y1": level,
                    "yref": "y",
                    "line": {"dash": "dot", "color": COLORS[band]},
                }
            )
            notes.append(
                {
                    "text": label,
                    "x": 0,
                    "xref": "x domain",
                    "xanchor": "left",
                    "y": level,
                    "yref": "y",
                    "yanchor": "bottom",
                    "showarrow": False,
                    "font": {"color": COLORS[band]},
                }
            )
    else:
        title += " (no budget set)"
    return _figure(
        traces,
        title,
        _axis("Day (UTC)", type="category"),
        _axis(USD, range=[0, top * 1.1 or 1], tickprefix="$"),
        shapes=shapes,
        annotations=notes,
    )


def _cost_by(frame: pd.DataFrame, column: str, title: str, axis: str) -> go.Figure:
    """Tavus cost per value of ``column``, one colour per value where the palette has one."""
    if frame.empty:
        return _empty(title, axis, USD)
    labels = frame[column].fillna("no plan").astype(str)
    bar = {
        "type": "bar",
        "x": labels.tolist(),
        "y": frame["cost_usd"].tolist(),
        "marker": {"color": [COLORS.get(label, NEUTRAL) for label in labels]},
        "customdata": frame[["live_minutes", "sessions", "cost_per_session_usd"]]
        .to_numpy()
        .tolist(),
        "hovertemplate": (
            f"{axis}: %{{x}}<br>$%{{y:,.2f}}<br>%{{customdata[0]:,.2f}} live min"
            "<br>%{customdata[1]} sessions, $%{customdata[2]:,.4f} each<extra></extra>"
        ),
    }
    return _figure([bar], title, _axis(axis, type="category"), _axis(USD, tickprefix="$"))


def cost_per_persona(frame: pd.DataFrame) -> go.Figure:
    """Tavus cost per persona (``analytics.cost_per_persona``)."""
    return _cost_by(frame, "persona_id", "Tavus cost per persona", "Persona")


def cost_per_session_type(frame: pd.DataFrame) -> go.Figure:
    """Tavus cost per session type (``analytics.cost_per_session_type``)."""
    return _cost_by(frame, "session_type", "Tavus cost per session type", "Session type")


def cost_per_plan(frame: pd.DataFrame) -> go.Figure:
    """Tavus cost per plan the sessions were billed under (``analytics.cost_per_plan``)."""
    return _cost_by(frame, "plan_id", "Tavus cost per plan", "Plan")


def cost_per_user(frame: pd.DataFrame) -> go.Figure:
    """The costliest users, largest at the top, coloured by plan."""
    title = f"Tavus cost per user (top {len(frame)})" if len(frame) else "Tavus cost per user"
    if frame.empty:
        return _empty(title, USD, "User")
    plans = frame.assign(plan_id=frame["plan_id"].fillna("no plan"))
    traces = _bars_by(
        plans,
        "cost_usd",
        "user_id",
        "plan_id",
        _orders(plans, "plan_id", []),
        horizontal=True,
        hover="user=%{y}<br>$%{x:,.2f}<br>%{customdata[0]:,.2f} live min",
        custom=["live_minutes"],
    )
    return _figure(
        traces,
        title,
        _axis(USD, tickprefix="$"),
        _top_down(frame["user_id"], "User"),
        barmode="relative",
    )


def margin_per_plan(frame: pd.DataFrame) -> go.Figure:
    """Per plan: subscription revenue, Tavus cost and the margin between them, side by side."""
    title = "Margin per plan: revenue minus Tavus cost"
    if frame.empty:
        return _empty(title, "Plan", "USD")
    plans = frame["plan_name"].astype(str).tolist()
    traces = [
        {
            "type": "bar",
            "name": name,
            "x": plans,
            "y": frame[column].tolist(),
            "marker": {"color": COLORS[color]},
            "customdata": frame[["subscribers", "live_minutes"]].to_numpy().tolist(),
            "hovertemplate": (
                f"%{{x}}<br>{name}: $%{{y:,.2f}}<br>%{{customdata[0]}} subscribers, "
                "%{customdata[1]:,.2f} live min<extra></extra>"
            ),
        }
        for column, name, color in (
            ("revenue_usd", "revenue", "revenue"),
            ("tavus_cost_usd", "Tavus cost", "cost"),
            ("margin_usd", "margin", "margin"),
        )
    ]
    return _figure(
        traces, title, _axis("Plan", type="category"), _axis("USD", tickprefix="$"), barmode="group"
    )


def users_costing_more(frame: pd.DataFrame) -> go.Figure:
    """Users whose Tavus cost this month exceeds what they paid, largest loss at the top."""
    title = "Users costing more than they pay"
    if frame.empty:
        return _empty(title, "Loss (USD)", "User")
    plans = frame.assign(plan_id=frame["plan_id"].fillna("no plan"))
    traces = _bars_by(
        plans,
        "loss_usd",
        "user_id",
        "plan_id",
        _orders(plans, "plan_id", []),
        horizontal=True,
        hover=(
            "user=%{y}<br>loss $%{x:,.2f}<br>Tavus cost $%{customdata[0]:,.2f}, "
            "paid $%{customdata[1]:,.2f}<extra></extra>"
        ),
        custom=["tavus_cost_usd", "paid_usd"],
    )
    return _figure(
        traces,
        title,
        _axis("Loss: Tavus cost minus plan price (USD)", tickprefix="$"),
        _top_down(frame["user_id"], "User"),
        barmode="relative",
    )
