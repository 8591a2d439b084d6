"""The Usage analytics page against a pandas baseline, at one size, in one run.

    .venv/bin/python benchmarks/page_bench.py --sessions 100000
    .venv/bin/python benchmarks/page_bench.py --sessions 10000000 --db /tmp/10m.duckdb

Prints, for one database seeded by ``seed_demo`` (reused with ``--db`` when it holds N):

- the page's queries (headline figures, every chart of ``chart_registry.USAGE_CHARTS`` with its
  controls at their defaults, the date bounds and the filter options) with no filter, as the
  page first shows them: ours (DuckDB, rollups refreshed as the app's chores do) against a
  pandas dashboard that read the tables into memory once and classified each session's
  outcome while loading (load time printed apart), the results asserted identical, and the
  ratio baseline / ours;
- building the page's ten figures from those frames;
- the whole page run by Streamlit's AppTest on that database: the first load (a new session,
  nothing cached) and a filter change (every cache of query results cleared), medians;
- the other analytics pages (Tavus costs, Engagement, Feedback): every query they run with no
  filter, ours (rollups as the app keeps them) against the same queries on the raw tables
  (the rollups' watermark removed), results asserted identical; then each page in AppTest.

Times are medians of ``--repeat`` runs after one warm-up, in ms. DuckDB gets ``--threads``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from analytics_bench import MIN_USERS, SESSIONS_PER_USER, _ensure_seeded  # noqa: E402

from awaknow import analytics  # noqa: E402
from awaknow.chart_registry import (  # noqa: E402
    COST_CHARTS,
    ENGAGEMENT_CHARTS,
    FEEDBACK_CHARTS,
    USAGE_CHARTS,
    USAGE_TOP_N,
    Chart,
)
from awaknow.config import load_settings  # noqa: E402
from awaknow.store import Store, utcnow  # noqa: E402

PAGE = ROOT / "pages" / "analytics.py"
PRICING = load_settings(environ={}, env_file="").pricing  # the documented example pricing
OTHER_PAGES: tuple[tuple[str, tuple[Chart, ...]], ...] = (
    ("costs", COST_CHARTS),
    ("engagement", ENGAGEMENT_CHARTS),
    ("feedback", FEEDBACK_CHARTS),
)
GRAIN_DEFAULT = "day"
TOP_USERS_DEFAULT = 10


def _median_ms(call: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median wall time of ``repeat`` runs after one warm-up, and the last result."""
    result = call()
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = call()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings), result


# --- the pandas baseline: the same definitions as awaknow.analytics, over frames in memory ---


def _round2(values: Any) -> Any:
    """DuckDB's round(x, 2): halves away from zero (numpy rounds them to even)."""
    return np.sign(values) * np.floor(np.abs(values) * 100 + 0.5) / 100


def _reason_group(reasons: pd.Series) -> pd.Series:
    text = reasons.str.strip().str.lower()
    grouped = text.str.replace(r"\s+reached$", "", regex=True).str.replace(r"\s+", "_", regex=True)
    grouped = grouped.where(~text.str.startswith("internal error", na=False), "internal_error")
    return grouped.where(text.notna() & (text != ""), None)


