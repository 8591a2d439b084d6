"""The troubleshooting checks: each failure kind points at its own fix, without Streamlit."""

from pathlib import Path

import pytest

from awaknow import mode as modes
from awaknow.config import Settings, load_settings
from awaknow.errors import (
    AwakNowError,
    TavusAuthError,
    TavusBadRequestError,
    TavusCreditsError,
    TavusNotFoundError,
    TavusRateLimitError,
    TavusServerError,
    TavusUnreachableError,
)
from awaknow.mode import Check, ModeStatus, diagnose, most_urgent
from awaknow.service import open_service

KEY = "tk_live_0123456789abcdef"
PERSONA = "p0000000000a"


def _settings(**environ: str) -> Settings:
    return load_settings(environ=environ, env_file="")


def _live_settings(fallback: str = "mock") -> Settings:
    return _settings(
        TAVUS_API_KEY=KEY,
        TAVUS_PERSONA_ID=PERSONA,
        TAVUS_API_BASE_URL="https://tavus.example",
        AWAKNOW_FALLBACK=fallback,
    )


def _failed(error: AwakNowError, fallback: str = "mock") -> ModeStatus:
    mode = "unavailable" if fallback == "strict" else "mock"
    return ModeStatus(mode, f"Persona verification failed: {error}", None, error)


def _by_name(checks: list[Check]) -> dict[str, Check]:
    names = [check.name for check in checks]
    assert len(names) == len(set(names)), "each check appears once"
    return {check.name: check for check in checks}


def test_no_key_checks_nothing_at_tavus_and_says_how_to_set_one() -> None:
    settings = _settings()
    checks = diagnose(settings, ModeStatus("mock", "no key", {"mock": True}))
    found = _by_name(checks)
    key = found[modes.KEY_CONFIGURED]
    assert key.outcome == "failed" and "Set TAVUS_API_KEY" in key.action
    tavus_checks = [modes.PERSONA_VERIFIED, *(spec.name for spec in modes.ERROR_CHECKS)]
    assert all(found[name].outcome == "not_checked" for name in tavus_checks)
    assert found[modes.LIVE_MODE].outcome == "warning"
    assert most_urgent(checks) == key


def test_a_placeholder_key_is_named() -> None:
    settings = _settings(VITE_TAVUS_API_KEY="your_tavus_api_key")
    key = _by_name(diagnose(settings, ModeStatus("mock", "placeholder", None)))[
        modes.KEY_CONFIGURED
    ]
    assert key.outcome == "failed" and "VITE_TAVUS_API_KEY holds a placeholder" in key.detail


def test_a_verified_persona_checks_out() -> None:
    checks = diagnose(_live_settings(), ModeStatus("live", "verified", {"persona_id": PERSONA}))
    assert {check.outcome for check in checks} == {"ok"}
    assert most_urgent(checks) is None


@pytest.mark.parametrize(
    ("error", "check_name", "problem", "action"),
    [
        (TavusAuthError("401 from Tavus"), "API key accepted (no 401)", "(401)", "fresh key"),
        (
            TavusNotFoundError("unknown persona"),
            "Persona and replica exist (no 404/400)",
            f"does not know persona {PERSONA}",
            "TAVUS_PERSONA_ID",
        ),
        (TavusUnreachableError("timed out"), "Tavus reachable", "tavus.example", "network"),
        (TavusServerError("502 from Tavus"), "Tavus reachable", "tavus.example", "status page"),
        (TavusCreditsError("402"), "Conversational credits left", "(402)", "Top up"),
        (TavusRateLimitError("429: slow down"), modes.OTHER_TAVUS_ERROR, "429: slow down", ""),
        (TavusBadRequestError("400: odd"), modes.OTHER_TAVUS_ERROR, "400: odd", ""),
    ],
    ids=["auth", "not_found", "unreachable", "server", "credits", "rate_limit", "bad_request"],
)
def test_each_failure_kind_fails_its_own_check(
    error: AwakNowError, check_name: str, problem: str, action: str
) -> None:
    checks = diagnose(_live_settings(), _failed(error))
    found = _by_name(checks)
    assert found[modes.KEY_CONFIGURED].outcome == "ok"
    assert found[modes.PERSONA_VERIFIED].outcome == "failed"
    assert str(error) in found[modes.PERSONA_VERIFIED].detail
    failed = [check.name for check in checks if check.outcome == "failed"]
    assert failed == [modes.PERSONA_VERIFIED, check_name, modes.LIVE_MODE]
    assert problem in found[check_name].detail and action in found[check_name].action
    assert "fall back to the mock" in found[modes.LIVE_MODE].detail
    assert most_urgent(checks) == found[modes.PERSONA_VERIFIED]


def test_strict_fallback_is_reported_as_unable_to_start_not_as_live() -> None:
    checks = diagnose(_live_settings("strict"), _failed(TavusAuthError("401"), "strict"))
    live = _by_name(checks)[modes.LIVE_MODE]
    assert live.outcome == "failed" and "No session can start" in live.detail


def test_the_error_text_is_one_line_without_the_key() -> None:
    error = TavusRateLimitError(f"429 for key {KEY}\nretry later")
    checks = diagnose(_live_settings(), _failed(error))
    other = _by_name(checks)[modes.OTHER_TAVUS_ERROR]
    assert "\n" not in other.detail and KEY not in other.detail and other.detail.startswith("429")


def test_the_service_diagnoses_its_own_mode(tmp_path: Path) -> None:
    svc = open_service(tmp_path / "d.duckdb", settings=_settings())
    try:
        checks = svc.diagnose()
        assert checks == diagnose(svc.settings, svc.mode_status())
        assert _by_name(checks)[modes.LIVE_MODE].outcome == "warning"
    finally:
        svc.close()
