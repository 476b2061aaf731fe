"""PNG figures from logged runs (matplotlib): curves, stability, gradients through time, spectra, lengths.

A run is a logger folder as ``zoo fit`` leaves it (``runs/lightning_logs/version_N``):
``metrics.csv`` from the CSV logger and, when the gradient probe ran,
``grad_over_time.json``; or a run record (``zoo bench run``), whose learning curves
(training loss, validation metric) it keeps. Non-finite values are dropped before
anything is drawn, so a diverged run never stretches an axis to infinity.

    zoo plot runs/lightning_logs/version_0 runs/lightning_logs/version_1 --labels lstm gru --out figures/
    zoo plot leaderboards/records/adding_t100/cpu/gru_1x128.s0.json leaderboards/records/adding_t100/cpu/lstm_1x128.s0.json
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or wanted
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.patheffects import withStroke  # noqa: E402

from zoo.errors import ZooError  # noqa: E402

Series = list[tuple[int, float]]  # (step, value), finite values only


@dataclass
class Run:
    label: str
    metrics: dict[str, Series] = field(default_factory=dict)
    gradients: list[dict] = field(default_factory=list)  # grad_over_time.json: [{"step", "norms": {"l0": [...]}}]


def read_metrics(path: Path) -> dict[str, Series]:
    """Every column of a CSV logger's ``metrics.csv`` as (step, value) pairs, blanks and non-finite values left out."""
    columns: dict[str, Series] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            step = int(float(row.get("step") or 0))
            for key, text in row.items():
                if key in ("step", "epoch") or not text:
                    continue
                value = float(text)
                if math.isfinite(value):
                    columns.setdefault(key, []).append((step, value))
    return columns


def _finite_points(points: list) -> Series:
    return [(int(step), float(value)) for step, value in points
            if value is not None and math.isfinite(float(value))]


def run_from_record(record: dict, label: str | None = None) -> Run:
    """A run record's learning curves as a ``Run``: ``train_loss`` and its validation metric against the step."""
    run = Run(label or f"{record['model']} s{record['seed']}")
    curves = record.get("curves") or {}
    if curves.get("train_loss"):
        run.metrics["train_loss"] = _finite_points(curves["train_loss"])
    val = curves.get("val") or {}
    if val.get("points"):
        run.metrics[val["metric"]] = _finite_points(val["points"])
    return run


def load_run(folder: str | Path, label: str | None = None) -> Run:
    folder = Path(folder)
    if folder.is_file() and folder.suffix == ".json":
        from zoo.records import read_record

        run = run_from_record(read_record(folder), label)
        if not run.metrics:
            raise ZooError(f"{folder} is a run record without learning curves (made before records kept them); "
                           "`zoo reproduce` it to get a record that has them")
        return run
    metrics_file, gradients_file = folder / "metrics.csv", folder / "grad_over_time.json"
    if not metrics_file.is_file() and not gradients_file.is_file():
        raise ZooError(f"{folder} holds no logged run: expected a run record (.json), or a logger folder with "
                       "metrics.csv (CSV logger) or grad_over_time.json")
    run = Run(label or folder.name)
    if metrics_file.is_file():
        run.metrics = read_metrics(metrics_file)
    if gradients_file.is_file():
        try:
            run.gradients = json.loads(gradients_file.read_text())
        except json.JSONDecodeError as err:
            raise ZooError(f"{gradients_file} is not valid JSON ({err}); was the run interrupted while writing it?") from err
    return run


