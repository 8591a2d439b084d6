"""Time every analytics function on a seeded database of N sessions.

    .venv/bin/python benchmarks/analytics_bench.py --sessions 1000000
    .venv/bin/python benchmarks/analytics_bench.py --sessions 10000000 --db /tmp/10m.duckdb

The design target is the whole analytics page (every chart and the headline figures for one
filter set) in about a second at ten million sessions on two cores, so DuckDB gets
``--threads`` (2) and the report adds up the page's calls. Seeding runs in a child process,
so the peak RSS reported for the queries is theirs alone. With ``--db`` the file is kept and a
later run on it skips seeding (when it already holds N sessions).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from awaknow import analytics
from awaknow.chart_registry import CHARTS, Chart
from awaknow.config import load_settings
from awaknow.store import Store
from devtools.seed import seed_demo

ROLLUP_TABLES = (
    "rollup_state",
    "rollup_sessions_daily",
    "rollup_usage_daily",
    "rollup_user_monthly",
)
SESSIONS_PER_USER = 250  # default --users: a realistic spread of sessions per user
MIN_USERS = 40
TYPICAL_DAYS = 30  # the typical filter: the last 30 days, live only, two of the plans
TYPICAL_MODES = ("live",)
TYPICAL_PLANS = ("awaknow_growth", "awaknow_pro")

BenchCall = Callable[[Store, analytics.Filters, date], Any]
PRICING = load_settings(environ={}, env_file="").pricing  # the documented example pricing


def _chart_call(chart: Chart) -> BenchCall:
    """The chart's query as the page runs it, its controls at their defaults for ``month``."""
    return lambda s, f, month: chart.query(
        s, *chart.arguments(f, chart.defaults([f"{month:%Y-%m}"]), PRICING)
    )


# What the analytics pages call for one filter set (every chart of the registry, with its
# controls at their defaults); the other pages' calls follow.
PAGE_CALLS: tuple[tuple[str, BenchCall], ...] = (
    ("filter_options", lambda s, f, month: analytics.filter_options(s)),
    ("date_bounds", lambda s, f, month: analytics.date_bounds(s)),
    ("kpis", lambda s, f, month: analytics.kpis(s, f)),
    *((chart.name, _chart_call(chart)) for chart in CHARTS),
)
OTHER_CALLS: tuple[tuple[str, BenchCall], ...] = (
    ("minutes_over_time(week)", lambda s, f, month: analytics.minutes_over_time(s, f, "week")),
    ("sessions_table", lambda s, f, month: analytics.sessions_table(s, f)),
    ("sessions_table(search)", lambda s, f, month: analytics.sessions_table(s, f, search="c0ff")),
    ("users_overview", lambda s, f, month: analytics.users_overview(s, month)),
    ("monthly_usage", lambda s, f, month: analytics.monthly_usage(s, f"{month:%Y-%m}")),
)


def _peak_rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports kilobytes


def _seed_child(db: Path, sessions: int, users: int, threads: int) -> None:
    """Seed in this (child) process; print the counts and the time taken."""
    store = Store(db)
    store.cursor().execute(f"SET threads = {int(threads)}")
    started = time.perf_counter()
    counts = seed_demo(store, sessions=sessions, users=users)
    store.close()
    print(
        f"seeded {counts['sessions']:,} sessions, {counts['users']:,} users "
        f"in {time.perf_counter() - started:.1f} s"
    )


def _ensure_seeded(db: Path, sessions: int, users: int, threads: int) -> float | None:
    """Seed ``db`` in a child process unless it already holds ``sessions`` sessions.

    Returns the child's peak RSS in MB, or None when nothing was seeded.
    """
    if db.exists():
        store = Store(db)
        existing = store.cursor().execute("SELECT count(*) FROM sessions").fetchone()[0]
        store.close()
        if existing == sessions:
            print(f"reusing {db} ({existing:,} sessions)")
            return None
        sys.exit(f"{db} holds {existing:,} sessions, not {sessions:,}: pick another --db")
    subprocess.run(
        [
            sys.executable,
            __file__,
            "--seed-only",
            "--db",
            str(db),
            "--sessions",
            str(sessions),
            "--users",
            str(users),
            "--threads",
            str(threads),
        ],
        check=True,
    )
    return _peak_rss_mb(resource.RUSAGE_CHILDREN)


