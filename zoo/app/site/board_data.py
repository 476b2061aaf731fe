"""A board as the web page shows it: its columns, each row's cells and sort values, its filters and anchors.

The rows are the boards' own (``zoo.app.boards.aggregate``: the median over scored seeds,
failed and diverged seeds counted apart, the rank); nothing is re-ranked here. Each row
becomes the HTML cells the page is served with (readable without JavaScript) and a
compact JSON entry the page's script sorts, filters and searches by. A failed or
diverged seed appears as its state, never as a number, and a published number
(``Benchmark.anchors``) is a row of kind "external" with no rank.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from zoo.records import STATES, test_metric

Row = dict[str, Any]


def num(value: Any, digits: int = 4) -> str:
    """A number as the boards print one (``.4g``); None as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    return str(value)


def state_badge(state: str) -> Markup:
    return Markup('<span class="state state-{0}">{0}</span>').format(state)


def metric_text(row: Row) -> Markup:
    """The median with its range; a model with no scored seed shows what its seeds became, never a number."""
    if row["median"] is None:
        states = [(s, row[s]) for s in ("failed", "diverged") if row.get(s)]
        words = Markup(", ").join(Markup("{} {}/{}").format(state_badge(s), n, row["runs"]) for s, n in states)
        return words or Markup("–")
    if row["n"] == 1:
        return Markup("{}").format(num(row["median"]))
    return Markup("{} <span class=\"range\">[{}–{}]</span>").format(num(row["median"]), num(row["min"]),
                                                                   num(row["max"]))


def _of_runs(key: str) -> Callable[[Row], Markup]:
    return lambda row: Markup("{}/{}").format(row[key], row["runs"])


def _longest(row: Row) -> tuple[str, Any]:
    if row["longest_solved"] is not None:
        return num(row["longest_solved"]), row["longest_solved"]
    return ("none", 0) if row["lengths_tested"] else ("–", None)


@dataclass(frozen=True)
class SiteColumn:
    """One column of a board page: ``cell`` gives its HTML, ``sort`` its sort value (None sorts last).

    ``fixed`` columns are the key ones, which the column chooser cannot hide; ``hidden`` ones
    start hidden; ``shown`` says whether a board has the column at all.
    """

    key: str
    header: str
    cell: Callable[[Row], Any]
    sort: Callable[[Row], Any]
    numeric: bool = True
    fixed: bool = False
    hidden: bool = False
    tip: str = ""
    shown: Callable[[list[Row]], bool] = lambda rows: True


def _plain(key: str) -> Callable[[Row], Any]:
    return lambda row: row[key]


def _backbone(row: Row) -> dict[str, Any]:
    return row["config"]["model"]["backbone"]


