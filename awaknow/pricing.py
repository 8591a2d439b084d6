"""What the Tavus account pays for conversation minutes: the one pricing rule.

Tavus bills the account, not AwakNow's users, per month: the first ``included_minutes`` live
minutes of a calendar month (UTC) at ``minute_price``, every live minute past them at
``overage_price``. Mock minutes never reach Tavus and cost nothing. ``cost_usd`` is the rule
in Python and ``cost_sql`` the same rule as SQL, so a month's spend is one definition
wherever it is computed; the tests check that the two agree.

The values come from configuration (``awaknow.config``); the defaults there are examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from awaknow.errors import ConfigError

BUDGET_WARNING_AT = 0.8  # share of the monthly budget spent: warn from here ...
BUDGET_EXCEEDED_AT = 1.0  # ... and alert from here


@dataclass(frozen=True)
class Pricing:
    """The account's Tavus pricing in USD (hashable: pages cache results by it)."""

    minute_price: float
    included_minutes: int
    overage_price: float
    monthly_budget: float | None = None

    def __post_init__(self) -> None:
        for name in ("minute_price", "overage_price"):
            if getattr(self, name) < 0:
                raise ConfigError(f"The Tavus {name.replace('_', ' ')} cannot be negative")
        if self.included_minutes < 0:
            raise ConfigError("The Tavus included minutes cannot be negative")
        if self.monthly_budget is not None and self.monthly_budget <= 0:
            raise ConfigError("The monthly Tavus budget must be above zero (or unset)")

    def cost_usd(self, live_seconds: float) -> float:
        """What a month with ``live_seconds`` of live conversation costs, unrounded."""
        included = self.included_minutes * 60
        within = min(live_seconds, included)
        beyond = max(live_seconds - included, 0)
        return (self.minute_price * within + self.overage_price * beyond) / 60

    def cost_sql(self, live_seconds: str) -> tuple[str, list[Any]]:
        """``cost_usd`` of the SQL expression ``live_seconds``, with its bound parameters."""
        included = self.included_minutes * 60
        return (
            f"((? * least({live_seconds}, ?) + ? * greatest({live_seconds} - ?, 0)) / 60)",
            [self.minute_price, included, self.overage_price, included],
        )

    def budget_state(self, spend_usd: float) -> str | None:
        """'ok', 'warning' (80 % of the budget or more) or 'exceeded' (100 % or more);
        None without a budget."""
        if self.monthly_budget is None:
            return None
        share = spend_usd / self.monthly_budget
        if share >= BUDGET_EXCEEDED_AT:
            return "exceeded"
        if share >= BUDGET_WARNING_AT:
            return "warning"
        return "ok"
