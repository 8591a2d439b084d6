"""Live, mock or unavailable, and why: the mode sessions start in and the checks that explain it.

The service decides the mode (``AwakNowService.mode_status``); this module holds what that
decision produces and what it means for a person: the status the CLI prints and the Persona
page shows, and the troubleshooting checks. Which failure points at which fix is decided here
once, so the page only draws the list.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from awaknow.config import Settings
from awaknow.errors import (
    AwakNowError,
    TavusAuthError,
    TavusCreditsError,
    TavusError,
    TavusForbiddenError,
    TavusNotFoundError,
    TavusServerError,
    TavusUnreachableError,
)
from awaknow.logs import error_line

ServiceMode = Literal["live", "mock", "unavailable"]
CheckOutcome = Literal["ok", "failed", "warning", "not_checked"]

VERIFY_AGAIN = (
    "then verify again (Verify now on the Persona page, or `python -m awaknow status --verify`)"
)


@dataclass(frozen=True)
class ModeStatus:
    """Live, mock or unavailable, and the sentence that explains it.

    ``unavailable``: a key is set, the persona check failed and ``AWAKNOW_FALLBACK=strict``
    forbids the mock, so no session can start until the problem is fixed.
    """

    mode: ServiceMode
    reason: str
    persona: dict | None
    error: AwakNowError | None = None
    checked_at: datetime | None = None


@dataclass(frozen=True)
class ServiceStatus:
    """What the status command and the Persona page show: the mode, and where each setting
    came from. Never the key itself, so it can be printed or exported whole."""

    mode: ServiceMode
    reason: str
    verified: bool
    strict: bool
    persona_id: str | None
    persona_source: str
    persona_variable: str | None
    replica_id: str | None
    replica_source: str
    replica_variable: str | None
    api_key_configured: bool
    api_key_source: str
    api_base_url: str | None
    callback_url_configured: bool
    db_path: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Check:
    """One line of the troubleshooting list: what was checked, how it went, what to do."""

    name: str
    outcome: CheckOutcome
    detail: str
    action: str = ""  # what a person can do about it; empty when nothing is needed


@dataclass(frozen=True)
class _ErrorCheck:
    """A check that fails when the persona check raised one of ``kinds``.

    ``problem`` and ``action`` may name ``{persona_id}``, ``{persona_variable}`` and
    ``{api_base_url}``.
    """

    name: str
    kinds: tuple[type[TavusError], ...]
    passed: str
    problem: str
    action: str


# One entry per failure kind a person can fix; any other Tavus error gets its own line.
ERROR_CHECKS = (
    _ErrorCheck(
        "API key accepted (no 401)",
        (TavusAuthError,),
        "No authentication error.",
        "Tavus rejected the key (401).",
        "Copy a fresh key from the Tavus dashboard, check for stray spaces or quotes, and make "
        "sure the environment does not override .env.",
    ),
    _ErrorCheck(
        "API key usable from this server (no 403)",
        (TavusForbiddenError,),
        "No permission error.",
        "Tavus accepted the key but refused it from this server (403): the key is usually "
        "restricted to other IP addresses.",
        "Add this server's outgoing IP to the key's allowed list in the Tavus dashboard, or "
        "use a key without an IP restriction.",
    ),
    _ErrorCheck(
        "Persona and replica exist (no 404/400)",
        (TavusNotFoundError,),
        "No not-found error.",
        "Tavus does not know persona {persona_id} for this key.",
        "Check {persona_variable} (it must belong to the same Tavus account as the key).",
    ),
    _ErrorCheck(
        "Tavus reachable",
        (TavusUnreachableError, TavusServerError),
        "Tavus answered.",
        "No good answer from {api_base_url}.",
        "Check the network, a proxy or TAVUS_API_BASE_URL, and Tavus's status page; "
        + VERIFY_AGAIN
        + ".",
    ),
    _ErrorCheck(
        "Conversational credits left",
        (TavusCreditsError,),
        "No credit error (Tavus reports this only when a conversation is created).",
        "Tavus says the account is out of credits (402).",
        "Top up or upgrade the Tavus plan.",
    ),
)
PERSONA_VERIFIED = "Persona verified with Tavus"
OTHER_TAVUS_ERROR = "Other Tavus error"
KEY_CONFIGURED = "API key configured"
LIVE_MODE = "Live mode active (mock not forced)"


def diagnose(settings: Settings, mode: ModeStatus) -> list[Check]:
    """The troubleshooting list for ``mode``, in the order a person should read it."""
    checks = [_key_check(settings)]
    if not settings.api_key_configured:
        not_checked = (PERSONA_VERIFIED, *(spec.name for spec in ERROR_CHECKS))
        checks += [Check(name, "not_checked", "Not checked without a key.") for name in not_checked]
    else:
        checks += _tavus_checks(settings, mode)
    checks.append(_mode_check(settings, mode))
    return checks


def most_urgent(checks: list[Check]) -> Check | None:
    """The check to read first: the first failure, else the first warning."""
    for outcome in ("failed", "warning"):
        for check in checks:
            if check.outcome == outcome:
                return check
    return None


def _key_check(settings: Settings) -> Check:
    if settings.api_key_configured:
        return Check(KEY_CONFIGURED, "ok", "A key is set.")
    if settings.api_key.name:  # a variable is set, to a template's placeholder
        return Check(
            KEY_CONFIGURED,
            "failed",
            f"{settings.api_key.name} holds a placeholder value.",
            "Put the real key from the Tavus dashboard in the environment or .env.",
        )
    return Check(
        KEY_CONFIGURED,
        "failed",
        "No key is set.",
        "Set TAVUS_API_KEY (or VITE_TAVUS_API_KEY) in the environment or in .env, then restart "
        "the app.",
    )


def _tavus_checks(settings: Settings, mode: ModeStatus) -> list[Check]:
    """The checks that need an answer from Tavus: which kind of failure, if any, it gave."""
    error = mode.error
    checks = [
        Check(PERSONA_VERIFIED, "ok", "Tavus returned the persona.")
        if mode.mode == "live"
        else Check(
            PERSONA_VERIFIED,
            "failed",
            f"The check failed: {error_line(error) if error else mode.reason}",
        )
    ]
    names = {
        "persona_id": settings.persona_id.value,
        "persona_variable": settings.persona_id.name or "TAVUS_PERSONA_ID",
        "api_base_url": settings.api_base_url.value,
    }
    for spec in ERROR_CHECKS:
        if isinstance(error, spec.kinds):
            checks.append(
                Check(
                    spec.name,
                    "failed",
                    spec.problem.format(**names),
                    spec.action.format(**names),
                )
            )
        else:
            checks.append(Check(spec.name, "ok", spec.passed))
    if isinstance(error, TavusError) and not any(
        isinstance(error, spec.kinds) for spec in ERROR_CHECKS
    ):
        checks.append(Check(OTHER_TAVUS_ERROR, "failed", error_line(error)))
    return checks


def _mode_check(settings: Settings, mode: ModeStatus) -> Check:
    if mode.mode == "live":
        return Check(LIVE_MODE, "ok", "Sessions are live calls.")
    if mode.mode == "unavailable":
        return Check(
            LIVE_MODE,
            "failed",
            "No session can start: the persona check failed and AWAKNOW_FALLBACK=strict "
            "forbids the mock.",
            f"Fix the problem above, {VERIFY_AGAIN}.",
        )
    if not settings.api_key_configured:  # the mock by design, until a key is set
        return Check(
            LIVE_MODE,
            "warning",
            "Every session is a mock because no key is configured.",
            "Set the key to go live.",
        )
    return Check(
        LIVE_MODE,
        "failed",
        "A key is set but sessions fall back to the mock because of the problem above.",
        "Fix it, or set AWAKNOW_FALLBACK=strict so such errors stop sessions instead of being "
        "masked by the mock.",
    )
