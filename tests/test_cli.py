"""``python -m awaknow`` as people and scripts use it: exit codes and one-line errors."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from devtools.fake_tavus import FakeTavus

ROOT = Path(__file__).resolve().parent.parent
KEY = "tk_cli_secret_0123456789"


class Cli:
    def __init__(self, db: Path, extra_env: dict[str, str] | None = None) -> None:
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TAVUS_", "VITE_TAVUS_", "AWAKNOW_"))
        }
        self.env.update({"AWAKNOW_DB_PATH": str(db), "AWAKNOW_ENV_FILE": ""})
        self.env.update(extra_env or {})

    def __call__(self, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "awaknow", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "Traceback" not in result.stderr, result.stderr
        assert result.returncode == code, (result.stdout, result.stderr)
        if code:
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        return result

    def json(self, *args: str) -> object:
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "cli.duckdb")


@pytest.fixture
def fake() -> Iterator[FakeTavus]:
    with FakeTavus(api_key=KEY) as server:
        yield server


def test_init_users_and_status_in_mock_mode(cli: Cli) -> None:
    assert "schema version" in cli("init").stdout
    cli("users", "add", "ana", "--plan", "awaknow_free", "--name", "Ana")
    cli("users", "add", "cy", "--plan", "awaknow_pro")
    cli("users", "set-plan", "ana", "--plan", "awaknow_growth")
    users = cli.json("users", "list")
    assert {u["user_id"]: u["plan_id"] for u in users} == {
        "ana": "awaknow_growth",
        "cy": "awaknow_pro",
    }
    status = cli.json("status")
    assert set(status) >= {
        "mode",
        "reason",
        "persona_id",
        "persona_source",
        "replica_id",
        "replica_source",
        "api_key_configured",
        "api_base_url",
        "db_path",
    }
    assert status["mode"] == "mock" and status["api_key_configured"] is False
    assert (status["persona_id"], status["persona_source"]) == ("p7e13c73f41f", "default")
    assert "No Tavus API key" in status["reason"]


def test_start_end_sessions_and_usage(cli: Cli) -> None:
    cli("users", "add", "cy", "--plan", "awaknow_pro")
    started = cli.json(
        "start", "--user", "cy", "--type", "resolve_together", "--context", "A quarrel about money"
    )
    assert set(started) >= {
        "session_id",
        "conversation_id",
        "conversation_name",
        "conversation_url",
        "mode",
        "status",
    }
    assert started["mode"] == "mock" and started["status"] == "active"
    active = cli.json("sessions", "--active")
    assert [s["session_id"] for s in active] == [started["session_id"]]
    err = cli("start", "--user", "cy", "--type", "reflect_alone", code=1).stderr
    assert "already has an active session" in err
    ended = cli.json("end", started["session_id"])
    assert set(ended) >= {"session_id", "status", "seconds_used", "minutes_used"}
    assert ended["status"] == "completed"
    assert cli.json("sessions", "--active") == []
    again = cli("end", started["session_id"]).stdout
    assert "already billed" in again
    usage = cli.json("usage")
    (row,) = [u for u in usage if u["user_id"] == "cy"]
    assert row["sessions"] == 1 and row["minutes_limit"] == 15000
    assert row["minutes_used"] == pytest.approx(ended["seconds_used"] / 60, abs=0.01)
    csv_text = cli("usage", "--csv").stdout
    assert csv_text.splitlines()[0].startswith("user_id,plan_id,minutes_used,minutes_limit")
    assert cli.json("reap") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("start", "--user", "ghost", "--type", "reflect_alone"), "Unknown user"),
        (("start", "--user", "ana", "--type", "resolve_together"), "not part of"),
        (("end", "no-such-session"), "Unknown session"),
        (("users", "add", "bad id!", "--plan", "awaknow_free"), "not valid"),
        (("users", "add", "ana", "--plan", "gold"), "Unknown plan"),
        (("users", "set-plan", "ghost", "--plan", "awaknow_pro"), "Unknown user"),
        (("verify-persona",), "No Tavus API key"),
    ],
)
def test_expected_failures_are_one_line(cli: Cli, args: tuple[str, ...], message: str) -> None:
    cli("users", "add", "ana", "--plan", "awaknow_free")
    assert message in cli(*args, code=1).stderr


@pytest.mark.parametrize(
    "args",
    [
        ("start", "--user", "ana", "--type", "group"),
        ("usage", "--month", "2026-13"),
        ("no-such-command",),
        (),
    ],
)
def test_malformed_command_lines_exit_2_with_one_line(cli: Cli, args: tuple[str, ...]) -> None:
    cli(*args, code=2)


def test_bad_configuration_is_one_line(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "c.duckdb", {"TAVUS_PERSONA_ID": "not-a-persona"})
    assert "TAVUS_PERSONA_ID" in cli("status", code=1).stderr


def test_locked_database_is_said_in_one_line(cli: Cli, tmp_path: Path) -> None:
    holder = duckdb.connect(str(tmp_path / "cli.duckdb"))
    try:
        assert "in use by another process" in cli("status", code=1).stderr
    finally:
        holder.close()


def test_live_mode_through_the_local_tavus_server_never_prints_the_key(
    fake: FakeTavus, tmp_path: Path
) -> None:
    cli = Cli(
        tmp_path / "live.duckdb",
        {"TAVUS_API_KEY": KEY, "TAVUS_API_BASE_URL": fake.base_url, "AWAKNOW_LOG_LEVEL": "DEBUG"},
    )
    cli("users", "add", "cy", "--plan", "awaknow_pro")
    verified = cli("verify-persona", "--json")
    assert json.loads(verified.stdout)["persona_name"]
    started = cli("start", "--user", "cy", "--type", "reflect_alone", "--json")
    session = json.loads(started.stdout)
    assert session["mode"] == "live"
    ended = cli("end", session["session_id"], "--json")
    assert fake.conversations[session["conversation_id"]]["status"] == "ended"
    status = cli("status", "--json")
    assert json.loads(status.stdout)["api_key_configured"] is True
    fake.set_fault("bad_key")
    cli.env["AWAKNOW_LOG_LEVEL"] = "WARNING"
    failed = cli("verify-persona", code=1)
    assert "401" in failed.stderr
    for result in (verified, started, ended, status, failed):
        assert KEY not in result.stdout + result.stderr
    assert "POST /v2/conversations" in started.stderr, "DEBUG logs every Tavus request"
