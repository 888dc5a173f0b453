"""What a production spends on paid services, and the budget that stops it.

The Pipeline opens one ``Meter`` per run (``metering.open``) and sets the stage
being run; a provider backend asks ``authorize`` before each paid call (with
the units the call will use at most, e.g. the characters it sends) and
records what the service says it used with ``charge`` after.  ``authorize``
raises ``BudgetExceeded`` when the call could take the spend past the
request's budget (what the built-in stages are estimated to cost is set
aside first), so no paid call is ever made that the budget cannot cover.

The charges go into ``cost.json``.  A unit served from the stage cache is not
charged: it was not paid again.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from aiprod.production import telemetry
from aiprod.production.cost import BudgetExceeded, PriceTable


@dataclass(frozen=True)
class Charge:
    stage: str
    backend: str
    call: str
    unit: str
    units: float
    unit_price: float
    cost: float

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Meter:
    prices: PriceTable
    budget: float | None = None
    reserved: float = 0.0  # the built-in stages' estimated cost, set aside from the budget
    stage: str = ""
    charges: list[Charge] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def spent(self) -> float:
        return round(sum(c.cost for c in self.charges), 8)

    def price(self, backend: str, unit: str) -> float:
        try:
            return self.prices.unit_price(backend, unit)
        except ValueError:
            return 0.0  # an unpriced unit costs nothing (configure AIPROD_PRICES)

    def authorize(self, backend: str, unit: str, units: float) -> None:
        """Refuse (BudgetExceeded) a call whose cost could exceed what is left."""
        if self.budget is None:
            return
        cost = units * self.price(backend, unit)
        with self._lock:
            needed = self.reserved + self.spent + cost
        if cost > 0 and needed > self.budget + 1e-9:
            raise BudgetExceeded(round(needed, 8), self.budget)

    def charge(self, backend: str, call: str, unit: str, units: float) -> Charge:
        price = self.price(backend, unit)
        item = Charge(
            stage=self.stage,
            backend=backend,
            call=call,
            unit=unit,
            units=round(units, 6),
            unit_price=price,
            cost=round(units * price, 8),
        )
        with self._lock:
            self.charges.append(item)
        telemetry.provider_charge(backend, unit, item.units, item.cost)
        return item


_current: contextvars.ContextVar[Meter | None] = contextvars.ContextVar("meter", default=None)


def current() -> Meter:
    """The running production's meter; outside a production (a voice preview),
    an unlimited one that nobody reads."""
    meter = _current.get()
    return meter if meter is not None else Meter(PriceTable.default())


@contextmanager
def open_meter(meter: Meter) -> Iterator[Meter]:
    token = _current.set(meter)
    try:
        yield meter
    finally:
        _current.reset(token)
