"""``python -m awaknow``: the service from a terminal, for staff, scripts and CI.

Every expected failure ends with exit status 1 (2 for a malformed command line) and exactly
one line on stderr; a traceback here would be a bug.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any, NoReturn

from awaknow import accounts, analytics, feedback
from awaknow.analytics.limits import MAX_YEAR, MIN_YEAR
from awaknow.errors import AwakNowError, ValidationError, shorten
from awaknow.logs import configure_logging
from awaknow.service import AwakNowService, open_service
from awaknow.sessions import SESSION_TYPES
from awaknow.store import utcnow

# argparse quotes the offending value whole ('invalid choice: ...'); long ones are cut.
_LONG_QUOTED = re.compile(r"'([^']{40,})'")


class _Parser(argparse.ArgumentParser):
    """argparse prints usage plus an error; one line is what the rest of the CLI promises."""

    def error(self, message: str) -> NoReturn:
        message = _LONG_QUOTED.sub(lambda m: shorten(m.group(1)), message)
        self.exit(2, f"{self.prog}: {' '.join(message.split())} (see --help)\n")


def _emit(data: Any, as_json: bool, text: str | Callable[[], str]) -> None:
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    else:
        print(text() if callable(text) else text)


def _table(rows: Sequence[Mapping[Any, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _cmd_init(service: AwakNowService, args: argparse.Namespace) -> None:
    version = service.store.schema_version()
    print(f"database ready at {service.store.path} (schema version {version})")


def _cmd_users_add(service: AwakNowService, args: argparse.Namespace) -> None:
    accounts.add_user(service.store, args.user_id, args.plan, args.name)
    print(f"added {args.user_id} on {args.plan}")


def _cmd_users_set_plan(service: AwakNowService, args: argparse.Namespace) -> None:
    accounts.set_plan(service.store, args.user_id, args.plan)
    print(f"{args.user_id} is now on {args.plan}")


def _cmd_users_list(service: AwakNowService, args: argparse.Namespace) -> None:
    frame = analytics.users_overview(service.store, utcnow().date())
    rows = frame.to_dict(orient="records")
    columns = ["user_id", "display_name", "plan_id", "minutes_used", "minutes_limit", "sessions"]
    _emit(rows, args.json, lambda: _table(rows, columns))


def _cmd_status(service: AwakNowService, args: argparse.Namespace) -> None:
    status = service.status(force=args.verify).to_json()
    _emit(status, args.json, lambda: "\n".join(f"{k}: {v}" for k, v in status.items()))


def _cmd_verify_persona(service: AwakNowService, args: argparse.Namespace) -> None:
    if not service.settings.api_key_configured:
        raise ValidationError(
            "No Tavus API key configured (TAVUS_API_KEY or VITE_TAVUS_API_KEY): "
            "nothing to verify, the app runs in mock mode"
        )
    mode = service.mode_status(force=True)
    if mode.error is not None:
        raise mode.error
    persona = mode.persona or {}
    data = {
        "persona_id": persona.get("persona_id"),
        "persona_name": persona.get("persona_name"),
        "default_replica_id": persona.get("default_replica_id"),
        "verified": True,
    }
    _emit(data, args.json, lambda: "\n".join(f"{k}: {v}" for k, v in data.items()))


def _cmd_start(service: AwakNowService, args: argparse.Namespace) -> None:
    started = service.start_session(args.user, args.type, args.context)
    data = {
        key: getattr(started, key)
        for key in (
            "session_id",
            "conversation_id",
            "conversation_name",
            "conversation_url",
            "mode",
            "status",
            "max_call_duration",
        )
    }
    if started.mode == "mock":
        data["mode_reason"] = started.mode_reason
    _emit(data, args.json, lambda: "\n".join(f"{k}: {v}" for k, v in data.items()))


def _cmd_end(service: AwakNowService, args: argparse.Namespace) -> None:
    ended = service.end_session(args.session_id, end_source="cli")
    data = asdict(ended)
    text = (
        f"session {ended.session_id} {ended.status}: {ended.seconds_used} s "
        f"({ended.minutes_used:.2f} min)" + ("" if ended.newly_billed else ", already billed")
    )
    _emit(data, args.json, text)


def _cmd_sessions(service: AwakNowService, args: argparse.Namespace) -> None:
    filters = analytics.Filters(user_ids=(args.user,) if args.user else ())
    # "unknown" too: a create Tavus did not answer may be billing until it is reconciled.
    status = ("active", "starting", "unknown") if args.active else ()
    frame = analytics.sessions_table(service.store, filters, status=status, limit=args.limit)
    rows = frame.to_dict(orient="records")
    columns = [
        "session_id",
        "user_id",
        "session_type",
        "mode",
        "status",
        "created_at",
        "minutes",
        "conversation_id",
    ]
    _emit(rows, args.json, lambda: _table(rows, columns))


def _cmd_usage(service: AwakNowService, args: argparse.Namespace) -> None:
    frame = analytics.monthly_usage(service.store, args.month)
    if args.csv:
        frame.to_csv(sys.stdout, index=False, quoting=csv.QUOTE_MINIMAL)
        return
    rows = frame.to_dict(orient="records")
    columns = ["user_id", "plan_id", "minutes_used", "minutes_limit", "sessions"]
    _emit(rows, args.json, lambda: _table(rows, columns))


def _cmd_reap(service: AwakNowService, args: argparse.Namespace) -> None:
    ended = [asdict(e) for e in service.reap()]
    _emit(ended, args.json, lambda: f"ended {len(ended)} stale session(s)")


def _cmd_feedback(service: AwakNowService, args: argparse.Namespace) -> None:
    rating = feedback.rate_session(
        service.store, args.session_id, args.rating, args.note, rated_by="cli"
    )
    data = {"session_id": rating.session_id, "rating": rating.rating, "rated_by": "cli"}
    _emit(data, args.json, f"session {rating.session_id} rated {rating.rating} of 5")


def _month(value: str) -> str:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
        raise argparse.ArgumentTypeError(f"month must look like 2026-11, not {shorten(value)}")
    if not MIN_YEAR <= int(value[:4]) <= MAX_YEAR:
        raise argparse.ArgumentTypeError(
            f"month {shorten(value)} is out of range: use {MIN_YEAR}-01 to {MAX_YEAR}-12"
        )
    return value


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of at least 1, not {shorten(value)}"
        )
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m awaknow", description=__doc__)
    parser.add_argument(
        "--db", help="DuckDB file (default: AWAKNOW_DB_PATH or data/awaknow.duckdb)"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("init", help="create or migrate the database").set_defaults(run=_cmd_init)

    users = sub.add_parser("users", help="add, list and re-plan users")
    users_sub = users.add_subparsers(dest="users_command", required=True, parser_class=_Parser)
    p = users_sub.add_parser("add", help="add a user on a plan")
    p.add_argument("user_id")
    p.add_argument("--plan", required=True)
    p.add_argument("--name")
    p.set_defaults(run=_cmd_users_add)
    p = users_sub.add_parser("set-plan", help="move a user to another plan")
    p.add_argument("user_id")
    p.add_argument("--plan", required=True)
    p.set_defaults(run=_cmd_users_set_plan)
    p = users_sub.add_parser("list", help="users with this month's usage")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_cmd_users_list)

    p = sub.add_parser("status", help="live or mock, and why")
    p.add_argument("--json", action="store_true")
    p.add_argument("--verify", action="store_true", help="verify the persona again now")
    p.set_defaults(run=_cmd_status)

    p = sub.add_parser("verify-persona", help="check the persona with Tavus now")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_cmd_verify_persona)

    p = sub.add_parser("start", help="start a session")
    p.add_argument("--user", required=True)
    p.add_argument("--type", required=True, choices=SESSION_TYPES)
    p.add_argument("--context", help="conversational_context sent to Tavus")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_cmd_start)

    p = sub.add_parser("end", help="end a session and bill it")
    p.add_argument("session_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_cmd_end)

    p = sub.add_parser("sessions", help="list sessions, newest first")
    p.add_argument("--user")
    p.add_argument("--active", action="store_true")
    p.add_argument("--limit", type=_positive, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_cmd_sessions)

    p = sub.add_parser("usage", help="minutes per user for a month")
    p.add_argument("--month", type=_month, default=utcnow().strftime("%Y-%m"))
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true")
    p.set_defaults(run=_cmd_usage)

    p = sub.add_parser("feedback", help="rate an ended session (1 to 5), or change its rating")
    p.add_argument("session_id")
    p.add_argument("--rating", required=True, type=int, help="1 (bad) to 5 (very good)")
    p.add_argument("--note", help=f"a short note, at most {feedback.MAX_NOTE_CHARS} characters")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_cmd_feedback)

    p = sub.add_parser("reap", help="end sessions past their maximum duration")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_cmd_reap)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        service = open_service(args.db)
    except AwakNowError as exc:
        print(f"awaknow: {exc}", file=sys.stderr)
        return 1
    if service.settings.log_level.source == "default":
        # A command's outcome is its one line (or its output); warnings logged on the way
        # (a failed reconcile before the error it explains) would make it two.
        configure_logging("ERROR")
    try:
        args.run(service, args)
    except AwakNowError as exc:
        print(f"awaknow: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        service.close()
    return 0
