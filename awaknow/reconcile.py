"""Reconciliation: what the app does when Tavus's answer is missing or unconfirmed.

A live create whose answer was lost may still have started a billed call; an End Tavus did not
confirm may still be running; a conversation on the concurrency limit may belong to nobody.
The rules for those three live here, beside the session rules they extend, so the reaper, the
start path and the tests read one version of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from awaknow import sessions
from awaknow.errors import TavusConcurrencyError, TavusError, TavusUnreachableError
from awaknow.logs import get_logger
from awaknow.sessions import END_NOT_CONFIRMED, REAPER_GRACE_SECONDS
from awaknow.store import Store, utcnow
from awaknow.tavus import TavusBackend
from awaknow.tavus_names import CONVERSATION_ACTIVE, ENDED_STATUSES, parse_tavus_time

log = get_logger("reconcile")


def record_end_not_confirmed(store: Store, session_id: str, error_message: str) -> None:
    """Keep the session active (it may still be billing) with the refusal visible."""
    with store.transaction() as cur:
        cur.execute(
            "UPDATE sessions SET error_kind = ?, error_message = ? "
            "WHERE session_id = ? AND status IN ('starting', 'active', 'unknown')",
            [END_NOT_CONFIRMED, error_message, session_id],
        )


def unconfirmed_ends(store: Store) -> list[str]:
    """Active sessions whose End Tavus has not confirmed yet, oldest first."""
    rows = (
        store.cursor()
        .execute(
            "SELECT session_id FROM sessions WHERE status = 'active' AND error_kind = ? "
            "ORDER BY created_at",
            [END_NOT_CONFIRMED],
        )
        .fetchall()
    )
    return [row[0] for row in rows]


def mark_unknown(store: Store, session_id: str, *, error_kind: str, error_message: str) -> None:
    """A live create whose outcome is unknown: frees the user's slot, stays on the books.

    Tavus may have created the conversation after the client gave up; the reaper looks for it
    by name on every pass (``unknown_creates``) until it is found and billed, or could no longer
    be running.
    """
    with store.transaction() as cur:
        cur.execute(
            "UPDATE sessions SET status = 'unknown', error_kind = ?, error_message = ? "
            "WHERE session_id = ? AND status IN ('starting', 'active')",
            [error_kind, error_message, session_id],
        )
        cur.execute("DELETE FROM active_sessions WHERE session_id = ?", [session_id])


@dataclass(frozen=True)
class UnknownCreate:
    """A session awaiting reconciliation: its conversation may or may not exist at Tavus."""

    session_id: str
    conversation_name: str
    conversation_id: str | None  # set once found, while its End is not yet confirmed
    mode: str
    settled_after: datetime  # created_at + max_call_duration + grace: surely over by then


def unknown_creates(store: Store, grace_seconds: int = REAPER_GRACE_SECONDS) -> list[UnknownCreate]:
    rows = (
        store.cursor()
        .execute(
            "SELECT session_id, conversation_name, conversation_id, mode, "
            "created_at + to_seconds(max_call_duration + ?) "
            "FROM sessions WHERE status = 'unknown' ORDER BY created_at",
            [grace_seconds],
        )
        .fetchall()
    )
    return [UnknownCreate(*row) for row in rows]


def adopt_found(store: Store, session_id: str, conversation: dict, started_at: datetime) -> None:
    """Attach the conversation found for an unknown create, to bill from Tavus's times."""
    with store.transaction() as cur:
        cur.execute(
            "UPDATE sessions SET conversation_id = ?, "
            "conversation_url = coalesce(?, conversation_url), started_at = ? "
            "WHERE session_id = ? AND status = 'unknown'",
            [
                conversation["conversation_id"],
                conversation.get("conversation_url"),
                started_at,
                session_id,
            ],
        )


def settle_never_created(store: Store, session_id: str) -> None:
    """An unknown create that Tavus never made (a full listing after it could have ended)."""
    with store.transaction() as cur:
        cur.execute(
            "UPDATE sessions SET status = 'failed', end_source = 'reconciled', ended_at = ?, "
            "seconds_used = 0, "
            "error_message = coalesce(error_message, '') || ' (Tavus never created it)' "
            "WHERE session_id = ? AND status = 'unknown'",
            [utcnow(), session_id],
        )


