"""Every analytics chart, described once: its query, its figure and its controls.

Each analytics page draws its tuple (``USAGE_CHARTS``, ``COST_CHARTS``,
``ENGAGEMENT_CHARTS``, ``FEEDBACK_CHARTS``) in order, two per
row; the chart tests build every chart of ``CHARTS`` from seeded and from empty data, and the
benchmark times each query. Adding a chart is one ``Chart`` here plus its query in
``awaknow.analytics`` and its figure in ``awaknow.charts``. Functions are passed, never
names, so "find usages" sees every caller.

Controls are data (a choice, a slider, a month picker); the page turns them into widgets and
passes their values, in order, after the filters (and the account's ``Pricing`` for a
``priced`` chart: ``Chart.arguments``) to the query and (if ``figure_uses_controls``) after
the frame to the figure. Widget keys start with the page's prefix (``an_``, ``co_``, ``en_``,
``fb_``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go

from awaknow import analytics, charts, cost_charts, engagement_charts
from awaknow.analytics import Filters
from awaknow.pricing import Pricing
from awaknow.store import Store

USAGE_TOP_N = 20  # users shown against their plan's limit, most used first

ControlValue = str | int


@dataclass(frozen=True)
class Choice:
    """One of a few fixed options (a segmented control)."""

    label: str
    key: str
    options: tuple[str, ...]
    default: str


@dataclass(frozen=True)
class Slider:
    """A whole number between ``low`` and ``high``."""

    label: str
    key: str
    low: int
    high: int
    step: int
    default: int


@dataclass(frozen=True)
class MonthPicker:
    """A month ('YYYY-MM') with sessions; the latest one by default."""

    label: str
    key: str


Control = Choice | Slider | MonthPicker


def default_value(control: Control, months: Sequence[str]) -> ControlValue:
    """What ``control`` shows before anyone touches it; ``months`` are those with sessions."""
    if isinstance(control, MonthPicker):
        if not months:
            raise ValueError(f"{control.label}: there is no month to pick")
        return months[-1]
    return control.default


@dataclass(frozen=True)
class Chart:
    """One chart: ``query(store, *arguments(...))`` gives its frame, ``figure`` draws it."""

    name: str  # widget keys and the CSV file's name start with it
    query: Callable[..., pd.DataFrame]
    figure: Callable[..., go.Figure]
    controls: tuple[Control, ...] = ()
    figure_uses_controls: bool = False
    priced: bool = False  # the query takes the account's Pricing after the filters

    def arguments(
        self, filters: Filters, values: Sequence[ControlValue], pricing: Pricing
    ) -> tuple[object, ...]:
        """What ``query`` takes after the store: filters, pricing if priced, control values."""
        return (filters, pricing, *values) if self.priced else (filters, *values)

    def defaults(self, months: Sequence[str]) -> tuple[ControlValue, ...]:
        """The controls' values before anyone touches them."""
        return tuple(default_value(control, months) for control in self.controls)

    def draw(self, frame: pd.DataFrame, values: Sequence[ControlValue]) -> go.Figure:
        """The figure of ``frame`` queried with the control ``values``."""
        return self.figure(frame, *values) if self.figure_uses_controls else self.figure(frame)

    def file_name(self, values: Sequence[ControlValue]) -> str:
        """The CSV download's name: the chart and the control values it was drawn with."""
        return "_".join([self.name, *(str(value) for value in values)])


def usage_vs_limit_top(store: Store, f: Filters, month: str) -> pd.DataFrame:
    """The ``USAGE_TOP_N`` users closest to (or over) their plan's limit in ``month``."""
    return analytics.usage_vs_limit(store, month, f, USAGE_TOP_N)


