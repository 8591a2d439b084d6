"""Streamlit glue shared by the pages: with ``signin`` (who is here) and ``server`` (the
start-up check), the only ``awaknow`` modules that import Streamlit.

Pages stay thin (widgets, charts, text); they reach the service, the analytics queries and the
events through the helpers here, which add what only a UI needs: short-lived caches shared by
every open tab, the always-visible LIVE/MOCK badge, one-line error messages (the text of an
``AwakNowError``, never a traceback, never a key), and CSV downloads that are audited.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar
from urllib.parse import urlparse

import pandas as pd
import streamlit as st

from awaknow import analytics, signin
from awaknow.access import Viewer
from awaknow.chart_registry import Chart, Choice, Control, ControlValue, Slider, default_value
from awaknow.errors import AwakNowError
from awaknow.logs import error_line
from awaknow.mock_room import MOCK_ROOM_PATH
from awaknow.mode import ModeStatus
from awaknow.palette import BAND_COLORS
from awaknow.service import AwakNowService, shared_service
from awaknow.sessions import SessionRecord
from awaknow.store import Store, utcnow

ANALYTICS_TTL_SECONDS = 20
STATUS_TTL_SECONDS = 4
POLL_SECONDS = 5
CALL_HEIGHT = 560

RUNNING_LOW_MINUTES = analytics.RUNNING_LOW_MINUTES
TABLE_ROW_PX = 35
TABLE_MAX_PX = 520

_MOCK_ROOM_URL = re.compile(r"^" + re.escape(MOCK_ROOM_PATH) + r"/c[0-9a-f]{6,32}$")
SEED_HINT = "python -m devtools.seed"


# --- errors -----------------------------------------------------------------------------------


def error_text(exc: BaseException) -> str:
    """The first line of an error's message, with any registered secret masked."""
    return error_line(exc)


def show_error(exc: BaseException, where: Any = None) -> None:
    """One ``st.error`` line: what happened and what to do (an AwakNowError's own text)."""
    (where or st).error(error_text(exc), icon=":material/error:")


# --- the service ------------------------------------------------------------------------------


def service_or_error() -> tuple[AwakNowService | None, AwakNowError | None]:
    """The process's service (cached per settings by ``shared_service``), or why there is none."""
    try:
        return shared_service(), None
    except AwakNowError as exc:  # a bad setting, or the database held by another process
        return None, exc


def service() -> AwakNowService:
    """The service, or a one-line error and the page stops."""
    svc, exc = service_or_error()
    if svc is None:
        assert exc is not None
        show_error(exc)
        st.stop()
    return svc


def _db_key(svc: AwakNowService) -> str:
    """Cache keys carry the database, so two services (tests, another env) never mix."""
    return str(svc.store.path)


# --- cached reads -----------------------------------------------------------------------------

QueryArgs = ParamSpec("QueryArgs")
Result = TypeVar("Result")


@st.cache_data(ttl=ANALYTICS_TTL_SECONDS, show_spinner=False, max_entries=500)
def _cached_call(
    _store: Any,
    db_key: str,
    query_name: str,
    _query: Callable[..., Any],
    args: tuple,
    kwargs: tuple,
) -> Any:
    return _query(_store, *args, **dict(kwargs))


def query(
    read: Callable[Concatenate[Store, QueryArgs], Result],
    *args: QueryArgs.args,
    **kwargs: QueryArgs.kwargs,
) -> Result:
    """``read(store, *args, **kwargs)``, cached briefly and shared by all tabs.

    ``read`` is a module-level function (an ``analytics`` query, an ``events`` read, a chart's
    query): the key is its qualified name, the database and the arguments (the ``Filters``
    among them), so a filter change is a new query while a rerun or another tab with the same
    filters is not. A lambda or nested function has no stable name and is refused.
    """
    query_name = f"{read.__module__}.{read.__qualname__}"
    if "<" in query_name:
        raise TypeError(f"ui.query needs a module-level function, not {query_name}")
    svc = service()
    return _cached_call(
        svc.store, _db_key(svc), query_name, read, args, tuple(sorted(kwargs.items()))
    )


