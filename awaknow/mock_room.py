"""The placeholder room a mock conversation's URL points to, served by the app process itself.

A mock conversation's ``conversation_url`` is the relative path ``/mock-room/<conversation_id>``
(see ``awaknow.mock``), so the embedded call works offline and without a Tavus key. The page is
self-contained (no external assets), says plainly that it is a mock, shows the persona and
replica ids the app is configured with and the session's status, and previews the local camera
where the browser allows it, so staff can check their devices before a live call.
"""

from __future__ import annotations

import html
import re
import secrets
from dataclasses import dataclass

import anyio
from starlette.requests import Request
from starlette.responses import HTMLResponse

from awaknow.errors import AwakNowError
from awaknow.logs import get_logger, redact
from awaknow.service import shared_service
from awaknow.sessions import SessionRecord

log = get_logger("mock_room")

MOCK_ROOM_PATH = "/mock-room"
_CONVERSATION_ID = re.compile(r"^c[0-9a-f]{6,32}$")

_STATUS_TEXT = {
    "starting": "starting",
    "active": "active",
    "completed": "ended",
    "failed": "failed",
}


def _headers(nonce: str | None) -> dict[str, str]:
    """Security headers: nothing external, inline code only by nonce, framed only by us."""
    script = f"'nonce-{nonce}'" if nonce else "'none'"
    return {
        "Content-Security-Policy": (
            "default-src 'none'; "
            f"script-src {script}; "
            "style-src 'unsafe-inline'; "
            "img-src 'self' data:; "
            "media-src 'self' blob: mediastream:; "
            "base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'self'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "Permissions-Policy": "camera=(self), microphone=(self), display-capture=()",
    }


@dataclass(frozen=True)
class _RoomFacts:
    """What the mock room shows: the configured ids and the session behind the conversation."""

    persona_id: str
    replica_id: str
    session: SessionRecord | None


def _lookup(conversation_id: str) -> _RoomFacts:
    """Runs in a worker thread: the database read must not block the event loop."""
    service = shared_service()
    settings = service.settings
    return _RoomFacts(
        persona_id=settings.persona_id.value or "",
        replica_id=settings.replica_id.value or "",
        session=service.session_for_conversation(conversation_id),
    )


def _page(title: str, body: str, nonce: str | None = None, script: str = "") -> str:
    script_tag = f'<script nonce="{nonce}">{script}</script>' if nonce and script else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>
  :root {{ color-scheme: light; }}
  * {{ box-sizing: border-box; }}
  body {{
    margin: 0; padding: 12px; min-height: 100vh; font-size: 14px;
    font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
    background: linear-gradient(160deg, #eef6f3 0%, #f7f3ec 100%); color: #1f3a36;
  }}
  .card {{
    max-width: 880px; margin: 0 auto; background: #ffffffd9; border-radius: 16px;
    padding: 16px 18px; box-shadow: 0 4px 18px rgba(31, 58, 54, 0.08);
  }}
  h1 {{ font-size: 1.35rem; margin: 0 0 4px; }}
  .badge {{
    display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: 0.8rem;
    background: #fbe3c4; color: #8a4b08; font-weight: 600; letter-spacing: 0.04em;
  }}
  .muted {{ color: #5b726e; font-size: 0.9rem; }}
  .grid {{ display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 16px;
           margin-top: 12px; align-items: start; }}
  dl {{ margin: 0; display: grid; grid-template-columns: max-content 1fr; gap: 6px 14px; }}
  dt {{ color: #5b726e; }}
  dd {{ margin: 0; font-family: ui-monospace, SFMono-Regular, Menlo, monospace;
        font-size: 0.85rem; word-break: break-all; }}
  .stage {{
    position: relative; aspect-ratio: 4 / 3; border-radius: 12px; overflow: hidden;
    background: #2f5d57; display: flex; align-items: center; justify-content: center;
  }}
  .stage video {{ width: 100%; height: 100%; object-fit: cover; transform: scaleX(-1); }}
  .stage p {{ color: #e8f2ef; padding: 0 18px; text-align: center; }}
  .stage video[hidden] {{ display: none; }}
  @media (max-width: 420px) {{ .grid {{ grid-template-columns: 1fr; }} }}
</style>
</head>
<body>
{body}
{script_tag}
</body>
</html>
"""


_CAMERA_SCRIPT = """
(function () {
  var video = document.getElementById("preview");
  var note = document.getElementById("camera-note");
  function say(text) { note.textContent = text; }
  if (!window.isSecureContext || !navigator.mediaDevices ||
      !navigator.mediaDevices.getUserMedia) {
    say("Camera preview needs HTTPS or localhost and a browser that allows it here.");
    return;
  }
  navigator.mediaDevices.getUserMedia({ video: true, audio: false }).then(function (stream) {
    video.srcObject = stream;
    video.hidden = false;
    note.hidden = true;
    window.addEventListener("pagehide", function () {
      stream.getTracks().forEach(function (t) { t.stop(); });
    });
  }).catch(function (err) {
    say("Camera preview unavailable (" + (err && err.name ? err.name : "blocked") +
        "): the mock call works without it.");
  });
})();
"""


async def mock_room(request: Request) -> HTMLResponse:
    """GET /mock-room/{conversation_id}: the placeholder room of a mock conversation."""
    conversation_id = str(request.path_params.get("conversation_id", ""))
    if not _CONVERSATION_ID.match(conversation_id):
        return HTMLResponse(
            _page("Not found", '<div class="card"><h1>No such mock conversation</h1></div>'),
            status_code=404,
            headers=_headers(None),
        )
    try:
        info = await anyio.to_thread.run_sync(_lookup, conversation_id)
    except AwakNowError as exc:
        message = redact(str(exc)).splitlines()[0] if str(exc) else type(exc).__name__
        return HTMLResponse(
            _page(
                "Mock room unavailable",
                '<div class="card"><h1>Mock room unavailable</h1>'
                f'<p class="muted">{html.escape(message)}</p></div>',
            ),
            status_code=503,
            headers=_headers(None),
        )
    session = info.session
    esc = html.escape
    if session is None or session.mode != "mock":
        # Only rooms of this app's own mock sessions exist: a guessed or live id gets nothing.
        return HTMLResponse(
            _page("Not found", '<div class="card"><h1>No such mock conversation</h1></div>'),
            status_code=404,
            headers=_headers(None),
        )
    status_line = _STATUS_TEXT.get(session.status, session.status)
    started = session.started_at
    started_text = started.strftime("%Y-%m-%d %H:%M:%S") if started else "-"
    extra = (
        f"<dt>User</dt><dd>{esc(session.user_id)}</dd>"
        f"<dt>Session type</dt><dd>{esc(session.session_type)}</dd>"
        f"<dt>Started (UTC)</dt><dd>{esc(started_text)}</dd>"
        f"<dt>Max duration</dt><dd>{session.max_call_duration} s</dd>"
    )
    nonce = secrets.token_urlsafe(16)
    body = f"""
<main class="card">
  <span class="badge">MOCK</span>
  <h1>Mock conversation</h1>
  <p class="muted">No Tavus call is made and nothing is billed by Tavus. Minutes are still
  measured from this session's real start and end, and tracked as mock minutes.</p>
  <div class="grid">
    <section>
      <dl>
        <dt>Conversation</dt><dd id="conversation-id">{esc(conversation_id)}</dd>
        <dt>Status</dt><dd id="session-status">{esc(status_line)}</dd>
        <dt>Persona</dt><dd id="persona-id">{esc(info.persona_id)}</dd>
        <dt>Replica</dt><dd id="replica-id">{esc(info.replica_id)}</dd>
        {extra}
      </dl>
    </section>
    <section class="stage" aria-label="Local camera preview">
      <video id="preview" autoplay muted playsinline hidden></video>
      <p id="camera-note">Asking for the camera preview...</p>
    </section>
  </div>
</main>
"""
    return HTMLResponse(
        _page(f"Mock conversation {conversation_id}", body, nonce, _CAMERA_SCRIPT),
        headers=_headers(nonce),
    )