def _time(call: Callable[[], Any], repeat: int) -> tuple[float, float, int]:
    """(first run ms, median of the next ``repeat`` runs ms, rows of the result)."""
    timings = []
    result: Any = None
    for _ in range(repeat + 1):
        started = time.perf_counter()
        result = call()
        timings.append((time.perf_counter() - started) * 1000)
    rows = len(result) if hasattr(result, "__len__") else 1
    return timings[0], statistics.median(timings[1:]) if repeat else timings[0], rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, required=True)
    parser.add_argument("--users", type=int, help=f"default: sessions / {SESSIONS_PER_USER}")
    parser.add_argument("--db", type=Path, help="keep (or reuse) the seeded file here")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="warm runs after the first")
    parser.add_argument("--seed-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    users = args.users or max(MIN_USERS, args.sessions // SESSIONS_PER_USER)
    with tempfile.TemporaryDirectory(prefix="awaknow-bench-") as scratch:
        db = args.db or Path(scratch) / "bench.duckdb"
        if args.seed_only:
            _seed_child(db, args.sessions, users, args.threads)
            return
        seed_rss = _ensure_seeded(db, args.sessions, users, args.threads)
        _run(db, args.threads, args.repeat, seed_rss)


def _table(store: Store, typical: analytics.Filters, month: date, repeat: int, title: str) -> None:
    """Time every call with the typical filter and with none; print one table."""
    header = (
        f"{'call':<28}{'typ first':>10}{'typ warm':>10}{'all first':>10}{'all warm':>10}{'rows':>8}"
    )
    print(f"\n{title}\n{header}\n{'-' * len(header)}")
    totals = [0.0, 0.0, 0.0, 0.0]
    for section, calls in (("page", PAGE_CALLS), ("other", OTHER_CALLS)):
        for name, call in calls:
            typ = _time(lambda c=call: c(store, typical, month), repeat)
            everything = _time(lambda c=call: c(store, analytics.NO_FILTERS, month), repeat)
            figures = (typ[0], typ[1], everything[0], everything[1])
            if section == "page":
                totals = [t + x for t, x in zip(totals, figures, strict=True)]
            print(f"{name:<28}" + "".join(f"{x:>10.1f}" for x in figures) + f"{everything[2]:>8}")
        if section == "page":
            print("-" * len(header))
            print(f"{'ANALYTICS PAGE TOTAL':<28}" + "".join(f"{x:>10.1f}" for x in totals))
            print("-" * len(header))
    print(f"peak RSS so far: {_peak_rss_mb(resource.RUSAGE_SELF):,.0f} MB")


def _install_rollups(store: Store) -> None:
    """Fill the rollup tables, timing a full and then an incremental refresh."""
    for label, full in (("full", True), ("incremental", False)):
        started = time.perf_counter()
        until = analytics.refresh_rollups(store, full=full)
        print(f"{label} rollup refresh: {(time.perf_counter() - started) * 1000:,.0f} ms")
    sizes = ", ".join(
        f"{table} {store.cursor().execute(f'SELECT count(*) FROM {table}').fetchone()[0]:,}"
        for table in ROLLUP_TABLES
        if table != "rollup_state"
    )
    print(f"rollups cover days before {until}; rows: {sizes}")


def _run(db: Path, threads: int, repeat: int, seed_rss: float | None) -> None:
    store = Store(db)
    store.cursor().execute(f"SET threads = {int(threads)}")
    for table in ROLLUP_TABLES:  # empty rollups (no watermark) make analytics read raw rows
        store.cursor().execute(f"DELETE FROM {table}")
    bounds = analytics.date_bounds(store)
    if bounds is None:
        sys.exit("the database has no sessions")
    first, last = bounds
    typical = analytics.Filters(
        start=max(first, last - timedelta(days=TYPICAL_DAYS - 1)),
        end=last,
        modes=TYPICAL_MODES,
        plan_ids=TYPICAL_PLANS,
    )
    sessions = store.cursor().execute("SELECT count(*) FROM sessions").fetchone()[0]
    size = db.stat().st_size / 2**20
    print(f"{sessions:,} sessions from {first} to {last}, {threads} threads, file {size:,.0f} MB")
    if seed_rss is not None:
        print(f"peak RSS of seeding: {seed_rss:,.0f} MB")
    print(f"typical filter: {typical.start}..{typical.end}, modes {', '.join(typical.modes)},")
    print(f"plans {', '.join(typical.plan_ids)}; 'all': no filter.")
    print(f"Times in ms: the first run, then the median of {repeat} warm runs.")
    month = last.replace(day=1)
    _table(store, typical, month, repeat, "RAW TABLES (no rollups)")
    print()
    _install_rollups(store)
    _table(store, typical, month, repeat, "WITH ROLLUPS")
    store.close()


if __name__ == "__main__":
    main()
