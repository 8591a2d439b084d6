"""Tavus costs: this month's spend against the budget, and who and what the money goes to."""

import streamlit as st

from awaknow import analytics, signin, ui
from awaknow.chart_registry import COST_CHARTS


def budget_alert(spend: analytics.Spend) -> None:
    """The visible alert past 80 % and 100 % of the month's budget, and a note when the
    forecast is headed past it."""
    if spend.budget_usd is None or spend.budget_share is None:
        return
    used = f"${spend.spend_usd:,.2f} of the ${spend.budget_usd:,.2f} monthly budget"
    if spend.budget_state == "exceeded":
        st.error(f"Over budget: {used} ({spend.budget_share:.0%}).", icon=":material/error:")
    elif spend.budget_state == "warning":
        st.warning(
            f"Budget nearly spent: {used} ({spend.budget_share:.0%}).", icon=":material/warning:"
        )
    if (
        spend.budget_state != "exceeded"
        and spend.forecast_budget_share is not None
        and spend.forecast_budget_share >= 1
    ):
        st.info(
            f"At this pace the month ends at ${spend.forecast_usd:,.2f}, "
            f"{spend.forecast_budget_share:.0%} of the budget.",
            icon=":material/trending_up:",
        )


viewer = signin.require_page(__file__)
svc = ui.service()
pricing = svc.settings.pricing
st.title("Tavus costs")

spend = ui.query(analytics.month_spend, pricing)
budget_share = spend.budget_share
cols = st.columns(5)
cols[0].metric(f"Spend {spend.month:%B %Y}", f"${spend.spend_usd:,.2f}")
cols[1].metric("Forecast to month end", f"${spend.forecast_usd:,.2f}")
cols[2].metric(
    "Budget used",
    "no budget" if budget_share is None else f"{budget_share * 100:.0f} %",
    help="Set AWAKNOW_TAVUS_MONTHLY_BUDGET (USD) to follow a budget.",
)
cols[3].metric("Live minutes this month", f"{spend.live_minutes:,.2f}")
cols[4].metric("Included minutes left", f"{spend.included_minutes_left:,.2f}")
budget_alert(spend)
st.caption(
    f"Pricing: ${pricing.minute_price:,.2f} a live minute for the first "
    f"{pricing.included_minutes:,} live minutes of a month (UTC), then "
    f"${pricing.overage_price:,.2f} a minute; mock minutes ({spend.mock_minutes:,.2f} this "
    "month) cost nothing. Set in AWAKNOW_TAVUS_MINUTE_PRICE, AWAKNOW_TAVUS_INCLUDED_MINUTES "
    "and AWAKNOW_TAVUS_OVERAGE_PRICE. A part of a month (a user, a persona) costs its live "
    "minutes at the month's average price per minute. " + analytics.FORECAST_METHOD
)

bounds = ui.query(analytics.date_bounds)
if bounds is None:
    ui.empty_state(
        "No sessions yet",
        "Costs appear once live sessions have been billed. Start one on **Start a session**, "
        "or load demo data (with the app stopped):",
    )
    st.stop()

filters = ui.filter_bar("co", bounds)
st.caption(
    "The filters narrow the breakdowns; the spend, the budget and the margin are the whole "
    "account's for the month picked (margin and losses follow the plan and user filters)."
)
months = ui.months_between(*bounds)
for row in range(0, len(COST_CHARTS), 2):
    for column, spec in zip(st.columns(2, gap="medium"), COST_CHARTS[row : row + 2], strict=False):
        with column:
            ui.chart_card(spec, filters, months)
