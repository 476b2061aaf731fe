"""Running benchmarks: one run config to one record, a suite of (model, seed) pairs, and reproducing a record.

    zoo bench list
    zoo bench run adding_t100 --tier cpu [--models lstm_1x128 gru_1x128] [--seeds 0 1 2]
    zoo reproduce leaderboards/records/adding_t100/cpu/lstm_1x128.s0.json

A suite skips every pair whose record already exists, so a killed suite started again
resumes where it stopped; a record is renamed into place only once complete. ``run_pair``
is that one pair's steps: the worker processes of ``--jobs`` (zoo.app.parallel) and the
cluster jobs of ``--launcher`` (zoo.app.launch) run it too.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from zoo.errors import ZooError, check_int, coerce_config
from zoo.files import inside, replaced_atomically, sha256_file, temp_names
from zoo.models.sequence_kernels import own_kernels
from zoo.records import (build_record, data_checksums, find_records, read_record, record_id, record_path,
                         test_metric, write_record)

DEFAULT_RECORDS = "leaderboards/records"
DEFAULT_WEIGHTS = "runs/weights"
DEFAULT_CHECKPOINTS = "runs/checkpoints"
VERDICTS = ("identical", "within tolerance", "differs")


def quiet_lightning() -> None:
    """One progress line per run, not Lightning's banners."""
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="lightning")


def build_data(config: dict[str, Any], data_dir: str | None = None):
    """The config's DataModule: ``config["data"]["class"]`` is a short name or a class path (``tasks.resolve_datamodule``)."""
    from tasks import resolve_datamodule

    cls = resolve_datamodule(config["data"]["class"])
    args = dict(config["data"]["args"])
    if data_dir is not None and "data_dir" in inspect.signature(cls).parameters:
        args["data_dir"] = data_dir
    return cls(**args)


def build_model(config: dict[str, Any], task):
    from zoo.module import SequenceModel

    return SequenceModel.from_config(config["model"], task)


def save_weights(model, path: Path) -> dict[str, Any]:
    """safetensors of the trained weights (tied tensors once), written to a temporary name and renamed."""
    from safetensors import SafetensorError
    from safetensors.torch import save_model

    try:
        with replaced_atomically(path) as tmp:
            save_model(model.cpu(), str(tmp))
    except SafetensorError as err:  # its own I/O error (a full disk, a file-size limit): one error naming the file
        raise ZooError(f"cannot write {path}: {str(err).splitlines()[0]}; nothing was written") from None
    return {"file": path.name, "format": "safetensors", "sha256": sha256_file(path), "bytes": path.stat().st_size}


def longest_solved(lengths: dict[int, dict[str, float]], task: dict[str, Any]) -> int | None:
    """The longest tested length at which the model meets the task's target (None: at none)."""
    metric, target, mode = task["target_metric"], task["target"], task["target_mode"]
    if target is None:
        return None
    solved = [t for t, m in lengths.items()
              if metric in m and (m[metric] <= target if mode == "min" else m[metric] >= target)]
    return max(solved) if solved else None


