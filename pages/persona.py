"""Persona and mode: live or mock and why, where each setting came from, and what to fix."""

import streamlit as st

from awaknow import signin, ui
from awaknow.access import Permission
from awaknow.config import RECORDINGS_NOT_CONFIGURED
from awaknow.errors import AccessDeniedError
from awaknow.mode import CheckOutcome, ModeStatus, most_urgent

PROMPT_EXCERPT_CHARS = 400
VERIFIED_KEY = "persona_verified"
VERIFY_ERROR_KEY = "persona_verify_error"
OUTCOME_LOOK: dict[CheckOutcome, tuple[str, str]] = {
    "ok": (":green[:material/check_circle:]", "ok"),
    "not_checked": (":gray[:material/remove_circle_outline:]", "not checked"),
    "warning": (":orange[:material/warning:]", "warning"),
    "failed": (":orange[:material/report:]", "problem"),
}

viewer = signin.require_page(__file__)
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
    try:
        who = signin.require(Permission.SEE_SETUP)
    except AccessDeniedError as exc:
        st.session_state[VERIFY_ERROR_KEY] = ui.error_text(exc)
        return
    status = svc.mode_status(force=True)
    signin.audit_action(who, "persona_verify", svc.settings.persona_id.value, mode=status.mode)
    st.session_state[VERIFIED_KEY] = status


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
    verify_error = st.session_state.pop(VERIFY_ERROR_KEY, None)
    if verify_error:
        st.error(verify_error, icon=":material/block:")
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
    (
        "Recordings",
        f"into `s3://{settings.recording_bucket.value}` ({settings.recording_region.value})"
        if settings.recording_configured
        else "not configured: no recording is requested from Tavus",
        _source(settings.recording_bucket.source, settings.recording_bucket.name)
        if settings.recording_configured
        else "TAVUS_RECORDING_S3_BUCKET_NAME, _REGION, TAVUS_AWS_ASSUME_ROLE_ARN",
    ),
]
with st.container(border=True):
    for label, value, source in config_rows:
        c1, c2, c3 = st.columns([1.2, 2.2, 2])
        c1.markdown(f"**{label}**")
        c2.markdown(value)
        c3.caption(source)

if not settings.recording_configured:
    st.info(RECORDINGS_NOT_CONFIGURED, icon=":material/videocam_off:")

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
checks = svc.diagnose(mode)
first = most_urgent(checks)
if first is not None:
    st.markdown(f"**What applies here:** {first.name} - see below.")
else:
    st.markdown("**Everything checks out.**")
with st.container(border=True):
    for check in checks:
        icon, word = OUTCOME_LOOK[check.outcome]
        st.markdown(f"{icon} **{check.name}** · _{word}_  \n{check.detail} {check.action}".strip())
