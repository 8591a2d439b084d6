"""Sessions: a searchable table, and one session's timeline, transcript and recording."""

import pandas as pd
import streamlit as st

from awaknow import analytics, events, rating_form, sessions, signin, ui
from awaknow.access import Permission
from awaknow.config import RECORDINGS_NOT_CONFIGURED
from awaknow.errors import AwakNowError

TABLE_LIMIT = 500

viewer = signin.require_page(__file__)
svc = ui.service()
st.title("Sessions")
# Staff see the sessions they started; analysts and admins see every session.
only_mine = None if viewer.can(Permission.SEE_ALL_SESSIONS) else viewer.actor
if only_mine is not None:
    st.caption(f"Sessions started by {viewer.actor}.")

bounds = ui.query(analytics.date_bounds)
if bounds is None:
    ui.empty_state("No sessions yet", "Start one on **Start a session**, or load demo data:")
    st.stop()

filters = ui.filter_bar("se", bounds)
c1, c2 = st.columns([1, 2])
status = c1.multiselect(
    "Status",
    sessions.STATUSES,
    format_func=lambda s: sessions.STATUS_LABELS[s],
    key="se_status",
    placeholder="Any status",
)
search = c2.text_input(
    "Search",
    key="se_search",
    placeholder="user, conversation id or name, session id...",
    max_chars=200,
)

table = ui.query(
    analytics.sessions_table,
    filters,
    status=tuple(status),
    search=search.strip() or None,
    limit=TABLE_LIMIT,
    started_by=only_mine,
)
if table.empty:
    st.info("No sessions match these filters.", icon=":material/filter_alt_off:")
    st.stop()

shown = f"the newest {TABLE_LIMIT:,}" if len(table) >= TABLE_LIMIT else f"{len(table):,}"
st.caption(f"{shown} session(s) · select a row, or pick one below, for its details")
event = st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    height=min(ui.TABLE_ROW_PX * (len(table) + 1) + 3, 400),
    on_select="rerun",
    selection_mode="single-row",
    key="se_table",
    column_config=ui.SESSION_COLUMNS,
)
ui.csv_download(table, "sessions", key="csv_sessions")

ids = table["session_id"].astype(str).tolist()
picked_rows = event.selection.rows if event is not None else []
linked = st.query_params.get("session")  # a link from another page (e.g. Feedback)
if linked and not picked_rows:
    if linked not in ids:
        ids.insert(0, linked)
    picked_rows = [ids.index(linked)]
labels = {
    str(r.session_id): f"{r.user_id} · {ui.fmt_time(r.created_at)} · {str(r.session_id)[:8]}"
    for r in table.itertuples()
}
choice = st.selectbox(
    "Session",
    ids,
    index=picked_rows[0] if picked_rows else None,
    format_func=lambda sid: labels.get(sid, sid),
    placeholder="Pick a session (or select a row above)",
    key=f"se_pick_{picked_rows[0] if picked_rows else 'none'}",
)
if choice is None:
    st.stop()

try:
    session = svc.get_session(choice)
    if only_mine is not None and session.started_by != only_mine:
        signin.require(Permission.SEE_ALL_SESSIONS)  # a crafted choice: refused and audited
except AwakNowError as exc:
    ui.show_error(exc)
    st.stop()

