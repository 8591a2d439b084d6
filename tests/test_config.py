"""Configuration precedence: environment, then .env, then defaults; placeholders mean no key."""

from pathlib import Path

import pytest

from awaknow.config import DEFAULT_PERSONA_ID, DEFAULT_REPLICA_ID, load_settings
from awaknow.errors import ConfigError


def _env_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / ".env"
    path.write_text(text)
    return path


def test_defaults_without_env_or_file(tmp_path: Path) -> None:
    s = load_settings(environ={}, env_file=tmp_path / "missing.env")
    assert s.api_key.value is None and not s.api_key_configured
    assert (s.persona_id.value, s.persona_id.source) == (DEFAULT_PERSONA_ID, "default")
    assert (s.replica_id.value, s.replica_id.source) == (DEFAULT_REPLICA_ID, "default")
    assert s.api_base_url.value == "https://tavusapi.com"
    assert s.db_path.value == "data/awaknow.duckdb"
    assert s.fallback.value == "mock" and not s.strict
    assert s.callback_url is None


def test_environment_beats_dotenv_and_tavus_beats_vite(tmp_path: Path) -> None:
    env_file = _env_file(
        tmp_path,
        "VITE_TAVUS_API_KEY=from-dotenv-key\nTAVUS_PERSONA_ID=pabc123\n"
        "VITE_TAVUS_REPLICA_ID=rdef456\n",
    )
    s = load_settings(
        environ={"VITE_TAVUS_PERSONA_ID": "p999999", "TAVUS_PERSONA_ID": "p111111"},
        env_file=env_file,
    )
    assert (s.persona_id.value, s.persona_id.source, s.persona_id.name) == (
        "p111111",
        "env",
        "TAVUS_PERSONA_ID",
    )
    assert (s.replica_id.value, s.replica_id.source, s.replica_id.name) == (
        "rdef456",
        ".env",
        "VITE_TAVUS_REPLICA_ID",
    )
    assert (s.api_key.source, s.api_key.name) == (".env", "VITE_TAVUS_API_KEY")
    assert s.api_key_configured


def test_env_var_of_any_name_beats_dotenv_of_preferred_name(tmp_path: Path) -> None:
    env_file = _env_file(tmp_path, "TAVUS_API_KEY=dotenv-key-1234\n")
    s = load_settings(environ={"VITE_TAVUS_API_KEY": "env-key-5678"}, env_file=env_file)
    assert s.api_key.value == "env-key-5678" and s.api_key.source == "env"


@pytest.mark.parametrize(
    "placeholder",
    ["your_tavus_api_key", "your_actual_tavus_api_key_here", "your_real_api_key_here", "  "],
)
def test_placeholder_key_counts_as_none(placeholder: str, tmp_path: Path) -> None:
    s = load_settings(environ={"TAVUS_API_KEY": placeholder}, env_file=tmp_path / "none")
    assert not s.api_key_configured


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TAVUS_PERSONA_ID", "not-a-persona"),
        ("VITE_TAVUS_PERSONA_ID", "r4317e64d25a"),
        ("TAVUS_REPLICA_ID", "p7e13c73f41f"),
        ("TAVUS_API_BASE_URL", "tavusapi.com"),
        ("AWAKNOW_FALLBACK", "sometimes"),
        ("AWAKNOW_PUBLIC_URL", "example.com"),
    ],
)
def test_malformed_values_are_config_errors_naming_the_variable(
    name: str, value: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={name: value}, env_file=tmp_path / "none")
    message = str(info.value)
    assert name in message and "\n" not in message


def test_public_url_requires_a_secret_and_builds_the_callback_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="AWAKNOW_CALLBACK_SECRET"):
        load_settings(environ={"AWAKNOW_PUBLIC_URL": "https://a.example"}, env_file="")
    s = load_settings(
        environ={"AWAKNOW_PUBLIC_URL": "https://a.example/", "AWAKNOW_CALLBACK_SECRET": "s3cr3t"},
        env_file="",
    )
    assert s.callback_url == "https://a.example/api/tavus/callback?token=s3cr3t"


def test_secrets_not_in_repr(tmp_path: Path) -> None:
    s = load_settings(
        environ={"TAVUS_API_KEY": "tk-very-secret", "AWAKNOW_CALLBACK_SECRET": "cb-very-secret"},
        env_file="",
    )
    assert "tk-very-secret" not in repr(s) and "cb-very-secret" not in repr(s)


def test_fallback_is_case_insensitive(tmp_path: Path) -> None:
    s = load_settings(environ={"AWAKNOW_FALLBACK": "STRICT"}, env_file="")
    assert s.strict


def test_relative_db_path_is_under_the_project() -> None:
    s = load_settings(environ={"AWAKNOW_DB_PATH": "data/x.duckdb"}, env_file="")
    assert s.resolved_db_path() == Path(__file__).resolve().parent.parent / "data/x.duckdb"
