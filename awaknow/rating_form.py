"""Streamlit glue for rating a session: the same form when it ends (Start page) and later
(its detail on the Sessions page). The rule and the table are ``awaknow.feedback``'s."""

from __future__ import annotations

import streamlit as st

from awaknow import feedback, ui


def rate(session_id: str, key: str, by: str) -> None:
    """Rate a session (1 to 5) with an optional short note as ``by``, or change its rating."""
    current = ui.query(feedback.session_rating, session_id)
    if current is not None:
        note = f": “{current.note}”" if current.note else ""
        when = ui.fmt_time(current.rated_at)
        st.caption(
            f"Rated {current.rating} of 5 by {current.rated_by} on {when}{note}. "
            "Rate again to change it."
        )
    picked = st.segmented_control(
        "How did the conversation go?",
        feedback.RATINGS,
        format_func=lambda stars: "★" * stars,
        default=current.rating if current else None,
        key=f"{key}_rating",
    )
    text = st.text_input(
        "Note (optional)",
        value=(current.note or "") if current else "",
        max_chars=feedback.MAX_NOTE_CHARS,
        key=f"{key}_note",
        placeholder="what went well or badly, in a few words",
    )
    if st.button("Save rating", key=f"{key}_save", disabled=picked is None):
        ui.run_action(
            lambda: feedback.rate_session(
                ui.service().store, session_id, int(picked or 0), text, by
            ),
            f"Rating saved: {picked} of 5",
        )