@st.cache_data(ttl=STATUS_TTL_SECONDS, show_spinner=False, max_entries=200)
def _cached_conversation_status(
    _svc: AwakNowService,
    db_key: str,
    conversation_id: str,
    mode: str,
    status: str,
    _session: SessionRecord,
) -> str:
    return _svc.conversation_status(_session)


def conversation_status(session: SessionRecord) -> str:
    """Tavus's (or the mock's) view of the call, asked at most once per few seconds per call.

    Every open tab polls, so the answer is cached by conversation id for all of them.
    """
    svc = service()
    if not session.conversation_id:
        return session.status
    return _cached_conversation_status(
        svc, _db_key(svc), session.conversation_id, session.mode, session.status, session
    )


def invalidate() -> None:
    """Forget cached reads after a write (a session started or ended, a user added)."""
    _cached_call.clear()
    _cached_conversation_status.clear()


# --- users ------------------------------------------------------------------------------------


def current_month() -> date:
    return utcnow().date().replace(day=1)


def users_frame() -> pd.DataFrame:
    """Every user with plan and this month's usage (``analytics.users_overview``)."""
    return query(analytics.users_overview, current_month())


def months_between(first: date, last: date) -> list[str]:
    """'YYYY-MM' of every month from ``first`` to ``last``, oldest first."""
    months = pd.period_range(pd.Timestamp(first), pd.Timestamp(last), freq="M")
    return [f"{p.year:04d}-{p.month:02d}" for p in months]


def empty_state(title: str, text: str, *, hint: bool = True) -> None:
    """What a page shows instead of charts and tables when there is nothing to show."""
    with st.container(border=True):
        st.subheader(f":material/inbox: {title}", anchor=False)
        st.write(text)
        if hint:
            st.code(SEED_HINT, language="bash")
            st.caption(
                "The database is open in this app, so stop the app before running the command "
                "(or point AWAKNOW_DB_PATH at another file)."
            )


def _option_list(options: Any, key: str) -> list[str]:
    values = options.get(key, []) if isinstance(options, dict) else getattr(options, key, [])
    return [str(v) for v in values if v is not None and not pd.isna(v)]


def _user_picker(prefix: str, search_column: Any, pick_column: Any) -> list[str]:
    """Users found by what is typed (at most ``DEFAULT_USER_MATCHES``) plus those already
    picked: the page never receives every user, however many there are."""
    key = f"{prefix}_users"
    typed = search_column.text_input(
        "Find users", key=f"{prefix}_user_search", placeholder="part of a user id", max_chars=100
    )
    picked = [str(user) for user in st.session_state.get(key, [])]
    found = query(analytics.find_users, typed or "")
    return pick_column.multiselect(
        "User",
        sorted(set(found) | set(picked)),
        key=key,
        placeholder="All users",
        help=f"Shows up to {analytics.DEFAULT_USER_MATCHES} users matching Find users.",
    )


