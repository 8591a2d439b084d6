"""Start a session: pick a user and a type, start, talk in the embedded call, end, see the bill."""

from datetime import timedelta

import streamlit as st

from awaknow import rating_form, signin, ui
from awaknow.access import Permission
from awaknow.analytics import Filters, sessions_table
from awaknow.errors import AwakNowError
from awaknow.sessions import (
    MAX_CONTEXT_CHARS,
    SESSION_TYPES,
    TAVUS_STATUS_ERROR_KIND,
    SessionRecord,
)
from awaknow.store import utcnow

SESSION_TYPE_LABELS = {
    "reflect_alone": "Reflect alone (one person)",
    "resolve_together": "Resolve together (two people, AI mediator)",
}
USER_KEY = "start_user"
SUMMARY_KEY = "start_summary"

viewer = signin.require_page(__file__)
svc = ui.service()
st.title("Start a session")
st.caption(
    "Talk with the AwakNow companion. One session per user at a time; minutes count against "
    "the user's monthly plan from the moment the conversation is created."
)

users = ui.users_frame()
if users.empty:
    st.info(
        f"No users yet. Add one on **Plans and users**, or load demo data with `{ui.SEED_HINT}`.",
        icon=":material/person_add:",
    )
    st.page_link("pages/plans.py", label="Plans and users", icon=":material/group:")
    st.stop()

user_ids = users["user_id"].astype(str).tolist()
plan_of = dict(zip(user_ids, users["plan_id"].fillna("no plan").astype(str), strict=True))

# Reloading the page (or a new tab) keeps the user through the URL, and the active session is
# found again from the database below.
if USER_KEY not in st.session_state:
    wanted = st.query_params.get("user")
    st.session_state[USER_KEY] = wanted if wanted in user_ids else user_ids[0]
elif st.session_state[USER_KEY] not in user_ids:
    st.session_state[USER_KEY] = user_ids[0]


def _open_user(user_id: str) -> None:
    st.session_state[USER_KEY] = user_id


running = ui.query(sessions_table, Filters(), status=("starting", "active"))
others = [u for u in running["user_id"].astype(str).unique() if u != st.session_state[USER_KEY]]
if others:
    with st.container(horizontal=True, vertical_alignment="center"):
        st.caption(":material/radio_button_checked: Running now:")
        for other in others[:6]:
            st.button(
                other,
                key=f"open_{other}",
                on_click=_open_user,
                args=(other,),
                type="tertiary",
                icon=":material/videocam:",
            )

left, right = st.columns([2, 3], gap="large")

with left, st.container(border=True):
    user_id = st.selectbox(
        "User",
        user_ids,
        key=USER_KEY,
        format_func=lambda u: f"{u} · {plan_of.get(u, '?')}",
    )
    st.query_params["user"] = user_id
    try:
        allowance = svc.allowance(user_id)
    except AwakNowError as exc:
        allowance = None
        ui.show_error(exc)
    if allowance is not None:
        ui.usage_bar(allowance.minutes_used, allowance.minutes_limit)
        solo = (
            "unlimited solo sessions"
            if allowance.solo_sessions_per_day is None
            else f"{allowance.solo_sessions_today} of {allowance.solo_sessions_per_day} "
            "solo session(s) used today"
        )
        group = "group sessions included" if allowance.group_sessions else "no group sessions"
        st.caption(f"Plan `{allowance.plan_id}` · {solo} · {group}")

    session_type = st.radio(
        "Session type",
        SESSION_TYPES,
        format_func=lambda t: SESSION_TYPE_LABELS.get(t, t),
        key="start_type",
    )
    context = st.text_area(
        "Context for the companion (optional)",
        key="start_context",
        max_chars=MAX_CONTEXT_CHARS,
        placeholder="e.g. I'd like to talk about a disagreement with my sister.",
        help="Sent to Tavus as conversational_context for this conversation only.",
    )
    blocker = svc.start_blocker(user_id, session_type)
    start = st.button(
        "Start session",
        type="primary",
        icon=":material/play_arrow:",
        disabled=blocker is not None,
        help=blocker,
        width="stretch",
        key="start_button",
    )
    if blocker:
        st.warning(blocker, icon=":material/block:")

    if start and blocker is None:
        with st.status("Starting the session...", expanded=True) as progress:
            st.write("Checking the plan and reserving the session")
            st.write("Creating the conversation")
            try:
                who = signin.require(Permission.START_SESSIONS)
                started = svc.start_session(
                    user_id, session_type, context.strip() or None, started_by=who.actor
                )
                signin.audit_action(
                    who,
                    "session_start",
                    started.session_id,
                    user=user_id,
                    session_type=session_type,
                    mode=started.mode,
                    conversation=started.conversation_id,
                )
            except AwakNowError as exc:
                progress.update(label="The session did not start", state="error")
                ui.show_error(exc)
            else:
                progress.update(label="Session started", state="complete", expanded=False)
                st.session_state.pop(SUMMARY_KEY, None)
                ui.invalidate()
                st.rerun()