USAGE_CHARTS: tuple[Chart, ...] = (
    Chart(
        "minutes_over_time",
        analytics.minutes_over_time,
        charts.minutes_over_time,
        (Choice("Minutes per", "an_grain", tuple(analytics.GRAINS), "day"),),
        figure_uses_controls=True,
    ),
    Chart(
        "sessions_per_day_by_type",
        analytics.sessions_per_day_by_type,
        charts.sessions_per_day_by_type,
    ),
    Chart(
        "minutes_per_user",
        analytics.minutes_per_user,
        charts.minutes_per_user,
        (Slider("Top users", "an_top", low=5, high=50, step=5, default=10),),
    ),
    Chart("minutes_per_persona", analytics.minutes_per_persona, charts.minutes_per_persona),
    Chart(
        "minutes_per_session_type",
        analytics.minutes_per_session_type,
        charts.minutes_per_session_type,
    ),
    Chart(
        "usage_vs_limit",
        usage_vs_limit_top,
        charts.usage_vs_limit,
        (MonthPicker("Month", "an_month"),),
    ),
    Chart("outcomes", analytics.outcomes, charts.outcomes),
    Chart("shutdown_reasons", analytics.shutdown_reasons, charts.shutdown_reasons),
    Chart("duration_distribution", analytics.duration_distribution, charts.duration_distribution),
    Chart("failures", analytics.failures, charts.failures),
)

COST_CHARTS: tuple[Chart, ...] = (
    Chart(
        "spend_vs_budget",
        analytics.spend_vs_budget,
        cost_charts.spend_vs_budget,
        (MonthPicker("Month", "co_spend_month"),),
        priced=True,
    ),
    Chart(
        "margin_per_plan",
        analytics.margin_per_plan,
        cost_charts.margin_per_plan,
        (MonthPicker("Month", "co_margin_month"),),
        priced=True,
    ),
    Chart(
        "users_costing_more",
        analytics.users_costing_more,
        cost_charts.users_costing_more,
        (
            MonthPicker("Month", "co_loss_month"),
            Slider("Top users", "co_loss_top", low=5, high=50, step=5, default=10),
        ),
        priced=True,
    ),
    Chart(
        "cost_per_user",
        analytics.cost_per_user,
        cost_charts.cost_per_user,
        (Slider("Top users", "co_top", low=5, high=50, step=5, default=10),),
        priced=True,
    ),
    Chart("cost_per_plan", analytics.cost_per_plan, cost_charts.cost_per_plan, priced=True),
    Chart(
        "cost_per_persona", analytics.cost_per_persona, cost_charts.cost_per_persona, priced=True
    ),
    Chart(
        "cost_per_session_type",
        analytics.cost_per_session_type,
        cost_charts.cost_per_session_type,
        priced=True,
    ),
)

_COMPARE = tuple(analytics.COMPARE_BY)
ENGAGEMENT_CHARTS: tuple[Chart, ...] = (
    Chart(
        "active_users",
        analytics.active_users,
        engagement_charts.active_users,
        (Choice("Active users per", "en_grain", analytics.ACTIVE_GRAINS, "day"),),
        figure_uses_controls=True,
    ),
    Chart("new_vs_returning", analytics.new_vs_returning, engagement_charts.new_vs_returning),
    Chart("retention_cohorts", analytics.retention_cohorts, engagement_charts.retention_cohorts),
    Chart("sessions_per_user", analytics.sessions_per_user, engagement_charts.sessions_per_user),
    Chart(
        "session_funnel",
        analytics.session_funnel,
        engagement_charts.session_funnel,
        (Choice("Compare", "en_funnel_by", _COMPARE, "persona"),),
    ),
    Chart(
        "transcript_engagement",
        analytics.transcript_engagement,
        engagement_charts.transcript_engagement,
        (Choice("Compare", "en_talk_by", _COMPARE, "persona"),),
    ),
)

FEEDBACK_CHARTS: tuple[Chart, ...] = (
    Chart(
        "ratings_by",
        analytics.ratings_by,
        engagement_charts.ratings_by,
        (Choice("By", "fb_by", tuple(analytics.RATINGS_BY), "persona"),),
    ),
    Chart("rating_vs_duration", analytics.rating_vs_duration, engagement_charts.rating_vs_duration),
)

# Every chart, for tests and tools.
CHARTS: tuple[Chart, ...] = USAGE_CHARTS + COST_CHARTS + ENGAGEMENT_CHARTS + FEEDBACK_CHARTS
