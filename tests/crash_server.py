"""The app's ASGI server alone in a process, for the crash test of the callback ingest.

    python -m tests.crash_server PORT [paused]

The chores are switched off so that only the ingest's worker processes events (the poller would
process them too, hiding whether the ingest resumes at start); ``paused`` also stops that
worker, so that events are accepted and stored but never processed until the process is killed.
"""

from __future__ import annotations

import sys
import threading

import uvicorn

from awaknow import server
from awaknow.events import ingest

server.BACKGROUND_CHORES = ()
if len(sys.argv) > 2 and sys.argv[2] == "paused":
    ingest.EventIngest._process_forever = lambda _self: threading.Event().wait()

import app  # noqa: E402  (after the patches: importing it builds the st.App)

uvicorn.run(app.app, host="127.0.0.1", port=int(sys.argv[1]), lifespan="on", log_level="warning")
