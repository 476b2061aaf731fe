"""``zoo leaderboard site``: the site straight from a records folder, beside the boards ``zoo leaderboard build`` writes.

The boards' own functions group, rank and check the records (``zoo.app.boards``), so a
site written here shows exactly the boards' numbers; the PNGs are the ones ``build``
left in ``figures`` (a board without them is shown without them).
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from zoo.app.board_rows import BUDGET_KEYS, SCORED, aggregate, board_key, load_board, refuse_dirty
from zoo.app.site.render import write_site
from zoo.errors import ZooError


def boards_of(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records as ``build`` groups them: one board per (benchmark, tier), its rows ranked."""
    from zoo.app.catalogue import BENCHMARKS

    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        grouped[board_key(record)].append(record)
    boards = []
    for (name, tier), board in sorted(grouped.items()):
        bench = BENCHMARKS.get(name)
        boards.append({"benchmark": name, "tier": tier, "rows": aggregate(board, bench.axes if bench else None),
                       "records": board, "stem": f"{name}.{tier}"})
    return boards


def build_site(records_root: str | os.PathLike, out: str | os.PathLike, *,
               figures: str | os.PathLike | None = "leaderboards", allow_dirty: bool = False) -> list[Path]:
    """Write the site for every record under ``records_root`` to ``out``; the files written.

    As with ``zoo leaderboard build``, a record made from a checkout with local changes is
    refused unless ``allow_dirty`` (its pages then say so).
    """
    records = load_board(records_root)
    if not records:
        raise ZooError(f"no run records under {records_root}; run `zoo bench run NAME --tier TIER` first")
    refuse_dirty(records, allow_dirty)
    return write_site(boards_of(records), out, figures=figures, scored=SCORED, budget_keys=BUDGET_KEYS)