def _save(fig, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(out)  # a reader never sees half a PNG
    return out


LINE_STYLES = ("-", "--", ":", "-.")


def line_style(index: int) -> dict[str, object]:
    """The ``index``-th line's colour and dash: ten colours, then the same ten dashed, dotted...; no two alike."""
    return {"color": plt.get_cmap("tab10")(index % 10), "linestyle": LINE_STYLES[(index // 10) % len(LINE_STYLES)]}


def _legend_outside(ax, **kw) -> None:
    """The legend right of the axes, never over the data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kw)


def _draw(ax, series: Series, label: str, **kw) -> bool:
    if not series:
        return False
    steps, values = zip(*series)
    ax.plot(steps, values, label=label, **kw)
    return True


LOG_SCALED = ("loss", "mse", "perplexity", "bpc")  # errors that span orders of magnitude over a run


def plot_curves(runs: list[Run], out: Path, title: str = "", target: float | None = None,
                baseline: float | None = None, target_key: str | None = None) -> Path | None:
    """Training loss, and every validation metric, against the step; one colour and dash per run.

    ``target`` and ``baseline`` (the task's, in ``target_key``'s units) are drawn on that
    metric's panel, so a reader sees where a curve stands against "solved" and "learned nothing".
    """
    val_keys = sorted({k for run in runs for k in run.metrics if k.startswith("val_")})
    keys = ["train_loss", *val_keys]
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys) + 2, 4), squeeze=False)
    drawn = False
    for ax, key in zip(axes[0], keys):
        for index, run in enumerate(runs):
            drawn |= _draw(ax, run.metrics.get(key, []), run.label, **line_style(index))
        if key == target_key and target is not None:
            ax.axhline(target, color="green", linewidth=0.9, linestyle=":", label=f"target {target:g}")
        if key == target_key and baseline is not None:
            ax.axhline(baseline, color="red", linewidth=0.9, linestyle=":", label=f"trivial baseline {baseline:.3g}")
        ylabel = "training loss" if key == "train_loss" else f"validation {key.removeprefix('val_')}"
        ax.set(title=key.replace("_", " "), xlabel="optimizer step", ylabel=ylabel)
        if key.endswith(LOG_SCALED):
            ax.set_yscale("log")
    if title:
        fig.suptitle(title, fontsize=10)
    if drawn:
        _legend_outside(axes[0][-1], fontsize=7)
    return _save(fig, out) if drawn else plt.close(fig)


def plot_stability(runs: list[Run], out: Path) -> Path | None:
    """Global gradient norm before clipping (log scale) and the share of clipped steps."""
    fig, (norm_ax, clip_ax) = plt.subplots(1, 2, figsize=(11, 4))
    drawn = False
    for index, run in enumerate(runs):
        drawn |= _draw(norm_ax, run.metrics.get("stability/grad_norm", []), run.label, **line_style(index))
        _draw(clip_ax, run.metrics.get("stability/clip_share", []), run.label, **line_style(index))
    norm_ax.set(title="gradient norm before clipping", xlabel="step", yscale="log")
    clip_ax.set(title="share of steps clipped", xlabel="step", ylim=(-0.02, 1.02))
    if not drawn:
        return plt.close(fig)
    _legend_outside(clip_ax, fontsize=8)
    return _save(fig, out)


def plot_gradients_over_time(runs: list[Run], out: Path, layer: str = "l0", title: str = "") -> Path | None:
    """‖∂L/∂h_t‖ against t on a log scale: at initialization (left) and after training (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    drawn = False
    for index, run in enumerate(runs):
        if not run.gradients:
            continue
        for ax, entry in zip(axes, (run.gradients[0], run.gradients[-1])):
            norms = entry["norms"].get(layer, [])
            points = [(t + 1, v) for t, v in enumerate(norms) if v > 0 and math.isfinite(v)]
            drawn |= _draw(ax, points, f"{run.label} (step {entry['step']})", **line_style(index))
    if not drawn:
        return plt.close(fig)
    for ax, when in zip(axes, ("at initialization", "after training")):
        ax.set(title=f"‖∂L/∂h_t‖ {when}", xlabel="t", yscale="log")
        ax.legend(fontsize=8)
    axes[0].set_ylabel(f"gradient norm, layer {layer}")
    if title:
        fig.suptitle(title)
    return _save(fig, out)


def plot_spectra(runs: list[Run], out: Path) -> Path | None:
    """The largest spectral radius among each run's recurrent blocks, over training."""
    fig, ax = plt.subplots(figsize=(6, 4))
    drawn = False
    for run in runs:
        by_step: dict[int, float] = {}
        for key, series in run.metrics.items():
            if key.startswith("spectral/") and key.endswith("/radius"):
                for step, value in series:
                    by_step[step] = max(by_step.get(step, 0.0), value)
        drawn |= _draw(ax, sorted(by_step.items()), run.label, marker="o")
    if not drawn:
        return plt.close(fig)
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set(title="largest spectral radius of W_hh blocks", xlabel="step")
    ax.legend()
    return _save(fig, out)


def plot_lengths(results: dict[str, dict[int, float]], metric: str, out: Path, trained_at: int | None = None,
                 target: float | None = None, baseline: float | None = None, title: str = "",
                 unscored: dict[str, list[int]] | None = None) -> Path:
    """A test metric against the sequence length, one line per model ({label: {T: value}}).

    ``unscored`` ({label: [T, ...]}): the lengths at which a model has runs but no scored seed
    (all failed or diverged). They have no number to draw, so a note under the axes names
    them: a model missing from the lines must never read as a model that was not run.
    """
    fig, ax = plt.subplots(figsize=(6, 4))
    lengths: set[int] = set()
    for index, (label, by_length) in enumerate(results.items()):
        points = sorted((int(t), v) for t, v in by_length.items() if math.isfinite(v) and v > 0)
        lengths.update(t for t, _ in points)
        _draw(ax, points, label, marker="o", **line_style(index))
    if trained_at:
        ax.axvline(trained_at, color="grey", linewidth=0.8, linestyle="--", label=f"trained at T={trained_at}")
    if target is not None:
        ax.axhline(target, color="green", linewidth=0.9, linestyle=":", label=f"target {target:g}")
    if baseline is not None:
        ax.axhline(baseline, color="red", linewidth=0.9, linestyle=":", label=f"trivial baseline {baseline:.3g}")
    ax.set(title=title or f"test {metric} against sequence length", xlabel="T", ylabel=f"test {metric}",
           xscale="log")
    if metric in ("mse", "perplexity", "bpc"):
        ax.set_yscale("log")  # errors span orders of magnitude off the trained length
    ax.set_xticks(sorted(lengths), [str(t) for t in sorted(lengths)])
    ax.minorticks_off()
    _legend_outside(ax, fontsize=8)
    if unscored:
        listed = "; ".join(f"{label} at T = {', '.join(str(t) for t in sorted(ts))}"
                           for label, ts in unscored.items() if ts)
        if listed:
            fig.text(0.01, -0.02, "No scored seed (every run failed or diverged), so no point: " + listed,
                     fontsize=7, ha="left", va="top", wrap=True)
    return _save(fig, out)


def plot_final_gradients(curves: dict[str, list[float]], out: Path, title: str = "") -> Path | None:
    """One ‖∂L/∂h_t‖ curve per model (from run records) on a log scale; non-finite and zero norms left out.

    Each curve has its own colour and dash (``line_style``) and the legend sits outside the axes.
    """
    fig, ax = plt.subplots(figsize=(8, 4.5))
    drawn = False
    for index, (label, norms) in enumerate(curves.items()):
        points = [(t, v) for t, v in enumerate(norms, 1) if v is not None and math.isfinite(v) and v > 0]
        drawn |= _draw(ax, points, label, **line_style(index))
    ax.set(title=title, xlabel="step t (the loss reads the last step)", ylabel="‖∂L/∂h_t‖", yscale="log")
    if drawn:
        _legend_outside(ax, fontsize=7)
    return _save(fig, out) if drawn else plt.close(fig)


STUDY_MEASURES = (("median", "test MSE, median of scored seeds"), ("decay_log10", "gradient decay log10"))


def _no_number(row: dict) -> str:
    """What a cell without a median shows: why it has none."""
    if row["failed"] and row["failed"] >= row["diverged"]:
        return f"failed\n{row['failed']}/{row['runs']}"
    return f"diverged\n{row['diverged']}/{row['runs']}" if row["diverged"] else "–"


def plot_study(rows: list[dict], out: Path, axes: dict[str, dict[str, str]] | None = None,
               target: float | None = None, baseline: float | None = None) -> Path | None:
    """Heat maps of a study's grid: first axis x second axis, one panel per value of the third and measure.

    The grid is the rows' ``axes`` (from ``Benchmark.axes``: activation, init, clip for the
    gradient-problem study), in the benchmark's order of axes and values when ``axes`` is
    given; rows off the grid (the LSTM/GRU references) are listed under the figure. A cell
    is the median of its scored seeds; one with none (every seed failed or diverged) is
    left blank and says which, never coloured by a NaN. The error colours are on a log
    scale clipped to [target / 2, trivial baseline]: everything at or past the baseline
    (learnt nothing) is one colour, and one blown-up seed cannot stretch the scale.
    """
    grid = [r for r in rows if r.get("axes")]
    if not grid:
        return None
    places = list((axes or {}).values()) + [r["axes"] for r in grid]
    names = list(dict.fromkeys(name for place in places for name in place))
    if not 2 <= len(names) <= 3:
        raise ZooError(f"a study heat map needs 2 or 3 axes, the grid has {len(names)}: {', '.join(names)}")
    y_axis, x_axis, panel_axis = (*names, None)[:3]

    def values_of(axis: str | None) -> list[str | None]:
        """The axis's values that some row has, in the benchmark's order."""
        present = {r["axes"].get(axis) for r in grid}
        return [v for v in dict.fromkeys(place.get(axis) for place in places) if v in present] if axis else [None]

    ys, xs, panels = values_of(y_axis), values_of(x_axis), values_of(panel_axis)
    fig, panes = plt.subplots(len(STUDY_MEASURES), len(panels), figsize=(6.2 * len(panels), 3.6 * len(STUDY_MEASURES)),
                              squeeze=False, gridspec_kw={"wspace": 0.45})  # room for a colour bar's label
    for i, (key, title) in enumerate(STUDY_MEASURES):
        finite = [r[key] for r in grid if r[key] is not None and math.isfinite(r[key])]
        low, high = (min(finite), max(finite)) if finite else (None, None)  # one colour scale across panels
        clipped = key == "median" and target is not None and baseline is not None and target > 0
        if clipped:
            low, high = target / 2, baseline
        for j, panel in enumerate(panels):
            ax = panes[i][j]
            values = [[math.nan] * len(xs) for _ in ys]
            blanks = [[""] * len(xs) for _ in ys]
            for r in grid:
                place = r["axes"]
                if place.get(panel_axis) != panel:
                    continue
                a, k = ys.index(place.get(y_axis)), xs.index(place.get(x_axis))
                if r[key] is not None and math.isfinite(r[key]):
                    values[a][k] = r[key]
                else:
                    blanks[a][k] = _no_number(r)
            # Errors span orders of magnitude (0.005 solved, 0.16 trivial): log colours, clipped (see above).
            norm = LogNorm(low, high, clip=True) if key == "median" and finite and low > 0 else None
            image = ax.imshow(values, cmap="viridis_r" if key == "median" else "viridis", aspect="auto", norm=norm,
                              **({} if norm else {"vmin": low, "vmax": high}))
            for a in range(len(ys)):
                for k in range(len(xs)):
                    value = values[a][k]
                    ax.text(k, a, blanks[a][k] if value != value else f"{value:.3g}", ha="center", va="center",
                            fontsize=7, color="white", path_effects=[withStroke(linewidth=1.2, foreground="black")])
            ax.set_xticks(range(len(xs)), [str(x) for x in xs], fontsize=8)
            ax.set_yticks(range(len(ys)), [str(y) for y in ys], fontsize=8)
            ax.set_title(f"{title} ({y_axis} x {x_axis})" if panel is None else f"{title}, {panel}", fontsize=9)
            bar = fig.colorbar(image, ax=ax)
            if clipped:
                bar.set_ticks([target / 2, target, baseline],
                              labels=[f"{target / 2:g}", f"target {target:g}", f"≥ trivial {baseline:.3g}"], fontsize=7)
                bar.set_label("clipped log scale", fontsize=7)
    references = [r for r in rows if not r.get("axes")]
    if references:
        text = "; ".join(f"{r['model']}: {r['median']:.3g} (n {r['n']})" if r["median"] is not None
                         else f"{r['model']}: {_no_number(r).replace(chr(10), ' ')}" for r in references)
        fig.text(0.01, -0.02, f"References, off the grid — {text}", fontsize=8, ha="left", va="top")
    return _save(fig, out)


def plot_runs(folders: list[str], out_dir: str | Path, labels: list[str] | None = None) -> list[Path]:
    """Every figure the runs have data for, into ``out_dir``; returns the files written."""
    if labels and len(labels) != len(folders):
        raise ZooError(f"{len(labels)} labels were given for {len(folders)} runs; give one label per run or none")
    runs = [load_run(folder, label) for folder, label in zip(folders, labels or [None] * len(folders))]
    out_dir = Path(out_dir)
    written = [
        plot_curves(runs, out_dir / "curves.png"),
        plot_stability(runs, out_dir / "stability.png"),
        plot_gradients_over_time(runs, out_dir / "gradients_over_time.png"),
        plot_spectra(runs, out_dir / "spectral.png"),
    ]
    return [path for path in written if path is not None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zoo plot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="logger folders (runs/lightning_logs/version_N) or run records (.json)")
    parser.add_argument("--labels", nargs="+", help="one legend label per run (default: folder names)")
    parser.add_argument("--out", default="figures", help="folder for the PNG files")
    args = parser.parse_args(argv)
    for path in plot_runs(args.runs, args.out, args.labels):
        print(path)
    return 0
