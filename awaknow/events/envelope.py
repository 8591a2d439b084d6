"""The event envelope: what makes a payload an event, its identity, and its fields made safe.

Tavus sends ``{conversation_id, event_type, message_type, timestamp, properties}``; a callback
and the same event read back through ``?verbose=true`` must get one identity, and whatever a
sender puts in the fields must be storable (DuckDB refuses lone surrogates) without losing it.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from awaknow.logs import redact
from awaknow.tavus_names import format_tavus_time, parse_tavus_time

MAX_ID_CHARS = 256  # conversation_id and event_type; Tavus's are far shorter


class EventRejected(ValueError):
    """The payload is not a Tavus event envelope (answered 400 by the webhook route)."""


def validate_envelope(payload: object) -> tuple[str, str]:
    """Return ``(conversation_id, event_type)`` or raise ``EventRejected`` with a short reason."""
    if not isinstance(payload, dict):
        raise EventRejected("the body must be a JSON object")
    found: list[str] = []
    for name in ("conversation_id", "event_type"):
        value = payload.get(name)
        if not isinstance(value, str) or not value.strip():
            raise EventRejected(f"{name} must be a non-empty string")
        if len(value) > MAX_ID_CHARS:
            raise EventRejected(f"{name} is longer than {MAX_ID_CHARS} characters")
        found.append(value)
    return found[0], found[1]


def _identity_time(value: object) -> object:
    """The timestamp as it enters the identity: normalised when readable, else as sent."""
    parsed = parse_tavus_time(value) if isinstance(value, str) else None
    return format_tavus_time(parsed) if parsed is not None else value


def event_key(payload: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the event's identity.

    ``webhook_url`` and ``message_type`` are not part of it, so a callback and the same event
    read back through ``?verbose=true`` share one key.
    """
    identity = {
        "conversation_id": payload.get("conversation_id"),
        "event_type": payload.get("event_type"),
        "timestamp": _identity_time(payload.get("timestamp")),
        "properties": payload.get("properties"),
    }
    canonical = json.dumps(
        identity, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def storable_text(value: str) -> str:
    """A string DuckDB accepts: lone surrogates (legal in JSON escapes) become '?'."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


def optional_text(value: object, limit: int | None = None) -> str | None:
    """A string field as text; numbers and structures as JSON; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except ValueError:
            text = str(value)
    text = storable_text(text)
    return text[:limit] if limit is not None else text


def finite_number(value: object) -> float | None:
    """A finite float from a number or numeric string, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            return None
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def stored_payload(payload: dict[str, Any]) -> str:
    """The raw event as JSON text, with the callback secret masked in ``webhook_url``."""
    clean = dict(payload)
    if isinstance(clean.get("webhook_url"), str):
        clean["webhook_url"] = redact(clean["webhook_url"])
    text = json.dumps(clean, ensure_ascii=False, default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: the escaped form is lossless and valid JSON
        text = json.dumps(clean, ensure_ascii=True, default=str)
    return text


def stored_properties(raw: str) -> dict[str, Any]:
    """The ``properties`` object of a stored payload; {} when it has none or is unreadable."""
    try:
        payload = json.loads(raw)
    except ValueError:
        return {}
    properties = payload.get("properties") if isinstance(payload, dict) else None
    return properties if isinstance(properties, dict) else {}
