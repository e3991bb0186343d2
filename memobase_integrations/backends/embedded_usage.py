"""The embedded backend's usage counters (``GET /project/billing`` and ``/project/usage``).

Counted per UTC day in the store (``mb_usage``), so every process sharing it adds to the same
numbers: ``insert()`` calls (and how many succeeded) and the LLM tokens the endpoint reported.
Metering never fails the call it counts: a failed write is logged and skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from ..engine.store import Store, clock
from ..errors import MemobaseError, ValidationError
from .remote_models import DailyUsage, ProjectBilling

__all__ = ["UsageMeter"]

logger = logging.getLogger(__name__)


class UsageMeter:
    """Writes this process's inserts and LLM tokens to the store's daily counters and reads
    them back as Memobase's billing and usage answers."""

    def __init__(self, store: Store, meter_llm: Callable[[], None]) -> None:
        self.store = store
        #: Writes the LLM tokens spent since its last call to today's counters; the
        #: processor owns it (:meth:`.Processor.meter_llm_usage`), so flushes and these
        #: reads share one running total and count every token once.
        self.meter_llm = meter_llm

    def count_insert(self, *, success: bool) -> None:
        try:
            self.store.add_usage(_today(), inserts=1, successes=int(success))
        except MemobaseError as exc:  # metering must never fail the write it counts
            logger.warning("memobase: could not count an insert in the usage: %s", exc)

    def billing(self) -> ProjectBilling:
        """``GET /project/billing`` for this store: unlimited (``token_left`` is None), the
        next refill is the first of next month (UTC) and the cost is this month's LLM tokens
        (prompt + completion, as the LLM endpoint reported them)."""
        self.meter_llm()
        now = clock.utcnow()
        first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        refill = (
            first.replace(year=first.year + 1, month=1)
            if first.month == 12
            else (first.replace(month=first.month + 1))
        )
        rows = self.store.usage_since(first.date().isoformat())
        cost = sum(r[2] + r[3] for r in rows.values())
        return ProjectBilling(token_left=None, next_refill_at=refill, project_token_cost_month=cost)

    def daily(self, last_days: int = 7) -> list[DailyUsage]:
        """One entry per UTC day, today first, for the last ``last_days`` days (days without
        activity included with zeros). Inserts count ``insert()`` calls (the HTTP endpoint's);
        tokens are the LLM's (processing and search), as its endpoint reported them."""
        if last_days < 1:
            raise ValidationError(f"last_days must be >= 1, got {last_days}.")
        self.meter_llm()
        today = clock.utcnow().date()
        days = [today - timedelta(days=i) for i in range(last_days)]
        rows = self.store.usage_since(days[-1].isoformat())
        out = []
        for day in days:
            inserts, ok, prompt, completion = rows.get(day.isoformat(), (0, 0, 0, 0))
            out.append(
                DailyUsage(
                    date=day,
                    total_insert=inserts,
                    total_success_insert=ok,
                    total_input_token=prompt,
                    total_output_token=completion,
                )
            )
        return out


def _today() -> str:
    return clock.utcnow().date().isoformat()