class PandasDashboard:
    """The page's figures computed with pandas from tables read once into memory."""

    def __init__(self, store: Store) -> None:
        cur = store.cursor()
        self.sessions = cur.execute(
            "SELECT user_id, persona_id, session_type, mode, status, shutdown_reason, "
            "error_kind, created_at FROM sessions"
        ).df()
        self.usage = cur.execute(
            "SELECT user_id, usage_date, persona_id, session_type, mode, seconds_used "
            "FROM tavus_usage"
        ).df()
        self.users = cur.execute("SELECT user_id FROM users").df()
        self.subscriptions = cur.execute(
            "SELECT user_id, plan_id, status, tavus_minutes_limit FROM user_subscriptions"
        ).df()
        self.plans = cur.execute("SELECT plan_id, price_usd FROM plans").df()
        self.usage["usage_date"] = pd.to_datetime(self.usage["usage_date"]).dt.date
        group = _reason_group(self.sessions["shutdown_reason"].astype("string"))
        self.sessions["reason_group"] = group
        failed = (self.sessions["status"] == "failed") | group.isin(
            analytics.ERROR_SHUTDOWN_GROUPS
        ).fillna(False)
        completed = self.sessions["status"] == "completed"
        self.sessions["outcome"] = np.where(failed, "failure", np.where(completed, "success", None))

    def date_bounds(self) -> tuple[date, date]:
        days = self.sessions["created_at"].dt.date
        return days.min(), days.max()

    def filter_options(self) -> dict[str, list[str]]:
        plans = self.plans.sort_values(["price_usd", "plan_id"])["plan_id"]
        return {
            "personas": sorted(self.sessions["persona_id"].unique()),
            "session_types": sorted(self.sessions["session_type"].unique()),
            "modes": sorted(self.sessions["mode"].unique()),
            "plans": list(plans),
        }

    def kpis(self) -> analytics.Kpis:
        outcome = self.sessions["outcome"]
        sessions, succeeded = len(self.sessions), int((outcome == "success").sum())
        failed = int((outcome == "failure").sum())
        seconds = self.usage["seconds_used"]
        by_mode = self.usage.groupby("mode")["seconds_used"].sum()
        billed = len(seconds)
        return analytics.Kpis(
            sessions=sessions,
            succeeded=succeeded,
            failed=failed,
            in_progress=sessions - succeeded - failed,
            minutes=float(_round2(seconds.sum() / 60)),
            live_minutes=float(_round2(by_mode.get("live", 0) / 60)),
            mock_minutes=float(_round2(by_mode.get("mock", 0) / 60)),
            active_users=int(self.sessions["user_id"].nunique()),
            success_rate=succeeded / (succeeded + failed) if succeeded + failed else None,
            avg_minutes=float(_round2(seconds.sum() / billed / 60)) if billed else None,
            p90_minutes=float(_round2(seconds.quantile(0.9) / 60)) if billed else None,
        )

    def _minutes_by(self, column: str, key: pd.Series | None = None) -> pd.DataFrame:
        frame = self.usage.assign(**{column: key}) if key is not None else self.usage
        grouped = frame.groupby([column, "mode"])["seconds_used"].agg(["sum", "count"])
        return pd.DataFrame(
            {
                column: grouped.index.get_level_values(0),
                "mode": grouped.index.get_level_values(1),
                "minutes": _round2(grouped["sum"].to_numpy() / 60),
                "sessions": grouped["count"].to_numpy(),
            }
        )

    def minutes_over_time(self) -> pd.DataFrame:
        return self._minutes_by("period", self.usage["usage_date"])

    def minutes_per_persona(self) -> pd.DataFrame:
        return self._minutes_by("persona_id")

    def minutes_per_session_type(self) -> pd.DataFrame:
        return self._minutes_by("session_type")

    def sessions_per_day_by_type(self) -> pd.DataFrame:
        days = self.sessions["created_at"].dt.date.rename("day")
        counts = self.sessions.groupby([days, "session_type"]).size()
        return counts.rename("sessions").reset_index()

    def minutes_per_user(self, top_n: int) -> pd.DataFrame:
        per_user = self.usage.groupby("user_id")["seconds_used"].agg(["sum", "count"])
        per_user = per_user.reset_index().sort_values(["sum", "user_id"], ascending=[False, True])
        top = per_user.head(top_n).merge(
            self.subscriptions[["user_id", "plan_id"]], on="user_id", how="left"
        )
        top = top.sort_values(["sum", "user_id"], ascending=[False, True], kind="stable")
        return pd.DataFrame(
            {
                "user_id": top["user_id"].to_numpy(),
                "plan_id": top["plan_id"].to_numpy(),
                "minutes": _round2(top["sum"].to_numpy() / 60),
                "sessions": top["count"].to_numpy(),
            }
        )

    def usage_vs_limit(self, month: str) -> pd.DataFrame:
        first = analytics.parse_month(month)
        following = (pd.Timestamp(first) + pd.offsets.MonthBegin(1)).date()
        in_month = self.usage[
            (self.usage["usage_date"] >= first) & (self.usage["usage_date"] < following)
        ]
        used = in_month.groupby("user_id")["seconds_used"].sum()
        active = self.subscriptions[self.subscriptions["status"] == "active"]
        rows = self.users.merge(active, on="user_id", how="left")
        rows = rows[rows["plan_id"].notna()].copy()
        seconds = rows["user_id"].map(used).fillna(0).to_numpy(dtype=float)
        limit = rows["tavus_minutes_limit"].astype(float).to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            fraction = np.where(limit == 0, np.nan, seconds / (60 * limit))
        rows["minutes_used"] = _round2(seconds / 60)
        rows["minutes_limit"] = rows["tavus_minutes_limit"]
        rows["fraction_used"] = fraction
        rows["band"] = [
            analytics.usage_band(None if math.isnan(x) else x) for x in rows["fraction_used"]
        ]
        rows["running_low"] = limit * 60 - seconds < analytics.RUNNING_LOW_MINUTES * 60
        rows["nulls_first"] = rows["fraction_used"].isna()
        rows = rows.sort_values(
            ["nulls_first", "fraction_used", "user_id"], ascending=[False, False, True]
        ).head(USAGE_TOP_N)
        return rows[
            [
                "user_id",
                "plan_id",
                "minutes_used",
                "minutes_limit",
                "fraction_used",
                "band",
                "running_low",
            ]
        ]

    def outcomes(self) -> pd.DataFrame:
        counts = self.sessions["outcome"].dropna().value_counts()
        frame = counts.rename("sessions").rename_axis("outcome").reset_index()
        return frame.sort_values("outcome", ascending=False)

    def _counted(self, column: str, values: pd.Series) -> pd.DataFrame:
        counts = values.value_counts().rename("sessions").rename_axis(column).reset_index()
        return counts.sort_values(["sessions", column], ascending=[False, True])

    def failures(self) -> pd.DataFrame:
        failed = self.sessions[self.sessions["outcome"] == "failure"]
        kind = np.where(
            failed["status"] == "failed",
            failed["error_kind"].fillna("unknown error"),
            failed["reason_group"],
        )
        return self._counted("failure_kind", pd.Series(kind))

    def shutdown_reasons(self) -> pd.DataFrame:
        done = self.sessions[self.sessions["status"] == "completed"]
        reasons = done["reason_group"].astype(object).where(done["reason_group"].notna())
        return self._counted("shutdown_reason", reasons.fillna(analytics.NOT_REPORTED))

    def duration_distribution(self) -> pd.DataFrame:
        width = analytics.DEFAULT_BIN_MINUTES * 60
        buckets = np.floor(self.usage["seconds_used"].to_numpy() / width).astype(np.int64)
        counts = np.bincount(buckets) if len(buckets) else np.array([], dtype=np.int64)
        return pd.DataFrame(
            {
                "bucket": np.round(np.arange(len(counts)) * analytics.DEFAULT_BIN_MINUTES, 6),
                "sessions": counts,
            }
        )


