"""Releases: a run turned into shipped weights, a model card and a manifest entry; and checking a release.

    zoo pretrained export leaderboards/records/smnist/cpu/lstm_1x128.s0.json --out release/
    zoo pretrained export --benchmark smnist --model lstm_1x128 --records leaderboards/records --out release/
    zoo pretrained verify [NAME]

Which seed of a model is released is decided on the validation split alone
(``select_by_validation``); the test split only reports. A run that did not beat the
trivial baseline (its record's state "failed" or "diverged") is never released.

The loading side (the manifest, ``zoo.pretrained.load``) is the library's; this side needs the
task's DataModule (its licence, what a release must carry, its test set), so it is the app's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import statistics
from pathlib import Path
from typing import Any

from zoo.app.board_rows import SCORED  # the states whose test number is a result: a card's median is the board's
from zoo.app.model_card import card_document
from zoo.errors import ZooError, check_choice
from zoo.files import check_folder, plain_name, replaced_atomically, sha256_file
from zoo.pretrained import MANIFEST_NAME, MANIFEST_VERSION, Pretrained, manifest
from zoo.records import outcome, read_record, record_path

TAG = re.compile(r"[A-Za-z0-9_\-]+")  # a release tag: part of its file names
SLICE_TOLERANCE = 0.15  # relative: a slice of the test set may land this far from the card's full-set metric
SELECTED_BY = ("val", "record")  # the seed chosen by select_by_validation, or the one record a user named
REFUSED = ("failed", "diverged")  # states of runs that did not beat the trivial baseline: never released


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if _finite(value) else repr(value)


def validation_figure(record: dict[str, Any]) -> dict[str, Any] | None:
    """The validation value a run is selected by: its best validation of the target metric, else its last one.

    {"metric": "val_<target>", "value", "source": "best" | "last", "step"}; None when the
    run has no finite validation value of its target metric. The test split is not read.
    """
    metric = record["task"]["target_metric"]
    metrics = record.get("metrics") or {}
    best = metrics.get("best") or {}
    if best.get("metric") in (None, metric, f"val_{metric}") and _finite(best.get("value")):
        return {"metric": f"val_{metric}", "value": float(best["value"]), "source": "best", "step": best.get("step")}
    last = (metrics.get("val") or {}).get(metric)
    if _finite(last):
        return {"metric": f"val_{metric}", "value": float(last), "source": "last", "step": record.get("steps")}
    return None


def select_by_validation(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The run to release among the seeds of one model on one board: the best validation value.

    The value is ``validation_figure`` (the record's ``metrics["best"]["value"]``, or
    ``metrics["val"][target_metric]`` where it has no best), better by the task's
    ``target_mode``; a tie goes to the lower seed. The test metrics are never read, so the
    released seed is not picked on the split its card reports. A run that stopped on a
    non-finite loss (``diverged``) or has no finite validation value is not a candidate.
    """
    if not records:
        raise ZooError("no runs to select a release from")
    boards = sorted({f"{r['model']} on {r['benchmark']} [{r['tier']}]" for r in records})
    if len(boards) > 1:
        raise ZooError(f"a release is selected among the seeds of one model on one board; got runs of "
                       f"{', '.join(boards)}")
    candidates = [(figure["value"], r) for r in records
                  if not r.get("diverged") and (figure := validation_figure(r)) is not None]
    if not candidates:
        seeds = ", ".join(str(r["seed"]) for r in sorted(records, key=lambda r: r["seed"]))
        raise ZooError(f"no run of {boards[0]} has a finite validation {records[0]['task']['target_metric']} to "
                       f"select a release by (seeds {seeds}: diverged or never validated)")
    sign = 1.0 if records[0]["task"]["target_mode"] == "min" else -1.0
    return min(candidates, key=lambda c: (sign * c[0], c[1]["seed"]))[1]