COLUMNS: tuple[SiteColumn, ...] = (
    SiteColumn("rank", "rank", lambda r: num(r["rank"]), _plain("rank"), fixed=True,
               tip="by the median test metric over scored seeds; a model with none has no rank"),
    SiteColumn("model", "model", _plain("model"), _plain("model"), numeric=False, fixed=True),
    SiteColumn("median", "test {metric}", metric_text, _plain("median"), fixed=True,
               tip="median [min–max] over the seeds that were scored; failed and diverged seeds are counted apart"),
    SiteColumn("n", "n", _plain("n"), _plain("n"), tip="scored seeds"),
    SiteColumn("solved", "solved", _of_runs("solved"), _plain("solved"), tip="seeds that met the target on test"),
    SiteColumn("failed", "failed", _of_runs("failed"), _plain("failed"),
               tip="seeds no better than the trivial baseline"),
    SiteColumn("diverged", "diverged", _of_runs("diverged"), _plain("diverged"),
               tip="seeds whose training or test score blew up"),
    SiteColumn("seeds", "seeds", lambda r: r["_seeds_html"], _plain("runs"), numeric=False,
               tip="each seed's test number or state, linked to its record"),
    SiteColumn("steps_to_target", "steps to val target", lambda r: num(r["steps_to_target"], 6),
               _plain("steps_to_target"), tip="median over the seeds that reached the target on validation"),
    SiteColumn("param_count", "params", lambda r: f"{r['param_count']:,}", _plain("param_count")),
    SiteColumn("cell", "cell", _plain("cell"), _plain("cell"), numeric=False),
    SiteColumn("layers", "layers", lambda r: _backbone(r)["num_layers"], lambda r: _backbone(r)["num_layers"],
               hidden=True),
    SiteColumn("bidirectional", "bidirectional", lambda r: "yes" if _backbone(r).get("bidirectional") else "no",
               lambda r: "yes" if _backbone(r).get("bidirectional") else "no", numeric=False, hidden=True),
    SiteColumn("activation", "activation", _plain("activation"), _plain("activation"), numeric=False),
    SiteColumn("init", "init", _plain("init"), _plain("init"), numeric=False),
    SiteColumn("clip", "clip", _plain("clip"), _plain("clip"), numeric=False),
    SiteColumn("max_grad_norm", "max grad norm", lambda r: num(r["max_grad_norm"], 3), _plain("max_grad_norm"),
               tip="largest gradient norm before clipping, over all seeds"),
    SiteColumn("clip_share", "clip share", lambda r: num(r["clip_share"], 2), _plain("clip_share"),
               tip="median share of steps that were clipped"),
    SiteColumn("longest_solved", "longest T solved", lambda r: _longest(r)[0], lambda r: _longest(r)[1],
               tip="the longest of the lengths tested at which the worst seed meets the target",
               shown=lambda rows: any(r["lengths_tested"] for r in rows)),
    SiteColumn("decay_log10", "gradient decay log10", lambda r: num(r["decay_log10"], 3), _plain("decay_log10"),
               tip="log10(‖∂L/∂h_1‖ / ‖∂L/∂h_T‖) at the end of training: 0 arrives whole, -3 a thousandth",
               shown=lambda rows: any(r["decay_log10"] is not None for r in rows)),
    SiteColumn("seconds", "seconds", lambda r: num(r["seconds"]), _plain("seconds"), hidden=True,
               tip="median training time of a seed"),
    SiteColumn("device", "device", _plain("device"), _plain("device"), numeric=False, hidden=True),
)

# The filters: each a set of values a row has (a model's state: every state one of its seeds is in).
FACETS: tuple[tuple[str, str, Callable[[Row], list[str]]], ...] = (
    ("cell", "cell", lambda r: [str(_backbone(r)["cell"])]),
    ("activation", "activation", lambda r: [str(r["activation"])]),
    ("init", "init", lambda r: [str(r["init"])]),
    ("clip", "clip", lambda r: [str(r["clip"])]),
    ("layers", "layers", lambda r: [str(_backbone(r)["num_layers"])]),
    ("bidirectional", "bidirectional", lambda r: ["yes" if _backbone(r).get("bidirectional") else "no"]),
    ("state", "has a seed that is", lambda r: r["_states"]),
)


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        else None


def seed_entries(row: Row, records: dict[str, dict[str, Any]], scored: tuple[str, ...]) -> list[dict[str, Any]]:
    """Each seed of a row: its record id, creation time, state and test number (None unless scored)."""
    out = []
    for rid in row["records"]:
        record = records[rid]
        metric, _ = test_metric(record)
        value = _finite(record["metrics"].get("test", {}).get(metric)) if record["state"] in scored else None
        out.append({"id": rid, "seed": record["seed"], "created": record.get("created"), "state": record["state"],
                    "value": value})
    return out


def seeds_html(seeds: list[dict[str, Any]]) -> Markup:
    parts = []
    for s in seeds:
        shown = num(s["value"]) if s["value"] is not None else state_badge(s["state"])
        parts.append(Markup('<a href="../records/{}.html">s{}</a>&nbsp;{}').format(s["id"], s["seed"], shown))
    return Markup('<span class="seeds">{}</span>').format(Markup(" · ").join(parts))


def axis_columns(rows: list[Row]) -> list[SiteColumn]:
    """A study's grid axes that are not columns already (activation, init and clip are)."""
    keys = {c.key for c in COLUMNS}
    names = list(dict.fromkeys(name for r in rows for name in (r.get("axes") or {})))
    return [SiteColumn(name, name, lambda r, n=name: (r.get("axes") or {}).get(n, "–"),
                       lambda r, n=name: (r.get("axes") or {}).get(n), numeric=False)
            for name in names if name not in keys]


