"""Persona and mode: live or mock and why, where each setting came from, and what to fix."""

import streamlit as st

from awaknow import ui
from awaknow.errors import (
    TavusAuthError,
    TavusCreditsError,
    TavusError,
    TavusNotFoundError,
    TavusServerError,
    TavusUnreachableError,
)
from awaknow.service import ModeStatus

PROMPT_EXCERPT_CHARS = 400
VERIFIED_KEY = "persona_verified"

st.title("Persona and mode")

svc, config_error = ui.service_or_error()
if svc is None:
    assert config_error is not None
    st.badge("UNAVAILABLE", icon=":material/block:", color="red")
    ui.show_error(config_error)
    st.markdown(
        "The settings could not be read, so no session can start. Fix the variable named "
        "above in the environment or in `.env`, then reload this page."
    )
    st.stop()


def _verify() -> None:
    # A callback runs before the page (and the sidebar badge) is drawn again.
    st.session_state[VERIFIED_KEY] = svc.mode_status(force=True)


status = svc.status()
mode: ModeStatus = st.session_state.pop(VERIFIED_KEY, None) or svc.mode_status()
settings = svc.settings

with st.container(border=True):
    head, button = st.columns([4, 1], vertical_alignment="center")
    with head:
        ui.mode_badge(mode)
    button.button(
        "Verify now",
        icon=":material/refresh:",
        on_click=_verify,
        key="verify_now",
        width="stretch",
        help="Ask Tavus for the persona again, bypassing the cache",
    )
    if mode.checked_at is not None:
        st.caption(f"Persona last checked with Tavus at {ui.fmt_time(mode.checked_at)}")


def _source(source: str, variable: str | None) -> str:
    if source == "default":
        return "built-in default"
    return f"{source} ({variable})" if variable else source


st.subheader("Configuration", anchor=False)
key_line = (
    f"yes, from {_source(settings.api_key.source, settings.api_key.name)}"
    if settings.api_key_configured
    else (
        f"no: {settings.api_key.name} in {settings.api_key.source} is a placeholder"
        if settings.api_key.name
        else "no"
    )
)
config_rows = [
    (
        "Persona id",
        f"`{status.persona_id}`",
        _source(status.persona_source, status.persona_variable),
    ),
    (
        "Replica id",
        f"`{status.replica_id}`",
        _source(status.replica_source, status.replica_variable),
    ),
    ("API key configured", key_line, "the key itself is never shown"),
    (
        "API base URL",
        f"`{status.api_base_url}`",
        _source(settings.api_base_url.source, settings.api_base_url.name),
    ),
    (
        "Fallback",
        "strict: errors are shown, no mock"
        if status.strict
        else "mock: a failure falls back to a visible mock",
        _source(settings.fallback.source, settings.fallback.name),
    ),
    (
        "Callback URL",
        "configured"
        if status.callback_url_configured
        else "not configured: Tavus events arrive only by polling",
        "AWAKNOW_PUBLIC_URL + AWAKNOW_CALLBACK_SECRET",
    ),
]
with st.container(border=True):
    for label, value, source in config_rows:
        c1, c2, c3 = st.columns([1.2, 2.2, 2])
        c1.markdown(f"**{label}**")
        c2.markdown(value)
        c3.caption(source)

st.subheader("Persona details", anchor=False)
persona = mode.persona or {}
if persona:
    with st.container(border=True):
        if persona.get("mock"):
            st.caption(
                ":orange-badge[MOCK] These details come from the mock backend: no Tavus call "
                "was made."
            )
        d1, d2 = st.columns(2)
        d1.markdown(f"**Name**  \n{persona.get('persona_name') or '-'}")
        d2.markdown(f"**Default replica**  \n`{persona.get('default_replica_id') or '-'}`")
        prompt = str(persona.get("system_prompt") or "")
        excerpt = prompt[:PROMPT_EXCERPT_CHARS] + (
            "..." if len(prompt) > PROMPT_EXCERPT_CHARS else ""
        )
        st.markdown("**System prompt (excerpt)**")
        st.text(excerpt or "-")
        layers = persona.get("layers") or {}
        if layers:
            st.markdown("**Layers**")
            st.json(layers, expanded=2)
