"""The job state machine.  Every change of status goes through `check`."""

from __future__ import annotations

from typing import Final

from aiprod.errors import Conflict

STATUSES: Final = (
    "queued",
    "processing",
    "awaiting_approval",
    "completed",
    "failed",
    "cancelled",
)
TERMINAL: Final = frozenset({"completed", "failed", "cancelled"})

TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    "queued": frozenset({"processing", "cancelled"}),
    # processing → queued: a transient failure waiting for its retry.
    "processing": frozenset({"awaiting_approval", "completed", "failed", "cancelled", "queued"}),
    "awaiting_approval": frozenset({"queued", "cancelled"}),  # approve, cancel
    "failed": frozenset({"queued"}),  # retry from the failed stage
    "completed": frozenset({"queued"}),  # re-render a scene
    "cancelled": frozenset(),
}


class IllegalTransition(Conflict):
    def __init__(self, current: str, target: str) -> None:
        allowed = ", ".join(sorted(TRANSITIONS.get(current, ()))) or "none"
        super().__init__(
            f"a {current} job cannot become {target} (allowed: {allowed})", "invalid_state"
        )
        self.current = current
        self.target = target


def check(current: str, target: str) -> None:
    if target not in TRANSITIONS.get(current, frozenset()):
        raise IllegalTransition(current, target)
