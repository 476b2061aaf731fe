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


def coerce_config(cls: type, value: Any, what: str, *, required: tuple[str, ...] = ()) -> Any:
    """``value`` as the dataclass ``cls``: an instance as it is, a dict of its fields built into one.

    The one place that turns a config's plain dict (a record, a checkpoint's hyperparameters,
    a YAML file) into our config types, so every one of them rejects an unknown or missing
    setting with the same message: naming it, and the valid settings.
    """
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        article = "an" if cls.__name__[0] in "AEIOU" or cls.__name__.startswith("RNN") else "a"
        raise ZooError(f"{what} must be {article} {cls.__name__} or a dict, got {type(value).__name__}")
    fields = cls.__dataclass_fields__
    unknown = sorted(map(str, set(value) - set(fields)))
    if unknown:
        raise ZooError(f"unknown {what} setting(s) {', '.join(unknown)}; valid settings: {', '.join(fields)}")
    missing = [name for name in required if name not in value]
    if missing:
        raise ZooError(f"{what} is missing {', '.join(missing)}; a {what} needs at least {', '.join(required[:-1])} "
                       f"and {required[-1]}" if len(required) > 1 else f"{what} is missing {missing[0]}")
    return cls(**value)