else:
    st.info(
        "No persona details: the persona could not be read from Tavus (see the "
        "troubleshooting list below).",
        icon=":material/help:",
    )

st.subheader("Troubleshooting", anchor=False)
error = mode.error
has_key = settings.api_key_configured
checks: list[tuple[str, bool | None, str]] = []
checks.append(
    (
        "API key configured",
        has_key,
        "A key is set."
        if has_key
        else (
            f"{settings.api_key.name} holds a placeholder value: put the real key from the Tavus "
            "dashboard in the environment or .env."
            if settings.api_key.name
            else "Set TAVUS_API_KEY (or VITE_TAVUS_API_KEY) in the environment or in .env, then "
            "restart the app."
        ),
    )
)


def tavus_check(name: str, passed: bool, ok: str, problem: str) -> tuple[str, bool | None, str]:
    """A check that needs an answer from Tavus, so it is not checked without a key."""
    if not has_key:
        return name, None, "Not checked without a key."
    return name, passed, ok if passed else problem


checks.append(
    tavus_check(
        "Persona verified with Tavus",
        mode.mode == "live",
        "Tavus returned the persona.",
        f"The check failed: {ui.error_text(error) if error else mode.reason}",
    )
)
checks.append(
    tavus_check(
        "API key accepted (no 401)",
        not isinstance(error, TavusAuthError),
        "No authentication error.",
        "Tavus rejected the key (401): copy a fresh key from the Tavus dashboard, check for "
        "stray spaces or quotes, and make sure the environment does not override .env.",
    )
)
checks.append(
    tavus_check(
        "Persona and replica exist (no 404/400)",
        not isinstance(error, TavusNotFoundError),
        "No not-found error.",
        f"Tavus does not know persona {status.persona_id} for this key: check "
        f"{status.persona_variable or 'TAVUS_PERSONA_ID'} (it must belong to the same "
        "Tavus account as the key).",
    )
)
checks.append(
    tavus_check(
        "Tavus reachable",
        not isinstance(error, TavusUnreachableError | TavusServerError),
        "Tavus answered.",
        f"No good answer from {status.api_base_url}: check the network, a proxy or "
        "TAVUS_API_BASE_URL, and Tavus's status page; then press Verify now.",
    )
)
checks.append(
    tavus_check(
        "Conversational credits left",
        not isinstance(error, TavusCreditsError),
        "No credit error (Tavus reports this only when a conversation is created).",
        "Tavus says the account is out of credits (402): top up or upgrade the Tavus plan.",
    )
)
other = isinstance(error, TavusError) and not isinstance(
    error,
    TavusAuthError
    | TavusNotFoundError
    | TavusUnreachableError
    | TavusServerError
    | TavusCreditsError,
)
if other:
    checks.append(("Other Tavus error", False, ui.error_text(error)))
checks.append(
    (
        "Live mode active (mock not forced)",
        status.mode == "live",
        "Sessions are live calls."
        if status.mode == "live"
        else "No session can start: the persona check failed and AWAKNOW_FALLBACK=strict "
        "forbids the mock; fix the problem above, then press Verify now."
        if status.mode == "unavailable"
        else (
            "Every session is a mock because no key is configured: set the key to go live."
            if not has_key
            else "A key is set but sessions fall back to the mock because of the problem above; "
            "fix it, or set AWAKNOW_FALLBACK=strict so such errors stop sessions instead of "
            "being masked by the mock."
        ),
    )
)

problems = [name for name, ok, _ in checks if ok is False]
if problems:
    st.markdown(f"**What applies here:** {problems[0]} - see below.")
else:
    st.markdown("**Everything checks out.**")
with st.container(border=True):
    for name, ok, detail in checks:
        icon = (
            ":green[:material/check_circle:]"
            if ok
            else ":gray[:material/remove_circle_outline:]"
            if ok is None
            else ":orange[:material/report:]"
        )
        word = "ok" if ok else "not checked" if ok is None else "problem"
        st.markdown(f"{icon} **{name}** · _{word}_  \n{detail}")
