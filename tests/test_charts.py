"""Every chart builds from its analytics frame, and from an empty one without raising."""

from __future__ import annotations

from datetime import date

import pandas as pd
import plotly.graph_objects as go
import pytest

from awaknow import analytics, charts, cost_charts, engagement_charts
from awaknow.chart_registry import CHARTS as CHARTS_IN_PAGE_ORDER
from awaknow.chart_registry import (
    COST_CHARTS,
    ENGAGEMENT_CHARTS,
    FEEDBACK_CHARTS,
    USAGE_CHARTS,
)
from awaknow.pricing import Pricing
from awaknow.store import Store
from devtools import seed

TODAY = date(2026, 3, 20)
CHARTS = {spec.name: spec for spec in CHARTS_IN_PAGE_ORDER}
MONTHS = [f"{TODAY:%Y-%m}"]  # the seed's last month: the month picker's default
NOTHING = analytics.Filters(user_ids=("nobody",))
PRICING = Pricing(minute_price=0.3, included_minutes=100, overage_price=0.4, monthly_budget=150)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    db = Store(tmp_path_factory.mktemp("charts") / "t.duckdb")
    seed.seed_demo(db, users=10, days=40, sessions=400, today=TODAY)
    return db


def _frame(store: Store, name: str, f: analytics.Filters) -> pd.DataFrame:
    """The chart's frame as the page queries it, its controls at their defaults."""
    spec = CHARTS[name]
    return spec.query(store, *spec.arguments(f, spec.defaults(MONTHS), PRICING))


def _draw(name: str, frame: pd.DataFrame) -> go.Figure:
    spec = CHARTS[name]
    return spec.draw(frame, spec.defaults(MONTHS))


def _texts(fig: go.Figure) -> list[str]:
    return [a.text for a in fig.layout.annotations]


@pytest.mark.parametrize("name", sorted(CHARTS))
def test_chart_from_seeded_data(store: Store, name: str) -> None:
    frame = _frame(store, name, analytics.NO_FILTERS)
    assert not frame.empty
    fig = _draw(name, frame)
    assert isinstance(fig, go.Figure)
    assert fig.data and fig.layout.title.text
    assert fig.layout.template.layout.paper_bgcolor == "white"  # plotly_white
    assert charts.NO_DATA not in _texts(fig)
    fig.to_json()  # serialisable as Streamlit will send it
    go.Figure(fig.to_dict())  # every property valid (charts skip plotly's validation)


@pytest.mark.parametrize("name", sorted(CHARTS))
def test_chart_from_empty_frame(store: Store, name: str) -> None:
    frame = _frame(store, name, NOTHING)
    if name in ("usage_vs_limit", "spend_vs_budget", "margin_per_plan"):
        frame = frame.iloc[0:0]  # account-wide or every plan listed, so empty it by hand
    assert frame.empty
    fig = _draw(name, frame)
    assert isinstance(fig, go.Figure)
    assert charts.NO_DATA in _texts(fig)
    assert fig.layout.title.text
    go.Figure(fig.to_dict())  # every property valid (charts skip plotly's validation)


def test_axis_titles_say_minutes(store: Store) -> None:
    frame = CHARTS["minutes_over_time"].query(store, analytics.NO_FILTERS, "week")
    fig = CHARTS["minutes_over_time"].draw(frame, ("week",))
    assert fig.layout.yaxis.title.text == charts.MINUTES
    assert "Week" in fig.layout.xaxis.title.text and "week" in fig.layout.title.text
    fig = charts.duration_distribution(analytics.duration_distribution(store))
    assert "minutes" in fig.layout.xaxis.title.text


def test_modes_keep_their_colours(store: Store) -> None:
    for name in ("minutes_over_time", "minutes_per_persona", "minutes_per_session_type"):
        fig = _draw(name, _frame(store, name, analytics.NO_FILTERS))
        colours = {trace.name: trace.marker.color for trace in fig.data}
        assert colours == {"live": charts.COLORS["live"], "mock": charts.COLORS["mock"]}


