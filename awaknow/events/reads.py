"""What the session detail page reads: the timeline, the transcript and the recording.

Small frames and dicts from DuckDB, for one session at a time; event lines come from the
registry's ``summarise``, so a new event type reads well without touching this module.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from awaknow.events.envelope import finite_number, stored_properties
from awaknow.events.registry import summarise
from awaknow.store import Store
from awaknow.tavus_names import RECORDING_COPY_FAILED

TIMELINE_COLUMNS = ["time", "source", "event_type", "summary"]
TRANSCRIPT_COLUMNS = [
    "seq",
    "role",
    "content",
    "seconds_from_start",
    "duration",
    "is_system_prompt",
]


def session_timeline(store: Store, session_id: str) -> pd.DataFrame:
    """The session's own milestones and its Tavus events, oldest first."""
    cur = store.cursor()
    session = cur.execute(
        "SELECT created_at, started_at, replica_joined_at, ended_at, end_source, "
        "shutdown_reason, status, conversation_id, mode, error_message "
        "FROM sessions WHERE session_id = ?",
        [session_id],
    ).fetchone()
    if session is None:
        return pd.DataFrame(columns=TIMELINE_COLUMNS)
    (
        created,
        started,
        joined,
        ended,
        end_source,
        reason,
        status,
        conversation_id,
        mode,
        error,
    ) = session
    rows: list[tuple[Any, str, str, str]] = [
        (created, "app", "app.created", f"session created ({mode}); plan limits checked")
    ]
    if started is not None:
        rows.append((started, "app", "app.started", f"conversation {conversation_id} created"))
    if joined is not None:
        rows.append((joined, "app", "app.replica_joined", "replica joined the call"))
    if ended is not None:
        if status == "failed":
            rows.append((ended, "app", "app.failed", f"start failed: {error}"))
        else:
            rows.append(
                (
                    ended,
                    "app",
                    "app.ended",
                    f"ended by {end_source}" + (f" ({reason})" if reason else ""),
                )
            )
    bill = cur.execute(
        "SELECT billed_at, seconds_used, clock FROM tavus_usage WHERE session_id = ?",
        [session_id],
    ).fetchone()
    if bill is not None:
        rows.append(
            (
                bill[0],
                "app",
                "app.billed",
                f"billed {bill[1]} s ({bill[1] / 60:.2f} min) by the {bill[2]} clock",
            )
        )
    if conversation_id:
        for when, source, event_type, known, raw, err in cur.execute(
            "SELECT coalesce(event_timestamp, received_at), source, event_type, known_type, "
            "payload, process_error FROM conversation_events WHERE conversation_id = ?",
            [conversation_id],
        ).fetchall():
            summary = summarise(event_type, known, stored_properties(raw), err)
            rows.append((when, source, event_type, summary))
    frame = pd.DataFrame(rows, columns=TIMELINE_COLUMNS)
    frame["time"] = pd.to_datetime(frame["time"])
    return frame.sort_values("time", kind="stable", na_position="last").reset_index(drop=True)


def transcript(
    store: Store, session_id: str, *, include_system_prompt: bool = False
) -> pd.DataFrame:
    """The session's transcript in order; the persona's system prompt (role ``system``) is
    left out unless asked for, and always flagged in ``is_system_prompt``."""
    frame = (
        store.cursor()
        .execute(
            "SELECT t.seq, t.role, t.content, t.seconds_from_start, t.duration, "
            "t.role = 'system' AS is_system_prompt FROM transcripts t "
            "JOIN sessions s ON s.conversation_id = t.conversation_id "
            "WHERE s.session_id = ? AND (? OR t.role <> 'system') ORDER BY t.seq",
            [session_id, include_system_prompt],
        )
        .df()
    )
    return frame[TRANSCRIPT_COLUMNS]


def recording(store: Store, session_id: str) -> dict[str, Any] | None:
    """The session's recording (``status`` ready), a failed copy (``status`` copy_failed), or
    None when Tavus has reported neither."""
    cur = store.cursor()
    found = cur.execute(
        "SELECT r.conversation_id, r.bucket_name, r.s3_key, r.duration, r.storage_provider, "
        "r.storage_uri, r.received_at FROM recordings r "
        "JOIN sessions s ON s.conversation_id = r.conversation_id WHERE s.session_id = ?",
        [session_id],
    ).fetchone()
    if found is not None:
        names = (
            "conversation_id",
            "bucket_name",
            "s3_key",
            "duration",
            "storage_provider",
            "storage_uri",
            "received_at",
        )
        result: dict[str, Any] = dict(zip(names, found, strict=True))
        uri = result["storage_uri"]
        if not uri and result["bucket_name"] and result["s3_key"]:
            uri = f"s3://{result['bucket_name']}/{result['s3_key']}"
        result["uri"] = uri
        result["status"] = "ready"
        return result
    failed = cur.execute(
        "SELECT e.conversation_id, e.payload, coalesce(e.event_timestamp, e.received_at) "
        "FROM conversation_events e JOIN sessions s ON s.conversation_id = e.conversation_id "
        "WHERE s.session_id = ? AND e.event_type = ? ORDER BY 3 DESC LIMIT 1",
        [session_id, RECORDING_COPY_FAILED],
    ).fetchone()
    if failed is None:
        return None
    props = stored_properties(failed[1])
    return {
        "conversation_id": failed[0],
        "status": "copy_failed",
        "s3_key": props.get("s3_key"),
        "duration": finite_number(props.get("duration")),
        "error_code": props.get("error_code"),
        "error_message": props.get("error_message"),
        "received_at": failed[2],
    }
