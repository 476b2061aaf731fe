"""Run records: one JSON file per run, everything the run did, in a versioned schema.

A record is what a leaderboard row points at and what ``zoo reproduce`` runs again,
so it holds the resolved config (not a reference to code that may change), the seed,
the data's checksums, the metrics, the diagnostics' summaries, the wall time, the
environment and the weights' sha256. It is written to a temporary name and renamed.

Layout under a records folder: ``<benchmark>/<tier>/<model>.s<seed>.json``; the
record id is ``<benchmark>.<tier>.<model>.s<seed>``.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ZooError
from zoo.files import inside, write_json_atomic
from zoo.models.sequence_kernels import own_kernels_enabled
from zoo.runtime import flush_denormal_active

SCHEMA = "rnn-zoo/run-record"
# 2: every record has its outcome ("state", "solved", decided on the test split) and its learning curves.
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)  # a version-1 record is read as version 2 (``upgrade``): its state derived, no curves
STATES = ("solved", "unsolved", "finished", "failed", "diverged")
# A run whose test score is worse than this many times the trivial baseline's (a "min" metric: MSE, perplexity,
# bits per character) has diverged even when every number stayed finite: MSE 3,429 on the adding problem.
DIVERGED_FACTOR = 10.0
PACKAGES = ("torch", "lightning", "torchmetrics", "numpy", "safetensors", "rnn-zoo")
# A record is tens of kilobytes (the largest landed one, 27 KB); a file far past that is not one of ours, and
# reading it whole to find out could take the machine's memory.
MAX_RECORD_BYTES = 16 * 1024 * 1024
# What every readable version has, and its JSON type (zoo/app/site/schema.py gives the page the same rules).
REQUIRED_FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": str, "benchmark": str, "tier": str, "model": str, "seed": int, "config": dict, "metrics": dict, "task": dict,
}


def outcome(task: dict[str, Any], test: dict[str, Any], diverged: bool) -> dict[str, Any]:
    """What became of a run, decided on its test metrics: {"state", "solved", "reason"}.

    - diverged: training stopped on a non-finite loss or gradient, there is no finite test
      score, or the score is past ``DIVERGED_FACTOR`` times the trivial baseline's;
    - failed: it covered less than the task's ``baseline_margin`` of the way from the
      trivial baseline to a perfect score: it learnt nothing that counts;
    - solved / unsolved: the test score meets the task's target, or does not;
    - finished: a task without a target (language models), better than its baseline.

    ``solved`` is True only for "solved". Early stopping may watch the validation set;
    the state never does.
    """
    from zoo.task_spec import PERFECT

    metric, mode, target = task["target_metric"], task["target_mode"], task.get("target")
    value = test.get(metric) if isinstance(test, dict) else None
    baseline = (task.get("baselines") or {}).get(metric)
    name = f"test {metric}"

    def result(state: str, reason: str) -> dict[str, Any]:
        return {"state": state, "solved": state == "solved", "reason": reason}

    if diverged:
        return result("diverged", "training stopped on a non-finite loss or gradient")
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return result("diverged", f"{name} is {value!r}, not a finite number")
    if baseline is not None and mode == "min" and value > DIVERGED_FACTOR * baseline:
        return result("diverged", f"{name} {value:.4g} is over {DIVERGED_FACTOR:g} x the trivial baseline's "
                                  f"{baseline:.4g}")
    if baseline is not None and metric in PERFECT:
        margin = float(task.get("baseline_margin", 0.05))
        threshold = baseline + margin * (PERFECT[metric] - baseline)
        if (value > threshold) if mode == "min" else (value < threshold):
            return result("failed", f"{name} {value:.4g} is within {margin:.0%} of the way from the trivial "
                                    f"baseline's {baseline:.4g} to a perfect {PERFECT[metric]:g}")
    if target is None:
        return result("finished", f"{name} {value:.4g}; the task has no target")
    if value <= target if mode == "min" else value >= target:
        return result("solved", f"{name} {value:.4g} meets the target {target:g}")
    return result("unsolved", f"{name} {value:.4g} misses the target {target:g}")


def upgrade(record: dict[str, Any]) -> dict[str, Any]:
    """A version-1 record as version 2: its outcome derived from its own test metrics, and no curves (it kept none)."""
    if record.get("schema_version") == SCHEMA_VERSION:
        return record
    return {**record, **outcome(record["task"], record["metrics"].get("test", {}), bool(record.get("diverged"))),
            "curves": None, "schema_version": SCHEMA_VERSION, "upgraded_from": record.get("schema_version")}


def build_record(config: dict[str, Any], seed: int, result: Any, *, task: dict[str, Any], data: dict[str, Any],
                 params: int, lengths: dict[int, dict[str, float]], longest_solved: int | None, stopped_by: str,
                 weights: dict[str, Any] | None, wandb_run_id: str | None = None) -> dict[str, Any]:
    """A run's record in this schema version, from its config and what training returned (``zoo.train.FitResult``).

    Here, beside SCHEMA_VERSION, so that a change to what a record holds and the version
    that says so are made in one place.
    """
    diag = result.diagnostics
    convergence = dict(diag.get("convergence", {}))
    curves = convergence.pop("curves", None)
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "id": record_id(config["benchmark"], config["tier"], config["model"]["name"], seed),
        "benchmark": config["benchmark"],
        "tier": config["tier"],
        "model": config["model"]["name"],
        "seed": seed,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": config,
        "task": task,
        "data": data,
        "params": params,
        "metrics": {
            "test": result.test,
            "val": result.val,
            "best": {"metric": convergence.get("metric"), "value": convergence.get("best"),
                     "step": convergence.get("best_step")},
        },
        **outcome(task, result.test, result.diverged is not None),
        "diverged": result.diverged is not None,
        "diverged_reason": result.diverged,
        "curves": curves,
        "convergence": convergence,
        "stability": diag.get("stability", {}),
        "gradients": diag.get("gradients", {}),
        "spectral": diag.get("spectral", {}),
        "lengths": {str(k): v for k, v in lengths.items()},
        "longest_solved": longest_solved,
        "steps": result.steps,
        "epochs": result.epochs,
        "seconds": result.seconds,
        "stopped_by": stopped_by,
        "environment": environment(result.device),
        "weights": weights,
        "wandb_run_id": wandb_run_id,
    }


def record_id(benchmark: str, tier: str, model: str, seed: int) -> str:
    return f"{benchmark}.{tier}.{model}.s{seed}"


def record_path(root: str | os.PathLike, benchmark: str, tier: str, model: str, seed: int) -> Path:
    return Path(root) / benchmark / tier / f"{model}.s{seed}.json"


def finite_or_none(value: Any) -> Any:
    """JSON has no NaN: a non-finite number becomes None, recursively, so no NaN reaches a table."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def write_record(path: str | os.PathLike, record: dict[str, Any]) -> Path:
    return write_json_atomic(path, finite_or_none(record))


