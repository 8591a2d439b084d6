"""``python -m awaknow`` as people and scripts use it: exit codes and one-line errors."""

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pytest

from awaknow import accounts
from awaknow.store import Store
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


# --- bad input, run as processes: one stderr line, no traceback, nothing written ----------

EVERY_COMMAND: tuple[tuple[str, ...], ...] = (
    ("init",),
    ("users", "add", "zed", "--plan", "awaknow_free"),
    ("users", "set-plan", "ana", "--plan", "awaknow_pro"),
    ("users", "list"),
    ("status",),
    ("status", "--verify"),
    ("verify-persona",),
    ("start", "--user", "ana", "--type", "reflect_alone"),
    ("end", "no-such-session"),
    ("sessions",),
    ("usage",),
    ("reap",),
)
LONG_ID = "u" * 10_000


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated database with user ana, built once; tests copy it."""
    path = tmp_path_factory.mktemp("template") / "awaknow.duckdb"
    store = Store(path)
    try:
        accounts.add_user(store, "ana", "awaknow_free")
    finally:
        store.close()
    return path


def _copy_database(template: Path, path: Path, *, schema_version: int | None = None) -> Path:
    """A copy of the template (with a schema version from the future, if asked)."""
    shutil.copyfile(template, path)
    if schema_version is not None:
        with duckdb.connect(str(path)) as conn:
            conn.execute(
                "INSERT INTO schema_version (version, description, applied_at) "
                "VALUES (?, 'from a newer AwakNow', now())",
                [schema_version],
            )
    return path


def _fingerprint(paths: list[Path]) -> dict[Path, tuple[bytes, int] | None]:
    """Bytes and mtime of each file (None if absent): 'nothing written' made checkable."""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) if p.exists() else None for p in paths}


def _bad_environment(
    kind: str, tmp_path: Path, template: Path
) -> tuple[dict[str, str], list[Path], str]:
    """(environment, files that must not change, words the error must contain) per bad input."""
    good = tmp_path / "good.duckdb"
    if kind == "db_under_a_file":
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("I am a file\n")
        return {"AWAKNOW_DB_PATH": str(blocker / "awaknow.duckdb")}, [blocker], "is a file"
    if kind == "db_under_proc":
        return {"AWAKNOW_DB_PATH": "/proc/awaknow-test/awaknow.duckdb"}, [], "/proc/awaknow-test"
    if kind == "binary_env_file":
        env_file = tmp_path / "binary.env"
        env_file.write_bytes(bytes([0x9E, 0x00, 0xFF]) + bytes(range(256)))
        _copy_database(template, good)
        env = {"AWAKNOW_DB_PATH": str(good), "AWAKNOW_ENV_FILE": str(env_file)}
        return env, [good, env_file], "AWAKNOW_ENV_FILE"
    if kind == "sqlite_database":
        sqlite = tmp_path / "app.db"
        with contextlib.closing(sqlite3.connect(sqlite)) as conn:
            conn.execute("CREATE TABLE t (x INTEGER)")
            conn.commit()
        return {"AWAKNOW_DB_PATH": str(sqlite)}, [sqlite], "SQLite"
    if kind == "newer_schema":
        _copy_database(template, good, schema_version=99)
        return {"AWAKNOW_DB_PATH": str(good)}, [good], "schema version 99"
    if kind == "bad_base_url":
        _copy_database(template, good)
        env = {
            "AWAKNOW_DB_PATH": str(good),
            "TAVUS_API_KEY": KEY,
            "TAVUS_API_BASE_URL": "http://[::1",
        }
        return env, [good], "TAVUS_API_BASE_URL"
    if kind == "bad_public_url":
        _copy_database(template, good)
        env = {
            "AWAKNOW_DB_PATH": str(good),
            "AWAKNOW_PUBLIC_URL": "https://example.com:99999",
            "AWAKNOW_CALLBACK_SECRET": "s" * 32,
        }
        return env, [good], "AWAKNOW_PUBLIC_URL"
    raise AssertionError(kind)


def _run(env: dict[str, str], args: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "awaknow", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "kind",
    [
        "db_under_a_file",
        "db_under_proc",
        "binary_env_file",
        "sqlite_database",
        "newer_schema",
        "bad_base_url",
        "bad_public_url",
    ],
)
def test_every_command_refuses_a_bad_environment_in_one_line(
    kind: str, tmp_path: Path, template_db: Path
) -> None:
    def refused(index: int) -> tuple[list[str], str]:
        """Run one command in its own folder (DuckDB allows one process per file)."""
        folder = tmp_path / f"command{index}"
        folder.mkdir()
        extra, watched, words = _bad_environment(kind, folder, template_db)
        before = _fingerprint(watched)
        files_before = sorted(p.name for p in folder.iterdir())
        args = EVERY_COMMAND[index]
        result = _run(Cli(folder / "unused.duckdb", extra).env, args)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert _fingerprint(watched) == before, (args, "a refused command wrote to a file")
        assert sorted(p.name for p in folder.iterdir()) == files_before, args
        return result.stderr.strip().splitlines(), words

    with ThreadPoolExecutor(max_workers=3) as pool:
        outcomes = list(pool.map(refused, range(len(EVERY_COMMAND))))
    for args, (lines, words) in zip(EVERY_COMMAND, outcomes, strict=True):
        assert len(lines) == 1, (args, lines)
        assert "Traceback" not in lines[0] and words in lines[0], (args, lines)
        assert len(lines[0]) < 400, (args, lines[0])
    assert not Path("/proc/awaknow-test").exists()


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("usage", "--month", "0000-01"), 2, "out of range"),
        (("usage", "--month", "9999-12"), 2, "out of range"),
        (("usage", "--month", "2026-" + "1" * 5000), 2, "(5005 chars)"),
        (("users", "add", LONG_ID, "--plan", "awaknow_free"), 1, "(10000 chars)"),
        (("users", "add", "zed", "--plan", LONG_ID), 1, "(10000 chars)"),
        (("users", "set-plan", LONG_ID, "--plan", "awaknow_pro"), 1, "(10000 chars)"),
        (("start", "--user", LONG_ID, "--type", "reflect_alone"), 1, "(10000 chars)"),
        (("start", "--user", "ana", "--type", LONG_ID), 2, "(10000 chars)"),
        (("end", LONG_ID), 1, "(10000 chars)"),
        (("sessions", "--limit", "9" * 5000), 2, "(5000 chars)"),
    ],
)
def test_bad_arguments_are_one_short_line_and_write_nothing(
    args: tuple[str, ...], code: int, words: str, tmp_path: Path, template_db: Path
) -> None:
    db = _copy_database(template_db, tmp_path / "cli.duckdb")
    before = _fingerprint([db])
    result = _run(Cli(db).env, args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert words in lines[0] and len(lines[0]) < 400, lines[0]
    assert _fingerprint([db]) == before