def _plain(value: Any) -> Any:
    """One spelling per value: dates as dates, missing as None, numbers as Python numbers."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _same(name: str, ours: Any, baseline: Any) -> None:
    """Fail loudly unless ours and the baseline hold the same result."""
    if isinstance(ours, pd.DataFrame):
        expected = baseline.reset_index(drop=True)
        expected.columns = list(ours.columns)
        pd.testing.assert_frame_equal(
            ours.reset_index(drop=True).astype(object).map(_plain),
            expected.astype(object).map(_plain),
            check_dtype=False,
            check_exact=False,
            rtol=1e-9,
            obj=name,
        )
    elif ours != baseline:
        raise AssertionError(f"{name}: ours {ours!r} != baseline {baseline!r}")


def _queries(store: Store, baseline: PandasDashboard, month: str, repeat: int) -> None:
    charts = {chart.name: chart for chart in USAGE_CHARTS}
    defaults = {name: chart.defaults([month]) for name, chart in charts.items()}
    assert defaults["minutes_over_time"] == (GRAIN_DEFAULT,)
    assert defaults["minutes_per_user"] == (TOP_USERS_DEFAULT,)
    f = analytics.NO_FILTERS
    pairs: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
        ("date_bounds", lambda: analytics.date_bounds(store), baseline.date_bounds),
        ("filter_options", lambda: analytics.filter_options(store), baseline.filter_options),
        ("kpis", lambda: analytics.kpis(store, f), baseline.kpis),
    ]
    bases: dict[str, Callable[[], Any]] = {
        "minutes_over_time": baseline.minutes_over_time,
        "sessions_per_day_by_type": baseline.sessions_per_day_by_type,
        "minutes_per_user": lambda: baseline.minutes_per_user(TOP_USERS_DEFAULT),
        "minutes_per_persona": baseline.minutes_per_persona,
        "minutes_per_session_type": baseline.minutes_per_session_type,
        "usage_vs_limit": lambda: baseline.usage_vs_limit(month),
        "outcomes": baseline.outcomes,
        "shutdown_reasons": baseline.shutdown_reasons,
        "duration_distribution": baseline.duration_distribution,
        "failures": baseline.failures,
    }
    missing = set(charts) - set(bases)
    if missing:
        sys.exit(f"no pandas baseline for {', '.join(sorted(missing))}: add one")
    for name, chart in charts.items():
        values = defaults[name]
        pairs.append((name, lambda c=chart, v=values: c.query(store, f, *v), bases[name]))
    header = f"{'query':<28}{'ours':>10}{'pandas':>10}{'ratio':>8}"
    print(f"\nTHE PAGE'S QUERIES (no filter, ms)\n{header}\n{'-' * len(header)}")
    total_ours = total_base = 0.0
    for name, ours_call, base_call in pairs:
        ours_ms, ours = _median_ms(ours_call, repeat)
        base_ms, base = _median_ms(base_call, repeat)
        _same(name, ours, base)
        total_ours += ours_ms
        total_base += base_ms
        print(f"{name:<28}{ours_ms:>10.1f}{base_ms:>10.1f}{base_ms / ours_ms:>7.1f}x")
    print("-" * len(header))
    print(f"{'TOTAL (identical results)':<28}{total_ours:>10.1f}{total_base:>10.1f}", end="")
    print(f"{total_base / total_ours:>7.1f}x")


def _figures(store: Store, month: str, repeat: int) -> None:
    frames = [
        (chart, chart.query(store, analytics.NO_FILTERS, *chart.defaults([month])))
        for chart in USAGE_CHARTS
    ]

    def build() -> None:
        for chart, frame in frames:
            chart.draw(frame, chart.defaults([month])).to_dict()

    ms, _ = _median_ms(build, repeat)
    print(f"\nbuilding the page's {len(frames)} figures (and their dicts): {ms:.1f} ms")


def _page_calls(
    page: str, charts: tuple[Chart, ...], month: str, now: datetime
) -> list[tuple[str, Any]]:
    """What ``page`` queries with no filter, its controls at their defaults. The spend
    figures take ``now`` (their forecast moves with the clock), so ours and raw agree."""
    f = analytics.NO_FILTERS
    calls: list[tuple[str, Any]] = []
    for chart in charts:
        values = chart.defaults([month])
        if chart.query is analytics.spend_vs_budget:
            calls.append(
                (chart.name, lambda s, v=values: analytics.spend_vs_budget(s, f, PRICING, *v, now))
            )
        else:
            calls.append(
                (chart.name, lambda s, c=chart, v=values: c.query(s, *c.arguments(f, v, PRICING)))
            )
    if page == "costs":
        calls.append(("month_spend", lambda s: analytics.month_spend(s, PRICING, month, now)))
    if page == "feedback":
        calls.append(("rating_summary", lambda s: analytics.rating_summary(s, f)))
        calls.append(("lowest_rated", lambda s: analytics.lowest_rated(s, f)))
    return calls


def _other_pages(store: Store, month: str, repeat: int) -> None:
    """Each other page's queries: ours against the same on raw tables (no watermark)."""
    cur = store.cursor()
    now = utcnow()
    for page, charts in OTHER_PAGES:
        header = f"{'query':<28}{'ours':>10}{'raw':>10}{'ratio':>8}"
        print(f"\nTHE {page.upper()} PAGE'S QUERIES (no filter, ms)\n{header}\n{'-' * len(header)}")
        total_ours = total_raw = 0.0
        for name, call in _page_calls(page, charts, month, now):
            ours_ms, ours = _median_ms(lambda c=call: c(store), repeat)
            state = cur.execute("SELECT covered_until, refreshed_at FROM rollup_state").fetchall()
            cur.execute("DELETE FROM rollup_state")
            try:
                raw_ms, raw = _median_ms(lambda c=call: c(store), repeat)
            finally:
                cur.executemany(
                    "INSERT INTO rollup_state (covered_until, refreshed_at) VALUES (?, ?)", state
                )
            _same(name, ours, raw)
            total_ours += ours_ms
            total_raw += raw_ms
            print(f"{name:<28}{ours_ms:>10.1f}{raw_ms:>10.1f}{raw_ms / ours_ms:>7.1f}x")
        print("-" * len(header))
        print(f"{'TOTAL (identical results)':<28}{total_ours:>10.1f}{total_raw:>10.1f}", end="")
        print(f"{total_raw / total_ours:>7.1f}x")


