"""Stage 1, plan: a request becomes a storyboard.

Holds the Planner Protocol that backends implement, and the stage's body
(`run`, called by the Pipeline) with the reading and writing of
``storyboard.json``, which later stages (narrate) rewrite.

A provider planner (a paid, non-deterministic call) goes through the stage
cache: its storyboard is stored under a key of the request's planning fields
and the planner's identity (model, service), so the same request never pays
twice.  User media enter the key by scene only (the storyboard is given the
current request's media after it is loaded).  The built-in planner is cheap
and deterministic and runs uncached.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from aiprod.production import backends
from aiprod.production.models import ProductionRequest, Storyboard
from aiprod.production.stages.base import Backend
from aiprod.production.stages.context import StageContext, write_json

PLAN_FILE = "plan.json"
"""The provider planner's storyboard as planned (in ``work/``), before any edit."""

_NOT_PLANNING = frozenset(
    {
        "aspect",
        "resolution",
        "fps",
        "subtitles",
        "budget",
        "review",
        "music_file",
        "music_media_id",
        "fallback",
    }
)
"""Request fields no planner reads: changing them does not plan again."""


class Planner(Backend, Protocol):
    def plan(self, request: ProductionRequest) -> Storyboard:
        """Deterministic for a given request (its seed included)."""
        ...

    # Optional: ``cache_identity() -> dict`` names what else decides a provider
    # planner's output (its model, its service); it enters the cache key.


def run(ctx: StageContext, storyboard: Storyboard | None = None) -> Storyboard:
    """Plan (or accept an edited storyboard) and save it."""
    ctx.emit("plan", "started", 0.0)
    planner: Planner = ctx.backend("plan")
    ctx.outdir.mkdir(parents=True, exist_ok=True)
    ctx.work.mkdir(parents=True, exist_ok=True)
    hits = 0
    if storyboard is not None:
        ctx.made_by["plan"] = {"backend": "user-edit", "version": "1"}
        ctx.stats["plan"] = {"hits": 0, "misses": 1}
    elif planner.name in backends.PROVIDERS:
        storyboard, hit = _plan_cached(ctx, planner)
        hits = int(hit)
    else:
        storyboard = planner.plan(ctx.request)
        ctx.stats["plan"] = {"hits": 0, "misses": 1}
    save(ctx, storyboard)
    ctx.finish("plan", units=1, cached=hits)
    return storyboard


def planning_inputs(request: ProductionRequest, planner: Planner) -> dict[str, Any]:
    """What a provider planner's storyboard depends on: the request less the
    fields no planner reads, media by scene, and the planner's identity."""
    fields = request.model_dump(mode="json", exclude=set(_NOT_PLANNING))
    fields["media"] = sorted(m.scene for m in request.media)
    fields["backends"] = {"narrate": request.backends.get("narrate")}  # the voice's pace
    identity = getattr(planner, "cache_identity", None)
    return {"request": fields, "planner": identity() if callable(identity) else {}}


def _plan_cached(ctx: StageContext, planner: Planner) -> tuple[Storyboard, bool]:
    target = ctx.work / PLAN_FILE

    def make(tmp: Path) -> None:
        planned = planner.plan(ctx.request)
        write_json(tmp / PLAN_FILE, planned.model_dump(mode="json"))

    hit = ctx.cached("plan", planner, planning_inputs(ctx.request, planner), [target], make)
    planned = Storyboard.model_validate_json(target.read_text())
    media = {m.scene: m for m in ctx.request.media}
    scenes = [s.model_copy(update={"media": media.get(s.index)}) for s in planned.scenes]
    return planned.model_copy(update={"scenes": scenes}), hit


def save(ctx: StageContext, storyboard: Storyboard) -> None:
    """Write the production's current storyboard to ``storyboard.json``."""
    write_json(ctx.outdir / "storyboard.json", storyboard.model_dump(mode="json"))


def load(ctx: StageContext) -> Storyboard:
    """The storyboard an earlier run saved."""
    return Storyboard.model_validate_json((ctx.outdir / "storyboard.json").read_text())