def filter_bar(prefix: str, bounds: tuple[date, date] | None) -> analytics.Filters:
    """Date range, persona, session type, mode, plan and user pickers -> ``Filters``.

    Widget keys start with ``prefix`` so each page keeps its own selection.
    """
    options = query(analytics.filter_options)
    with st.container(border=True):
        top = st.columns([2, 1, 1, 1])
        start = end = None
        if bounds is not None:
            first, last = bounds
            last = max(last, utcnow().date())
            picked = top[0].date_input(
                "Dates (UTC)",
                value=(first, last),
                min_value=first,
                max_value=last,
                key=f"{prefix}_dates",
                format="YYYY-MM-DD",
            )
            if isinstance(picked, tuple | list) and len(picked) == 2:
                start, end = picked
            elif isinstance(picked, tuple | list) and len(picked) == 1:
                start = end = picked[0]
        modes = top[1].multiselect(
            "Mode",
            _option_list(options, "modes") or ["live", "mock"],
            key=f"{prefix}_modes",
            placeholder="live and mock",
        )
        types = top[2].multiselect(
            "Session type",
            _option_list(options, "session_types"),
            key=f"{prefix}_types",
            placeholder="All types",
        )
        plans = top[3].multiselect(
            "Plan",
            _option_list(options, "plans"),
            key=f"{prefix}_plans",
            placeholder="All plans",
        )
        bottom = st.columns([1, 1, 2])
        personas = bottom[0].multiselect(
            "Persona",
            _option_list(options, "personas"),
            key=f"{prefix}_personas",
            placeholder="All personas",
        )
        users = _user_picker(prefix, bottom[1], bottom[2])
    return analytics.Filters(
        start=start,
        end=end,
        persona_ids=tuple(personas),
        session_types=tuple(types),
        modes=tuple(modes),
        plan_ids=tuple(plans),
        user_ids=tuple(users),
    )


