"""Usage analytics: every analytics query, aggregated in DuckDB, returned as small frames.

The SQL lives in this package and nowhere else: ``filters`` (what a person picked, as bound
SQL conditions), ``rollups`` (where rows come from, and keeping the daily rollups current),
``usage`` (headline figures and the charts' queries), ``limits`` (usage against plan
limits and the one rule for usage bands), ``costs`` (Tavus spend, forecast, budget and
margins), ``engagement`` (active, new and returning users, retention, the session funnel,
transcript turns and word shares), ``ratings`` (session feedback) and ``tables`` (the
sessions drill-down). Callers
import from ``awaknow.analytics``; the chart registry (``awaknow.chart_registry``) says
which query feeds which chart.

Pages, the CLI and the benchmark call these functions and never write SQL themselves, so a
figure means the same thing everywhere. Each function takes the ``Store`` first and (mostly) a
``Filters``; every value a person picked reaches DuckDB as a bound parameter.

Definitions (the only place they are made):

- A *session* is a row of ``sessions``. Counts of sessions (``kpis().sessions``,
  ``sessions_per_day_by_type``, ``sessions_table``) include the ones still starting or
  active; outcomes only look at *finished* sessions (status completed or failed).
- *Failure*: status ``failed`` (the conversation was never created), or a completed session
  whose Tavus shutdown reason is an error (``ERROR_SHUTDOWN_GROUPS``) or that Tavus
  reported in status ``error`` (``sessions.TAVUS_STATUS_ERROR_KIND``; billed all the same).
  *Success*: every other completed session. Shutdown reasons are compared through the
  ``shutdown_reason_group`` macro (store migration 4, the only place that rule is written),
  so ``participant_left_timeout`` and ``participant_left_timeout reached`` are one reason and
  every ``internal error occurred at step ...`` is ``internal_error``.
- *Minutes* are billed minutes: ``tavus_usage.seconds_used / 60`` of billed (completed)
  sessions, summed as whole seconds and rounded to 2 decimals only at the end. Live and mock
  minutes are both billed rows; ``mode`` tells them apart and every minutes frame has it.
- *Dates* are UTC days of the session's start: ``tavus_usage.usage_date`` for minutes,
  ``sessions.created_at`` for session counts (the two differ only for a session created in
  the last seconds before midnight). ``Filters.start``/``end`` are inclusive.
- *Cost*: live minutes priced with the account's ``Pricing`` (``awaknow.pricing``: included
  minutes of a calendar month at the minute price, the rest at the overage price); mock
  minutes cost nothing. A part of a month (a user, a persona) costs its live seconds times
  the whole account's average price per live second in that month.
- *Usage against the plan* is per calendar month, like the limit itself: every billed minute
  of the month counts, whatever its mode, persona or session type.

Both tables carry every filter column (``tavus_usage`` copies them from the session when it
bills), so minutes never need a join to ``sessions``.

Rollups. Scanning ten million sessions for every chart is too slow for the analytics page, so
once ``refresh_rollups`` has run (store migration 5 holds its tables), settled days are read
from two small daily rollups (sessions by day, filter dimensions and how they ended; billed
sessions by day, dimensions and exact billed seconds, which keeps sums, the p90 and any
histogram exact) and only the days from ``rollup_state.covered_until`` on are read raw.
``refresh_rollups`` recomputes the days that may still change and moves that watermark;
nothing on the write path has to know about rollups, and a session that ends after a refresh
is counted at once (its day is past the watermark). A filter on users always reads raw rows
(the daily rollups have no user). Per-user figures (``minutes_per_user``, usage against the
plan) read a third rollup, billed seconds per user and month (migration 6), for the whole
months inside their date range, when nothing but dates narrows them; it also holds the live
seconds (migration 7) that price the per-user costs. Engagement reads three more (migration
10): sessions per user and day (active users, cohorts), funnel steps and transcript turns and
words per day and dimensions, under the same watermark.
"""

from awaknow.analytics.costs import (
    FORECAST_METHOD,
    Spend,
    cost_per_persona,
    cost_per_plan,
    cost_per_session_type,
    cost_per_user,
    margin_per_plan,
    month_spend,
    spend_vs_budget,
    users_costing_more,
)
from awaknow.analytics.engagement import (
    ACTIVE_GRAINS,
    COMPARE_BY,
    FUNNEL_STEPS,
    active_users,
    new_vs_returning,
    retention_cohorts,
    session_funnel,
    sessions_per_user,
    transcript_engagement,
)
from awaknow.analytics.filters import (
    DEFAULT_BIN_MINUTES,
    DEFAULT_TOP_USERS,
    DEFAULT_USER_MATCHES,
    ERROR_SHUTDOWN_GROUPS,
    GRAINS,
    NO_FILTERS,
    NOT_REPORTED,
    Filters,
)
from awaknow.analytics.limits import (
    AMBER_ABOVE,
    BANDS,
    RED_ABOVE,
    RUNNING_LOW_MINUTES,
    monthly_usage,
    parse_month,
    usage_band,
    usage_vs_limit,
    users_overview,
)
from awaknow.analytics.ratings import (
    LOWEST_RATED_SHOWN,
    RATINGS_BY,
    lowest_rated,
    rating_summary,
    rating_vs_duration,
    ratings_by,
)
from awaknow.analytics.rollups import SETTLE_DAYS, refresh_rollups
from awaknow.analytics.tables import sessions_table
from awaknow.analytics.usage import (
    Kpis,
    date_bounds,
    duration_distribution,
    failures,
    filter_options,
    find_users,
    kpis,
    minutes_over_time,
    minutes_per_persona,
    minutes_per_session_type,
    minutes_per_user,
    outcomes,
    sessions_per_day_by_type,
    shutdown_reasons,
)

__all__ = [
    "ACTIVE_GRAINS",
    "AMBER_ABOVE",
    "BANDS",
    "COMPARE_BY",
    "DEFAULT_BIN_MINUTES",
    "DEFAULT_TOP_USERS",
    "DEFAULT_USER_MATCHES",
    "ERROR_SHUTDOWN_GROUPS",
    "FORECAST_METHOD",
    "FUNNEL_STEPS",
    "GRAINS",
    "LOWEST_RATED_SHOWN",
    "NOT_REPORTED",
    "NO_FILTERS",
    "RATINGS_BY",
    "RED_ABOVE",
    "RUNNING_LOW_MINUTES",
    "SETTLE_DAYS",
    "Filters",
    "Kpis",
    "Spend",
    "active_users",
    "cost_per_persona",
    "cost_per_plan",
    "cost_per_session_type",
    "cost_per_user",
    "date_bounds",
    "duration_distribution",
    "failures",
    "filter_options",
    "find_users",
    "kpis",
    "lowest_rated",
    "margin_per_plan",
    "minutes_over_time",
    "minutes_per_persona",
    "minutes_per_session_type",
    "minutes_per_user",
    "month_spend",
    "monthly_usage",
    "new_vs_returning",
    "outcomes",
    "parse_month",
    "rating_summary",
    "rating_vs_duration",
    "ratings_by",
    "refresh_rollups",
    "retention_cohorts",
    "session_funnel",
    "sessions_per_day_by_type",
    "sessions_per_user",
    "sessions_table",
    "shutdown_reasons",
    "spend_vs_budget",
    "transcript_engagement",
    "usage_band",
    "usage_vs_limit",
    "users_costing_more",
    "users_overview",
]