def state_values(rows: list[Row], has_target: bool) -> list[str]:
    """The states a board's filter offers: those its task can give, in ``STATES`` order."""
    possible = {"failed", "diverged"} | ({"solved", "unsolved"} if has_target else {"finished"})
    present = {s for r in rows for s in r["_states"]}
    return [s for s in STATES if s in possible | present]


def board_view(board: dict[str, Any], bench: Any, scored: tuple[str, ...], boards: dict[tuple[str, str], str]
               ) -> dict[str, Any]:
    """Everything the board template and script need: ``columns``, ``rows`` (HTML cells), ``data`` (the JSON).

    ``boards`` maps every (benchmark, tier) built to its page, so that a dropped record of
    another board can be sent there.
    """
    records = {r["id"]: r for r in board["records"]}
    rows = [dict(row) for row in board["rows"]]
    for row in rows:
        row["_seeds"] = seed_entries(row, records, scored)
        row["_seeds_html"] = seeds_html(row["_seeds"])
        row["_states"] = sorted({s["state"] for s in row["_seeds"]}, key=STATES.index)
    columns = [c for c in COLUMNS if c.shown(rows)]
    at = next(i for i, c in enumerate(columns) if c.key == "clip") + 1
    columns[at:at] = axis_columns(rows)
    metric, mode = rows[0]["metric"], rows[0]["mode"]
    task = board["records"][0]["task"]
    facets = []
    for key, label, values in FACETS:
        seen = sorted({v for r in rows for v in values(r)})
        if key == "state":
            seen = state_values(rows, task.get("target") is not None)
        facets.append({"key": key, "label": label, "values": seen})
    html_rows, json_rows = [], []
    for i, row in enumerate(rows):
        html_rows.append({"kind": "ours", "cells": [(c.key, c.cell(row)) for c in columns]})
        search = [row["model"], row["cell"], row["activation"], row["init"], row["clip"], row["device"],
                  *row["records"], *(row.get("axes") or {}).values()]
        json_rows.append({
            "kind": "ours", "v": [c.sort(row) for c in columns], "p": row["param_count"],
            "f": {key: values(row) for key, _, values in FACETS}, "s": " ".join(map(str, search)).lower(),
            "seeds": [[s["id"], s["created"], s["value"]] for s in row["_seeds"]],
        })
    for anchor in (bench.anchors if bench else ()):
        cells = []
        for c in columns:
            cells.append((c.key, {"rank": Markup('<span class="external-mark">external</span>'),
                                  "model": Markup('published: {} <span class="source">({})</span>').format(
                                      anchor.model, anchor.source),
                                  "median": Markup("<em>{}</em>").format(f"{anchor.value:g}")}.get(c.key, "")))
        html_rows.append({"kind": "external", "cells": cells})
        sort = {"model": f"published: {anchor.model}", "median": anchor.value}
        json_rows.append({"kind": "external", "v": [sort.get(c.key) for c in columns],
                          "s": f"published {anchor.model} {anchor.source} external".lower()})
    config = rows[0]["config"]
    data = {
        "benchmark": board["benchmark"], "tier": board["tier"], "metric": metric, "mode": mode,
        "columns": [{"key": c.key, "header": c.header.format(metric=metric), "numeric": c.numeric, "fixed": c.fixed,
                     "hidden": c.hidden} for c in columns],
        "facets": facets, "rows": json_rows,
        "settings": {"data": config["data"], "trainer": config["trainer"], "stop_at_target": config["stop_at_target"],
                     "model": rows[0]["model"]},
        "boards": {f"{name}|{tier}": page for (name, tier), page in sorted(boards.items())},
    }
    return {"columns": [{"key": c.key, "header": c.header.format(metric=metric), "tip": c.tip, "fixed": c.fixed,
                         "hidden": c.hidden, "numeric": c.numeric} for c in columns],
            "rows": html_rows, "facets": facets, "data": data, "metric": metric, "mode": mode}