with st.container(border=True):
    st.subheader(f"{session.user_id} · {session.session_type}", anchor=False)
    st.markdown(
        f":{'green' if session.mode == 'live' else 'orange'}-badge[{session.mode.upper()}] "
        f":{'blue' if session.running else 'violet' if session.status == 'unknown' else 'gray'}"
        f"-badge[{session.status_label}] "
        f"Conversation `{session.conversation_id or '-'}` · `{session.conversation_name}`"
    )
    m = st.columns(4)
    m[0].metric("Minutes billed", ui.fmt_seconds_as_minutes(session.seconds_used))
    m[1].metric("Duration", ui.fmt_seconds_as_clock(session.seconds_used))
    m[2].metric("Started (UTC)", ui.fmt_time_of_day(session.billing_started_at))
    m[3].metric("Ended (UTC)", ui.fmt_time_of_day(session.ended_at))
    facts = {
        "Session id": f"`{session.session_id}`",
        "Plan": session.plan_id or "-",
        "Persona / replica": f"`{session.persona_id}` / `{session.replica_id}`",
        "Created": ui.fmt_time(session.created_at),
        "Ended by": session.end_source or "-",
        "Shutdown reason": session.shutdown_reason or "-",
        "Mode reason": session.mode_reason or "-",
    }
    clock = sessions.bill_clock(svc.store, choice)
    if clock is not None:
        facts["End time billed"] = sessions.CLOCK_NOTES.get(clock, clock)
    if session.recording_requested is False:
        facts["Recording"] = "not configured: none was requested from Tavus"
    if session.conversation_url:
        facts["Conversation URL"] = f"`{session.conversation_url}`"
    st.markdown("  \n".join(f"**{k}:** {v}" for k, v in facts.items()))
    if session.context and viewer.can(Permission.SEE_SENSITIVE):
        st.caption(f"Context sent to Tavus: {session.context}")
    if session.end_not_confirmed:
        st.warning(
            f"End not confirmed by Tavus yet (the app retries): {session.error_message}",
            icon=":material/sync_problem:",
        )
    elif session.status == "unknown":
        st.warning(
            "Tavus did not answer the create in time, so it may have started this call: the "
            f"app keeps looking for it, and ends and bills it if it appears. "
            f"({session.error_kind}: {session.error_message or 'no message'})",
            icon=":material/hourglass_top:",
        )
    if session.status == "failed" or session.error_kind == sessions.TAVUS_STATUS_ERROR_KIND:
        st.error(
            f"{session.error_kind or 'Failed'}: {session.error_message or 'no message'}",
            icon=":material/error:",
        )

if not session.running and session.status != "failed":
    with st.expander("Rating", icon=":material/reviews:"):
        rating_form.rate(session.session_id, key="detail", by=viewer.actor)

sensitive = viewer.can(Permission.SEE_SENSITIVE)
if not sensitive:
    (timeline_tab,) = st.tabs(["Timeline"])
    st.caption(
        ":material/lock: Transcripts, recordings and perception notes are shown only to roles "
        "granted them."
    )
else:
    timeline_tab, transcript_tab, recording_tab, perception_tab = st.tabs(
        ["Timeline", "Transcript", "Recording", "Perception"]
    )
with timeline_tab:
    timeline = ui.query(events.session_timeline, choice)
    if timeline.empty:
        st.caption("No events yet.")
    else:
        ui.table(timeline, f"timeline_{choice[:8]}", key="timeline")
if sensitive:
    with transcript_tab:
        transcript = ui.query(events.transcript, choice)
        if transcript.empty:
            st.caption(
                "No transcript yet: Tavus sends it a little after the call ends (by callback, or "
                "found by the app's poller)."
            )
        else:
            signin.audit_once(viewer, "transcript_view", choice, turns=len(transcript))
            with st.container(height=420):
                for turn in transcript.itertuples():
                    role = "assistant" if turn.role == "assistant" else "user"
                    with st.chat_message(
                        role,
                        avatar=":material/spa:" if role == "assistant" else ":material/person:",
                    ):
                        when = turn.seconds_from_start
                        if when is not None and not pd.isna(when):
                            st.caption(ui.fmt_seconds_as_clock(when))
                        st.text(turn.content)
            ui.csv_download(transcript, f"transcript_{choice[:8]}", key="csv_transcript")
    with recording_tab:
        recording = ui.query(events.recording, choice)
        if not recording and session.recording_requested is False:
            st.info(RECORDINGS_NOT_CONFIGURED, icon=":material/videocam_off:")
        elif not recording:
            st.caption("No recording reported for this session.")
        elif recording.get("status") == "copy_failed":
            st.warning(
                f"Tavus could not copy the recording: {recording.get('error_message') or '-'} "
                f"({recording.get('error_code') or '-'})",
                icon=":material/videocam_off:",
            )
        else:
            signin.audit_once(viewer, "recording_view", choice)
            st.markdown(
                f"**Stored at:** `{recording.get('uri') or '-'}`  \n"
                f"**Duration:** {ui.fmt_seconds_as_clock(recording.get('duration'))}  \n"
                f"**Provider:** {recording.get('storage_provider') or '-'}  \n"
                f"**Received:** {ui.fmt_time(recording.get('received_at'))}"
            )
    with perception_tab:
        if session.perception_analysis:
            signin.audit_once(viewer, "perception_view", choice)
            st.text(session.perception_analysis)
        else:
            st.caption("No perception analysis for this session.")
