"""The HTTP side of the app process: custom routes and the background reaper.

``app.py`` hands these to ``st.App`` so that ``streamlit run app.py`` serves the pages, the
Tavus callback route and the mock room from ONE process, the only one allowed to write the
DuckDB file.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from starlette.routing import BaseRoute, Route

from awaknow import analytics
from awaknow.config import CALLBACK_PATH
from awaknow.logs import get_logger
from awaknow.mock_room import MOCK_ROOM_PATH, mock_room
from awaknow.service import shared_service
from awaknow.webhooks import tavus_callback

log = get_logger("server")

CHORE_INTERVAL_SECONDS = 30.0


def routes() -> list[BaseRoute]:
    return [
        Route(CALLBACK_PATH, tavus_callback, methods=["POST"]),
        Route(MOCK_ROOM_PATH + "/{conversation_id}", mock_room, methods=["GET"]),
    ]


def _reap() -> int:
    """End stale sessions so no call keeps billing unseen."""
    return len(shared_service().reap())


def _poll_events() -> int:
    """Fetch Tavus events that no callback delivered; retry failed processing."""
    return shared_service().poll_events()


def _refresh_rollups() -> int:
    """Keep the analytics rollups current, so the page stays fast as history grows."""
    analytics.refresh_rollups(shared_service().store)
    return 0


BACKGROUND_CHORES: tuple[Callable[[], int], ...] = (_reap, _poll_events, _refresh_rollups)


async def _chores_forever(interval: float) -> None:
    """Run each chore in a worker thread every ``interval`` seconds; one failing never stops
    the others or the next pass."""
    while True:
        for chore in BACKGROUND_CHORES:
            try:
                done = await anyio.to_thread.run_sync(chore)
                if done:
                    log.info("%s: %d item(s)", chore.__name__.lstrip("_"), done)
            except Exception:
                log.exception("%s failed", chore.__name__.lstrip("_"))
        await asyncio.sleep(interval)


@asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
    """Open the database before the first request and run the chores beside the pages."""
    await anyio.to_thread.run_sync(shared_service)
    task = asyncio.create_task(_chores_forever(CHORE_INTERVAL_SECONDS))
    try:
        yield {}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
