"""What the DEBUG log may show of a Tavus request or response.

Kept apart from the client so the rules for what never reaches a log line (the key, room
tokens, secrets in callback URLs) are read in one place.
"""

from __future__ import annotations

import json
import re
from typing import Any

from awaknow import logs

_DROPPED_LOG_KEYS = frozenset({"x-api-key", "api_key"})
_MASKED_LOG_KEYS = frozenset({"meeting_token"})
_URL_LOG_KEYS = frozenset({"callback_url", "webhook_url"})
_QUERY_VALUE = re.compile(r"([?&][^=&#]+)=[^&#]*")
_MAX_LOGGED_BODY = 4000
_PERSONA_PATH = re.compile(r"^/v2/personas/([^/?]+)")


def _scrub(value: Any) -> Any:
    """Remove what ``logs.redact`` cannot recognise: header keys, room tokens, URL secrets."""
    if isinstance(value, dict):
        cleaned: dict[str, Any] = {}
        for key, item in value.items():
            lowered = str(key).lower()
            if lowered in _DROPPED_LOG_KEYS:
                continue
            if lowered in _MASKED_LOG_KEYS:
                cleaned[key] = logs.MASK
            elif lowered in _URL_LOG_KEYS and isinstance(item, str):
                cleaned[key] = _QUERY_VALUE.sub(rf"\1={logs.MASK}", item)
            else:
                cleaned[key] = _scrub(item)
        return cleaned
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    return value


def loggable_body(body: Any) -> str:
    """A body fit for the DEBUG log: scrubbed, redacted and truncated (transcripts are long)."""
    if body is None:
        return "-"
    text = body if isinstance(body, str) else json.dumps(_scrub(body), default=str)
    text = logs.redact(text)
    if len(text) > _MAX_LOGGED_BODY:
        text = f"{text[:_MAX_LOGGED_BODY]}... ({len(text) - _MAX_LOGGED_BODY} more chars)"
    return text


def persona_in_request(path: str, json_body: dict[str, Any] | None) -> str | None:
    """The persona a request is about (from its path or body), named in its log line."""
    match = _PERSONA_PATH.match(path)
    if match:
        return match.group(1)
    if json_body and isinstance(json_body.get("persona_id"), str):
        return json_body["persona_id"]
    return None