def read_record(path: str | os.PathLike) -> dict[str, Any]:
    """A record, checked to be one of ours in this schema version; any other file is a clear error."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if path.exists() and not path.is_dir() and not path.is_file():  # a pipe would block the read for ever
            raise ZooError(f"run record {path} is not a regular file (a pipe, socket or device)")
        if size > MAX_RECORD_BYTES and path.is_file():
            raise ZooError(f"run record {path} is {size:,} bytes, over the {MAX_RECORD_BYTES:,} a record may have: "
                           "not an rnn-zoo run record (one is tens of kilobytes)")
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise ZooError(f"run record {path} does not exist") from None
    except IsADirectoryError:
        raise ZooError(f"run record {path} is a folder, not a record file (a folder of records is read by "
                       "`zoo leaderboard compare`)") from None
    except OSError as err:
        raise ZooError(f"run record {path} cannot be read: {err.strerror or err}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ZooError(f"run record {path} is not valid JSON (truncated or corrupt?): {err}") from None
    except RecursionError:
        raise ZooError(f"run record {path} is nested too deeply to be a run record") from None
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise ZooError(f"{path} is not an rnn-zoo run record (no \"schema\": {SCHEMA!r})")
    if record.get("schema_version") not in READABLE_VERSIONS:
        raise ZooError(f"run record {path} has schema version {record.get('schema_version')!r}; this rnn-zoo "
                       f"reads versions {', '.join(map(str, READABLE_VERSIONS))}")
    for key, kind in REQUIRED_FIELDS.items():
        if key not in record:
            raise ZooError(f"run record {path} has no {key!r} field")
        if not isinstance(record[key], kind) or isinstance(record[key], bool):
            raise ZooError(f"run record {path}: its {key!r} field is {type(record[key]).__name__} "
                           f"{_short(record[key])}, expected {'an integer' if kind is int else f'a {kind.__name__}'}")
    return upgrade(record)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value) if not isinstance(value, (dict, list)) else f"of {len(value)} items"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def find_records(path: str | os.PathLike) -> list[Path]:
    """The record files at ``path``: the file itself, or every ``*.json`` below a folder.

    Below a folder, a link that leads out of it is an error naming it: a board is built
    from the folder's own records, and nothing outside it is read.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.rglob("*.json") if not p.name.startswith("."))
        return [inside(path, p, "run record") for p in found]
    raise ZooError(f"no run record or folder of records at {path}")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def git_commit() -> dict[str, Any]:
    """The commit of the checkout the package runs from, and whether it had local changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip() != ""
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), or what platform knows of it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: str) -> dict[str, Any]:
    """Versions, hardware and the numerics switches a result depends on."""
    cuda = device.startswith("cuda") and torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in PACKAGES},
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_threads": torch.get_num_threads(),
        "device": device,
        "device_name": torch.cuda.get_device_name(torch.device(device)) if cuda else cpu_name(),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "flush_denormal": flush_denormal_active(),
        "own_kernels": own_kernels_enabled(),  # whether 'auto' could pick the zoo's LSTM/GRU kernels
        "deterministic": {
            "algorithms": torch.are_deterministic_algorithms_enabled(),
            "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "fill_uninitialized_memory": torch.utils.deterministic.fill_uninitialized_memory,
        },
        "git": git_commit(),
    }


def data_checksums(data: Any) -> dict[str, Any]:
    """What the data was: the sha256 of every file read, or the generator's seed for synthetic tasks.

    The task knows (``checksums()`` of ``tasks.base.TaskDataModule``); a DataModule that
    cannot say is an error, not a record without its data.
    """
    if not callable(getattr(data, "checksums", None)):
        raise ZooError(f"{type(data).__name__} has no checksums() method, so a run record cannot say what its data "
                       "was; base the DataModule on tasks.base.TaskDataModule")
    return data.checksums()


def test_metric(record: dict[str, Any]) -> tuple[str, str]:
    """The metric a record is ranked by and its direction ("min" or "max")."""
    task = record["task"]
    return task["target_metric"], task["target_mode"]