def test_usage_bands_and_reference_lines(store: Store) -> None:
    frame = _frame(store, "usage_vs_limit", analytics.NO_FILTERS)
    fig = charts.usage_vs_limit(frame)
    colours = {trace.name: trace.marker.color for trace in fig.data}
    assert colours == {band: charts.COLORS[band] for band in set(frame["band"])}
    lines = sorted(s.x0 for s in fig.layout.shapes if s.type == "line")
    assert lines == [analytics.AMBER_ABOVE * 100, analytics.RED_ABOVE * 100]
    zones = sorted(s.x0 for s in fig.layout.shapes if s.type == "rect")
    assert zones == lines
    assert {"50%", "80%"} <= set(_texts(fig))


def test_top_user_is_drawn_on_top(store: Store) -> None:
    frame = _frame(store, "minutes_per_user", analytics.NO_FILTERS)
    fig = charts.minutes_per_user(frame)
    assert fig.layout.yaxis.categoryarray[0] == frame["user_id"].iloc[0]
    assert fig.layout.yaxis.autorange == "reversed"


def test_empty_frame_without_columns_still_draws() -> None:
    assert charts.NO_DATA in _texts(charts.outcomes(pd.DataFrame()))


def test_registry_names_and_widget_keys_are_unique() -> None:
    names = [spec.name for spec in CHARTS_IN_PAGE_ORDER]
    keys = [control.key for spec in CHARTS_IN_PAGE_ORDER for control in spec.controls]
    assert len(set(names)) == len(names) and len(set(keys)) == len(keys)
    pages = (
        (USAGE_CHARTS, "an_"),
        (COST_CHARTS, "co_"),
        (ENGAGEMENT_CHARTS, "en_"),
        (FEEDBACK_CHARTS, "fb_"),
    )
    for page_charts, prefix in pages:
        page_keys = [control.key for spec in page_charts for control in spec.controls]
        assert all(key.startswith(prefix) for key in page_keys)  # each page's own widgets


def test_controls_reach_query_and_file_name(store: Store) -> None:
    spec = CHARTS["minutes_per_user"]
    assert len(spec.query(store, analytics.NO_FILTERS, 5)) == 5
    assert spec.file_name((5,)) == "minutes_per_user_5"
    month_chart = CHARTS["usage_vs_limit"]
    assert month_chart.defaults(["2026-02", "2026-03"]) == ("2026-03",)
    with pytest.raises(ValueError, match="no month"):
        month_chart.defaults([])


def test_one_band_rule_for_sql_and_python(store: Store) -> None:
    frame = analytics.usage_vs_limit(store, TODAY)
    for fraction, band in zip(frame["fraction_used"], frame["band"], strict=True):
        assert analytics.usage_band(None if pd.isna(fraction) else fraction) == band
    assert [analytics.usage_band(x) for x in (0.5, 0.51, 0.8, 0.81, None)] == [
        "ok",
        "amber",
        "amber",
        "red",
        "red",
    ]


def test_spend_chart_marks_80_and_100_percent_of_the_budget(store: Store) -> None:
    frame = _frame(store, "spend_vs_budget", analytics.NO_FILTERS)
    fig = cost_charts.spend_vs_budget(frame)
    levels = sorted(s.y0 for s in fig.layout.shapes if s.type == "line")
    assert levels == [0.8 * 150, 150]
    assert any("80%" in text for text in _texts(fig))
    unbudgeted = cost_charts.spend_vs_budget(frame.assign(budget_usd=None))
    assert not unbudgeted.layout.shapes and "no budget" in unbudgeted.layout.title.text


def test_margin_chart_has_revenue_cost_and_margin(store: Store) -> None:
    fig = cost_charts.margin_per_plan(_frame(store, "margin_per_plan", analytics.NO_FILTERS))
    assert [trace.name for trace in fig.data] == ["revenue", "Tavus cost", "margin"]


def test_retention_heatmap_has_a_row_per_cohort(store: Store) -> None:
    frame = _frame(store, "retention_cohorts", analytics.NO_FILTERS)
    fig = engagement_charts.retention_cohorts(frame)
    (heat,) = fig.data
    assert len(heat.y) == frame["cohort"].nunique()
    assert heat.z[0][0] == 100.0  # every cohort is active in its own first week


def test_funnel_compares_groups_side_by_side(store: Store) -> None:
    frame = analytics.session_funnel(store, analytics.NO_FILTERS, "session type")
    fig = engagement_charts.session_funnel(frame)
    assert {trace.name for trace in fig.data} == set(frame["group"])
    assert fig.layout.barmode == "group"
    assert list(fig.data[0].x) == list(analytics.FUNNEL_STEPS)
