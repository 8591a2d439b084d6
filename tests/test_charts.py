"""Every chart builds from its analytics frame, and from an empty one without raising."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pandas as pd
import plotly.graph_objects as go
import pytest

from awaknow import analytics, charts, seed
from awaknow.store import Store

TODAY = date(2026, 3, 20)

# chart name -> how to get its frame (the analytics function of the same name).
FRAMES: dict[str, Callable[[Store, analytics.Filters], pd.DataFrame]] = {
    "minutes_over_time": lambda s, f: analytics.minutes_over_time(s, f, "week"),
    "sessions_per_day_by_type": analytics.sessions_per_day_by_type,
    "minutes_per_user": lambda s, f: analytics.minutes_per_user(s, f, 10),
    "minutes_per_persona": analytics.minutes_per_persona,
    "minutes_per_session_type": analytics.minutes_per_session_type,
    "usage_vs_limit": lambda s, f: analytics.usage_vs_limit(s, TODAY, f, 15),
    "outcomes": analytics.outcomes,
    "shutdown_reasons": analytics.shutdown_reasons,
    "failures": analytics.failures,
    "duration_distribution": analytics.duration_distribution,
}
NOTHING = analytics.Filters(user_ids=("nobody",))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    db = Store(tmp_path_factory.mktemp("charts") / "t.duckdb")
    seed.seed_demo(db, users=10, days=40, sessions=400, today=TODAY)
    return db


def _texts(fig: go.Figure) -> list[str]:
    return [a.text for a in fig.layout.annotations]


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_chart_from_seeded_data(store: Store, name: str) -> None:
    frame = FRAMES[name](store, analytics.NO_FILTERS)
    assert not frame.empty
    fig = getattr(charts, name)(frame)
    assert isinstance(fig, go.Figure)
    assert fig.data and fig.layout.title.text
    assert fig.layout.template.layout.paper_bgcolor == "white"  # plotly_white
    assert charts.NO_DATA not in _texts(fig)
    fig.to_json()  # serialisable as Streamlit will send it


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_chart_from_empty_frame(store: Store, name: str) -> None:
    frame = FRAMES[name](store, NOTHING)
    if name == "usage_vs_limit":
        frame = frame.iloc[0:0]  # users without usage are listed, so empty it by hand
    assert frame.empty
    fig = getattr(charts, name)(frame)
    assert isinstance(fig, go.Figure)
    assert charts.NO_DATA in _texts(fig)
    assert fig.layout.title.text


def test_axis_titles_say_minutes(store: Store) -> None:
    fig = charts.minutes_over_time(FRAMES["minutes_over_time"](store, analytics.NO_FILTERS), "week")
    assert fig.layout.yaxis.title.text == charts.MINUTES
    assert "Week" in fig.layout.xaxis.title.text and "week" in fig.layout.title.text
    fig = charts.duration_distribution(analytics.duration_distribution(store))
    assert "minutes" in fig.layout.xaxis.title.text


def test_modes_keep_their_colours(store: Store) -> None:
    for name in ("minutes_over_time", "minutes_per_persona", "minutes_per_session_type"):
        fig = getattr(charts, name)(FRAMES[name](store, analytics.NO_FILTERS))
        colours = {trace.name: trace.marker.color for trace in fig.data}
        assert colours == {"live": charts.COLORS["live"], "mock": charts.COLORS["mock"]}


def test_usage_bands_and_reference_lines(store: Store) -> None:
    frame = FRAMES["usage_vs_limit"](store, analytics.NO_FILTERS)
    fig = charts.usage_vs_limit(frame)
    colours = {trace.name: trace.marker.color for trace in fig.data}
    assert colours == {band: charts.COLORS[band] for band in set(frame["band"])}
    lines = sorted(s.x0 for s in fig.layout.shapes if s.type == "line")
    assert lines == [analytics.AMBER_ABOVE * 100, analytics.RED_ABOVE * 100]
    zones = sorted(s.x0 for s in fig.layout.shapes if s.type == "rect")
    assert zones == lines
    assert {"50%", "80%"} <= set(_texts(fig))


def test_top_user_is_drawn_on_top(store: Store) -> None:
    frame = FRAMES["minutes_per_user"](store, analytics.NO_FILTERS)
    fig = charts.minutes_per_user(frame)
    assert fig.layout.yaxis.categoryarray[0] == frame["user_id"].iloc[0]
    assert fig.layout.yaxis.autorange == "reversed"


def test_empty_frame_without_columns_still_draws() -> None:
    assert charts.NO_DATA in _texts(charts.outcomes(pd.DataFrame()))
