"""Estimate, budget cap with downgrades, fast-track rule."""

import pytest

from aiprod.production.cost import (
    BudgetExceeded,
    PriceTable,
    complexity,
    estimate,
    fit_budget,
    is_fast_track,
    requested_spec,
)
from aiprod.production.models import STAGES, ProductionRequest

PRICES = PriceTable.default(compute_price_per_hour=3.6)  # $0.001 per CPU second


def req(**kw: object) -> ProductionRequest:
    return ProductionRequest.model_validate({"prompt": "bees make honey", **kw})


def test_estimate_covers_every_stage_and_scales_with_work() -> None:
    r = req(duration=30, resolution="720p")
    small = estimate(r, requested_spec(r), PRICES)
    assert [s.stage for s in small.stages] == list(STAGES)
    assert small.total == pytest.approx(sum(s.cost for s in small.stages))
    big_r = req(duration=30, resolution="1080p")
    big = estimate(big_r, requested_spec(big_r), PRICES)
    by = lambda e, st: next(s for s in e.stages if s.stage == st)  # noqa: E731
    ratio = by(big, "visuals").cost / by(small, "visuals").cost
    assert ratio == pytest.approx((1920 * 1080) / (1280 * 720), rel=0.01)
    longer = req(duration=60, resolution="720p")
    assert estimate(longer, requested_spec(longer), PRICES).total > small.total
    no_music = req(duration=30, resolution="720p", music=None)
    assert by(estimate(no_music, requested_spec(no_music), PRICES), "music").cost == 0


def test_remote_backend_priced_per_published_unit() -> None:
    prices = PriceTable.default(overrides={"espeak": {"1k_chars": 0.5}})
    r = ProductionRequest(script="x" * 2000, backends={"narrate": "espeak"})
    est = estimate(r, requested_spec(r), prices)
    narrate = next(s for s in est.stages if s.stage == "narrate")
    assert narrate.unit == "1k_chars"
    assert narrate.cost == pytest.approx(2.0 * 0.5)


def test_unknown_price_is_an_error() -> None:
    with pytest.raises(ValueError, match="no price"):
        PRICES.unit_price("nobody", "1k_chars")


def test_budget_downgrades_before_refusing() -> None:
    r = req(duration=60, resolution="1080p", preset="premium_spot")
    full = fit_budget(r, PRICES)
    assert full.downgrades == [] and full.spec.quality == "premium"
    capped = fit_budget(
        req(duration=60, resolution="1080p", preset="premium_spot", budget=full.total * 0.6), PRICES
    )
    assert capped.total <= full.total * 0.6
    assert capped.downgrades and capped.downgrades[0] == "quality premium→standard"
    assert (capped.spec.width, capped.spec.quality) != (1920, "premium")
    with pytest.raises(BudgetExceeded, match="above the budget"):
        fit_budget(req(duration=60, resolution="1080p", budget=1e-9), PRICES)


def test_budget_resolution_step() -> None:
    r = req(duration=60, resolution="1080p", preset="quick_social")
    full = fit_budget(r, PRICES)
    capped = fit_budget(r.model_copy(update={"budget": full.total * 0.5}), PRICES)
    assert any(d.startswith("resolution 1080p→") for d in capped.downgrades)
    assert capped.spec.height < 1080


def test_fast_track_rule() -> None:
    simple = req(duration=15, resolution="480p")
    assert complexity(simple) < 0.3
    assert is_fast_track(simple)
    assert not is_fast_track(req(duration=45, resolution="480p"))  # too long
    media = [{"scene": i, "path": f"m{i}.png"} for i in range(4)]
    assert not is_fast_track(req(duration=20, resolution="1080p", media=media))
    assert complexity(req(duration=120, resolution="1080p", media=media)) > 0.8
