"""Figures the chaos cases collect as they go (faults injected, jobs, time to resume), printed at the session's end."""

from __future__ import annotations

from typing import Any

FIGURES: dict[str, Any] = {"cases": {}}


def record(case: str, **values: Any) -> None:
    """Add figures to ``case`` (rounded, so the summary reads easily)."""
    entry = FIGURES["cases"].setdefault(case, {})
    entry.update({k: round(v, 2) if isinstance(v, float) else v for k, v in values.items()})