def model_runs(records_dir: str | os.PathLike, benchmark: str, tier: str, model: str) -> list[dict[str, Any]]:
    """Every seed's record of ``model`` on ``benchmark`` [``tier``] under a records folder, by seed."""
    folder = Path(records_dir) / benchmark / tier
    if not folder.is_dir():
        raise ZooError(f"no records of {benchmark} [{tier}] under {records_dir} (no folder {folder})")
    runs = [read_record(p) for p in sorted(folder.glob(f"{model}.s*.json"))]
    runs = [r for r in runs if (r["benchmark"], r["tier"], r["model"]) == (benchmark, tier, model)]
    if not runs:
        raise ZooError(f"no records of {model} on {benchmark} [{tier}] in {folder}")
    return sorted(runs, key=lambda r: r["seed"])


def _sibling_runs(path: Path, record: dict[str, Any]) -> list[dict[str, Any]]:
    """The record and its model's other seeds beside it (``<model>.s<seed>.json`` in the same folder)."""
    runs = {record["id"]: record}
    for other in sorted(path.parent.glob(f"{record['model']}.s*.json")):
        if other.resolve() == path.resolve():
            continue
        r = read_record(other)
        if (r["benchmark"], r["tier"], r["model"]) == (record["benchmark"], record["tier"], record["model"]):
            runs.setdefault(r["id"], r)
    return sorted(runs.values(), key=lambda r: r["seed"])