def _summary(user: str) -> None:
    summary = st.session_state.get(SUMMARY_KEY)
    if not summary or summary["user_id"] != user:
        return
    with st.container(border=True):
        st.subheader(":material/task_alt: Session ended", anchor=False)
        cols = st.columns(3)
        cols[0].metric("Duration", ui.fmt_seconds_as_clock(summary["seconds"]))
        cols[1].metric("Seconds billed", f"{summary['seconds']:,}")
        cols[2].metric("Minutes billed", f"{summary['minutes']:.2f}")
        how = {
            "user": "ended with the End button",
            "tavus": "Tavus reported the call ended",
            "other": "ended elsewhere (another tab, the reaper or a Tavus event)",
        }[summary["how"]]
        note = "" if summary["newly_billed"] else " · it had already been billed"
        st.caption(
            f"Conversation `{summary['conversation_id']}` ({summary['mode']}): {how}{note}. "
            f"{summary['minutes']:.2f} minutes count against {user}'s plan."
        )
        rating_form.rate(summary["session_id"], key="summary", by=viewer.actor)
        if summary.get("failure"):
            st.error(summary["failure"], icon=":material/error:")
        if st.button("Dismiss", key="dismiss_summary", type="tertiary"):
            st.session_state.pop(SUMMARY_KEY, None)
            st.rerun()


def _remember_end(
    session: SessionRecord, seconds: int, minutes: float, newly: bool, how: str
) -> None:
    """Keep the bill for the summary; ``session`` is read after the end, so a call Tavus
    reported in status ``error`` shows as a failure."""
    failed = session.error_kind == TAVUS_STATUS_ERROR_KIND
    st.session_state[SUMMARY_KEY] = {
        "failure": session.error_message if failed else None,
        "user_id": session.user_id,
        "session_id": session.session_id,
        "conversation_id": session.conversation_id,
        "mode": session.mode,
        "seconds": int(seconds),
        "minutes": float(minutes),
        "newly_billed": newly,
        "how": how,
    }


def _end_by_user(session: SessionRecord) -> None:
    try:
        who = signin.require(Permission.START_SESSIONS)
        ended = svc.end_session(session.session_id, end_source="user")
    except AwakNowError as exc:
        ui.show_error(exc)
        return
    if ended.newly_billed:
        signin.audit_action(
            who,
            "session_end",
            session.session_id,
            user=session.user_id,
            how="user",
            seconds=ended.seconds_used,
        )
    ui.invalidate()
    try:
        session = svc.get_session(session.session_id)
    except AwakNowError as exc:
        ui.show_error(exc)
    _remember_end(session, ended.seconds_used, ended.minutes_used, ended.newly_billed, "user")


@st.fragment(run_every=ui.POLL_SECONDS)
def _live_status(session_id: str) -> None:
    """Polls the call (Tavus's answer cached for all tabs); the service closes and bills the
    session when Tavus says the call ended."""
    try:
        refresh = svc.refresh_session(session_id, remote_status=ui.conversation_status)
    except AwakNowError as exc:
        ui.show_error(exc)
        return
    session = refresh.session
    if refresh.ended is not None:
        ended = refresh.ended
        ui.invalidate()
        _remember_end(session, ended.seconds_used, ended.minutes_used, ended.newly_billed, "tavus")
        st.rerun(scope="app")
    if refresh.outcome == "ended_elsewhere":
        seconds = session.seconds_used or 0
        _remember_end(session, seconds, round(seconds / 60, 2), False, "other")
        ui.invalidate()
        st.rerun(scope="app")
    remote = refresh.remote_status
    started = session.billing_started_at
    elapsed = max((utcnow() - started).total_seconds(), 0)
    limit = session.max_call_duration
    cols = st.columns(3)
    cols[0].metric("Tavus status", remote)
    cols[1].metric("Elapsed", ui.fmt_seconds_as_clock(elapsed))
    cols[2].metric("Ends by itself in", ui.fmt_seconds_as_clock(max(limit - elapsed, 0)))
    st.caption(
        f"Checked {utcnow():%H:%M:%S} UTC · refreshes every {ui.POLL_SECONDS} s · "
        f"maximum {ui.fmt_seconds_as_clock(limit)} "
        f"(until {started + timedelta(seconds=limit):%H:%M:%S} UTC)"
    )


with right:
    active = None
    try:
        active = svc.active_session(user_id)
    except AwakNowError as exc:
        ui.show_error(exc)
    if active is None:
        _summary(user_id)
        if not st.session_state.get(SUMMARY_KEY):
            with st.container(border=True):
                st.subheader(":material/spa: No call running", anchor=False)
                st.write(
                    f"Pick a session type and press **Start session**. The call appears here, "
                    f"{ui.CALL_HEIGHT} px tall, with camera and microphone allowed."
                )
                ui.mode_badge(svc.mode_status())
    else:
        with st.container(border=True):
            title_col, end_col = st.columns([3, 1], vertical_alignment="center")
            with title_col:
                st.subheader(":material/videocam: Call in progress", anchor=False)
            end_clicked = end_col.button(
                "End session",
                type="primary",
                icon=":material/call_end:",
                key="end_button",
                width="stretch",
            )
            badge_color = "green" if active.mode == "live" else "orange"
            st.markdown(
                f":{badge_color}-badge[{active.mode.upper()}] "
                f"Conversation `{active.conversation_id or 'starting...'}` · "
                f"`{active.conversation_name}`"
            )
            if active.mode != "live" and active.mode_reason:
                st.caption(f"Mock because: {active.mode_reason}")
            if end_clicked:
                _end_by_user(active)
                st.rerun()
            url = ui.embeddable_url(active.conversation_url)
            if url:
                ui.call_frame(url)
            elif active.status == "starting":
                st.info("The conversation is still being created...", icon=":material/hourglass:")
            else:
                st.warning(
                    "This conversation's URL cannot be embedded here; end the session and "
                    "start a new one.",
                    icon=":material/link_off:",
                )
            _live_status(active.session_id)