def end_orphans(store: Store, backend: TavusBackend) -> bool:
    """End active ``awaknow_*`` conversations no session of this database may own.

    A conversation is an orphan only if no session that is ``starting`` (its create
    answer may be in flight), ``active`` or ``unknown`` (awaiting reconciliation) has its
    name or its id: never end a call another session may still own. The listing is read
    before the sessions, so a session that appears meanwhile is seen.
    """
    listing = backend.list_conversations(status=CONVERSATION_ACTIVE)
    owned_names: set[str] = set()
    owned_ids: set[str] = set()
    rows = (
        store.cursor()
        .execute(
            "SELECT conversation_name, conversation_id FROM sessions "
            "WHERE status IN ('starting', 'active', 'unknown')"
        )
        .fetchall()
    )
    for name, conversation_id in rows:
        owned_names.add(name)
        if conversation_id:
            owned_ids.add(conversation_id)
    ended = 0
    for conv in listing.get("data", []):
        name = conv.get("conversation_name") or ""
        conversation_id = conv.get("conversation_id") or ""
        if not name.startswith("awaknow_") or name in owned_names:
            continue
        if conversation_id in owned_ids:
            continue
        try:
            backend.end_conversation(conversation_id)
        except TavusError as exc:
            log.warning("could not end orphaned conversation %s: %s", conversation_id, exc)
            continue
        log.warning("ended orphaned conversation %s (%s)", conversation_id, name)
        ended += 1
    return ended > 0


def reconcile_unknown_creates(
    store: Store, backend_for: Callable[[str], TavusBackend], now: datetime
) -> list[sessions.Bill]:
    """Look for every unknown create by name (all pages), on every pass.

    Found: end it and bill from Tavus's times (once). Not found: settled as never created
    only when a complete listing succeeded after the call could no longer be running.
    """
    ended: list[sessions.Bill] = []
    for pending in unknown_creates(store):
        backend = backend_for(pending.mode)
        try:
            found: dict[str, Any] | None
            if pending.conversation_id:
                found = backend.get_conversation(pending.conversation_id)
            else:
                found = backend.find_conversation_by_name(pending.conversation_name)
        except TavusError as exc:
            log.info("cannot reconcile %s yet: %s", pending.conversation_name, exc)
            continue
        if found is None:
            if now >= pending.settled_after:
                settle_never_created(store, pending.session_id)
            continue
        conversation_id = str(found.get("conversation_id") or pending.conversation_id or "")
        created_at = parse_tavus_time(found.get("created_at"))
        if not conversation_id:
            continue
        if not pending.conversation_id:
            log.warning(
                "conversation %s was created after its start timed out: ending it",
                conversation_id,
            )
            adopt_found(store, pending.session_id, found, created_at or utcnow())
        ended_at = utcnow()
        if found.get("status") in ENDED_STATUSES:
            ended_at = parse_tavus_time(found.get("updated_at")) or ended_at
        else:
            try:
                already = backend.end_conversation(conversation_id)
            except TavusError as exc:
                record_end_not_confirmed(store, pending.session_id, str(exc))
                continue
            tavus_end = parse_tavus_time(already.get("updated_at")) if already else None
            if tavus_end is not None:
                ended_at = min(ended_at, tavus_end)
        ended.append(
            sessions.close_and_bill(
                store, pending.session_id, ended_at=ended_at, end_source="reaper"
            )
        )
    return ended


def create_conversation(store: Store, backend: TavusBackend, body: dict) -> dict:
    """Create once; reconcile a lost answer by name; free orphaned slots on a concurrency
    error. A lost answer that the lookup cannot explain is re-raised: outcome unknown."""
    name = body["conversation_name"]
    try:
        return backend.create_conversation(body)
    except TavusUnreachableError as exc:
        if not exc.request_sent:
            raise
        try:
            found = backend.find_conversation_by_name(name)
        except TavusError as lookup:
            log.info("could not look up %s after its create failed: %s", name, lookup)
            raise exc from None
        if found is not None:
            log.warning("create of %s timed out but Tavus has it: reconciled", name)
            return found
        raise
    except TavusConcurrencyError:
        if not end_orphans(store, backend):
            raise
        return backend.create_conversation(body)