def execute(config: dict[str, Any], seed: int, *, data_dir: str | None = None,
            weights_dir: str | os.PathLike | None = DEFAULT_WEIGHTS, wandb: bool = False,
            checkpoint_dir: str | os.PathLike | None = None, checkpoint_every_n_steps: int | None = None,
            callbacks: list[Any] | None = None) -> dict[str, Any]:
    """Train and test one run of ``config`` with ``seed``; return its record (not yet written).

    With ``checkpoint_dir`` the run checkpoints there and resumes from a checkpoint it
    finds (a killed run), ending as it would have uninterrupted. ``callbacks`` are
    extra Lightning callbacks (tests use one to pause a run where it is to be killed).
    """
    from zoo.diagnostics import evaluate_at_lengths
    from zoo.train import fit_and_test, seed_run

    check_int("seed", seed, low=0)
    rid = record_id(config["benchmark"], config["tier"], config["model"]["name"], seed)
    data = build_data(config, data_dir)
    seed_run(seed)  # the initial weights are a function of the seed alone
    model = build_model(config, data.task_spec)
    t = config["trainer"]
    trainer_kwargs: dict[str, Any] = {
        "max_epochs": t["max_epochs"],
        "limit_train_batches": t["limit_train_batches"],
        "limit_val_batches": t["limit_val_batches"],
        "limit_test_batches": t["limit_test_batches"],
        "accelerator": t["accelerator"],
    }
    if t.get("val_check_interval") is not None:  # records from before it validated once an epoch
        trainer_kwargs["val_check_interval"] = t["val_check_interval"]
    if t.get("max_minutes"):
        raise ZooError(f"run {rid} has a wall-clock budget ({t['max_minutes']} minutes); budgets are steps or epochs, "
                       "so that a run gives the same record on every machine (`zoo reproduce` replays an old "
                       "record's steps)")
    if callbacks:
        trainer_kwargs["callbacks"] = list(callbacks)
    wandb_logger = None
    if wandb:
        from zoo.app.run_logs import wandb_logger as run_wandb_logger

        wandb_logger = run_wandb_logger(rid, config)  # under the run's own folder, never the current directory
        trainer_kwargs["logger"] = wandb_logger
    result = fit_and_test(
        model, data, max_steps=t["max_steps"], seed=seed, clip_val=t["gradient_clip_val"],
        clip_algorithm=t["gradient_clip_algorithm"] or "norm", stop_at_target=config["stop_at_target"],
        deterministic=t["deterministic"], trainer_kwargs=trainer_kwargs, diagnostics=True,
        diagnostics_every_n_steps=config["diagnostics_every_n_steps"], checkpoint_dir=checkpoint_dir,
        checkpoint_every_n_steps=checkpoint_every_n_steps,
    )
    task = data.task_spec.to_dict()
    lengths: dict[int, dict[str, float]] = {}
    if config["lengths"] and not result.diverged:
        lengths = evaluate_at_lengths(model, data, config["lengths"], accelerator=t["accelerator"])
    if result.diverged:
        stopped_by = "diverged"
    elif config["stop_at_target"] and result.reached_target:
        stopped_by = "target"
    elif t["max_steps"] and t["max_steps"] > 0 and result.steps >= t["max_steps"]:
        stopped_by = "max_steps"
    else:
        stopped_by = "max_epochs"
    weights = save_weights(model, Path(weights_dir) / f"{rid}.safetensors") if weights_dir and not result.diverged else None
    return build_record(config, seed, result, task=task, data=data_checksums(data),
                        params=sum(p.numel() for p in model.parameters()), lengths=lengths,
                        longest_solved=longest_solved(lengths, task), stopped_by=stopped_by, weights=weights,
                        wandb_run_id=wandb_logger.experiment.id if wandb_logger is not None else None)


def one_line(record: dict[str, Any]) -> str:
    if record["diverged"]:
        return f"{record['id']}: {record['diverged_reason']}"
    metric, _ = test_metric(record)
    value = record["metrics"]["test"].get(metric)
    reached = record["convergence"].get("steps_to_target")
    return (f"{record['id']}: test {metric} {value:.4g}, {record['steps']} steps"
            f"{f', target at step {reached}' if reached is not None else ''}, {record['seconds']:.0f} s")


def pair_lock(path: Path) -> Path:
    """The lock file of the pair whose record goes to ``path``."""
    return path.with_name(f".{path.name}.lock")


