"""A board's rows from its run records: one row per model, the median over its scored seeds with range and n.

What every view of the boards shares (the Markdown tables, the long-dependency family
boards, the web site), in a module that imports no other part of the app, so that each of
them can use it without importing another.
"""

from __future__ import annotations

import math
import os
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.records import find_records, read_record, test_metric

# What the figures, family boards and site read of a record beyond ``aggregate`` (which is run on each record too).
BOARD_FIELDS: dict[str, type | tuple[type, ...]] = {
    "diverged": bool, "gradients": (dict, type(None)), "config.data": dict, "metrics.test": dict,
}


def load_board(root: str | os.PathLike) -> list[dict[str, Any]]:
    """Every record under ``root``, each read and checked; two files with one record id are an error.

    A board counts each (model, seed) once: a copy of a record under another name would
    enter the median twice, so it is refused, naming both files, rather than averaged in.
    A record that lacks a field the board reads is refused too, naming it, not a crash
    half-way through a build.
    """
    root = Path(root)
    if not root.is_dir():
        raise ZooError(f"no records folder at {root}; run `zoo bench run NAME --tier TIER` first")
    records, seen = [], {}
    for path in find_records(root):
        record = read_record(path)
        if record["id"] in seen:
            raise ZooError(f"run records {seen[record['id']]} and {path} have the same id {record['id']!r}; a board "
                           "counts each run once: remove the copy")
        seen[record["id"]] = path
        try:  # what a board reads of a record, read now: a field missing or mistyped is an error naming the file
            aggregate([record])
            for key, kinds in BOARD_FIELDS.items():
                value = record
                for part in key.split("."):
                    value = value[part]
                if not isinstance(value, kinds):
                    raise TypeError(f"{key} is {type(value).__name__}")
        except (KeyError, TypeError, AttributeError, ValueError, IndexError) as err:
            raise ZooError(f"run record {path} cannot go on a board: a field the boards read is missing or of the "
                           f"wrong type ({type(err).__name__}: {err}); re-run it, or remove it") from None
        records.append(record)
    return records


def activation_of(backbone: dict[str, Any]) -> str:
    """What a record's board row calls its activation: the config's nonlinearity, else the cell's default one
    (IndRNN's relu, the vanilla cell's tanh), else what the cell says of itself (``Cell.activation``)."""
    from zoo.cells import cell_names, get_cell

    if backbone.get("nonlinearity"):
        return backbone["nonlinearity"]
    if backbone["cell"] not in cell_names():  # a record of a cell this install does not have
        return "–"
    cell = get_cell(backbone["cell"])
    option = cell.options.get("nonlinearity")
    return option.default if option is not None else cell.activation


def describe(record: dict[str, Any]) -> dict[str, Any]:
    """The columns that say what a model is, read from the record's config."""
    backbone, trainer = record["config"]["model"]["backbone"], record["config"]["trainer"]
    layers = f"{backbone['num_layers']}x{backbone['hidden_size']}" + ("-bi" if backbone.get("bidirectional") else "")
    init = backbone["recurrent_init"] if backbone["input_init"] == backbone["recurrent_init"] else \
        f"{backbone['input_init']}/{backbone['recurrent_init']}"
    if backbone.get("forget_bias") is not None:
        init += f", forget bias {backbone['forget_bias']:g}"
    clip = trainer["gradient_clip_val"]
    return {
        "cell": f"{backbone['cell']} {layers}",
        "activation": activation_of(backbone),
        "init": init,
        "clip": f"{trainer['gradient_clip_algorithm']} {clip:g}" if clip else "none",
    }


