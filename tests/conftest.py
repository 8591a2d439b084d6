"""Shared pytest fixtures. Each fixture says what it is for; add yours with a clear name."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from awaknow.service import close_shared_services

ROOT = Path(__file__).resolve().parent.parent

# Everything AwakNow reads from the environment. A clean test environment has none of them,
# so a developer's key, persona or .env never leaks into a test.
AWAKNOW_ENV_VARS = (
    "TAVUS_API_KEY",
    "VITE_TAVUS_API_KEY",
    "TAVUS_PERSONA_ID",
    "VITE_TAVUS_PERSONA_ID",
    "TAVUS_REPLICA_ID",
    "VITE_TAVUS_REPLICA_ID",
    "TAVUS_API_BASE_URL",
    "AWAKNOW_DB_PATH",
    "AWAKNOW_PUBLIC_URL",
    "AWAKNOW_CALLBACK_SECRET",
    "AWAKNOW_FALLBACK",
    "AWAKNOW_LOG_LEVEL",
    "AWAKNOW_ENV_FILE",
)


def clean_awaknow_env(db_path: Path | str, **extra: str) -> dict[str, str]:
    """A copy of ``os.environ`` without AwakNow's variables, on ``db_path``, with no .env."""
    env = {k: v for k, v in os.environ.items() if k not in AWAKNOW_ENV_VARS}
    env["AWAKNOW_DB_PATH"] = str(db_path)
    env["AWAKNOW_ENV_FILE"] = ""
    env.update(extra)
    return env


@pytest.fixture
def mock_mode_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Mock mode on a fresh DuckDB file in ``tmp_path``: no key, no .env, nothing inherited.

    ``shared_service()`` caches one service per Settings; the distinct database path makes
    this test's service its own, and it is closed afterwards.
    """
    for name in AWAKNOW_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    db_path = tmp_path / "awaknow.duckdb"
    monkeypatch.setenv("AWAKNOW_DB_PATH", str(db_path))
    monkeypatch.setenv("AWAKNOW_ENV_FILE", "")
    yield db_path
    close_shared_services(tmp_path)
