"""Issue 8: no paid conversation left running, no End that lies, bad input refused in one line.

The process-level bad-input matrix is in test_cli.py; these are the same rules one layer down.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import duckdb
import pytest

from awaknow.analytics.limits import parse_month
from awaknow.config import load_settings
from awaknow.errors import ConfigError, DatabaseFileError, ValidationError, shorten
from awaknow.store import SCHEMA_VERSION, Store

# --- case 7: bad input ----------------------------------------------------------------------


def test_shorten_keeps_short_values_and_cuts_long_ones_with_their_length() -> None:
    assert shorten("ana") == "'ana'"
    cut = shorten("x" * 10_000)
    assert cut.endswith("…' (10000 chars)") and len(cut) < 80
    assert shorten("y" * 58) == repr("y" * 58)


def test_database_under_a_regular_file_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DatabaseFileError, match="is a file, not a folder") as info:
        Store(blocker / "sub" / "db.duckdb")
    assert "\n" not in str(info.value) and blocker.read_text() == "x"


def test_database_under_proc_is_one_line() -> None:
    with pytest.raises(DatabaseFileError) as info:
        Store("/proc/awaknow-nowhere/db.duckdb")
    assert "\n" not in str(info.value) and "AWAKNOW_DB_PATH" in str(info.value)


def test_database_path_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatabaseFileError, match="is a folder"):
        Store(tmp_path)


def test_sqlite_file_is_recognised_before_duckdb_opens_it(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.commit()
    before = path.read_bytes()
    with pytest.raises(DatabaseFileError, match="SQLite file, not DuckDB") as info:
        Store(path)
    assert "\n" not in str(info.value) and "extension" not in str(info.value)
    assert path.read_bytes() == before


def test_other_files_are_not_duckdb_and_an_empty_file_is_a_new_database(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a database at all\n")
    with pytest.raises(DatabaseFileError, match="not a DuckDB file"):
        Store(text)
    empty = tmp_path / "empty.duckdb"
    empty.touch()
    store = Store(empty)
    try:
        assert store.schema_version() == SCHEMA_VERSION
    finally:
        store.close()


def test_a_newer_schema_is_refused_naming_both_versions_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    path = tmp_path / "future.duckdb"
    Store(path).close()
    with duckdb.connect(str(path)) as conn:
        conn.execute(
            "INSERT INTO schema_version (version, description, applied_at) "
            "VALUES (?, 'future', now())",
            [SCHEMA_VERSION + 3],
        )
        conn.execute("DROP TABLE rollup_state")  # a migration would recreate it
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    with pytest.raises(DatabaseFileError) as info:
        Store(path)
    message = str(info.value)
    assert f"schema version {SCHEMA_VERSION + 3}" in message and f"{SCHEMA_VERSION}" in message
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    with duckdb.connect(str(path), read_only=True) as conn:
        rows = conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        tables = {row[0] for row in rows}
    assert "rollup_state" not in tables


def test_a_failed_open_releases_the_file(tmp_path: Path) -> None:
    path = tmp_path / "future.duckdb"
    Store(path).close()
    with duckdb.connect(str(path)) as conn:
        conn.execute(
            "INSERT INTO schema_version (version, description, applied_at) "
            "VALUES (99, 'future', now())"
        )
    with pytest.raises(DatabaseFileError):
        Store(path)
    with duckdb.connect(str(path)) as conn:  # would fail with a lock error if still held
        assert conn.execute("SELECT max(version) FROM schema_version").fetchone() == (99,)


def test_close_closes_every_thread_cursor(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.duckdb")
    cur = store.cursor()
    store.close()
    with pytest.raises(duckdb.ConnectionException):
        cur.execute("SELECT 1")


def test_a_binary_env_file_is_one_config_error(tmp_path: Path) -> None:
    env_file = tmp_path / "binary.env"
    env_file.write_bytes(bytes([0x9E]) + bytes(range(256)))
    with pytest.raises(ConfigError, match="AWAKNOW_ENV_FILE") as info:
        load_settings(environ={}, env_file=env_file)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("value", ["http://[::1", "http://h:99999", "http://", "https://a b"])
@pytest.mark.parametrize("name", ["TAVUS_API_BASE_URL", "AWAKNOW_PUBLIC_URL"])
def test_urls_that_break_httpx_are_refused_naming_the_variable(name: str, value: str) -> None:
    environ = {name: value, "AWAKNOW_CALLBACK_SECRET": "s" * 32}
    with pytest.raises(ConfigError) as info:
        load_settings(environ=environ, env_file="")
    message = str(info.value)
    assert name in message and repr(value) in message and "\n" not in message


def test_long_url_values_are_shortened() -> None:
    value = "http://[" + "1" * 5000
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"TAVUS_API_BASE_URL": value}, env_file="")
    assert "(5008 chars)" in str(info.value) and len(str(info.value)) < 300


@pytest.mark.parametrize("month", ["0000-01", "9999-12", "1999-12", "3000-01"])
def test_months_outside_2000_to_2999_are_validation_errors(month: str) -> None:
    with pytest.raises(ValidationError, match="out of range"):
        parse_month(month)
    assert parse_month("2000-01").year == 2000 and parse_month("2999-12").month == 12
