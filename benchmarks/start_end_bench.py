"""Start + end back to back, live against the local Tavus server: ours against a naive client.

    .venv/bin/python benchmarks/start_end_bench.py --sessions 100000
    .venv/bin/python benchmarks/start_end_bench.py --sessions 10000000 --db /tmp/10m.duckdb

The local Tavus server (``devtools.fake_tavus``) runs in its own process on a free loopback
port. On a database seeded by ``seed_demo`` (reused with ``--db`` when it holds N sessions),
one user on the roomiest plan starts a session and ends it, ``--cycles`` times back to back:

- **ours**: ``AwakNowService.start_session`` then ``end_session``, live, with everything they
  do (limits, the one-active-session slot, billing once, the post-end event fetch); the cycles
  do not wait for deferred work, which is waited for once at the end;
- **naive client**: the same two Tavus calls (create, end) and nothing
  stored: a new connection per call (``http.client``), as a script that knows nothing of
  pooling would do;
- **HTTP floor**: the same two calls on one pooled ``httpx.Client``: the wire alone.

Medians after ``--warmup`` cycles, in ms. The user and its rows are deleted afterwards, so a
kept ``--db`` still holds N sessions.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from analytics_bench import MIN_USERS, SESSIONS_PER_USER, _ensure_seeded  # noqa: E402

from awaknow import accounts, events  # noqa: E402
from awaknow.config import load_settings  # noqa: E402
from awaknow.service import AwakNowService  # noqa: E402
from awaknow.store import Store  # noqa: E402

KEY = "tk_bench_0123456789abcdef"
USER = "bench_start_end"
PLAN = "awaknow_pro"
CREATE_BODY = {
    "persona_id": "p7e13c73f41f",
    "replica_id": "r4317e64d25a",
    "conversation_name": "bench",
    "properties": {"max_call_duration": 300},
}


def _serve_fake() -> tuple[subprocess.Popen[str], str]:
    fake = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devtools.fake_tavus",
            "--port",
            "0",
            "--api-key",
            KEY,
            "--max-concurrent",
            "100000",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert fake.stdout is not None
    line = fake.stdout.readline()  # "fake Tavus listening on http://127.0.0.1:PORT"
    return fake, line.rsplit(" ", 1)[-1].strip()


def _median_ms(cycle: Callable[[], None], cycles: int, warmup: int) -> float:
    timings = []
    for n in range(warmup + cycles):
        started = time.perf_counter()
        cycle()
        if n >= warmup:
            timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def _pooled_cycle(client: httpx.Client, base: str) -> Callable[[], None]:
    headers = {"x-api-key": KEY}

    def cycle() -> None:
        created = client.post(f"{base}/v2/conversations", json=CREATE_BODY, headers=headers)
        created.raise_for_status()
        conversation_id = created.json()["conversation_id"]
        ended = client.post(f"{base}/v2/conversations/{conversation_id}/end", headers=headers)
        ended.raise_for_status()

    return cycle


def _naive_cycle(base: str) -> Callable[[], None]:
    """Create and end with a new connection per call (the standard library's, no pool)."""
    address = httpx.URL(base)
    headers = {"x-api-key": KEY, "content-type": "application/json"}

    def call(path: str, body: dict | None) -> dict:
        conn = http.client.HTTPConnection(address.host, address.port, timeout=10)
        try:
            conn.request("POST", path, body=json.dumps(body or {}), headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            if answer.status >= 300:
                raise RuntimeError(f"{path}: HTTP {answer.status}")
            return json.loads(data) if data else {}
        finally:
            conn.close()

    def cycle() -> None:
        conversation_id = call("/v2/conversations", CREATE_BODY)["conversation_id"]
        call(f"/v2/conversations/{conversation_id}/end", None)

    return cycle


def _forget_user(store: Store) -> None:
    with store.transaction() as cur:
        owned = "SELECT session_id FROM sessions WHERE user_id = ?"
        for table in ("conversation_events", "transcripts", "recordings", "conversation_polls"):
            cur.execute(f"DELETE FROM {table} WHERE session_id IN ({owned})", [USER])
        for table in ("active_sessions", "tavus_usage", "sessions", "user_subscriptions", "users"):
            cur.execute(f"DELETE FROM {table} WHERE user_id = ?", [USER])


def _run(db: Path, cycles: int, warmup: int) -> None:
    fake, base = _serve_fake()
    try:
        settings = load_settings(
            environ={"TAVUS_API_KEY": KEY, "TAVUS_API_BASE_URL": base, "AWAKNOW_DB_PATH": str(db)},
            env_file="",
        )
        service = AwakNowService(settings, Store(db))
        try:
            store = service.store
            sessions = store.cursor().execute("SELECT count(*) FROM sessions").fetchone()[0]
            _forget_user(store)
            accounts.add_user(store, USER, PLAN)
            service.mode_status()  # the persona check is cached, as in the app

            def ours() -> None:
                started = service.start_session(USER, "reflect_alone")
                service.end_session(started.session_id)

            ours_ms = _median_ms(ours, cycles, warmup)
            events.wait_for_background_syncs(timeout=60)
            naive_ms = _median_ms(_naive_cycle(base), cycles, warmup)
            with httpx.Client() as pooled:
                floor_ms = _median_ms(_pooled_cycle(pooled, base), cycles, warmup)
            _forget_user(store)
        finally:
            service.close()
    finally:
        fake.terminate()
        fake.wait(10)
    print(f"start + end, back to back, live against the local Tavus server; {sessions:,} sessions")
    print(f"  ours            {ours_ms:8.1f} ms")
    print(f"  naive client    {naive_ms:8.1f} ms   (new connection per call, nothing stored)")
    print(f"  HTTP floor      {floor_ms:8.1f} ms   (pooled client, nothing stored)")
    print(f"  ours / naive    {ours_ms / naive_ms:8.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--users", type=int, help=f"default: sessions / {SESSIONS_PER_USER}")
    parser.add_argument("--db", type=Path, help="keep (or reuse) the seeded file here")
    parser.add_argument("--cycles", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    users = args.users or max(MIN_USERS, args.sessions // SESSIONS_PER_USER)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "bench.duckdb"
        _ensure_seeded(db, args.sessions, users, args.threads)
        _run(db, args.cycles, args.warmup)


if __name__ == "__main__":
    main()
