"""The site's own charts (inline SVG, ``zoo.app.site.svg``): what the boards' PNGs do not already show.

A board page adds parameters against the test metric and, where the runs were tested at
other lengths (the adding family), the test metric against T; a record page draws its run's
learning curve and gradient profile. The boards' PNGs (curves, gradients, study heat map)
are copied as they are.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from markupsafe import Markup

from zoo.app.site.svg import Chart, Line, render

LEGEND_LIMIT = 8  # more models than this: one colour each but no legend (each point names itself on hover)
LENGTH_LINES = 12  # lines one length chart can show apart


def _task_rules(task: dict[str, Any]) -> list[tuple[str, float]]:
    rules = []
    if task.get("target") is not None:
        rules.append((f"target {task['target']:g}", task["target"]))
    baseline = (task.get("baselines") or {}).get(task["target_metric"])
    if baseline is not None:
        rules.append((f"trivial baseline {baseline:.4g}", baseline))
    return rules


def _log_ok(values: list[float]) -> bool:
    return bool(values) and all(v > 0 for v in values) and max(values) / min(values) > 10


def params_chart(rows: list[dict[str, Any]], task: dict[str, Any], anchors: tuple = ()) -> Markup:
    """Each model's median test metric against its parameter count; published numbers as labelled rules."""
    scored = [r for r in rows if r["median"] is not None]
    if not scored:
        return Markup("")
    metric = rows[0]["metric"]
    rules = _task_rules(task) + [(f"published: {a.model} {a.value:g}", a.value) for a in anchors]
    values = [r["median"] for r in scored] + [v for _, v in rules]
    chart = Chart(title=f"parameters against test {metric} (median over scored seeds)", x_label="parameters",
                  y_label=f"test {metric}", lines=[Line(r["model"], [(r["param_count"], r["median"])], markers=True)
                                                   for r in scored],
                  x_log=True, y_log=rows[0]["mode"] == "min" and _log_ok(values), rules=rules,
                  legend=len(scored) <= LEGEND_LIMIT)
    return render(chart)


def lengths_chart(rows: list[dict[str, Any]], records: list[dict[str, Any]], task: dict[str, Any]) -> Markup:
    """The test metric against the sequence length T the trained models were tested at (median over seeds)."""
    by_id = {r["id"]: r for r in records}
    metric = task["target_metric"]
    lines = []
    for row in rows:
        runs = [by_id[i] for i in row["records"] if by_id[i].get("lengths") and by_id[i]["state"] != "diverged"]
        per_t: dict[int, list[float]] = {}
        for run in runs:
            for t, values in run["lengths"].items():
                value = values.get(metric) if isinstance(values, dict) else None
                if isinstance(value, (int, float)) and math.isfinite(value):
                    per_t.setdefault(int(t), []).append(float(value))
        if per_t:
            lines.append(Line(row["model"], [(t, statistics.median(v)) for t, v in sorted(per_t.items())]))
        if len(lines) == LENGTH_LINES:
            break
    if not lines:
        return Markup("")
    values = [y for line in lines for _, y in line.points]
    return render(Chart(title=f"test {metric} against the length T tested (median over seeds; the best "
                              f"{len(lines)} models)", x_label="T (sequence length)", y_label=f"test {metric}",
                        lines=lines, x_log=True, y_log=task["target_mode"] == "min" and _log_ok(values),
                        rules=_task_rules(task)))


def curve_charts(record: dict[str, Any]) -> list[Markup]:
    """A record's learning curve: its training loss, and its validation metric with the target and baseline."""
    curves = record.get("curves") or {}
    out = []
    train = [(s, v) for s, v in curves.get("train_loss") or [] if v is not None]
    if train:
        out.append(render(Chart(title="training loss", x_label="step", y_label="loss",
                                lines=[Line("train loss", train)], y_log=_log_ok([v for _, v in train]))))
    val = curves.get("val") or {}
    points = [(s, v) for s, v in val.get("points") or [] if v is not None]
    if points:
        task = record["task"]
        name = val.get("metric") or "validation"
        rules = _task_rules(task) if name == f"val_{task['target_metric']}" else []
        values = [v for _, v in points] + [v for _, v in rules]
        out.append(render(Chart(title=f"validation {name.removeprefix('val_')}", x_label="step", y_label=name,
                                lines=[Line(name, points)], rules=rules,
                                y_log=task["target_mode"] == "min" and _log_ok(values))))
    return [chart for chart in out if chart]


def gradient_chart(record: dict[str, Any]) -> Markup:
    """‖∂L/∂h_t‖ against t at the end of training, layer 0's forward direction, on a log scale."""
    norms = (record.get("gradients") or {}).get("final_norms_l0") or []
    points = [(t, v) for t, v in enumerate(norms, 1) if v is not None]
    if not points:
        return Markup("")
    return render(Chart(title="‖∂L/∂h_t‖ at the end of training (layer 0)", x_label="t (time step)",
                        y_label="‖∂L/∂h_t‖", lines=[Line("‖∂L/∂h_t‖", points)], y_log=True))
