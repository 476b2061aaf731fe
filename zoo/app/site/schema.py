"""The run-record rules a board page checks a dropped file against, in the visitor's browser, as JSON.

Nothing a visitor drops is uploaded, so the check runs in JavaScript; its rules are
written here, from ``zoo.records`` (the schema's name, the versions this zoo reads, the
states), so that the page accepts what ``zoo.records.read_record`` accepts and names a
missing or mistyped field the way it does. ``tests/test_site.py`` checks that every field
listed in ``REQUIRED`` is one ``read_record`` refuses a record without.
"""

from __future__ import annotations

from typing import Any

from zoo.records import READABLE_VERSIONS, SCHEMA, SCHEMA_VERSION, STATES

# JSON types by name: "string", "integer", "number", "boolean", "object"; a list is the allowed values.
# What read_record requires of a record of any readable version.
REQUIRED: dict[str, str | list[str]] = {
    "id": "string", "benchmark": "string", "tier": "string", "model": "string", "seed": "integer",
    "config": "object", "metrics": "object", "task": "object",
}
# What placing a record on a board reads: its test metric, its settings (``setting_differences``), by dotted path.
PLACED: dict[str, str | list[str]] = {
    "metrics.test": "object", "task.target_metric": "string", "task.target_mode": ["min", "max"],
    "config.data": "object", "config.data.class": "string", "config.data.args": "object",
    "config.trainer": "object", "config.stop_at_target": "boolean",
}
# What a record of the current version has besides (a version-1 record's state is derived when it is read).
CURRENT: dict[str, str | list[str]] = {"state": list(STATES)}


def record_rules(scored: tuple[str, ...], budget_keys: tuple[str, ...]) -> dict[str, Any]:
    """The rules as plain JSON: ``scored`` (the states whose test number is ranked) and ``budget_keys``
    (the trainer settings that make two runs not comparable) are the boards' (``zoo.app.boards``)."""
    return {
        "schema": SCHEMA,
        "versions": list(READABLE_VERSIONS),
        "current": SCHEMA_VERSION,
        "required": REQUIRED,
        "placed": PLACED,
        "current_fields": CURRENT,
        "scored": list(scored),
        "budget_keys": list(budget_keys),
    }
