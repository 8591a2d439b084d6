"""The one palette: what keeps one colour on every chart, table and bar of the app.

Live and mock, session types, outcomes, plans, spend and margin, and the usage bands (the
band itself is decided by ``analytics.usage_band``; this only says how each one looks). No plotly or
Streamlit here, so the charts and the Streamlit glue both read it.
"""

from __future__ import annotations

from awaknow.analytics import BANDS

NEUTRAL = "#577590"
COLORS = {
    "live": "#2a9d8f",
    "mock": "#e9c46a",
    "reflect_alone": "#264653",
    "resolve_together": "#e76f51",
    "success": "#2a9d8f",
    "failure": "#d62828",
    "ok": "#2a9d8f",
    "amber": "#f4a261",
    "red": "#d62828",
    "awaknow_free": "#90be6d",
    "awaknow_growth": "#43aa8b",
    "awaknow_pro": "#277da1",
    "actual": "#264653",
    "forecast": "#8d99ae",
    "revenue": "#43aa8b",
    "cost": "#e76f51",
    "margin": "#277da1",
    "new": "#f4a261",
    "returning": "#2a9d8f",
    "retention": "#1d3557",
}
BAND_COLORS = {band: COLORS[band] for band in BANDS}
