"""Medians, spreads and ratios of alternated rounds; nothing here measures anything."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float]) -> tuple[float, float]:
    """The middle of the values: quartiles when there are 4 or more, else min and max."""
    if not values:
        return float("nan"), float("nan")
    if len(values) < 4:
        return min(values), max(values)
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def paired_ratios(ours: Sequence[float], base: Sequence[float]) -> list[float]:
    """Round-by-round ratios (rounds alternate, so each pair saw about the same machine load)."""
    return [o / b for o, b in zip(ours, base) if b]


def summary(values: Sequence[float]) -> dict[str, float]:
    low, high = spread(values)
    return {"median": median(values), "q1": low, "q3": high, "min": min(values, default=float("nan")),
            "max": max(values, default=float("nan")), "n": len(values)}


def ratio_text(ratios: Sequence[float], digits: int = 2) -> str:
    """'0.99 (0.97-1.01)': the median ratio with its spread."""
    if not ratios:
        return "n/a"
    low, high = spread(ratios)
    return f"{median(ratios):.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def rotations(names: Sequence[str], rounds: int) -> list[list[str]]:
    """Round r runs the variants starting at r mod n: every variant goes first equally often."""
    n = len(names)
    return [[names[(r + i) % n] for i in range(n)] for r in range(rounds)]


def paired_diffs(ours: Sequence[float], base: Sequence[float]) -> list[float]:
    return [o - b for o, b in zip(ours, base)]


def value_text(values: Sequence[float], unit: str, digits: int = 1) -> str:
    """'12.3 ms (11.0-14.1)': the median with its spread."""
    if not values:
        return "n/a"
    low, high = spread(values)
    return f"{median(values):.{digits}f} {unit} ({low:.{digits}f}-{high:.{digits}f})"
