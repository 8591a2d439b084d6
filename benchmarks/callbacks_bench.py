"""Tavus callbacks accepted per second, 8 senders: ours against a bare Starlette echo.

    .venv/bin/python benchmarks/callbacks_bench.py --sessions 100000
    .venv/bin/python benchmarks/callbacks_bench.py --sessions 10000000 --db /tmp/10m.duckdb

Each server runs alone in its own process (uvicorn, one worker, on a free loopback port) and
gets the same load: ``--senders`` threads, each with its own pooled ``httpx.Client``, post
``--events`` distinct Tavus events in total (``system.replica_joined`` for ``--senders``
sessions of a bench user, each event a new timestamp) as fast as they are answered, plus every
tenth event a second time (Tavus retries):

- **ours**: the app's own routes and lifespan (``awaknow.server``: the callback route, its
  reaper and event chores) on a database seeded by ``seed_demo`` (reused with ``--db`` when it
  holds N sessions);
- **echo**: a Starlette app whose one route reads the body, parses the JSON and answers 200:
  the ceiling of the server stack on this machine.

Printed: accepted per second for both and their ratio; then, for ours, that every distinct
event is stored exactly once and processed once the queue drained (none lost, none doubled).
The bench user and its rows are deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from analytics_bench import MIN_USERS, SESSIONS_PER_USER, _ensure_seeded  # noqa: E402

from awaknow import accounts, sessions  # noqa: E402
from awaknow.config import CALLBACK_PATH  # noqa: E402
from awaknow.store import Store, utcnow  # noqa: E402

SECRET = "bench-callback-secret"
USER_PREFIX = "bench_callbacks_"
DUPLICATE_EVERY = 10


def _echo_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def echo(request: Request) -> JSONResponse:
        json.loads(await request.body())
        return JSONResponse({"stored": 1})

    return Starlette(routes=[Route(CALLBACK_PATH, echo, methods=["POST"])])


def _our_app() -> Any:
    from starlette.applications import Starlette

    from awaknow import server

    return Starlette(routes=server.routes(), lifespan=server.lifespan)


def _serve(side: str, port: int) -> None:
    import uvicorn

    app = _echo_app() if side == "echo" else _our_app()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_server(side: str, db: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWAKNOW_", "TAVUS_"))},
        "AWAKNOW_DB_PATH": str(db),
        "AWAKNOW_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "AWAKNOW_CALLBACK_SECRET": SECRET,
        "AWAKNOW_ENV_FILE": "",
    }
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", side, "--port", str(port)], env=env
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            httpx.post(f"{base}/not-a-route", timeout=1)
            return proc, base
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the {side} server did not start")


def _stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(60)


def _bench_sessions(db: Path, count: int) -> list[str]:
    """``count`` active mock sessions, one per bench user; their conversation ids."""
    store = Store(db)
    try:
        _forget_bench_rows(store)
        conversations = []
        for n in range(count):
            user = f"{USER_PREFIX}{n}"
            accounts.add_user(store, user, "awaknow_pro")
            reservation = sessions.reserve(
                store,
                user,
                "reflect_alone",
                mode="mock",
                mode_reason="callbacks benchmark",
                persona_id="p7e13c73f41f",
                replica_id="r4317e64d25a",
                context=None,
            )
            conversation_id = "c" + secrets.token_hex(8)
            sessions.mark_active(
                store,
                reservation.session_id,
                conversation={"conversation_id": conversation_id},
                mode="mock",
                mode_reason="callbacks benchmark",
                started_at=utcnow(),
            )
            conversations.append(conversation_id)
        return conversations
    finally:
        store.close()


def _forget_bench_rows(store: Store) -> None:
    pattern = USER_PREFIX + "%"
    with store.transaction() as cur:
        owned = "SELECT conversation_id FROM sessions WHERE user_id LIKE ?"
        for table in ("conversation_events", "conversation_polls"):
            cur.execute(f"DELETE FROM {table} WHERE conversation_id IN ({owned})", [pattern])
        for table in ("active_sessions", "tavus_usage", "sessions", "user_subscriptions", "users"):
            cur.execute(f"DELETE FROM {table} WHERE user_id LIKE ?", [pattern])


def _events(conversations: list[str], total: int) -> list[list[dict[str, Any]]]:
    """Per sender: its distinct events, every DUPLICATE_EVERY-th sent twice."""
    start = utcnow()
    per_sender: list[list[dict[str, Any]]] = [[] for _ in conversations]
    for n in range(total):
        sender = n % len(conversations)
        moment = start + timedelta(milliseconds=n)
        event = {
            "conversation_id": conversations[sender],
            "event_type": "system.replica_joined",
            "message_type": "system",
            "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "properties": {"replica_id": "r4317e64d25a"},
        }
        per_sender[sender].append(event)
        if n % DUPLICATE_EVERY == 0:
            per_sender[sender].append(event)
    return per_sender


def _send(base: str, per_sender: list[list[dict[str, Any]]]) -> tuple[float, int, int]:
    """(seconds, answered 2xx, other answers) with one thread and client per sender."""
    url = f"{base}{CALLBACK_PATH}?token={SECRET}"
    answered = [0] * len(per_sender)
    refused = [0] * len(per_sender)
    go = threading.Event()

    def sender(n: int) -> None:
        with httpx.Client(timeout=30) as client:
            go.wait()
            for event in per_sender[n]:
                if client.post(url, json=event).is_success:
                    answered[n] += 1
                else:
                    refused[n] += 1

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(len(per_sender))]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    go.set()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, sum(answered), sum(refused)


def _check(db: Path, conversations: list[str]) -> tuple[int, int, int]:
    """(stored rows, distinct keys, processed) of the bench events, then forget them."""
    store = Store(db)
    try:
        marks = ", ".join("?" for _ in conversations)
        row = (
            store.cursor()
            .execute(
                "SELECT count(*), count(DISTINCT event_key), count(processed_at) "
                f"FROM conversation_events WHERE conversation_id IN ({marks})",
                conversations,
            )
            .fetchone()
        )
        _forget_bench_rows(store)
        return int(row[0]), int(row[1]), int(row[2])
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--users", type=int, help=f"default: sessions / {SESSIONS_PER_USER}")
    parser.add_argument("--db", type=Path, help="keep (or reuse) the seeded file here")
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--events", type=int, default=2000, help="distinct events in all")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--serve", choices=("ours", "echo"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve, args.port)
        return
    users = args.users or max(MIN_USERS, args.sessions // SESSIONS_PER_USER)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "bench.duckdb"
        _ensure_seeded(db, args.sessions, users, args.threads)
        conversations = _bench_sessions(db, args.senders)
        load = _events(conversations, args.events)
        sent = sum(len(events) for events in load)
        results = {}
        for side in ("echo", "ours"):
            proc, base = _start_server(side, db)
            try:
                results[side] = _send(base, load)
            finally:
                _stop_server(proc)
        stored, distinct, processed = _check(db, conversations)
    print(
        f"callbacks, {args.senders} senders, {args.events:,} distinct events "
        f"({sent:,} posts with retries); {args.sessions:,} sessions"
    )
    rates = {}
    for side, (seconds, answered, refused) in results.items():
        rates[side] = answered / seconds
        print(f"  {side:5} {rates[side]:9,.0f}/s accepted  ({answered:,} 2xx, {refused:,} other)")
    print(f"  ours / echo  {rates['ours'] / rates['echo']:.1%}")
    lost = args.events - distinct
    print(
        f"  ours stored {stored:,} rows for {distinct:,} distinct events (lost {lost}, "
        f"doubled {stored - distinct}); processed {processed:,}"
    )


if __name__ == "__main__":
    main()