def _finite(values: list[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def _mean(values: list[Any]) -> float | None:
    values = _finite(values)
    return statistics.fmean(values) if values else None


def _median(values: list[Any]) -> float | None:
    values = _finite(values)
    return statistics.median(values) if values else None


SCORED = ("solved", "unsolved", "finished")  # the states whose test number is a result; failed and diverged are not


def aggregate(records: list[dict[str, Any]], axes: dict[str, dict[str, str]] | None = None) -> list[dict[str, Any]]:
    """One row per model: the median test metric over its scored seeds with [min, max] and n; ranked by the median.

    A seed that failed (no better than the trivial baseline) or diverged is counted in its
    own column and never enters the median: three seeds at 0.165, 0.159 and 3,429 are one
    number of two seeds and one divergence, not a mean of 1143. ``axes`` (a study's
    ``Benchmark.axes``) gives each model of a study's grid its place on the grid.
    """
    axes = axes or {}
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_model[record["model"]].append(record)
    rows = []
    for model, runs in by_model.items():
        runs.sort(key=lambda r: r["seed"])
        metric, mode = test_metric(runs[0])
        scored = [r for r in runs if r["state"] in SCORED]
        values = _finite([r["metrics"]["test"].get(metric) for r in scored])
        reached = [r["convergence"].get("steps_to_target") for r in runs if r["convergence"].get("reached")]
        finished = [r for r in runs if r["state"] != "diverged"]
        longest = [r.get("longest_solved") for r in finished if r.get("lengths")]
        grad_norms = [r["stability"].get("max_grad_norm") for r in runs if r.get("stability")]
        median_steps = _median(reached)
        rows.append({
            "model": model,
            "metric": metric,
            "mode": mode,
            "median": _median(values),
            "min": min(values) if values else None,
            "max": max(values) if values else None,
            "n": len(values),
            "runs": len(runs),
            "solved": sum(r["state"] == "solved" for r in runs),
            "failed": sum(r["state"] == "failed" for r in runs),
            "diverged": sum(r["state"] == "diverged" for r in runs),
            "reached": len(reached),
            "steps_to_target": None if median_steps is None else int(round(median_steps)),
            "param_count": runs[0]["params"],
            **describe(runs[0]),
            "max_grad_norm": max(_finite(grad_norms), default=None),
            "clip_share": _median([r["stability"].get("clip_share") for r in runs if r.get("stability")]),
            "longest_solved": (min(longest, key=lambda t: t or 0) if longest else None),
            "lengths_tested": bool(longest),
            "decay_log10": _median([r["gradients"].get("decay_log10_final") for r in finished if r.get("gradients")]),
            "seconds": _median([r["seconds"] for r in runs]),
            "device": ", ".join(sorted({r["environment"]["device_name"] for r in runs})),
            "records": [r["id"] for r in runs],
            "config": runs[0]["config"],
            "axes": dict(axes.get(model, {})),
        })
    sign = -1 if rows and rows[0]["mode"] == "max" else 1
    rows.sort(key=lambda r: (r["median"] is None, sign * (r["median"] if r["median"] is not None else 0.0)))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank if row["median"] is not None else None  # a model with no scored seed has no rank
    return rows


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def fmt_metric(row: dict[str, Any]) -> str:
    """The median with its range, ``0.0102 [0.0100–0.0116]``; one seed shows no range; none scored: "–"."""
    if row["median"] is None:
        return "–"
    if row["n"] == 1:
        return f"{row['median']:.4g}"
    return f"{row['median']:.4g} [{row['min']:.4g}–{row['max']:.4g}]"


def board_key(record: dict[str, Any]) -> tuple[str, str]:
    return record["benchmark"], record["tier"]


def is_dirty(record: dict[str, Any]) -> bool:
    """Whether a record was made from a checkout with uncommitted changes (its code is no commit)."""
    return bool(((record.get("environment") or {}).get("git") or {}).get("dirty"))


def refuse_dirty(records: list[dict[str, Any]], allow_dirty: bool) -> None:
    """Stop a build on records made from a checkout with local changes, unless ``allow_dirty``."""
    dirty = [r["id"] for r in records if is_dirty(r)]
    if dirty and not allow_dirty:
        raise ZooError(f"{len(dirty)} record(s) were made from a checkout with local changes, so no commit holds "
                       f"the code that made them: {', '.join(dirty[:3])}{' ...' if len(dirty) > 3 else ''}; re-run "
                       "them from a clean checkout, or pass --allow_dirty to build anyway (their boards then say so)")


BUDGET_KEYS = ("max_steps", "max_epochs", "max_minutes", "limit_train_batches", "limit_val_batches",
               "limit_test_batches")
