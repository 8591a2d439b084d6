"""The HTTP side of the app process: custom routes and the background reaper.

``app.py`` hands these to ``st.App`` so that ``streamlit run app.py`` serves the pages, the
Tavus callback route and the mock room from ONE process, the only one allowed to write the
DuckDB file.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from starlette.routing import BaseRoute, Route

from awaknow import events
from awaknow.callbacks import tavus_callback
from awaknow.config import CALLBACK_PATH
from awaknow.logs import get_logger
from awaknow.mock_room import MOCK_ROOM_PATH, mock_room
from awaknow.service import shared_service

log = get_logger("server")

REAPER_INTERVAL_SECONDS = 30.0


def routes() -> list[BaseRoute]:
    return [
        Route(CALLBACK_PATH, tavus_callback, methods=["POST"]),
        Route(MOCK_ROOM_PATH + "/{conversation_id}", mock_room, methods=["GET"]),
    ]


async def _reap_forever(interval: float) -> None:
    """End stale sessions in the background so no call keeps billing unseen."""
    while True:
        try:
            ended = await anyio.to_thread.run_sync(shared_service().reap)
            if ended:
                log.info("reaper ended %d stale session(s)", len(ended))
        except Exception:  # the reaper must outlive any single failure
            log.exception("reaper pass failed")
        try:  # Tavus events not delivered by callback: fetch them, retry failed processing
            fetched = await anyio.to_thread.run_sync(lambda: events.poll_pending(shared_service()))
            if fetched:
                log.info("event poller stored or processed %d event(s)", fetched)
        except Exception:
            log.exception("event poller pass failed")
        await asyncio.sleep(interval)


@asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
    """Open the database before the first request and run the reaper beside the pages."""
    await anyio.to_thread.run_sync(shared_service)
    task = asyncio.create_task(_reap_forever(REAPER_INTERVAL_SECONDS))
    try:
        yield {}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