def seeds_summary(runs: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """The median test figure over a model's scored seeds (solved, unsolved, finished: as the boards), with n."""
    scored = [r for r in runs if r.get("state") in SCORED]
    values = [float(v) for r in scored if _finite(v := (r["metrics"].get("test") or {}).get(metric))]
    return {"metric": metric, "median": statistics.median(values) if values else None, "n": len(values),
            "runs": len(runs), "seeds": [r["seed"] for r in runs],
            "states": {state: sum(r.get("state") == state for r in runs) for state in (*SCORED, *REFUSED)}}


def evaluation_setup(config: dict[str, Any], task: dict[str, Any], data: Any = None) -> dict[str, Any]:
    """How the test figure was measured, from the record's data settings and task (defaults from the DataModule)."""
    args = config["data"].get("args") or {}

    def setting(name: str) -> Any:
        return args.get(name, getattr(data, name, None))

    setup: dict[str, Any] = {"split": "test", "batch_size": setting("eval_batch_size")}
    if task.get("stateful"):
        setup.update(mode="stream", bptt=setting("bptt"))  # B streams in windows of bptt, the state carried on
    else:
        setup["mode"] = "per-sequence"  # every sequence read from a fresh state
        for name in ("seq_len", "test_size"):
            if setting(name) is not None:
                setup[name] = setting(name)
    return setup


def evaluation_text(setup: dict[str, Any]) -> str:
    if setup.get("mode") == "stream":
        return (f"as a stream: the test split in {setup.get('batch_size')} streams read in windows of "
                f"{setup.get('bptt')} tokens (BPTT), the state carried from window to window")
    parts = [f"per-sequence, each from a fresh state, in batches of {setup.get('batch_size')}"]
    if setup.get("seq_len") is not None:
        parts.append(f"seq_len (T) {setup['seq_len']}")
    if setup.get("test_size") is not None:
        parts.append(f"{setup['test_size']:,} test sequences")
    return "; ".join(parts)


def refuse_unbeaten(record: dict[str, Any], state: str) -> None:
    """One error for a run that did not beat the trivial baseline by the task's margin: it is not released."""
    if state not in REFUSED:
        return
    task = record["task"]
    metric = task["target_metric"]
    value = (record["metrics"].get("test") or {}).get(metric)
    baseline = (task.get("baselines") or {}).get(metric)
    margin = float(task.get("baseline_margin", 0.05))
    raise ZooError(f"run {record['id']} is {state}, so it is not released: test {metric} {_fmt(value)} against the "
                   f"trivial baseline's {_fmt(baseline)} (a release must cover {margin:.0%} of the way from the "
                   f"baseline to a perfect score)")


def card_text(name: str, card: dict[str, Any]) -> str:
    """A model card in Markdown, its YAML front matter (model-index) built by huggingface_hub (``zoo.app.model_card``).

    A card written before releases were selected by validation lacks the selection,
    seeds, baseline, state and evaluation fields: their rows are left out.
    """
    metric, value = card["metric"], card["metrics"][card["metric"]]
    others = {k: v for k, v in card["metrics"].items() if k != metric}
    seed = card.get("seed", card.get("recipe", {}).get("seed"))
    rows = [f"| test {metric} (this seed) | {value:.6g}" + (f" (seed {seed})" if seed is not None else "") + " |"]
    rows += [f"| test {k} (this seed) | {_fmt(v)} |" for k, v in others.items()]
    seeds = card.get("seeds")
    if seeds:
        median = "–" if seeds.get("median") is None else f"{seeds['median']:.6g}"
        rows.append(f"| test {seeds['metric']}, median over seeds | {median} (n = {seeds['n']} scored of "
                    f"{seeds['runs']} runs; only solved, unsolved and finished seeds count) |")
    baseline = card.get("baseline")
    if baseline:
        note = f" ({baseline['note']})" if baseline.get("note") else ""
        rows.append(f"| trivial baseline, {baseline['metric']} | {_fmt(baseline.get('value'))}{note} |")
        rows += [f"| trivial baseline, {k} | {_fmt(v)} |" for k, v in (baseline.get("others") or {}).items()]
    if card.get("state"):
        reason = f": {card['state_reason']}" if card.get("state_reason") else ""
        rows.append(f"| state of this run | {card['state']}{reason} |")
    if card.get("selected_by") == "val" and card.get("val"):
        val = card["val"]
        rows.append(f"| selected by | validation: the best {val['metric']} of the model's seeds, {val['value']:.6g} "
                    f"({val['source']}, step {val.get('step')}); never the test split |")
    elif card.get("selected_by"):
        rows.append(f"| selected by | {card['selected_by']}: this run record was named for export |")
    if card.get("evaluation"):
        rows.append(f"| evaluation | {evaluation_text(card['evaluation'])} |")
    body = [f"# {name}", "", f"{card['arch']} trained on `{card['benchmark']}` ({card['tier']} tier), "
            f"run record `{card['record']}`.", "",
            "| | |", "|---|---|",
            *rows,
            f"| parameters | {card['params']:,} |",
            f"| file | `{card['file']['name']}`, {card['file']['bytes']:,} bytes |",
            f"| sha256 | `{card['file']['sha256']}` |",
            f"| training data | {card['data_licence']} |",
            f"| recipe | {json.dumps(card['recipe'], sort_keys=True)} |", "",
            "```python", "import zoo.pretrained",
            f"model = zoo.create_model({name!r}, pretrained=True)  # the SequenceModel, its weights checked by sha256",
            f"release = zoo.pretrained.load({name!r})  # the same in eval mode, with its card and preprocessing",
            "```", ""]
    return card_document(name, card, "\n".join(body))


def export(record_path: str | os.PathLike, out: str | os.PathLike, *, weights_dir: str | os.PathLike = "runs/weights",
           tag: str | None = None, data_dir: str | None = None, runs: list[dict[str, Any]] | None = None,
           selected_by: str = "record") -> tuple[str, dict[str, Any]]:
    """Turn a run into a release in ``out``: weights, config JSON, model card and a manifest entry.

    Sizes and hashes are those of the files written (the weights are hashed again as they
    are copied); the run's weights must match the sha256 its record holds. A run whose state is "failed" or "diverged" (it
    did not beat the trivial baseline by the task's margin) is refused, and nothing is written.

    ``runs``: the records of the model's seeds (this one among them), for the card's median
    over seeds; by default the ``<model>.s*.json`` records beside this one. ``selected_by``:
    "val" when the run is ``select_by_validation``'s pick among ``runs`` (checked), "record"
    when a user named this record.
    """
    from zoo.app.runner import build_data

    # Everything is checked and built before the first file is written, so a bad input leaves no partial release.
    check_choice("selected_by", selected_by, SELECTED_BY)
    record = read_record(record_path)
    plain_name(record["model"], f"run record {record_path}: its model name")  # it names files: its seeds', the release's
    judged = ({"state": record["state"], "reason": record.get("reason")} if record.get("state") else
              outcome(record["task"], record["metrics"].get("test") or {}, bool(record.get("diverged"))))
    state = judged["state"]
    refuse_unbeaten(record, state)
    runs = _sibling_runs(Path(record_path), record) if runs is None else list(runs)
    if record["id"] not in {r["id"] for r in runs}:
        runs.append(record)
    if selected_by == "val" and select_by_validation(runs)["id"] != record["id"]:
        raise ZooError(f"run {record['id']} is not the seed with the best validation value of its model "
                       f"({select_by_validation(runs)['id']} is): it cannot be released as selected by \"val\"")
    weights_info = record.get("weights")
    if record.get("diverged") or not weights_info:
        raise ZooError(f"run {record['id']} has no weights to export "
                       f"({'it diverged' if record.get('diverged') else 'none were saved'})")
    if not (isinstance(weights_info, dict) and isinstance(weights_info.get("file"), str) and weights_info.get("sha256")):
        raise ZooError(f"run record {record_path} has a malformed \"weights\" entry: {weights_info!r}")
    # It names the file read from weights_dir: a path could reach a file outside it.
    plain_name(weights_info["file"], f"run record {record_path}: its weights file")
    if tag is not None and not (isinstance(tag, str) and TAG.fullmatch(tag)):
        raise ZooError(f"tag {tag!r} must be letters, digits, '_' and '-' (it names the release's files)")
    source = Path(weights_dir) / weights_info["file"]
    if not source.is_file():
        raise ZooError(f"the weights of {record['id']} are not at {source}; pass --weights_dir where the run left them")
    if sha256_file(source) != weights_info["sha256"]:
        raise ZooError(f"{source} is not the file run {record['id']} wrote: its sha256 differs from the record's")
    config = record["config"]
    try:
        data_class, _ = config["data"]["class"], config["data"]["args"]
        model_config = {"backbone": config["model"]["backbone"], "module": config["model"]["module"]}
        recipe = {"optim": config["model"]["optim"], "trainer": config["trainer"], "seed": record["seed"],
                  "steps": record["steps"]}
        metric = record["task"]["target_metric"]
        metrics = {k: v for k, v in record["metrics"]["test"].items() if k != "loss"}
        params = record["params"]
        baselines = record["task"].get("baselines") or {}
        baseline = {"metric": metric, "value": baselines.get(metric), "note": record["task"].get("baseline_note", ""),
                    "margin": record["task"].get("baseline_margin"),
                    "others": {k: v for k, v in baselines.items() if k != metric and k in metrics}}
        seeds = seeds_summary(runs, metric)
    except (KeyError, TypeError, AttributeError) as err:
        raise ZooError(f"run record {record_path} lacks {err} in its config, task or metrics") from None
    data = build_data(config, data_dir)  # resolves the class: an unknown or foreign one is a ZooError naming it
    licence = data.licence
    if not (isinstance(licence, str) and licence.strip()):
        raise ZooError(f"DataModule {data_class!r} states no licence for its training data (a release's card must "
                       "carry one): set its `licence`")
    facts = dict(data.release_facts())
    vocab = facts.pop("vocab", None)
    vocab_text = None if vocab is None else json.dumps(vocab, ensure_ascii=False)
    try:
        preprocessing = json.loads(json.dumps(facts))
    except (TypeError, ValueError) as err:
        raise ZooError(f"release_facts() of DataModule {data_class!r} is not plain JSON: {err}") from None
    evaluation = evaluation_setup(config, record["task"], data)
    extras: dict[str, Any] = {}
    out = check_folder("out", out)
    manifest_path = out / MANIFEST_NAME
    models = manifest(manifest_path) if manifest_path.is_file() else {}
    arch = record["model"].replace(".", "_")
    name = f"{arch}.{tag or record['benchmark']}"
    weights = out / f"{name}.safetensors"
    if vocab_text is not None:
        vocab_bytes = vocab_text.encode("utf-8")  # as it is written below
        extras["vocab"] = {"name": f"{name}.vocab.json", "bytes": len(vocab_bytes),
                           "sha256": hashlib.sha256(vocab_bytes).hexdigest()}
    card = {
        "arch": arch, "tag": tag or record["benchmark"], "benchmark": record["benchmark"], "tier": record["tier"],
        "record": record["id"], "task": record["task"], "data": config["data"],
        "model": model_config,
        "metric": metric, "metrics": metrics,
        "seed": record["seed"], "selected_by": selected_by, "val": validation_figure(record),
        "seeds": seeds, "baseline": baseline, "state": state, "state_reason": judged.get("reason"),
        "evaluation": evaluation,
        "recipe": recipe,
        "params": params, "data_licence": licence, "preprocessing": preprocessing,
        "file": {"name": weights.name, "bytes": source.stat().st_size, "sha256": weights_info["sha256"]},
        "extras": extras, "hub": None,
    }
    # The card, its text and the manifest are made before the first file is written: a card that cannot be
    # rendered (a metric that is not a number, content that is not JSON) leaves nothing behind.
    try:
        card_json = json.dumps(card, indent=2) + "\n"
        manifest_json = json.dumps({"version": MANIFEST_VERSION, "models": {**models, name: card}}, indent=2) + "\n"
        markdown = card_text(name, card)
    except (TypeError, ValueError, KeyError) as err:
        raise ZooError(f"the card of run {record['id']} cannot be written: {err}") from None
    # Every file is written to its temporary name first, and they are renamed only once all are written, so a
    # full disk part-way leaves the previous release whole, never new weights beside an old manifest. The
    # renames run in reverse order of entry: the weights first, the manifest (what vouches for them) last.
    texts = {manifest_path: manifest_json, out / f"{name}.md": markdown, out / f"{name}.json": card_json}
    if vocab_text is not None:
        texts[out / f"{name}.vocab.json"] = vocab_text
    with contextlib.ExitStack() as staged:
        tmps = {path: staged.enter_context(replaced_atomically(path)) for path in [*texts, weights]}
        for path in (weights, *texts):
            try:
                if path == weights:
                    shutil.copyfile(source, tmps[weights])
                else:
                    tmps[path].write_text(texts[path], encoding="utf-8")
            except OSError as err:  # a full disk: named here, where the file that failed is known
                raise ZooError(f"cannot write {path}: {err.strerror or err}; nothing was released (the release in "
                               f"{out} is as it was)") from None
        if sha256_file(tmps[weights]) != card["file"]["sha256"] or tmps[weights].stat().st_size != card["file"]["bytes"]:
            raise ZooError(f"{source} changed while it was copied to {weights}: nothing released")
    return name, card


def export_selected(records_dir: str | os.PathLike, benchmark: str, model: str, out: str | os.PathLike, *,
                    tier: str = "cpu", weights_dir: str | os.PathLike = "runs/weights", tag: str | None = None,
                    data_dir: str | None = None) -> tuple[str, dict[str, Any]]:
    """Release ``model`` on ``benchmark`` [``tier``]: its seed picked by ``select_by_validation``, then ``export``."""
    runs = model_runs(records_dir, benchmark, tier, model)
    pick = select_by_validation(runs)
    return export(record_path(records_dir, benchmark, tier, model, pick["seed"]), out, weights_dir=weights_dir,
                  tag=tag, data_dir=data_dir, runs=runs, selected_by="val")


def evaluate(pretrained: Pretrained, *, limit_batches: int | float = 1.0, data_dir: str | None = None) -> float:
    """The card's metric of ``pretrained`` on (a slice of) its test set."""
    import lightning as L

    from zoo.app.runner import build_data, quiet_lightning

    ok = isinstance(limit_batches, (int, float)) and not isinstance(limit_batches, bool) and limit_batches > 0
    if not ok or (limit_batches > 1 and float(limit_batches) != int(limit_batches)):
        raise ZooError(f"limit_batches must be a share of the test batches in (0, 1] or a whole count of them, "
                       f"got {limit_batches!r}")
    quiet_lightning()
    data = build_data({"data": pretrained.card["data"]}, data_dir)
    if pretrained.vocab is not None and getattr(data, "vocab", None) != pretrained.vocab:
        theirs = getattr(data, "vocab", None) or []
        raise ZooError(f"the test data's vocabulary ({len(theirs)} tokens, from {data_dir or 'the default data'}) "
                       f"does not match {pretrained.name}'s ({len(pretrained.vocab)} tokens); evaluate it on the "
                       "corpus files it was trained on")
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_test_batches=limit_batches)
    result = trainer.test(pretrained.model, datamodule=data, verbose=False)[0]
    return float(result[f"test_{pretrained.card['metric']}"])