def claim(path: Path) -> FileLock | None:
    """Take the pair whose record goes to ``path`` for this process, or None when another process holds it.

    Two suites started on the same records folder then split the pairs between them
    instead of running each twice. The lock is the operating system's (``filelock``): it
    goes with its process, so a killed suite's pair is free again at once.
    """
    lock_path = pair_lock(path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return None
    return lock


def release(path: Path, lock: FileLock) -> None:
    """Let the pair go; its record (when there is one) is already in place, so whoever takes the lock next skips it."""
    pair_lock(path).unlink(missing_ok=True)
    lock.release()


RECIPE_KEYS = ("name", "backbone", "optim", "clip_val", "clip_algorithm", "module")


def load_model_config(path: str | os.PathLike):
    """A user's own model from YAML or JSON, checked, in either of two layouts.

    - a recipe: ``name``, ``backbone``, ``optim``, ``clip_val``, ``clip_algorithm``, ``module``;
    - what ``zoo fit --print_config`` writes (or any ``zoo fit --config`` file): its ``model:``
      section (``backbone``, ``optim`` and SequenceModel's other settings) and the trainer's
      ``gradient_clip_val`` and ``gradient_clip_algorithm``. The model is named after the
      file (``mine.yaml``: ``mine``). The file's data, budget and seed are not read: a
      benchmark runs every model on its own task settings, budget and seeds.

    Plain data only, and bounded: a Python tag or a file whose aliases expand past a
    page of settings is refused (``zoo.app.config_files``).
    """
    from zoo.app.config_files import read_yaml
    from zoo.app.recipes import Recipe
    from zoo.models.rnn import RNNConfig
    from zoo.optim import OptimConfig

    path = Path(path)
    spec = read_yaml(path, f"model config {path}")
    if isinstance(spec, dict) and "backbone" not in spec and isinstance(spec.get("model"), dict):
        spec = _recipe_of_fit_config(path, spec)
    if not isinstance(spec, dict) or "name" not in spec or "backbone" not in spec:
        raise ZooError(f"model config {path} must be a mapping with at least 'name' and 'backbone'; "
                       f"keys: {', '.join(RECIPE_KEYS)}; or what `zoo fit --print_config` writes (a 'model' "
                       "section with its 'backbone')")
    unknown = sorted(set(spec) - set(RECIPE_KEYS))
    if unknown:
        raise ZooError(f"model config {path} has unknown keys {unknown}; valid keys: {', '.join(RECIPE_KEYS)}")
    for key in ("backbone", "optim", "module"):
        if spec.get(key) is not None and not isinstance(spec[key], dict):
            raise ZooError(f"model config {path}: {key} must be a mapping of settings, got {type(spec[key]).__name__}")
    parts = {}
    for key, cls in {"backbone": RNNConfig, "optim": OptimConfig}.items():
        try:
            parts[key] = coerce_config(cls, spec.get(key) or {}, key)
        except ZooError as err:
            raise ZooError(f"model config {path}: {err}") from None
    return Recipe(str(spec["name"]), parts["backbone"], parts.get("optim", OptimConfig()),
                  clip_val=spec.get("clip_val"), clip_algorithm="norm" if spec.get("clip_algorithm") is None else spec["clip_algorithm"],
                  module=dict(spec.get("module") or {}))


def _recipe_of_fit_config(path: Path, config: dict[str, Any]) -> dict[str, Any]:
    """A ``zoo fit`` config (the ``--print_config`` layout) as a recipe mapping, named after its file."""
    model = dict(config["model"])
    if "backbone" not in model:
        raise ZooError(f"model config {path}: its 'model' section has no 'backbone' (the layout `zoo fit "
                       "--print_config` writes has model: backbone: cell: ...)")
    trainer = config.get("trainer") or {}
    if not isinstance(trainer, dict):
        raise ZooError(f"model config {path}: trainer must be a mapping of settings, got {type(trainer).__name__}")
    model.pop("task", None)  # never an option (it comes from the data), but a hand-written file may carry one
    return {"name": path.stem, "backbone": model.pop("backbone"), "optim": model.pop("optim", None),
            "clip_val": trainer.get("gradient_clip_val"), "clip_algorithm": trainer.get("gradient_clip_algorithm"),
            "module": model}


def suite(name: str, tier: str, *, models: list[str] | None = None, seeds: list[int] | None = None,
          own_models: list[Any] | None = None):
    """A suite's benchmark (with ``own_models`` added) and its (model, seed) pairs, every name checked."""
    import dataclasses

    from zoo.app.catalogue import check_tier, get_benchmark

    bench = get_benchmark(name)
    check_tier(tier)
    if own_models:
        bench = dataclasses.replace(bench, models={**bench.models, **{r.name: r for r in own_models}})
        models = [*(models or []), *(r.name for r in own_models)]
    model_names = [bench.model(m).name for m in models] if models else list(bench.models)
    seed_list = [check_int("seed", s, low=0) for s in seeds] if seeds else list(bench.tier_seeds(tier))
    return bench, [(m, s) for m in model_names for s in seed_list]


def run_pair(bench, tier: str, model: str, seed: int, *, records_dir: str | os.PathLike,
             weights_dir: str | os.PathLike | None, checkpoints_dir: str | os.PathLike | None,
             data_dir: str | None, accelerator: str | None,
             wandb: bool, progress: bool = False, position: int = 0) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One pair of a suite: skipped when its record exists or another process holds it, else run and recorded.

    Returns what happened (id, path, status) and the new record (None when nothing ran).
    Module-level and free of suite state, so worker processes and cluster jobs run the
    very same steps as the one-process suite. ``progress``: a live bar of the run's steps
    on terminal line ``position`` (``zoo.app.progress``).
    """
    name = bench.name
    path = record_path(records_dir, name, tier, model, seed)
    rid = record_id(name, tier, model, seed)
    inside(records_dir, path, f"run record {rid}")  # a link in the records folder leading out: no read or write there
    ckpt_dir = Path(checkpoints_dir) / name / tier / path.stem if checkpoints_dir else None
    if path.exists():
        read_record(path)  # a record that does not read is an error, never a silent redo or a skip
        tidy_finished(path, ckpt_dir)
        return {"id": rid, "path": str(path), "status": "exists"}, None
    lock = claim(path)
    if lock is None:
        return {"id": rid, "path": str(path), "status": "running elsewhere"}, None
    try:
        if path.exists():  # finished by another suite between our check and our claim
            return {"id": rid, "path": str(path), "status": "exists"}, None
        # The pair is ours: a temporary file of its record or weights is what a writer killed mid-write left.
        weights_file = Path(weights_dir) / f"{rid}.safetensors" if weights_dir else None
        for stale in (*temp_names(path), *(temp_names(weights_file) if weights_file else ())):
            stale.unlink(missing_ok=True)
        config = bench.run_config(tier, model)
        if accelerator:
            config["trainer"]["accelerator"] = accelerator
        callbacks = []
        if progress:
            from zoo.app.progress import RunProgress

            callbacks.append(RunProgress(rid, position=position))
        record = execute(config, seed, data_dir=data_dir, weights_dir=weights_dir, wandb=wandb,
                         checkpoint_dir=ckpt_dir, callbacks=callbacks)
        write_record(path, record)
        remove_checkpoint(ckpt_dir)
    finally:
        release(path, lock)
    return {"id": record["id"], "path": str(path), "status": "diverged" if record["diverged"] else "ran"}, record


def remove_checkpoint(ckpt_dir: Path | None) -> None:
    """A finished pair's checkpoint folder, and its <tier> and <benchmark> folders if that leaves them empty."""
    if ckpt_dir is None:
        return
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    for folder in (ckpt_dir.parent, ckpt_dir.parent.parent):
        with contextlib.suppress(OSError):
            folder.rmdir()


def tidy_finished(path: Path, ckpt_dir: Path | None) -> None:
    """What a suite killed between writing a pair's record and tidying up left: the pair's lock file and checkpoint.

    Taken under the pair's lock, so nothing a live process still holds is touched.
    """
    if not (pair_lock(path).exists() or (ckpt_dir is not None and ckpt_dir.exists())):
        return
    lock = claim(path)
    if lock is not None:
        try:
            remove_checkpoint(ckpt_dir)
        finally:
            release(path, lock)


def run_benchmark(name: str, tier: str, *, models: list[str] | None = None, seeds: list[int] | None = None,
                  records_dir: str | os.PathLike = DEFAULT_RECORDS,
                  weights_dir: str | os.PathLike | None = DEFAULT_WEIGHTS,
                  checkpoints_dir: str | os.PathLike | None = DEFAULT_CHECKPOINTS, data_dir: str | None = None,
                  accelerator: str | None = None, wandb: bool = False, progress: bool = True,
                  own_models: list[Any] | None = None, jobs: int = 1,
                  shard: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    """Run every (model, seed) pair of a benchmark's tier that has no record yet; return what happened to each.

    ``own_models`` (Recipes, e.g. from ``load_model_config``) run under the benchmark's
    task settings and budget instead of its models, so they compare apples to apples.

    Each run checkpoints under ``checkpoints_dir`` (``None``: not at all); a suite
    started again after a kill resumes the interrupted run from its last checkpoint,
    and the checkpoint is deleted once the run's record is in place.

    ``shard=(i, N)`` (0-based) keeps only this shard's share of the pairs, so N machines
    split one suite (``zoo.app.parallel.shard_pairs``); ``jobs`` > 1 runs that many pairs
    at once in worker processes, the torch threads split between them.
    """
    from functools import partial

    from tqdm.auto import tqdm

    from zoo.app.parallel import run_pairs, shard_pairs

    check_int("jobs", jobs, low=1)
    bench, pairs = suite(name, tier, models=models, seeds=seeds, own_models=own_models)
    if shard is not None:
        pairs = shard_pairs(pairs, shard)
    run_one = partial(run_pair, bench, tier, records_dir=records_dir, weights_dir=weights_dir,
                      checkpoints_dir=checkpoints_dir, data_dir=data_dir, accelerator=accelerator, wandb=wandb,
                      progress=progress)
    desc = f"{name} [{tier}]" + (f" shard {shard[0]}/{shard[1]}" if shard is not None else "")
    # Pairs already recorded are reported, not counted by the bar: its ETA is the runs left to run.
    recorded = {pair for pair in pairs if record_path(records_dir, name, tier, *pair).exists()}
    entries = {pair: run_one(*pair)[0] for pair in pairs if pair in recorded}
    todo = [pair for pair in pairs if pair not in recorded]
    if jobs > 1:
        ran = run_pairs(todo, run_one, jobs=jobs, line=one_line, desc=desc, progress=progress,
                        setup=quiet_lightning)
        entries.update(zip(todo, ran))
        return [entries[pair] for pair in pairs]
    bar = tqdm(todo, desc=desc, unit="run", disable=not progress or not todo)
    for model, seed in bar:
        bar.set_postfix_str(f"{model} seed {seed}")
        entry, record = run_one(model, seed, position=1)
        if record is not None:
            bar.write(one_line(record))
        entries[(model, seed)] = entry
    return [entries[pair] for pair in pairs]


def compare_runs(old: dict[str, Any], new: dict[str, Any], tolerance: float) -> dict[str, Any]:
    """The verdict of a re-run against its record: identical, within the benchmark's tolerance, or differs."""
    metric, _ = test_metric(old)
    if old["diverged"] or new["diverged"]:
        same = old["diverged"] == new["diverged"] and old["diverged_reason"] == new["diverged_reason"]
        return {"verdict": "identical" if same else "differs", "metric": metric,
                "recorded": old["diverged_reason"], "rerun": new["diverged_reason"], "difference": None}
    a, b = old["metrics"]["test"][metric], new["metrics"]["test"][metric]
    weights_same = (old.get("weights") or {}).get("sha256") == (new.get("weights") or {}).get("sha256")
    if old["metrics"]["test"] == new["metrics"]["test"] and old["steps"] == new["steps"] and weights_same:
        verdict = "identical"
    elif abs(a - b) <= tolerance:
        verdict = "within tolerance"
    else:
        verdict = "differs"
    return {"verdict": verdict, "metric": metric, "recorded": a, "rerun": b, "difference": b - a,
            "tolerance": tolerance, "weights_identical": weights_same,
            "steps": [old["steps"], new["steps"]]}


def reproduce(path: str | os.PathLike, *, data_dir: str | None = None,
              out: str | os.PathLike | None = None) -> dict[str, Any]:
    """Run a record's own config and seed again and compare.

    What decides a CPU run's numerics beyond its config is re-created from the record: the
    number of torch threads (a matmul's sums are split, and so rounded, by thread) and the
    kernel path (the zoo's own LSTM/GRU kernels or PyTorch's). A run that stopped on a
    wall-clock budget (records from before budgets were steps) is replayed for the steps it
    took, so the result does not depend on how fast this machine is.
    """
    import torch

    old = read_record(path)
    config = {**old["config"], "trainer": dict(old["config"]["trainer"])}
    notes = []
    if config["trainer"].get("max_minutes"):
        config["trainer"]["max_minutes"] = None
        config["trainer"]["max_steps"] = old["steps"]
        notes.append(f"the record stopped on a {old['config']['trainer']['max_minutes']}-minute budget; "
                     f"replaying its {old['steps']} steps")
    threads = old["environment"].get("cpu_threads")
    if threads and threads != torch.get_num_threads() and not str(old["environment"].get("device")).startswith("cuda"):
        notes.append(f"re-run with the record's {threads} torch thread(s) (this process had {torch.get_num_threads()})")
    else:
        threads = None
    previous_threads = torch.get_num_threads()
    # Records older than the zoo's own LSTM/GRU kernels ran PyTorch's fused ones: replay on the same path.
    with tempfile.TemporaryDirectory() as weights_dir, own_kernels(old["environment"].get("own_kernels", False)):
        try:
            if threads:
                torch.set_num_threads(threads)
            new = execute(config, old["seed"], data_dir=data_dir, weights_dir=weights_dir)
        finally:
            torch.set_num_threads(previous_threads)
    new["config"] = old["config"]
    if out:
        write_record(out, new)
    result = compare_runs(old, new, float(config.get("tolerance", 0.0)))
    old_env, new_env = old["environment"], new["environment"]
    same_env = all(old_env.get(k) == new_env.get(k) for k in ("device_name", "packages"))
    if result["verdict"] != "identical" and not same_env:
        notes.append("a different device or package versions: only a tolerance can be expected")
    return {**result, "record": old["id"], "notes": notes, "same_environment": same_env}


def replay_selection(path: str | os.PathLike, *, max_seconds: float | None = None,
                     per_board: int | None = None) -> list[Path]:
    """The records under ``path`` to re-run: those that trained in at most ``max_seconds``, cheapest first.

    With ``per_board`` at most that many a board, each of a different cell where the board
    has several (so a cheap check still covers the RNN, LSTM and GRU code paths). None: all.
    """
    chosen: dict[tuple[str, str], list[tuple[Path, str]]] = {}
    entries = []
    for file in find_records(path):
        record = read_record(file)
        if max_seconds is None or (record.get("seconds") or 0.0) <= max_seconds:
            entries.append((record.get("seconds") or 0.0, str(file), file, record))
    for _, _, file, record in sorted(entries, key=lambda e: e[:2]):
        board = chosen.setdefault((record["benchmark"], record["tier"]), [])
        cell = record["config"]["model"]["backbone"].get("cell", "")
        if per_board is not None and (len(board) >= per_board or any(c == cell for _, c in board)):
            continue
        board.append((file, cell))
    return [file for board in chosen.values() for file, _ in board]
