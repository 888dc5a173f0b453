"""Stage 1, plan: a request becomes a storyboard.

Holds the Planner Protocol that backends implement, and the stage's body
(`run`, called by the Pipeline) with the reading and writing of
``storyboard.json``, which later stages (narrate) rewrite.
"""

from __future__ import annotations

from typing import Protocol

from aiprod.production.models import ProductionRequest, Storyboard
from aiprod.production.stages.base import Backend
from aiprod.production.stages.context import StageContext, write_json


class Planner(Backend, Protocol):
    def plan(self, request: ProductionRequest) -> Storyboard:
        """Deterministic for a given request (its seed included)."""
        ...


def run(ctx: StageContext, storyboard: Storyboard | None = None) -> Storyboard:
    """Plan (or accept an edited storyboard) and save it."""
    ctx.emit("plan", "started", 0.0)
    planner: Planner = ctx.backend("plan")
    if storyboard is None:
        storyboard = planner.plan(ctx.request)
    else:
        ctx.made_by["plan"] = {"backend": "user-edit", "version": "1"}
    ctx.outdir.mkdir(parents=True, exist_ok=True)
    ctx.work.mkdir(parents=True, exist_ok=True)
    save(ctx, storyboard)
    ctx.stats["plan"] = {"hits": 0, "misses": 1}
    ctx.finish("plan", units=1, cached=0)
    return storyboard


def save(ctx: StageContext, storyboard: Storyboard) -> None:
    """Write the production's current storyboard to ``storyboard.json``."""
    write_json(ctx.outdir / "storyboard.json", storyboard.model_dump(mode="json"))


def load(ctx: StageContext) -> Storyboard:
    """The storyboard an earlier run saved."""
    return Storyboard.model_validate_json((ctx.outdir / "storyboard.json").read_text())