def _page(db: Path, repeat: int, page: Path = PAGE, charts: int = len(USAGE_CHARTS)) -> None:
    """The page in AppTest: a first load, then reruns with every query cache cleared."""
    from streamlit import logger as streamlit_logger

    streamlit_logger.set_log_level(logging.ERROR)  # its "no runtime" notes outside a server
    from streamlit.testing.v1 import AppTest

    from awaknow import ui

    streamlit_logger.set_log_level(logging.ERROR)  # and for the loggers those imports made
    os.environ["AWAKNOW_DB_PATH"] = str(db)
    os.environ["AWAKNOW_ENV_FILE"] = ""
    os.environ.pop("TAVUS_API_KEY", None)
    first: list[float] = []
    cleared: list[float] = []
    for _ in range(repeat + 1):
        ui.invalidate()
        ui._titled_figure.clear()
        at = AppTest.from_file(str(page), default_timeout=600)
        started = time.perf_counter()
        at.run()
        first.append((time.perf_counter() - started) * 1000)
        if at.exception or len(at.get("plotly_chart")) != charts:
            sys.exit(f"the page did not draw its charts: {at.exception}")
        ui.invalidate()  # a filter change: no query result is cached
        started = time.perf_counter()
        at.run()
        cleared.append((time.perf_counter() - started) * 1000)
    print(f"\nTHE PAGE {page.name} (AppTest, medians of {repeat} after a warm-up)")
    print(f"first load (nothing cached):           {statistics.median(first[1:]):>8.1f} ms")
    print(f"query caches cleared (a filter change): {statistics.median(cleared[1:]):>8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, required=True)
    parser.add_argument("--users", type=int, help=f"default: sessions / {SESSIONS_PER_USER}")
    parser.add_argument("--db", type=Path, help="keep (or reuse) the seeded file here")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    users = args.users or max(MIN_USERS, args.sessions // SESSIONS_PER_USER)
    with tempfile.TemporaryDirectory(prefix="awaknow-page-bench-") as scratch:
        db = args.db or Path(scratch) / "bench.duckdb"
        _ensure_seeded(db, args.sessions, users, args.threads)
        store = Store(db)
        store.cursor().execute(f"SET threads = {int(args.threads)}")
        analytics.refresh_rollups(store, full=True)
        bounds = analytics.date_bounds(store)
        if bounds is None:
            sys.exit("the database has no sessions")
        month = f"{bounds[1]:%Y-%m}"
        started = time.perf_counter()
        baseline = PandasDashboard(store)
        loaded = (time.perf_counter() - started) * 1000
        sessions = len(baseline.sessions)
        print(f"{sessions:,} sessions, {len(baseline.users):,} users, {args.threads} threads")
        print(f"pandas baseline: tables read into memory once in {loaded:,.0f} ms (not counted)")
        _queries(store, baseline, month, args.repeat)
        _figures(store, month, args.repeat)
        del baseline
        _other_pages(store, month, args.repeat)
        store.close()
        _page(db, args.repeat)
        for page, charts in OTHER_PAGES:
            _page(db, args.repeat, ROOT / "pages" / f"{page}.py", len(charts))
        from awaknow.service import shared_service

        shared_service().store.close()


if __name__ == "__main__":
    main()
