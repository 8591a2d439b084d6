"""The HTTP side of the app process: custom routes, the background reaper, and the check that
refuses to serve beyond this machine without sign-in.

``app.py`` hands these to ``st.App`` so that ``streamlit run app.py`` serves the pages, the
Tavus callback route and the mock room from ONE process, the only one allowed to write the
DuckDB file.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import streamlit as st
from starlette.routing import BaseRoute, Route
from streamlit.errors import StreamlitSecretNotFoundError

from awaknow import access, analytics, events
from awaknow.config import CALLBACK_PATH, load_settings
from awaknow.errors import AwakNowError
from awaknow.logs import get_logger, register_secret
from awaknow.mock_room import MOCK_ROOM_PATH, mock_room
from awaknow.service import shared_service
from awaknow.webhooks import tavus_callback

log = get_logger("server")

CHORE_INTERVAL_SECONDS = 30.0


AUTH_SECRET_KEYS = ("client_secret", "cookie_secret")


def signin_configured() -> bool:
    """Whether ``[auth]`` is in Streamlit's secrets: sign-in mode, else local mode. Its
    client and cookie secrets are registered so that no log line can print them."""
    try:
        section = st.secrets.get("auth")
    except (FileNotFoundError, StreamlitSecretNotFoundError):
        return False
    if section is None:
        return False
    _register_auth_secrets(section)
    return True


def _register_auth_secrets(section: Mapping[str, Any]) -> None:
    for key, value in section.items():
        if isinstance(value, Mapping):  # a named provider: [auth.<name>]
            _register_auth_secrets(value)
        elif key in AUTH_SECRET_KEYS:
            register_secret(str(value))


def listen_address() -> str | None:
    """Streamlit's ``server.address``: unset means every interface."""
    return st.get_option("server.address") or None


def refuse_open_server() -> None:
    """Called before the server starts serving: when it would listen beyond this machine
    without sign-in (and without the documented override), one line on stderr and exit 2."""
    try:
        allow_open = load_settings().open_without_signin
    except AwakNowError:
        allow_open = False  # the pages show the bad setting; never open up because of it
    refusal = access.exposure(listen_address(), signin=signin_configured(), allow_open=allow_open)
    if refusal is not None:
        print(f"awaknow: {refusal}", file=sys.stderr)
        raise SystemExit(2)


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
    service = await anyio.to_thread.run_sync(shared_service)
    # Callbacks accepted before a crash but never processed are processed now.
    await anyio.to_thread.run_sync(events.start_ingest, service.store)
    task = asyncio.create_task(_chores_forever(CHORE_INTERVAL_SECONDS))
    try:
        yield {}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # A graceful stop processes what was accepted; a crash leaves it to the next start.
        await anyio.to_thread.run_sync(events.stop_ingest, service.store)
