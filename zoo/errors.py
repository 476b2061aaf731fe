"""One error type for bad user input, and the checks that raise it.

Every message names the offending setting, the value it got, and what is allowed,
so a user can fix a config without reading our source.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class ZooError(ValueError):
    """Bad input from a user: an unknown name, a value out of range, a missing file."""


def check_choice(setting: str, value: Any, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise naming the valid ones."""
    choices = tuple(choices)
    if value not in choices:
        raise ZooError(f"unknown {setting} {value!r}; valid choices: {', '.join(choices)}")
    return value


def check_int(setting: str, value: Any, *, low: int, high: int | None = None) -> int:
    """Return ``value`` if it is an int in [low, high], else raise naming the range."""
    in_range = isinstance(value, int) and not isinstance(value, bool) and value >= low
    if in_range and high is not None:
        in_range = value <= high
    if not in_range:
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ZooError(f"{setting} must be an integer {bound}, got {value!r}")
    return value


def check_float(
    setting: str, value: Any, *, low: float | None = None, high: float | None = None, high_open: bool = False
) -> float:
    """Return ``value`` as float if it is a finite number in range, else raise naming the range."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    ok = ok and abs(value) != float("inf")
    if ok and low is not None:
        ok = value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        parts = []
        if low is not None:
            parts.append(f">= {low}")
        if high is not None:
            parts.append(f"{'<' if high_open else '<='} {high}")
        bound = " and ".join(parts) if parts else "finite"
        raise ZooError(f"{setting} must be a number {bound}, got {value!r}")
    return float(value)