SESSION_COLUMNS: dict[str, Any] = {
    "session_id": None,
    "user_id": "User",
    "session_type": "Type",
    "mode": "Mode",
    "status": "Status",
    "created_at": st.column_config.DatetimeColumn("Start (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    "started_at": None,
    "ended_at": st.column_config.DatetimeColumn("End (UTC)", format="HH:mm:ss"),
    "minutes": st.column_config.NumberColumn("Minutes", format="%.2f"),
    "conversation_id": "Conversation",
    "conversation_url": st.column_config.TextColumn("URL"),
    "shutdown_reason": "Shutdown reason",
    "error_message": "Error",
}


# --- the sidebar ------------------------------------------------------------------------------


def mode_badge(status: ModeStatus, where: Any = None) -> None:
    """The LIVE/MOCK badge with the reason on hover and as a caption."""
    target = where or st
    if status.mode == "live":
        target.badge("LIVE", icon=":material/check_circle:", color="green", help=status.reason)
    elif status.mode == "mock":
        target.badge("MOCK", icon=":material/science:", color="orange", help=status.reason)
    else:  # unavailable: strict fallback and the persona check failed, nothing can start
        target.badge("UNAVAILABLE", icon=":material/block:", color="red", help=status.reason)
    target.caption(status.reason)


def render_sidebar(viewer: Viewer) -> None:
    """Shown on every page: who is signed in, and, always, whether calls are live or mock."""
    show_flash()
    with st.sidebar:
        st.markdown("### :material/self_improvement: AwakNow")
        signin.sidebar_identity(viewer)
        svc, exc = service_or_error()
        if svc is None:
            assert exc is not None
            st.badge("UNAVAILABLE", icon=":material/block:", color="red")
            st.caption(error_text(exc))
            return
        mode_badge(svc.mode_status())


# --- widgets ----------------------------------------------------------------------------------


def usage_bar(minutes_used: float, minutes_limit: float, where: Any = None) -> None:
    """Minutes used against the plan: amber above 50 %, red above 80 %, "running low" < 5 min."""
    target = where or st
    limit = max(float(minutes_limit or 0), 0.0)
    used = max(float(minutes_used or 0), 0.0)
    fraction = min(used / limit, 1.0) if limit else 1.0
    left = max(limit - used, 0.0)
    color = BAND_COLORS[analytics.usage_band(used / limit if limit else None)]
    low = left < RUNNING_LOW_MINUTES
    note = " · **running low**" if low and left > 0 else " · **no minutes left**" if low else ""
    target.markdown(
        f'<div role="progressbar" aria-valuemin="0" aria-valuemax="100" '
        f'aria-valuenow="{fraction * 100:.0f}" aria-label="Tavus minutes used this month" '
        f'style="background:#dfe9e5;border-radius:8px;height:12px;overflow:hidden;'
        f'margin:4px 0 2px">'
        f'<div style="width:{fraction * 100:.1f}%;height:100%;background:{color}"></div></div>',
        unsafe_allow_html=True,
    )
    target.markdown(
        f"{used:,.2f} of {limit:,.0f} min used this month · **{left:,.2f} min left**{note}"
    )


def csv_download(frame: pd.DataFrame, name: str, key: str, label: str = "Download CSV") -> None:
    """A CSV download of exactly the table shown (no rerun when clicked).

    The file is made on the server when the button is clicked, and that click is audited
    with the person who saw the table."""
    who = signin.viewer()
    file_name = f"awaknow_{name}.csv"

    def export() -> bytes:
        if who is not None:
            signin.audit_action(who, "csv_export", file_name, rows=len(frame))
        return frame.to_csv(index=False).encode("utf-8")

    st.download_button(
        label,
        data=export,
        file_name=file_name,
        mime="text/csv",
        key=key,
        icon=":material/download:",
        on_click="ignore",
    )


def table(
    frame: pd.DataFrame,
    name: str,
    key: str,
    *,
    column_config: dict | None = None,
    height: int | Literal["auto", "content", "stretch"] | None = None,
    colors: dict[str, dict[str, str]] | None = None,
) -> None:
    """A read-only table with its CSV download underneath.

    Small tables are shown whole (no inner scrolling); ``colors`` maps a column to
    ``{value: css color}`` for its text. The CSV is the plain frame.
    """
    if height is None:
        height = min(TABLE_ROW_PX * (len(frame) + 1) + 3, TABLE_MAX_PX)
    shown: Any = frame
    if colors:
        shown = frame.style
        for column, palette in colors.items():
            shown = shown.map(
                lambda value, palette=palette: (
                    f"color: {palette[value]}; font-weight: 600" if value in palette else ""
                ),
                subset=[column],
            )
    st.dataframe(
        shown, hide_index=True, width="stretch", column_config=column_config, height=height
    )
    csv_download(frame, name, key=f"csv_{key}")


def take_title(figure: Any) -> str:
    """Remove a plotly figure's title and return it: the page shows it as the card's header,
    in the app's own type and beside the chart's controls, so it never collides with the
    legend."""
    title = figure.layout.title.text or ""
    figure.update_layout(title_text=None, margin={"t": 10})
    return title


def chart(figure: Any, key: str) -> None:
    """A plotly chart across its container, without the plotly logo."""
    st.plotly_chart(figure, width="stretch", key=key, config={"displaylogo": False})


def control_value(control: Control, months: Sequence[str]) -> ControlValue:
    """Draw one chart control (``chart_registry``) as its widget and return its value.

    ``months`` ('YYYY-MM', oldest first) are the options of a month picker.
    """
    if isinstance(control, Choice):
        picked = st.segmented_control(
            control.label, list(control.options), default=control.default, key=control.key
        )
        return picked or control.default
    if isinstance(control, Slider):
        return st.slider(
            control.label,
            min_value=control.low,
            max_value=control.high,
            value=control.default,
            step=control.step,
            key=control.key,
        )
    options = list(months)
    picked_month = st.selectbox(
        control.label,
        options,
        index=options.index(str(default_value(control, options))),
        key=control.key,
        width=180,
    )
    return str(picked_month)


def data_version(frame: pd.DataFrame) -> str:
    """A digest of a frame's columns and values: the same data gives the same version."""
    digest = hashlib.blake2b(repr(list(frame.columns)).encode(), digest_size=16)
    digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return digest.hexdigest()


@st.cache_resource(max_entries=300, show_spinner=False)
def _titled_figure(
    chart_name: str,
    values: tuple[ControlValue, ...],
    version: str,
    _spec: Chart,
    _frame: pd.DataFrame,
) -> tuple[str, Any]:
    """A chart's title and figure, built once per chart, control values and data version.

    Shared by every rerun and tab without a copy: nothing changes the figure afterwards, and
    ``st.plotly_chart`` serialises its own copy.
    """
    figure = _spec.draw(_frame, values)
    return take_title(figure), figure


def chart_card(spec: Chart, filters: analytics.Filters, months: Sequence[str]) -> None:
    """A bordered card: the chart's title beside its controls, the chart, and the table behind
    it with its CSV download (named after the chart and its control values)."""
    with st.container(border=True):
        head, controls = st.columns([3, 2], vertical_alignment="bottom")
        with controls:
            values = tuple(control_value(control, months) for control in spec.controls)
        frame = query(spec.query, *spec.arguments(filters, values, service().settings.pricing))
        title, figure = _titled_figure(spec.name, values, data_version(frame), spec, frame)
        head.markdown(f"**{title}**")
        if frame.empty:
            st.caption("No data for these filters.")
            return
        chart(figure, key=f"chart_{spec.name}")
        with st.expander("Table", icon=":material/table:"):
            table(frame, spec.file_name(values), key=spec.name)


def embeddable_url(url: str | None) -> str | None:
    """The conversation URL if it is safe to hand to ``st.iframe``, else None.

    ``st.iframe`` renders any string that is not a URL as raw HTML in the app's origin, so only
    an absolute http(s) URL or this app's own mock room path is ever embedded.
    """
    if not url:
        return None
    if _MOCK_ROOM_URL.match(url):
        return url
    parsed = urlparse(url)
    if (
        parsed.scheme in ("https", "http")
        and parsed.netloc
        and not any(ch in url for ch in "<>\"' \n")
    ):
        return url
    return None


def call_frame(url: str, height: int = CALL_HEIGHT) -> None:
    """The call itself; ``st.iframe`` allows camera, microphone, autoplay and fullscreen."""
    st.iframe(url, height=height, alt="AwakNow video call")


def fmt_seconds_as_clock(seconds: float | int | None) -> str:
    """A duration in seconds as m:ss (durations read better that way than 172 s)."""
    if seconds is None or pd.isna(seconds):
        return "-"
    total = round(float(seconds))
    return f"{total // 60}:{total % 60:02d}"


def fmt_minutes_as_clock(minutes: float | None) -> str:
    """A duration in minutes as m:ss (durations read better that way than 2.87 min)."""
    if minutes is None or pd.isna(minutes):
        return "-"
    return fmt_seconds_as_clock(float(minutes) * 60)


def fmt_seconds_as_minutes(seconds: float | int | None) -> str:
    """Billed seconds as minutes with two decimals (billing is kept to the second)."""
    if seconds is None or pd.isna(seconds):
        return "-"
    return f"{float(seconds) / 60:.2f}"


def fmt_time(value: datetime | None) -> str:
    if value is None or pd.isna(value):
        return "-"
    return f"{pd.Timestamp(value):%Y-%m-%d %H:%M:%S} UTC"


def fmt_time_of_day(value: datetime | None) -> str:
    """HH:MM:SS of a UTC timestamp, or '-'."""
    if value is None or pd.isna(value):
        return "-"
    return f"{pd.Timestamp(value):%H:%M:%S}"


FLASH_KEY = "awaknow_flash"


def attempt(action: Callable[[], Any], success: str) -> str | None:
    """Run a write (also from a widget callback). On success forget cached reads, keep
    ``success`` for a toast and return None; on an AwakNowError return its one line."""
    try:
        action()
    except AwakNowError as exc:
        return error_text(exc)
    invalidate()
    st.session_state[FLASH_KEY] = success
    return None


def run_action(action: Callable[[], Any], success: str) -> bool:
    """``attempt`` in the page body: the error is shown here; True when it worked (rerun)."""
    error = attempt(action, success)
    if error is not None:
        st.error(error, icon=":material/error:")
    return error is None


def show_flash() -> None:
    """The toast left by the last successful write, once."""
    message = st.session_state.pop(FLASH_KEY, None)
    if message:
        st.toast(message, icon=":material/check_circle:")
