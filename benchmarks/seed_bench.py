"""The demo seed at one size: ours against the same rows loaded into bare tables, in one run.

    .venv/bin/python benchmarks/seed_bench.py --sessions 1000000
    .venv/bin/python benchmarks/seed_bench.py --sessions 10000000

Each side runs in its own child process on a fresh file in ``--dir`` (deleted afterwards), and
reports its wall time and peak RSS:

- **ours**: ``devtools.seed.seed_demo`` into the migrated schema, as ``seed-demo`` runs it;
- **bare tables**: the same call after ``sessions`` and ``tavus_usage`` were recreated without
  their primary keys and every secondary index was dropped: the same generator and rows with no
  index maintenance, the floor for this schema.

Seed arguments are the benchmarks' usual ones: 90 days, ``--sessions`` / 250 users, seed 7.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from awaknow.store import Store  # noqa: E402
from devtools import seed  # noqa: E402

SESSIONS_PER_USER = 250
DAYS = 90
TODAY = date(2026, 3, 20)


def _strip_keys(store: Store) -> None:
    """Recreate the two large tables without primary keys and drop every secondary index."""
    cur = store.cursor()
    for (name,) in cur.execute("SELECT index_name FROM duckdb_indexes()").fetchall():
        cur.execute(f"DROP INDEX {name}")
    for table in ("sessions", "tavus_usage"):
        ddl = cur.execute(
            "SELECT sql FROM duckdb_tables() WHERE table_name = ?", [table]
        ).fetchone()[0]
        cur.execute(f"DROP TABLE {table}")
        cur.execute(ddl.replace(" PRIMARY KEY", ""))


def _child(side: str, db: Path, sessions: int) -> None:
    store = Store(db)
    if side == "bare":
        _strip_keys(store)
    started = time.perf_counter()
    counts = seed.seed_demo(
        store,
        users=max(3, sessions // SESSIONS_PER_USER),
        days=DAYS,
        sessions=sessions,
        today=TODAY,
    )
    store.close()
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "file_mb": db.stat().st_size / 2**20,
                "sessions": counts["sessions"],
            }
        )
    )


def _run(side: str, workdir: Path, sessions: int) -> dict:
    db = workdir / f"{side}.duckdb"
    out = subprocess.run(
        [sys.executable, __file__, "--child", side, "--db", str(db), "--sessions", str(sessions)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for leftover in workdir.glob(f"{side}.duckdb*"):
        leftover.unlink()
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, help="where the two files go (default: a temp dir)")
    parser.add_argument("--child", choices=("ours", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.db, args.sessions)
        return
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        ours = _run("ours", Path(tmp), args.sessions)
        bare = _run("bare", Path(tmp), args.sessions)
    print(f"seed-demo, {ours['sessions']:,} sessions, {DAYS} days")
    print(f"{'':24} {'seconds':>9} {'peak RSS MB':>12} {'file MB':>9}")
    for label, row in (("ours", ours), ("bare tables (floor)", bare)):
        print(
            f"{label:24} {row['seconds']:9.1f} {row['peak_rss_mb']:12,.0f} {row['file_mb']:9,.0f}"
        )
    print(f"ours / bare tables: {ours['seconds'] / bare['seconds']:.2f}x time")


if __name__ == "__main__":
    main()
