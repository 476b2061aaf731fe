"""Releases: a run turned into shipped weights, a model card and a manifest entry; and checking a release.

    zoo pretrained export leaderboards/records/smnist/cpu/lstm_1x128.s0.json --out release/
    zoo pretrained verify [NAME]

The loading side (the manifest, ``zoo.pretrained.load``) is the library's; this side needs the
task's DataModule (its licence, what a release must carry, its test set), so it is the app's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.files import check_folder, replaced_atomically, sha256_file, write_json_atomic, write_text_atomic
from zoo.pretrained import MANIFEST_NAME, MANIFEST_VERSION, Pretrained, manifest
from zoo.records import read_record

TAG = re.compile(r"[A-Za-z0-9_\-]+")  # a release tag: part of its file names
SLICE_TOLERANCE = 0.15  # relative: a slice of the test set may land this far from the card's full-set metric


def card_text(name: str, card: dict[str, Any]) -> str:
    """A model card in Markdown with Hub-style YAML front matter."""
    metric, value = card["metric"], card["metrics"][card["metric"]]
    front = ["---", "library_name: rnn-zoo", "license: apache-2.0", f"tags: [rnn, {card['model']['backbone']['cell']}, "
             f"{card['task']['name']}]", "model-index:", f"- name: {name}", "  results:",
             f"  - task: {{type: {card['task']['name']}}}", "    metrics:", f"    - {{type: {metric}, value: {value}}}",
             "---", ""]
    body = [f"# {name}", "", f"{card['arch']} trained on `{card['benchmark']}` ({card['tier']} tier), "
            f"run record `{card['record']}`.", "",
            "| | |", "|---|---|",
            f"| test {metric} | {value:.6g} |",
            f"| parameters | {card['params']:,} |",
            f"| file | `{card['file']['name']}`, {card['file']['bytes']:,} bytes |",
            f"| sha256 | `{card['file']['sha256']}` |",
            f"| training data | {card['data_licence']} |",
            f"| recipe | {json.dumps(card['recipe'], sort_keys=True)} |", "",
            "```python", "import zoo.pretrained", f"m = zoo.pretrained.load({name!r})", "```", ""]
    return "\n".join(front + body)


def export(record_path: str | os.PathLike, out: str | os.PathLike, *, weights_dir: str | os.PathLike = "runs/weights",
           tag: str | None = None, data_dir: str | None = None) -> tuple[str, dict[str, Any]]:
    """Turn a run into a release in ``out``: weights, config JSON, model card and a manifest entry.

    Sizes and hashes are computed now, from the files written; the run's weights must
    match the sha256 its record holds.
    """
    from zoo.app.runner import build_data

    # Everything is checked and built before the first file is written, so a bad input leaves no partial release.
    record = read_record(record_path)
    weights_info = record.get("weights")
    if record.get("diverged") or not weights_info:
        raise ZooError(f"run {record['id']} has no weights to export "
                       f"({'it diverged' if record.get('diverged') else 'none were saved'})")
    if not (isinstance(weights_info, dict) and isinstance(weights_info.get("file"), str) and weights_info.get("sha256")):
        raise ZooError(f"run record {record_path} has a malformed \"weights\" entry: {weights_info!r}")
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
    extras: dict[str, Any] = {}
    out = check_folder("out", out)
    manifest_path = out / MANIFEST_NAME
    models = manifest(manifest_path) if manifest_path.is_file() else {}
    arch = record["model"].replace(".", "_")
    name = f"{arch}.{tag or record['benchmark']}"
    weights = out / f"{name}.safetensors"
    with replaced_atomically(weights) as tmp:
        shutil.copyfile(source, tmp)
    if vocab_text is not None:
        vocab_path = write_text_atomic(out / f"{name}.vocab.json", vocab_text)
        extras["vocab"] = {"name": vocab_path.name, "bytes": vocab_path.stat().st_size, "sha256": sha256_file(vocab_path)}
    card = {
        "arch": arch, "tag": tag or record["benchmark"], "benchmark": record["benchmark"], "tier": record["tier"],
        "record": record["id"], "task": record["task"], "data": config["data"],
        "model": model_config,
        "metric": metric, "metrics": metrics,
        "recipe": recipe,
        "params": params, "data_licence": licence, "preprocessing": preprocessing,
        "file": {"name": weights.name, "bytes": weights.stat().st_size, "sha256": sha256_file(weights)},
        "extras": extras, "hub": None,
    }
    write_json_atomic(out / f"{name}.json", card)
    write_text_atomic(out / f"{name}.md", card_text(name, card))
    write_json_atomic(manifest_path, {"version": MANIFEST_VERSION, "models": {**models, name: card}})
    return name, card


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
