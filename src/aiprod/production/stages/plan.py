"""Stage 1, plan: a request becomes a storyboard."""

from __future__ import annotations

from typing import Protocol

from aiprod.production.models import ProductionRequest, Storyboard
from aiprod.production.stages.base import Backend


class Planner(Backend, Protocol):
    def plan(self, request: ProductionRequest) -> Storyboard:
        """Deterministic for a given request (its seed included)."""
        ...
