"""Bad input catalogue: every user-facing entry point, given wrong values, ends in ONE clear error.

One table, ``CASES``. Each row is ``case(id, call, expected, pattern)``:

- ``call(e)`` makes the bad input (files through ``e.file``, so they are known to be
  the case's own) and hands it to one entry point: the ``zoo`` command (``zoo(...)``,
  in process), the Python API, a DataModule, a config, a file;
- ``expected`` is ``ZooError`` for the Python API, or ``CliExit`` for the command:
  exit status 2, the message on stderr, no traceback;
- ``pattern`` is a regex the message must match: it names the bad thing and, where
  there is a fixed set, the valid choices.

After every case, no file has appeared or changed anywhere under the test's folders
(caches, outputs, records, the working directory, the shared fixtures): a failed
export, download, fetch into a cache or write of a record leaves no partial or
temporary file.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from safetensors.torch import save_model

from hub_server import FakeHub
from tasks import AddingProblem, CopyMemory, LanguageModelling, SequentialMNIST, datafiles
from tasks import hf_datasets as data_hub
from zoo.app import release
from zoo.app.catalogue import check_tier, get_benchmark
from zoo import transport, pretrained, records
from zoo.app.runner import load_model_config
from zoo.app.cli import main
from zoo.errors import ZooError
from zoo.files import sha256_file
from zoo.init import apply_init
from zoo.models.rnn import RNNConfig
from zoo.module import SequenceModel
from zoo.optim import OptimConfig
from zoo.registry import architecture, list_models
from zoo.task_spec import TaskSpec


# ============================================================================ helpers
class CliExit(SystemExit):
    """``zoo ...`` ended with a non-zero exit status; ``stderr`` is what it printed there."""

    def __init__(self, code, stderr: str) -> None:
        super().__init__(code)
        self.stderr = stderr


def zoo(*args):
    """A call that runs ``zoo ARGS`` in process; an argument may be ``lambda e: ...`` (a path made for the case)."""

    def call(e):
        argv = [str(a(e)) if callable(a) else str(a) for a in args]
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                rc = main(argv)
        except SystemExit as exit_:  # argparse and jsonargparse end this way
            rc = exit_.code
        if rc:
            raise CliExit(rc, err.getvalue())

    return call


def case(id, call, expected, pattern):
    return pytest.param(call, expected, pattern, id=id)


ADDING = TaskSpec("adding_T12", 2, 1, metrics=("mse", "accuracy"))
LM_TASK = dict(head="every", input_kind="tokens", stateful=True, loss="cross_entropy", metrics=("perplexity",),
               target_metric="perplexity")
TINY_FIT = ["--data", "AddingProblem", "--data.seq_len", "12", "--data.batch_size", "4", "--data.val_size", "8",
            "--data.test_size", "8", "--trainer.max_steps", "1", "--trainer.enable_progress_bar", "false",
            "--diagnostics", "false"]
PTB_TEXT = {"train": " the cat sat \n a dog ran <unk> \n" * 30, "valid": " a cat ran \n" * 10,
            "test": " the dog sat \n" * 10}
WIKI_TEXT = {"train": " one two three four five six seven eight nine \n" * 20, "valid": " one two \n" * 10,
             "test": " three four \n" * 10}


def _card(arch, tag, task, backbone, weights, **extra):
    """A pretrained entry as ``zoo pretrained export`` writes it, for a file already on disk."""
    return {
        "arch": arch, "tag": tag, "benchmark": tag, "tier": "smoke", "record": f"{tag}.smoke.{arch}.s0",
        "task": task.to_dict(), "data": {"class": "AddingProblem", "args": {"seq_len": 12}},
        "model": {"backbone": backbone.to_dict(), "module": {}}, "metric": task.target_metric,
        "metrics": {task.target_metric: 1.0}, "recipe": {}, "params": 0, "data_licence": "synthetic",
        "preprocessing": {}, "file": {"name": weights.name, "bytes": weights.stat().st_size,
                                      "sha256": sha256_file(weights)},
        "extras": {}, "hub": None, **extra,
    }


def _spec_of(path: Path, name: str, urls=()) -> datafiles.DataFile:
    return datafiles.DataFile(name, path.stat().st_size, sha256_file(path), tuple(urls))


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """Small real inputs shared by the cases: data folders, weights, a pretrained package, records, checkpoints."""
    root = tmp_path_factory.mktemp("assets")
    a = SimpleNamespace(root=root, files=dict(datafiles.FILES))

    # --- data: a tiny PTB and WikiText-2 (other vocabularies), registered with their checksums
    a.data = root / "data"
    for corpus, folder, names, texts in (("ptb", "ptb", "ptb.{}.txt", PTB_TEXT),
                                         ("wikitext2", "wikitext-2", "wiki.{}.tokens", WIKI_TEXT)):
        for split, text in texts.items():
            path = a.data / folder / names.format(split)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            a.files[f"{folder}/{path.name}"] = _spec_of(path, f"{folder}/{path.name}")
    train = (a.data / "ptb" / "ptb.train.txt").read_bytes()
    a.truncated_data = root / "truncated_data"
    (a.truncated_data / "ptb").mkdir(parents=True)
    (a.truncated_data / "ptb" / "ptb.train.txt").write_bytes(train[: len(train) // 2])
    a.corrupt_data = root / "corrupt_data"
    (a.corrupt_data / "ptb").mkdir(parents=True)
    (a.corrupt_data / "ptb" / "ptb.train.txt").write_bytes(train.replace(b"cat", b"cot", 1))
    # MNIST: a truncated original file; a "gzip" and an IDX file that pass their (registered) checksum but are not MNIST
    a.mnist_truncated = root / "mnist_truncated"
    (a.mnist_truncated / "mnist").mkdir(parents=True)
    (a.mnist_truncated / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b" + b"\0" * 998)
    a.mnist_bad = root / "mnist_bad"
    (a.mnist_bad / "mnist").mkdir(parents=True)
    for name, content in (("train-images-idx3-ubyte.gz", b"\x1f\x8b\x08 not really gzip"),
                          ("train-labels-idx1-ubyte.gz", b"\x1f\x8b\x08 not gzip either")):
        path = a.mnist_bad / "mnist" / name
        path.write_bytes(content)
        a.files[f"mnist/{name}"] = _spec_of(path, f"mnist/{name}")
    a.mnist_badmagic = root / "mnist_badmagic"
    (a.mnist_badmagic / "mnist").mkdir(parents=True)
    (a.mnist_badmagic / "mnist" / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01" + b"\0" * 12)
    (a.mnist_badmagic / "mnist" / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x00")
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        path = a.mnist_badmagic / "mnist" / name
        a.files[f"mnist/{name}"] = _spec_of(path, f"mnist/{name}")
    # A data file whose only download address serves a truncated copy (file:// needs no network)
    a.site = root / "site"
    a.site.mkdir()
    full = root / "full_char_test.txt"
    full.write_text("a b c _ d e f \n" * 50)
    (a.site / "ptb.char.test.txt").write_bytes(full.read_bytes()[:100])
    a.files["ptb/ptb.char.test.txt"] = _spec_of(full, "ptb/ptb.char.test.txt",
                                                [(a.site / "ptb.char.test.txt").as_uri()])

    # --- weights: a 1x128 LSTM and a 1x64 GRU of the adding task, a tiny LM over 10 tokens
    weights = root / "weights_files"
    weights.mkdir()
    lstm128, gru64, lm10 = weights / "lstm128.safetensors", weights / "gru64.safetensors", weights / "lm10.safetensors"
    save_model(SequenceModel(ADDING, RNNConfig(cell="lstm", hidden_size=128)), str(lstm128))
    save_model(SequenceModel(ADDING, RNNConfig(cell="gru", hidden_size=64)), str(gru64))
    lm_task = TaskSpec("ptb", 10, 10, **LM_TASK)
    save_model(SequenceModel(lm_task, RNNConfig(hidden_size=4)), str(lm10))
    a.lstm128, a.gru64 = lstm128, gru64
    good = lstm128.read_bytes()
    a.lstm128_truncated = root / "lstm128.truncated.safetensors"
    a.lstm128_truncated.write_bytes(good[: len(good) // 2])
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF
    a.lstm128_corrupt = root / "lstm128.corrupt.safetensors"
    a.lstm128_corrupt.write_bytes(bytes(flipped))

    # --- a pretrained package (the manifest the tests see) and files on a Hub repository (served by fake_hub)
    a.package = root / "package"
    a.package.mkdir()
    a.mirror = root / "mirror"
    a.mirror.mkdir()
    lstm_cfg = RNNConfig(cell="lstm", hidden_size=128)
    models = {}
    shutil.copy(lstm128, a.package / "lstm_1x128.tiny.safetensors")
    models["lstm_1x128.tiny"] = _card("lstm_1x128", "tiny", ADDING, lstm_cfg, a.package / "lstm_1x128.tiny.safetensors")
    shutil.copy(gru64, a.package / "gru64.safetensors")  # the manifest vouches for a GRU's file under an LSTM's name
    models["lstm_1x128.gru_file"] = _card("lstm_1x128", "gru_file", ADDING, lstm_cfg, a.package / "gru64.safetensors")
    for kind, content in (("truncated", good[: len(good) // 2]), ("corrupt", bytes(flipped)), ("absent", None)):
        if content is not None:
            (a.mirror / f"lstm_1x128.{kind}.safetensors").write_bytes(content)
        card = _card("lstm_1x128", kind, ADDING, lstm_cfg, lstm128, hub={"repo": HUB_REPO, "revision": HUB_COMMIT})
        card["file"]["name"] = f"lstm_1x128.{kind}.safetensors"
        models[f"lstm_1x128.{kind}"] = card
    shutil.copy(lm10, a.package / "lm10.safetensors")
    (a.package / "vocab10.json").write_text(json.dumps(list("abcdefghij")))
    (a.package / "vocab7.json").write_text(json.dumps(list("abcdefg")))
    lm_data = {"class": "LanguageModelling", "args": {"corpus": "ptb", "batch_size": 2, "bptt": 3, "eval_batch_size": 2}}
    for tag, vocab in (("ptb", "vocab10.json"), ("badvocab", "vocab7.json")):
        v = a.package / vocab
        models[f"lm_1x4.{tag}"] = _card("lm_1x4", tag, lm_task, RNNConfig(hidden_size=4), a.package / "lm10.safetensors",
                                        extras={"vocab": {"name": v.name, "bytes": v.stat().st_size,
                                                          "sha256": sha256_file(v)}})
        models[f"lm_1x4.{tag}"]["data"] = lm_data
    (a.package / "manifest.json").write_text(json.dumps({"version": 1, "models": models}))

    # --- a run record (as zoo bench writes it) and its weights
    config = get_benchmark("adding_t100").run_config("smoke", "gru_1x128")
    a.weights_dir = root / "run_weights"
    a.weights_dir.mkdir()
    rid = "adding_t100.smoke.gru_1x128.s0"
    shutil.copy(gru64, a.weights_dir / f"{rid}.safetensors")
    a.record = {
        "schema": records.SCHEMA, "schema_version": records.SCHEMA_VERSION, "id": rid, "benchmark": "adding_t100",
        "tier": "smoke", "model": "gru_1x128", "seed": 0, "created": "2026-01-01T00:00:00+00:00", "config": config,
        "task": AddingProblem(seq_len=100).task_spec.to_dict(), "data": {"synthetic": "AddingProblem"},
        "params": 0, "metrics": {"test": {"mse": 0.1, "accuracy": 0.2, "loss": 0.1}, "val": {}, "best": {}},
        "diverged": False, "diverged_reason": None, "convergence": {}, "stability": {}, "gradients": {},
        "spectral": {}, "lengths": {}, "longest_solved": None, "steps": 10, "epochs": 1, "seconds": 1.0,
        "stopped_by": "max_steps", "environment": {}, "wandb_run_id": None,
        "weights": {"file": f"{rid}.safetensors", "format": "safetensors", "sha256": sha256_file(gru64),
                    "bytes": gru64.stat().st_size},
    }
    a.record_text = json.dumps(a.record, indent=2)

    # --- checkpoints, as Lightning writes them: a language model on the tiny PTB, an adding-problem model
    a.ckpts = root / "ckpts"
    a.ckpts.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(datafiles, "FILES", a.files)
        lm = LanguageModelling(corpus="ptb", batch_size=2, bptt=3, eval_batch_size=2, data_dir=str(a.data))
        lm_task_spec = lm.task_spec
    for name, data, task in (("lm_ptb.ckpt", lm, lm_task_spec), ("adding.ckpt", AddingProblem(seq_len=12), None)):
        model = SequenceModel(task or data.task_spec, RNNConfig(hidden_size=4))
        torch.save({"state_dict": model.state_dict(), "hyper_parameters": json.loads(json.dumps(dict(model.hparams))),
                    type(data).__qualname__: data.state_dict(), "pytorch-lightning_version": L.__version__,
                    "epoch": 0, "global_step": 1}, a.ckpts / name)
    good_ckpt = (a.ckpts / "adding.ckpt").read_bytes()
    (a.ckpts / "truncated.ckpt").write_bytes(good_ckpt[: len(good_ckpt) // 2])
    (a.ckpts / "garbage.ckpt").write_bytes(b"not a checkpoint " * 8)
    return a


class Env:
    """What a case works with: its own folder (the working directory), the shared assets, and helpers."""

    def __init__(self, tmp: Path, assets, monkeypatch) -> None:
        self.tmp, self.a, self.mp = tmp, assets, monkeypatch
        self.made: set[Path] = set()  # the case's own bad inputs, exempt from the no-new-files check
        self.cache, self.data_cache = tmp / "weights_cache", tmp / "data_cache"

    def file(self, rel: str, content: str | bytes) -> Path:
        path = Path(os.path.normpath(self.tmp / "in" / rel))  # "../x" reaches the case's other folders
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        self.made.add(path)
        return path

    def folder(self, rel: str) -> Path:
        path = self.tmp / "in" / rel
        path.mkdir(parents=True, exist_ok=True)
        return path

    def yaml(self, text: str) -> Path:
        return self.file(f"config{len(self.made)}.yaml", text)

    def record(self, rel: str = "record.json", **changes) -> Path:
        """The good record with ``changes`` (a value of ``...`` deletes the key), written under ``in/``."""
        record = json.loads(self.a.record_text)
        for key, value in changes.items():
            if value is ...:
                del record[key]
            else:
                record[key] = value
        return self.file(rel, json.dumps(record))

    def record_text(self, rel: str, cut: float) -> Path:
        """The good record's text cut to a share of its length: a record whose writer was killed."""
        text = self.a.record_text
        return self.file(rel, text[: int(len(text) * cut)])

    def online(self, mirror: bool = True) -> None:
        """Downloads allowed, from the local Hub endpoint (no network is ever used)."""
        for env in transport.OFFLINE_ENVS + datafiles.OFFLINE_ENVS:
            self.mp.delenv(env, raising=False)
        if mirror:
            self.mp.setenv("HF_ENDPOINT", self.a.hub_url)

    def ckpt(self, name: str) -> Path:
        return self.a.ckpts / name


HUB_REPO, HUB_COMMIT = "zoo-test/lstm", "c0ffee" + "0" * 34


@pytest.fixture(scope="module")
def fake_hub(assets):
    """The mirror folder's files as Hub repo HUB_REPO at HUB_COMMIT, on a local endpoint (tests/hub_server.py)."""
    with FakeHub() as hub:
        for path in assets.mirror.iterdir():
            hub.add(HUB_REPO, HUB_COMMIT, path.name, path.read_bytes())
        assets.hub_url = hub.url
        yield hub


@pytest.fixture
def env(tmp_path, assets, fake_hub, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(datafiles, "FILES", assets.files)
    monkeypatch.setattr(transport, "PACKAGE_WEIGHTS", assets.package)
    e = Env(tmp_path, assets, monkeypatch)
    monkeypatch.setenv("HF_HUB_CACHE", str(e.cache))
    monkeypatch.setenv(datafiles.ENV_CACHE_DIR, str(e.data_cache))
    for name in ("HF_ENDPOINT", "HF_HOME", datafiles.ENV_DATA_DIR, *transport.OFFLINE_ENVS, *datafiles.OFFLINE_ENVS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ZOO_OFFLINE", "1")  # no case reaches the network; online() lifts it for the local Hub
    return e


def _hub_bookkeeping(e, path: Path) -> bool:
    """The Hub client's own lock files and cache tag: no downloaded data, so no partial file."""
    rel = path.relative_to(e.cache).parts if e.cache in path.parents else ()
    return bool(rel) and (rel[0] == ".locks" or rel == ("CACHEDIR.TAG",))


def _snapshot(*roots: Path) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for root in roots for p in root.rglob("*") if p.is_file()}


def _lm(e, corpus="ptb", **kw):
    return LanguageModelling(corpus=corpus, batch_size=2, bptt=3, eval_batch_size=2, **kw)


def _mnist_setup(data_dir):
    SequentialMNIST(data_dir=str(data_dir), val_size=1).setup("test")


def _read(path):
    return lambda e: records.read_record(path(e))


LSTM_1x4 = RNNConfig(hidden_size=4)
MANIFEST_NAMES = r"valid choices: lm_1x4.badvocab, lm_1x4.ptb, lstm_1x128.absent, lstm_1x128.corrupt"
DATAMODULE_CHOICES = r"valid choices: AddingProblem, CopyMemory, LanguageModelling, SequentialMNIST"
BENCH_RUN = ["bench", "run", "adding_t100", "--tier", "smoke", "--no_progress", "--records",
             lambda e: e.tmp / "records", "--weights", lambda e: e.tmp / "weights"]


# ============================================================================ the catalogue
CASES = [
    # ---------------------------------------------------------------- registry: architecture names, list_models
    case("registry-unknown-architecture", lambda e: architecture("lstm_9x9"), ZooError,
         r"unknown architecture 'lstm_9x9'; valid choices: bigru_1x128, bilstm_1x128, cornn_1x128, .*, gru_1x128, .*irnn_1x128, lem_1x128, .*lstm_1x128"),
    case("registry-architecture-wrong-type", lambda e: architecture(128), ZooError,
         r"unknown architecture 128; valid choices: bigru_1x128, bilstm_1x128, cornn_1x128, .*gru_1x128"),
    case("registry-list-pattern-wrong-type", lambda e: list_models(3), ZooError,
         r"pattern must be a string of shell wildcards.*got 3"),
    case("registry-list-pretrained-wrong-type", lambda e: list_models("*", pretrained="yes"), ZooError,
         r"pretrained must be True, False or None.*got 'yes'"),

    # ---------------------------------------------------------------- RNNConfig (zoo/models/rnn.py)
    case("rnn-unknown-cell", lambda e: RNNConfig(cell="lst"), ZooError,
         r"unknown cell 'lst'; valid choices: rnn, lstm, gru"),
    case("rnn-cell-wrong-type", lambda e: RNNConfig(cell=["lstm"]), ZooError,
         r"unknown cell \['lstm'\]; valid choices: rnn, lstm, gru"),
    case("rnn-unknown-nonlinearity", lambda e: RNNConfig(cell="rnn", nonlinearity="sigmoid"), ZooError,
         r"unknown nonlinearity 'sigmoid'; valid choices: tanh, relu, leaky_relu, elu"),
    case("rnn-nonlinearity-for-lstm", lambda e: RNNConfig(cell="lstm", nonlinearity="relu"), ZooError,
         r"nonlinearity 'relu' was given for cell 'lstm'.*only the vanilla cell 'rnn'"),
    case("rnn-hidden-size-wrong-type", lambda e: RNNConfig(hidden_size="128"), ZooError,
         r"hidden_size must be an integer between 1 and 65536, got '128'"),
    case("rnn-hidden-size-float", lambda e: RNNConfig(hidden_size=12.5), ZooError,
         r"hidden_size must be an integer between 1 and 65536, got 12.5"),
    case("rnn-hidden-size-out-of-range", lambda e: RNNConfig(hidden_size=0), ZooError,
         r"hidden_size must be an integer between 1 and 65536, got 0"),
    case("rnn-num-layers-out-of-range", lambda e: RNNConfig(num_layers=65), ZooError,
         r"num_layers must be an integer between 1 and 64, got 65"),
    case("rnn-bidirectional-wrong-type", lambda e: RNNConfig(bidirectional="yes"), ZooError,
         r"bidirectional must be true or false, got 'yes'"),
    case("rnn-dropout-out-of-range", lambda e: RNNConfig(num_layers=2, dropout=1.0), ZooError,
         r"dropout must be a number >= 0.0 and < 1.0, got 1.0"),
    case("rnn-dropout-one-layer", lambda e: RNNConfig(dropout=0.5), ZooError,
         r"dropout 0.5 acts between layers, so it needs num_layers >= 2"),
    case("rnn-unknown-init", lambda e: RNNConfig(recurrent_init="glorot"), ZooError,
         r"unknown recurrent_init 'glorot'; valid choices: default, xavier_uniform, .*orthogonal, identity"),
    case("rnn-identity-scale-nan", lambda e: RNNConfig(identity_scale=float("nan")), ZooError,
         r"identity_scale must be a number .*got nan"),
    case("rnn-forget-bias-for-gru", lambda e: RNNConfig(cell="gru", forget_bias=1.0), ZooError,
         r"forget_bias applies to the lstm and minlstm cells only, but cell is 'gru'"),
    case("rnn-unknown-implementation", lambda e: RNNConfig(implementation="cuda"), ZooError,
         r"unknown implementation 'cuda'; valid choices: auto, fused, loop"),
    case("rnn-fused-elu", lambda e: RNNConfig(cell="rnn", nonlinearity="elu", implementation="fused"), ZooError,
         r"implementation 'fused' has no kernel for nonlinearity 'elu'; fused kernels exist for: tanh, relu"),
    case("rnn-unknown-setting", lambda e: RNNConfig.coerce({"cells": "lstm"}), ZooError,
         r"unknown backbone setting\(s\) cells; valid settings: cell, hidden_size"),
    case("rnn-backbone-wrong-type", lambda e: RNNConfig.coerce("lstm"), ZooError,
         r"backbone must be an RNNConfig or a dict, got str"),

    # ---------------------------------------------------------------- OptimConfig (zoo/optim.py)
    case("optim-unknown-name", lambda e: OptimConfig(name="adagrad"), ZooError,
         r"unknown optimizer 'adagrad'; valid choices: sgd, adam, adamw, rmsprop"),
    case("optim-lr-wrong-type", lambda e: OptimConfig(lr="fast"), ZooError, r"lr must be a number > 0, got 'fast'"),
    case("optim-lr-out-of-range", lambda e: OptimConfig(lr=-1e-3), ZooError, r"lr must be a number > 0, got -0.001"),
    case("optim-momentum-for-adam", lambda e: OptimConfig(name="adam", momentum=0.9), ZooError,
         r"momentum 0.9 was given for optimizer 'adam'.*optimizers with momentum: sgd, rmsprop"),
    case("optim-momentum-out-of-range", lambda e: OptimConfig(name="sgd", momentum=1.0), ZooError,
         r"momentum must be a number >= 0.0 and < 1.0, got 1.0"),
    case("optim-unknown-schedule", lambda e: OptimConfig(schedule="exp"), ZooError,
         r"unknown schedule 'exp'; valid choices: none, step, plateau, cosine"),
    case("optim-gamma-out-of-range", lambda e: OptimConfig(gamma=2.0), ZooError,
         r"gamma must be a number >= 0.0 and <= 1.0, got 2.0"),
    case("optim-step-size-wrong-type", lambda e: OptimConfig(step_size=1.5), ZooError,
         r"step_size must be an integer >= 1, got 1.5"),
    case("optim-monitor-wrong-type", lambda e: OptimConfig(monitor=3), ZooError,
         r"monitor must be the name of a logged metric.*got 3"),
    case("optim-unknown-setting", lambda e: OptimConfig.coerce({"nme": "adam"}), ZooError,
         r"unknown optim setting\(s\) nme; valid settings: name, lr, momentum"),

    # ---------------------------------------------------------------- TaskSpec, SequenceModel, init schemes
    case("task-unknown-head", lambda e: TaskSpec("x", 2, 1, head="first"), ZooError,
         r"unknown task head 'first'; valid choices: last, every"),
    case("task-unknown-metric", lambda e: TaskSpec("x", 2, 1, metrics=("f1",)), ZooError,
         r"unknown task metric 'f1'; valid choices: mse, accuracy, perplexity, bpc"),
    case("task-unknown-setting", lambda e: SequenceModel({"name": "x", "input_size": 2, "output_size": 1, "size": 3}),
         ZooError, r"unknown task setting\(s\) size; valid settings: name, input_size, output_size"),
    case("task-missing-setting", lambda e: SequenceModel({"name": "x", "input_size": 2}), ZooError,
         r"task is missing output_size"),
    case("module-task-wrong-type", lambda e: SequenceModel("adding"), ZooError,
         r"task must be a TaskSpec or a dict, got str"),
    case("module-unknown-nonfinite", lambda e: SequenceModel(ADDING, nonfinite="ignore"), ZooError,
         r"unknown nonfinite 'ignore'; valid choices: stop, skip"),
    case("module-l1-out-of-range", lambda e: SequenceModel(ADDING, l1=-1.0), ZooError,
         r"l1 must be a number >= 0.0, got -1.0"),
    case("module-l2-wrong-type", lambda e: SequenceModel(ADDING, l2="1e-3"), ZooError,
         r"l2 must be a number >= 0.0, got '1e-3'"),
    case("module-io-dropout-out-of-range", lambda e: SequenceModel(ADDING, io_dropout=1.5), ZooError,
         r"io_dropout must be a number >= 0.0 and < 1.0, got 1.5"),
    case("module-embedding-for-dense-task", lambda e: SequenceModel(ADDING, embedding_size=8), ZooError,
         r"embedding_size 8 was given, but task 'adding_T12' has dense inputs"),
    case("module-tie-weights-dense-task", lambda e: SequenceModel(ADDING, tie_weights=True), ZooError,
         r"tie_weights needs token inputs and an every-step decoder"),
    case("module-tie-weights-size-mismatch",
         lambda e: SequenceModel(TaskSpec("lm", 10, 10, **LM_TASK), LSTM_1x4, embedding_size=3, tie_weights=True),
         ZooError, r"tie_weights needs embedding_size == the backbone's output size \(4\), got embedding_size 3"),
    case("module-unknown-optim-setting", lambda e: SequenceModel(ADDING, optim={"nme": "adam"}), ZooError,
         r"unknown optim setting\(s\) nme; valid settings: name, lr"),
    case("init-unknown-scheme", lambda e: apply_init(torch.nn.RNN(2, 4), "rnn", input_init="glorot"), ZooError,
         r"unknown input_init 'glorot'; valid choices: default, xavier_uniform"),
    case("init-unknown-cell", lambda e: apply_init(torch.nn.RNN(2, 4), "transformer"), ZooError,
         r"unknown cell 'transformer'; valid choices: rnn, lstm, gru"),
    case("init-identity-not-square", lambda e: apply_init(torch.nn.RNN(2, 4), "rnn", input_init="identity"), ZooError,
         r"identity init needs square matrices, but weight_ih_l0 \(gate block 0\) has gate blocks of shape 4x2"),
    case("init-bias-nan", lambda e: apply_init(torch.nn.RNN(2, 4), "rnn", bias_init=float("nan")), ZooError,
         r"bias_init must be a number .*got nan"),

    # ---------------------------------------------------------------- benchmarks (tasks/benchmarks.py)
    case("benchmark-unknown-name", lambda e: get_benchmark("adding_t50"), ZooError,
         r"unknown benchmark 'adding_t50'; valid choices: adding_t100, adding_t200, .*ptb_char"),
    case("benchmark-name-wrong-type", lambda e: get_benchmark(None), ZooError,
         r"unknown benchmark None; valid choices: adding_t100"),
    case("benchmark-unknown-tier", lambda e: check_tier("gpu"), ZooError,
         r"unknown tier 'gpu'; valid choices: smoke, cpu, full"),
    case("benchmark-unknown-model", lambda e: get_benchmark("adding_t100").run_config("smoke", "lstm_9"), ZooError,
         r"unknown model of benchmark 'adding_t100' 'lstm_9'; valid choices: lstm_1x128, gru_1x128"),
    case("benchmark-unknown-tier-of-benchmark", lambda e: get_benchmark("smnist").tier_seeds("gpu"), ZooError,
         r"unknown tier of benchmark 'smnist' 'gpu'; valid choices: smoke, cpu, full"),

    # ---------------------------------------------------------------- synthetic DataModules
    case("adding-seq-len-out-of-range", lambda e: AddingProblem(seq_len=1), ZooError,
         r"seq_len \(T\) must be an integer between 2 and 100000, got 1"),
    case("adding-seq-len-wrong-type", lambda e: AddingProblem(seq_len="100"), ZooError,
         r"seq_len \(T\) must be an integer between 2 and 100000, got '100'"),
    case("adding-batch-size-out-of-range", lambda e: AddingProblem(batch_size=0), ZooError,
         r"batch_size must be an integer >= 1, got 0"),
    case("copy-seq-len-out-of-range", lambda e: CopyMemory(seq_len=0), ZooError,
         r"seq_len \(T\) must be an integer between 1 and 100000, got 0"),
    case("copy-data-seed-out-of-range", lambda e: CopyMemory(data_seed=-1), ZooError,
         r"data_seed must be an integer >= 0, got -1"),

    # ---------------------------------------------------------------- data files (tasks/datafiles.py)
    case("datafiles-unknown-file", lambda e: datafiles.fetch("ptb/ptb.dev.txt"), ZooError,
         r"unknown data file 'ptb/ptb.dev.txt'; known files: mnist/train-images-idx3-ubyte.gz"),
    case("datafiles-data-dir-missing", lambda e: datafiles.fetch("ptb/ptb.train.txt", data_dir=e.tmp / "nowhere"),
         ZooError, r"data_dir '.*nowhere' is not a folder"),
    case("datafiles-data-dir-is-a-file", lambda e: datafiles.fetch("ptb/ptb.train.txt", data_dir=e.file("f", "x")),
         ZooError, r"data_dir '.*in/f' is not a folder"),
    case("datafiles-missing-file", lambda e: datafiles.fetch("ptb/ptb.valid.txt", data_dir=e.folder("empty")),
         ZooError, r"data file .*ptb/ptb.valid.txt is missing from data folder .*: expected ptb/ptb.valid.txt \([\d,]+ bytes"),
    case("datafiles-truncated-file", lambda e: datafiles.fetch("ptb/ptb.train.txt", data_dir=e.a.truncated_data),
         ZooError, r"data file .*ptb.train.txt in data folder .* is \d+ bytes \(truncated\): expected ptb/ptb.train.txt"),
    case("datafiles-corrupt-file", lambda e: datafiles.fetch("ptb/ptb.train.txt", data_dir=e.a.corrupt_data),
         ZooError, r"data file .*ptb.train.txt in data folder .* is corrupt or another file: sha256 [0-9a-f]{64}"),
    case("datafiles-offline-not-cached", lambda e: datafiles.fetch("ptb/ptb.test.txt"), ZooError,
         r"data file ptb/ptb.test.txt .* is not in the cache .* and downloads are off \(offline\); pass data_dir"),
    case("datafiles-bad-file-in-cache",
         lambda e: (e.file("../data_cache/ptb/ptb.test.txt", "damaged"), datafiles.fetch("ptb/ptb.test.txt")),
         ZooError, r"data file .*data_cache/ptb/ptb.test.txt in the cache .*delete the file.* is 7 bytes \(truncated\)"),
    case("datafiles-download-truncated-leaves-nothing",
         lambda e: (e.online(mirror=False), datafiles.fetch("ptb/ptb.char.test.txt", offline=False)), ZooError,
         r"could not download ptb/ptb.char.test.txt .*file://.*is 100 bytes \(truncated\)"),
    case("datahub-unknown-file", lambda e: data_hub.fetch_text_from_hub("mnist/train-images-idx3-ubyte.gz"), ZooError,
         r"data file 'mnist/train-images-idx3-ubyte.gz' has no Hub source; files with one: ptb/ptb.train.txt"),

    # ---------------------------------------------------------------- language modelling data (tasks/language.py)
    case("lm-unknown-corpus", lambda e: _lm(e, corpus="ptb2", data_dir=str(e.a.data)), ZooError,
         r"unknown corpus 'ptb2'; valid choices: ptb, wikitext2, ptb_char, tinyshakespeare"),
    case("lm-bptt-out-of-range", lambda e: LanguageModelling(bptt=0, data_dir=str(e.a.data)), ZooError,
         r"bptt must be an integer >= 1, got 0"),
    case("lm-data-dir-missing", lambda e: _lm(e, data_dir=str(e.tmp / "nowhere")), ZooError,
         r"data_dir '.*nowhere' is not a folder; it should hold the original data files"),
    case("lm-data-dir-empty", lambda e: _lm(e, data_dir=str(e.folder("empty"))), ZooError,
         r"data file .*ptb/ptb.train.txt is missing from data folder"),
    case("lm-truncated-file", lambda e: _lm(e, data_dir=str(e.a.truncated_data)), ZooError,
         r"ptb.train.txt .* \(truncated\): expected ptb/ptb.train.txt"),
    case("lm-corrupt-file", lambda e: _lm(e, data_dir=str(e.a.corrupt_data)), ZooError,
         r"ptb.train.txt .* is corrupt or another file"),
    case("lm-checkpoint-vocabulary-mismatch",
         lambda e: _lm(e, corpus="wikitext2", data_dir=str(e.a.data)).load_state_dict(
             torch.load(e.ckpt("lm_ptb.ckpt"), weights_only=True)["LanguageModelling"]), ZooError,
         r"the checkpoint's vocabulary \(8 tokens, corpus 'ptb'\) does not match this data's \(10 tokens, corpus 'wikitext2'\)"),

    # ---------------------------------------------------------------- sequential MNIST (tasks/mnist.py)
    case("mnist-unknown-variant", lambda e: SequentialMNIST(variant="col"), ZooError,
         r"unknown variant 'col'; valid choices: pixel, row"),
    case("mnist-unknown-source", lambda e: SequentialMNIST(source="web"), ZooError,
         r"unknown source 'web'; valid choices: auto, files, hub"),
    case("mnist-permuted-wrong-type", lambda e: SequentialMNIST(permuted=1), ZooError,
         r"permuted must be true or false, got 1"),
    case("mnist-val-size-out-of-range", lambda e: SequentialMNIST(val_size=0), ZooError,
         r"val_size must be an integer >= 1, got 0"),
    case("mnist-data-dir-missing", lambda e: SequentialMNIST(data_dir=str(e.tmp / "nowhere")), ZooError,
         r"data_dir '.*nowhere' is not a folder"),
    case("mnist-data-dir-empty", lambda e: _mnist_setup(e.folder("empty")), ZooError,
         r"data file .*mnist/t10k-images-idx3-ubyte.gz is missing from data folder"),
    case("mnist-truncated-file", lambda e: _mnist_setup(e.a.mnist_truncated), ZooError,
         r"t10k-images-idx3-ubyte.gz .* is 1,000 bytes \(truncated\): expected mnist/t10k-images-idx3-ubyte.gz "
         r"\(1,648,877 bytes"),
    case("mnist-corrupt-gzip", lambda e: SequentialMNIST(data_dir=str(e.a.mnist_bad), val_size=1).setup("fit"),
         ZooError, r"data file .*train-images-idx3-ubyte.gz is not a valid gzip file"),
    case("mnist-not-idx", lambda e: SequentialMNIST(data_dir=str(e.a.mnist_badmagic), val_size=1).setup("fit"),
         ZooError, r"data file .*train-images-idx3-ubyte has IDX magic number 0x00000801, expected 0x00000803"),
    case("mnist-checkpoint-other-pixel-order",
         lambda e: SequentialMNIST(permuted=True).load_state_dict({"permutation": None, "permutation_seed": 0}),
         ZooError, r"the checkpoint was trained on pixels in raster order \(not permuted\), but this data reads them "
                   r"in the permutation of seed 0"),

    # ---------------------------------------------------------------- run records (zoo/records.py)
    case("record-missing", _read(lambda e: e.tmp / "none.json"), ZooError, r"run record .*none.json does not exist"),
    case("record-is-a-folder", _read(lambda e: e.folder("records")), ZooError,
         r"run record .*records is a folder, not a record file"),
    case("record-empty", _read(lambda e: e.file("empty.json", "")), ZooError,
         r"run record .*empty.json is not valid JSON \(truncated or corrupt\?\)"),
    case("record-truncated", _read(lambda e: e.record_text("cut.json", 0.5)), ZooError,
         r"run record .*cut.json is not valid JSON \(truncated or corrupt\?\)"),
    case("record-binary", _read(lambda e: e.file("bin.json", b"\x80\x81\xff")), ZooError,
         r"run record .*bin.json is not valid JSON"),
    case("record-not-a-record", _read(lambda e: e.file("list.json", "[1, 2]")), ZooError,
         r"list.json is not an rnn-zoo run record \(no \"schema\": 'rnn-zoo/run-record'\)"),
    case("record-other-schema-version", _read(lambda e: e.record(schema_version=3)), ZooError,
         r"run record .*record.json has schema version 3; this rnn-zoo reads versions 1, 2"),
    case("record-missing-field", _read(lambda e: e.record(config=...)), ZooError,
         r"run record .*record.json has no 'config' field"),
    case("records-find-missing", lambda e: records.find_records(e.tmp / "nowhere"), ZooError,
         r"no run record or folder of records at .*nowhere"),
    case("record-write-not-json", lambda e: records.write_record(e.tmp / "out" / "r.json", {"x": object()}), ZooError,
         r"cannot write .*out/r.json: its content is not JSON"),
    case("record-write-folder-is-a-file",
         lambda e: records.write_record(e.file("taken", "x") / "r.json", json.loads(e.a.record_text)), ZooError,
         r"cannot write .*taken/r.json: .*(Not a directory|File exists)"),
    case("record-write-onto-a-folder", lambda e: records.write_record(e.folder("r.json"), {"a": 1}), ZooError,
         r"cannot write .*r.json: it is a folder"),

    # ---------------------------------------------------------------- user model configs (zoo.app.runner.load_model_config)
    case("model-config-missing", lambda e: load_model_config(e.tmp / "none.yaml"), ZooError,
         r"model config .*none.yaml does not exist"),
    case("model-config-corrupt-yaml", lambda e: load_model_config(e.yaml("name: a\nbackbone: [unclosed\n")), ZooError,
         r"model config .*\.yaml is not valid YAML"),
    case("model-config-binary", lambda e: load_model_config(e.yaml("\x00\x01")), ZooError,
         r"model config .*\.yaml is not valid YAML"),
    case("model-config-not-a-mapping", lambda e: load_model_config(e.yaml("- a\n- b\n")), ZooError,
         r"model config .* must be a mapping with at least 'name' and 'backbone'"),
    case("model-config-unknown-key", lambda e: load_model_config(e.yaml("name: a\nbackbone: {}\nlr: 1\n")), ZooError,
         r"model config .* has unknown keys \['lr'\]; valid keys: name, backbone, optim, clip_val"),
    case("model-config-unknown-backbone-setting",
         lambda e: load_model_config(e.yaml("name: a\nbackbone: {cel: gru}\n")), ZooError,
         r"model config .*: unknown backbone setting\(s\) cel; valid settings: cell, hidden_size"),
    case("model-config-unknown-cell", lambda e: load_model_config(e.yaml("name: a\nbackbone: {cell: lst}\n")),
         ZooError, r"unknown cell 'lst'; valid choices: rnn, lstm, gru"),
    case("model-config-hidden-size-wrong-type",
         lambda e: load_model_config(e.yaml("name: a\nbackbone: {hidden_size: big}\n")), ZooError,
         r"hidden_size must be an integer between 1 and 65536, got 'big'"),
    case("model-config-lr-wrong-type",
         lambda e: load_model_config(e.yaml("name: a\nbackbone: {}\noptim: {lr: fast}\n")), ZooError,
         r"lr must be a number > 0, got 'fast'"),
    case("model-config-unknown-clip-algorithm",
         lambda e: load_model_config(e.yaml("name: a\nbackbone: {}\nclip_val: 1\nclip_algorithm: l3\n")), ZooError,
         r"clip_algorithm 'l3'; valid choices: norm, value"),
    case("model-config-clip-val-wrong-type", lambda e: load_model_config(e.yaml("name: a\nbackbone: {}\nclip_val: big\n")),
         ZooError, r"clip_val must be a number >= 0.0, got 'big'"),
    case("model-config-unknown-module-setting",
         lambda e: load_model_config(e.yaml("name: a\nbackbone: {}\nmodule: {tie_weight: true}\n")), ZooError,
         r"unknown module setting\(s\) tie_weight; valid settings: l1, l2, embedding_size, tie_weights"),
    case("model-config-name-is-a-path", lambda e: load_model_config(e.yaml("name: ../a\nbackbone: {}\n")), ZooError,
         r"model name '../a' must be letters, digits"),
    case("model-config-backbone-wrong-type", lambda e: load_model_config(e.yaml("name: a\nbackbone: lstm\n")),
         ZooError, r"backbone must be a mapping"),
    case("model-config-optim-wrong-type", lambda e: load_model_config(e.yaml("name: a\nbackbone: {}\noptim: 3\n")),
         ZooError, r"optim must be a mapping"),
    case("model-config-module-wrong-type", lambda e: load_model_config(e.yaml("name: a\nbackbone: {}\nmodule: [1]\n")),
         ZooError, r"module must be a mapping"),

    # ---------------------------------------------------------------- weights: zoo.transport.fetch (path, package, Hub)
    case("hub-local-path-missing",
         lambda e: transport.fetch(pretrained.file_spec(pretrained.entry("lstm_1x128.tiny")["file"]), path=e.tmp / "x.st"),
         ZooError, r"no file at .*x.st \(given as the local path of lstm_1x128.tiny.safetensors\)"),
    case("hub-local-path-truncated",
         lambda e: transport.fetch(pretrained.file_spec(pretrained.entry("lstm_1x128.tiny")["file"]),
                             path=e.a.lstm128_truncated), ZooError,
         r"lstm_1x128.tiny.safetensors from .*truncated.safetensors has [\d,]+ bytes, expected [\d,]+: truncated"),
    case("hub-local-path-corrupt",
         lambda e: transport.fetch(pretrained.file_spec(pretrained.entry("lstm_1x128.tiny")["file"]),
                             path=e.a.lstm128_corrupt), ZooError,
         r"lstm_1x128.tiny.safetensors from .*corrupt.safetensors is corrupt or another file: sha256 [0-9a-f]{64}"),
    case("hub-offline-not-available",
         lambda e: transport.fetch(pretrained.file_spec(pretrained.entry("lstm_1x128.absent")["file"]),
                                   hub=pretrained.entry("lstm_1x128.absent")["hub"]), ZooError,
         r"lstm_1x128.absent.safetensors is not available offline; tried: the package .*the Hub cache"),
    case("hub-truncated-leaves-nothing",
         lambda e: (e.online(), transport.fetch(pretrained.file_spec(pretrained.entry("lstm_1x128.truncated")["file"]),
                                                hub=pretrained.entry("lstm_1x128.truncated")["hub"])),
         ZooError, r"lstm_1x128.truncated.safetensors from Hub repo zoo-test/lstm@c0ffee000000 has [\d,]+ bytes, "
                   r"expected [\d,]+: truncated.*removed it from the Hub cache"),
    case("hub-corrupt-leaves-nothing",
         lambda e: (e.online(), transport.fetch(pretrained.file_spec(pretrained.entry("lstm_1x128.corrupt")["file"]),
                                                hub=pretrained.entry("lstm_1x128.corrupt")["hub"])),
         ZooError, r"lstm_1x128.corrupt.safetensors from Hub repo zoo-test/lstm@c0ffee000000 is corrupt or another "
                   r"file: sha256"),
    case("hub-missing-file",
         lambda e: (e.online(), transport.fetch(pretrained.file_spec(pretrained.entry("lstm_1x128.absent")["file"]),
                                                hub=pretrained.entry("lstm_1x128.absent")["hub"])),
         ZooError, r"lstm_1x128.absent.safetensors: could not get it from Hub repo zoo-test/lstm@c0ffee000000: 404"),
    case("hub-revision-not-pinned",
         lambda e: (e.online(mirror=False),
                    transport.fetch(transport.FileSpec("w.safetensors", 1, "0" * 64), hub={"repo": "zoo/w", "revision": "main"})),
         ZooError, r"Hub revision 'main' of zoo/w is not a full 40-character commit hash"),

    # ---------------------------------------------------------------- pretrained models (zoo.pretrained)
    case("pretrained-unknown-name", lambda e: pretrained.load("lstm_1x128.smnist"), ZooError,
         r"unknown pretrained model 'lstm_1x128.smnist'; " + MANIFEST_NAMES),
    case("pretrained-name-wrong-type", lambda e: pretrained.load(None), ZooError,
         r"unknown pretrained model None; " + MANIFEST_NAMES),
    case("pretrained-weights-of-another-architecture-in-manifest", lambda e: pretrained.load("lstm_1x128.gru_file"),
         ZooError, r"weights .*gru64.safetensors do not fit lstm_1x128.gru_file's architecture \(lstm 1x128\): "
                   r"backbone.rnn.weight_ih_l0 is 192x2 in the file, 512x2 in the model"),
    case("pretrained-weights-of-another-architecture-by-path",
         lambda e: pretrained.load("lstm_1x128.tiny", path=e.a.gru64), ZooError,
         r"weights .*gru64.safetensors do not fit lstm_1x128.tiny's architecture \(lstm 1x128\): "
         r"backbone.rnn.weight_ih_l0 is 192x2 in the file, 512x2 in the model"),
    case("pretrained-truncated-weights-by-path", lambda e: pretrained.load("lstm_1x128.tiny", path=e.a.lstm128_truncated),
         ZooError, r"from .*truncated.safetensors has [\d,]+ bytes, expected [\d,]+: truncated or another file"),
    case("pretrained-load-weights-unreadable",
         lambda e: pretrained.load_weights(SequenceModel(ADDING), e.a.lstm128_truncated, "x"), ZooError,
         r"weights file .*truncated.safetensors is not a readable safetensors file \(truncated or corrupt\?\)"),
    case("pretrained-load-weights-missing",
         lambda e: pretrained.load_weights(SequenceModel(ADDING), e.tmp / "none.safetensors", "x"), ZooError,
         r"weights file .*none.safetensors does not exist"),
    case("pretrained-vocabulary-does-not-match-model", lambda e: pretrained.load("lm_1x4.badvocab"), ZooError,
         r"lm_1x4.badvocab's vocabulary has 7 tokens but the model reads 10"),
    case("pretrained-evaluate-on-another-vocabulary",
         lambda e: release.evaluate(pretrained.load("lm_1x4.ptb"), data_dir=str(e.a.data)), ZooError,
         r"the test data's vocabulary \(8 tokens, from .*\) does not match lm_1x4.ptb's \(10 tokens\)"),
    case("pretrained-encode-unknown-token", lambda e: pretrained.load("lm_1x4.ptb").encode(["a", "zebra"]), ZooError,
         r"token 'zebra' is not in lm_1x4.ptb's vocabulary, which has no <unk>"),
    case("pretrained-images-for-a-language-model",
         lambda e: pretrained.load("lm_1x4.ptb").prepare_images([[0] * 784]), ZooError,
         r"lm_1x4.ptb does not read images; its task is 'ptb'"),
    case("pretrained-evaluate-limit-out-of-range",
         lambda e: release.evaluate(pretrained.load("lstm_1x128.tiny"), limit_batches=0), ZooError,
         r"limit_batches must be a share of the test batches in \(0, 1\] or a whole count of them, got 0"),
    case("pretrained-download-truncated-leaves-nothing",
         lambda e: (e.online(), pretrained.download("lstm_1x128.truncated")), ZooError,
         r"lstm_1x128.truncated.safetensors from Hub repo .* has [\d,]+ bytes, expected [\d,]+: truncated"),
    case("pretrained-corrupt-manifest",
         lambda e: (e.mp.setattr(transport, "PACKAGE_WEIGHTS", e.file("pkg/manifest.json", '{"version": 1, "mo').parent),
                    pretrained.load("lstm_1x128.tiny")), ZooError,
         r"manifest .*pkg/manifest.json is not valid JSON \(truncated or corrupt\?\)"),
    case("pretrained-manifest-other-version",
         lambda e: (e.mp.setattr(transport, "PACKAGE_WEIGHTS",
                                 e.file("pkg/manifest.json", '{"version": 2, "models": {}}').parent),
                    pretrained.entry("lstm_1x128.tiny")), ZooError,
         r"manifest.json has manifest version 2; this rnn-zoo reads 1"),

    # ---------------------------------------------------------------- export a run (zoo.pretrained.export): nothing partial
    case("export-record-missing", lambda e: release.export(e.tmp / "none.json", e.tmp / "release"), ZooError,
         r"run record .*none.json does not exist"),
    case("export-record-other-schema-version",
         lambda e: release.export(e.record(schema_version=0), e.tmp / "release", weights_dir=e.a.weights_dir),
         ZooError, r"has schema version 0; this rnn-zoo reads versions 1, 2"),
    case("export-record-truncated",
         lambda e: release.export(e.record_text("cut.json", 0.9), e.tmp / "release", weights_dir=e.a.weights_dir),
         ZooError, r"run record .*cut.json is not valid JSON \(truncated or corrupt\?\)"),
    case("export-diverged-run",
         lambda e: release.export(e.record(diverged=True, weights=None), e.tmp / "release"), ZooError,
         r"run adding_t100.smoke.gru_1x128.s0 is diverged, so it is not released: test mse 0.1 against the trivial "
         r"baseline's 0.1667"),
    case("export-failed-run-leaves-nothing",  # weights and all, but no better than the trivial baseline
         lambda e: release.export(e.record(state="failed", metrics={"test": {"mse": 0.165}, "val": {}, "best": {}}),
                                  e.tmp / "release", weights_dir=e.a.weights_dir), ZooError,
         r"run adding_t100.smoke.gru_1x128.s0 is failed, so it is not released: test mse 0.165 against the trivial "
         r"baseline's 0.1667 \(a release must cover 5% of the way from the baseline to a perfect score\)"),
    case("export-diverged-state-with-weights-leaves-nothing",
         lambda e: release.export(e.record(state="diverged", metrics={"test": {"mse": 3429.0}, "val": {}, "best": {}}),
                                  e.file("release/manifest.json", '{"version": 1, "models": {}}').parent,
                                  weights_dir=e.a.weights_dir), ZooError,
         r"run adding_t100.smoke.gru_1x128.s0 is diverged, so it is not released: test mse 3429 against"),
    case("export-no-weights",
         lambda e: release.export(e.record(weights=None), e.tmp / "release"), ZooError,
         r"run adding_t100.smoke.gru_1x128.s0 has no weights to export \(none were saved\)"),
    case("export-selected-by-unknown",
         lambda e: release.export(e.record(), e.tmp / "release", weights_dir=e.a.weights_dir, selected_by="test"),
         ZooError, r"unknown selected_by 'test'; valid choices: val, record"),
    case("export-selected-by-val-without-a-validation",
         lambda e: release.export(e.record(), e.tmp / "release", weights_dir=e.a.weights_dir, selected_by="val"),
         ZooError, r"no run of gru_1x128 on adding_t100 \[smoke\] has a finite validation mse"),
    case("export-selected-no-records-of-the-model",
         lambda e: release.export_selected(e.folder("recs"), "adding_t100", "gru_1x128", e.tmp / "release",
                                           tier="smoke"), ZooError,
         r"no records of adding_t100 \[smoke\] under .*recs"),
    case("export-weights-missing", lambda e: release.export(e.record(), e.tmp / "release", weights_dir=e.tmp),
         ZooError, r"the weights of adding_t100.smoke.gru_1x128.s0 are not at .*; pass --weights_dir"),
    case("export-weights-of-another-run",
         lambda e: release.export(
             e.record(weights={**json.loads(e.a.record_text)["weights"], "sha256": sha256_file(e.a.lstm128)}),
             e.tmp / "release", weights_dir=e.a.weights_dir), ZooError,
         r"adding_t100.smoke.gru_1x128.s0.safetensors is not the file run adding_t100.smoke.gru_1x128.s0 wrote: "
         r"its sha256 differs"),
    case("export-unknown-data-class",
         lambda e: release.export(e.record(config={**json.loads(e.a.record_text)["config"],
                                                      "data": {"class": "ImageNet", "args": {}}}),
                                     e.tmp / "release", weights_dir=e.a.weights_dir), ZooError,
         r"unknown DataModule 'ImageNet'; valid choices: AddingProblem, CopyMemory, LanguageModelling"),
    case("export-language-model-without-its-data-leaves-nothing",
         lambda e: release.export(e.record(config={**json.loads(e.a.record_text)["config"], "data": {
             "class": "LanguageModelling", "args": {"corpus": "ptb"}}}), e.tmp / "release",
             weights_dir=e.a.weights_dir, data_dir=str(e.folder("no_data"))), ZooError,
         r"data file .*ptb/ptb.train.txt is missing from data folder"),
    case("export-out-is-a-file",
         lambda e: release.export(e.record(), e.file("release", "x"), weights_dir=e.a.weights_dir), ZooError,
         r"out '.*release' is a file, not a folder"),
    case("export-tag-is-a-path",
         lambda e: release.export(e.record(), e.tmp / "release", weights_dir=e.a.weights_dir, tag="../up"),
         ZooError, r"tag '../up' must be letters, digits, '_' and '-'"),
    case("export-corrupt-manifest-in-out",
         lambda e: release.export(e.record(), e.file("release/manifest.json", "{").parent,
                                     weights_dir=e.a.weights_dir), ZooError,
         r"manifest .*release/manifest.json is not valid JSON"),

    # ---------------------------------------------------------------- zoo fit / validate / test (Lightning's CLI)
    case("cli-fit-unknown-data", zoo("fit", "--data", "Adding"), CliExit,
         r"zoo: error: unknown DataModule 'Adding' \(--data\); " + DATAMODULE_CHOICES),
    case("cli-fit-unknown-cell", zoo("fit", *TINY_FIT, "--model.backbone.cell", "lst"), CliExit,
         r"zoo: error: unknown cell 'lst'; valid choices: rnn, lstm, gru"),
    case("cli-fit-unknown-option", zoo("fit", *TINY_FIT, "--model.backbone.cells", "lstm"), CliExit,
         r"error: unrecognized arguments: --model.backbone.cells lstm"),
    case("cli-fit-hidden-size-wrong-type", zoo("fit", *TINY_FIT, "--model.backbone.hidden_size", "big"), CliExit,
         r"error: Parser key \"model.backbone.hidden_size\":\s+Expected a <class 'int'>. Got value: big"),
    case("cli-fit-hidden-size-out-of-range", zoo("fit", *TINY_FIT, "--model.backbone.hidden_size", "0"), CliExit,
         r"zoo: error: hidden_size must be an integer between 1 and 65536, got 0"),
    case("cli-fit-unknown-optimizer", zoo("fit", *TINY_FIT, "--model.optim.name", "adagrad"), CliExit,
         r"zoo: error: unknown optimizer 'adagrad'; valid choices: sgd, adam, adamw, rmsprop"),
    case("cli-fit-lr-out-of-range", zoo("fit", *TINY_FIT, "--model.optim.lr", "-1"), CliExit,
         r"zoo: error: lr must be a number > 0, got -1.0"),
    case("cli-fit-unknown-nonfinite", zoo("fit", *TINY_FIT, "--model.nonfinite", "ignore"), CliExit,
         r"zoo: error: unknown nonfinite 'ignore'; valid choices: stop, skip"),
    case("cli-fit-seq-len-out-of-range", zoo("fit", *TINY_FIT, "--data.seq_len", "1"), CliExit,
         r"zoo: error: seq_len \(T\) must be an integer between 2 and 100000, got 1"),
    case("cli-fit-unknown-clip-algorithm",
         zoo("fit", *TINY_FIT, "--trainer.gradient_clip_val", "1", "--trainer.gradient_clip_algorithm", "l3"), CliExit,
         r"zoo: error: unknown gradient_clip_algorithm 'l3'; valid choices: norm, value"),
    case("cli-fit-clip-val-out-of-range", zoo("fit", *TINY_FIT, "--trainer.gradient_clip_val", "-1"), CliExit,
         r"zoo: error: trainer.gradient_clip_val must be a number >= 0.0, got -1"),
    case("cli-fit-unknown-accelerator", zoo("fit", *TINY_FIT, "--trainer.accelerator", "tpu9"), CliExit,
         r"zoo: error: trainer settings: You selected an invalid accelerator name: `accelerator='tpu9'`. "
         r"Available names are: .*cpu"),
    case("cli-fit-max-steps-out-of-range", zoo("fit", *TINY_FIT, "--trainer.max_steps", "-5"), CliExit,
         r"zoo: error: trainer settings: `max_steps` must be a non-negative integer or -1"),
    case("cli-fit-diagnostics-every-out-of-range", zoo("fit", *TINY_FIT, "--diagnostics_every_n_steps", "0"), CliExit,
         r"zoo: error: diagnostics_every_n_steps must be an integer >= 1, got 0"),
    case("cli-fit-config-missing", zoo("fit", "--config", lambda e: e.tmp / "none.yaml"), CliExit,
         r"zoo: error: config file .*none.yaml does not exist"),
    case("cli-fit-config-corrupt", zoo("fit", "--config", lambda e: e.yaml("model: [unclosed\n")), CliExit,
         r"zoo: error: config file .*\.yaml is not valid YAML: while parsing a flow sequence"),
    case("cli-fit-config-not-a-mapping", zoo("fit", "--config", lambda e: e.yaml("- a\n- b\n")), CliExit,
         r"zoo: error: config file .*\.yaml must be a mapping of options .*got a list"),
    case("cli-fit-config-unknown-key",
         zoo("fit", "--config", lambda e: e.yaml("modle:\n  backbone: {cell: gru}\n"), *TINY_FIT), CliExit,
         r"error: .*not accept.* 'modle\.backbone\.cell'"),
    case("cli-fit-config-wrong-type",
         zoo("fit", "--config", lambda e: e.yaml("model:\n  backbone: {hidden_size: big}\n"), *TINY_FIT), CliExit,
         r"error: Parser key \"model.backbone.hidden_size\":\s+Expected a <class 'int'>. Got value: big"),
    case("cli-fit-lm-unknown-corpus", zoo("fit", "--data", "LanguageModelling", "--data.corpus", "ptb2"), CliExit,
         r"zoo: error: unknown corpus 'ptb2'; valid choices: ptb, wikitext2, ptb_char, tinyshakespeare"),
    case("cli-fit-lm-truncated-data",
         zoo("fit", "--data", "LanguageModelling", "--data.data_dir", lambda e: e.a.truncated_data), CliExit,
         r"zoo: error: data file .*ptb.train.txt in data folder .* \(truncated\)"),
    case("cli-fit-mnist-unknown-variant", zoo("fit", "--data", "SequentialMNIST", "--data.variant", "col"), CliExit,
         r"zoo: error: unknown variant 'col'; valid choices: pixel, row"),
    case("cli-test-checkpoint-missing", zoo("test", *TINY_FIT, "--ckpt_path", lambda e: e.tmp / "none.ckpt"), CliExit,
         r"zoo: error: checkpoint .*none.ckpt does not exist"),
    case("cli-test-checkpoint-truncated", zoo("test", *TINY_FIT, "--ckpt_path", lambda e: e.ckpt("truncated.ckpt")),
         CliExit, r"zoo: error: checkpoint .*truncated.ckpt is not a readable checkpoint \(truncated, corrupt"),
    case("cli-validate-checkpoint-corrupt",
         zoo("validate", *TINY_FIT, "--ckpt_path", lambda e: e.ckpt("garbage.ckpt")), CliExit,
         r"zoo: error: checkpoint .*garbage.ckpt is not a readable checkpoint"),
    case("cli-test-checkpoint-of-another-task",
         zoo("test", "--data", "CopyMemory", "--data.seq_len", "5", "--data.test_size", "8", "--diagnostics", "false",
             "--ckpt_path", lambda e: e.ckpt("adding.ckpt")), CliExit,
         r"zoo: error: checkpoint .*adding.ckpt was trained on task 'adding_T12' \(input 2, output 1, head last\), "
         r"but --data gives task 'copy_T5'"),
    case("cli-test-checkpoint-vocabulary-mismatch",
         zoo("test", "--data", "LanguageModelling", "--data.corpus", "wikitext2", "--data.data_dir",
             lambda e: e.a.data, "--data.batch_size", "2", "--data.eval_batch_size", "2", "--data.bptt", "3",
             "--diagnostics", "false", "--ckpt_path", lambda e: e.ckpt("lm_ptb.ckpt")), CliExit,
         r"zoo: error: the vocabulary of checkpoint .*lm_ptb.ckpt \(8 tokens, corpus 'ptb'\) does not match the "
         r"data's \(10 tokens, corpus 'wikitext2'\)"),
    case("cli-no-subcommand", zoo(), CliExit, r"error: expected \"subcommand\" to be one of \{fit,validate,test,predict\}"),
    case("cli-unknown-subcommand", zoo("train"), CliExit,
         r"error: argument subcommand: invalid choice: 'train' \(choose from 'fit', 'validate', 'test', 'predict'\)"),

    # ---------------------------------------------------------------- zoo bench list | run
    case("cli-bench-unknown-command", zoo("bench", "sprint"), CliExit,
         r"zoo bench: error: argument command: invalid choice: 'sprint' \(choose from 'list', 'run'\)"),
    case("cli-bench-run-unknown-benchmark", zoo("bench", "run", "adding_t50"), CliExit,
         r"zoo: error: unknown benchmark 'adding_t50'; valid choices: adding_t100, adding_t200"),
    case("cli-bench-run-unknown-tier", zoo(*BENCH_RUN, "--tier", "gpu"), CliExit,
         r"zoo: error: unknown tier 'gpu'; valid choices: smoke, cpu, full"),
    case("cli-bench-run-unknown-model", zoo(*BENCH_RUN, "--models", "lstm_9"), CliExit,
         r"zoo: error: unknown model of benchmark 'adding_t100' 'lstm_9'; valid choices: lstm_1x128, gru_1x128"),
    case("cli-bench-run-seed-out-of-range", zoo(*BENCH_RUN, "--seeds", "-1"), CliExit,
         r"zoo: error: seed must be an integer >= 0, got -1"),
    case("cli-bench-run-seed-wrong-type", zoo(*BENCH_RUN, "--seeds", "x"), CliExit,
         r"zoo bench run: error: argument --seeds: invalid int value: 'x'"),
    case("cli-bench-run-unknown-accelerator", zoo(*BENCH_RUN, "--accelerator", "tpu9"), CliExit,
         r"zoo: error: unknown accelerator 'tpu9'; valid choices: auto, cpu, cuda, gpu, mps, tpu"),
    case("cli-bench-run-records-is-a-file",
         zoo("bench", "run", "adding_t100", "--tier", "smoke", "--records", lambda e: e.file("records", "x")), CliExit,
         r"zoo: error: --records '.*records' is a file, not a folder"),
    case("cli-bench-run-checkpoints-is-a-file",
         zoo("bench", "run", "adding_t100", "--tier", "smoke", "--records", lambda e: e.tmp / "records",
             "--checkpoints", lambda e: e.file("ckpts", "x")), CliExit,
         r"zoo: error: --checkpoints '.*ckpts' is a file, not a folder"),
    case("cli-bench-run-model-config-missing", zoo(*BENCH_RUN, "--model_config", lambda e: e.tmp / "mine.yaml"),
         CliExit, r"zoo: error: model config .*mine.yaml does not exist"),
    case("cli-bench-run-model-config-corrupt",
         zoo(*BENCH_RUN, "--model_config", lambda e: e.yaml("name: mine\nbackbone: {cell: gru\n")), CliExit,
         r"zoo: error: model config .*\.yaml is not valid YAML"),
    case("cli-bench-run-model-config-unknown-clip-algorithm",
         zoo(*BENCH_RUN, "--model_config", lambda e: e.yaml("name: mine\nbackbone: {}\nclip_algorithm: l3\n")),
         CliExit, r"zoo: error: .*clip_algorithm 'l3'; valid choices: norm, value"),
    case("cli-bench-run-truncated-record-in-the-way",
         lambda e: (e.record_text("../records/adding_t100/smoke/lstm_1x128.s0.json", 0.5),
                    zoo(*BENCH_RUN, "--models", "lstm_1x128", "--seeds", "0")(e)), CliExit, r"zoo: error: run record .*lstm_1x128.s0.json is not valid JSON \(truncated or corrupt\?\)"),

    # ---------------------------------------------------------------- zoo leaderboard build | compare, zoo reproduce, zoo plot
    case("cli-leaderboard-build-no-records", zoo("leaderboard", "build", "--records", lambda e: e.tmp / "none",
                                                 "--out", lambda e: e.tmp / "boards"), CliExit,
         r"zoo: error: no records folder at .*none; run `zoo bench run NAME --tier TIER` first"),
    case("cli-leaderboard-build-other-schema-version",
         zoo("leaderboard", "build", "--records", lambda e: e.record("recs/a/b/r.json", schema_version=3).parent.parent.parent,
             "--out", lambda e: e.tmp / "boards"), CliExit,
         r"zoo: error: run record .*r.json has schema version 3; this rnn-zoo reads versions 1, 2"),
    case("cli-leaderboard-build-out-is-a-file",
         zoo("leaderboard", "build", "--records", lambda e: e.record("recs/a/b/r.json").parent.parent.parent,
             "--out", lambda e: e.file("boards", "x"), "--readme", lambda e: e.tmp / "README.md"), CliExit,
         r"zoo: error: out '.*boards' is a file, not a folder"),
    case("cli-leaderboard-compare-missing", zoo("leaderboard", "compare", lambda e: e.tmp / "mine.json"), CliExit,
         r"zoo: error: no run record or folder of records at .*mine.json"),
    case("cli-leaderboard-compare-empty-folder", zoo("leaderboard", "compare", lambda e: e.folder("mine")), CliExit,
         r"zoo: error: no run records \(\*.json\) under .*mine"),
    case("cli-leaderboard-compare-truncated-record",
         zoo("leaderboard", "compare", lambda e: e.record_text("mine.json", 0.3)), CliExit,
         r"zoo: error: run record .*mine.json is not valid JSON"),
    case("cli-reproduce-missing", zoo("reproduce", lambda e: e.tmp / "none.json"), CliExit,
         r"zoo: error: run record .*none.json does not exist"),
    case("cli-reproduce-other-schema-version", zoo("reproduce", lambda e: e.record(schema_version=3)), CliExit,
         r"zoo: error: run record .*record.json has schema version 3; this rnn-zoo reads versions 1, 2"),
    case("cli-reproduce-not-a-record", zoo("reproduce", lambda e: e.file("x.json", '{"id": 1}')), CliExit,
         r"zoo: error: .*x.json is not an rnn-zoo run record"),
    case("cli-reproduce-a-folder", zoo("reproduce", lambda e: e.folder("recs")), CliExit,
         r"zoo: error: no run records \(\*\.json\) under .*recs$"),
    case("cli-plot-no-run", zoo("plot", lambda e: e.folder("run"), "--out", lambda e: e.tmp / "fig"), CliExit,
         r"zoo: error: .*run holds no logged run: expected a run record \(\.json\), or a logger folder"),

    # ---------------------------------------------------------------- zoo pretrained list | info | download | export | verify
    case("cli-pretrained-unknown-command", zoo("pretrained", "show"), CliExit,
         r"zoo pretrained: error: argument command: invalid choice: 'show'"),
    case("cli-pretrained-info-unknown", zoo("pretrained", "info", "lstm_1x128.nothing"), CliExit,
         r"zoo: error: unknown pretrained model 'lstm_1x128.nothing'; " + MANIFEST_NAMES),
    case("cli-pretrained-download-unknown", zoo("pretrained", "download", "nope"), CliExit,
         r"zoo: error: unknown pretrained model 'nope'; valid choices: lm_1x4.badvocab"),
    case("cli-pretrained-download-corrupt-leaves-nothing",
         lambda e: (e.online(), zoo("pretrained", "download", "lstm_1x128.corrupt")(e)), CliExit,
         r"zoo: error: .*lstm_1x128.corrupt.safetensors from Hub repo .* is corrupt or another file"),
    case("cli-pretrained-verify-unknown", zoo("pretrained", "verify", "nope"), CliExit,
         r"zoo: error: unknown pretrained model 'nope'"),
    case("cli-pretrained-verify-limit-out-of-range",
         zoo("pretrained", "verify", "lstm_1x128.tiny", "--limit_batches", "-1"), CliExit,
         r"zoo: error: limit_batches must be a share of the test batches in \(0, 1\] .*got -1"),
    case("cli-pretrained-verify-wrong-architecture", zoo("pretrained", "verify", "lstm_1x128.gru_file"), CliExit,
         r"zoo: error: weights .*gru64.safetensors do not fit lstm_1x128.gru_file's architecture"),
    case("cli-pretrained-export-record-missing",
         zoo("pretrained", "export", lambda e: e.tmp / "none.json", "--out", lambda e: e.tmp / "release"), CliExit,
         r"zoo: error: run record .*none.json does not exist"),
    case("cli-pretrained-export-record-and-benchmark",
         zoo("pretrained", "export", lambda e: e.record(), "--benchmark", "adding_t100", "--model", "gru_1x128",
             "--out", lambda e: e.tmp / "release"), CliExit,
         r"zoo: error: zoo pretrained export takes a run record, or --benchmark NAME and --model NAME"),
    case("cli-pretrained-export-benchmark-without-model",
         zoo("pretrained", "export", "--benchmark", "adding_t100", "--out", lambda e: e.tmp / "release"), CliExit,
         r"zoo: error: zoo pretrained export takes a run record, or --benchmark NAME and --model NAME"),
    case("cli-pretrained-export-neither",
         zoo("pretrained", "export", "--out", lambda e: e.tmp / "release"), CliExit,
         r"zoo: error: zoo pretrained export takes a run record, or --benchmark NAME and --model NAME"),
    case("cli-pretrained-export-failed-pick-leaves-nothing",
         zoo("pretrained", "export", "--benchmark", "adding_t100", "--tier", "smoke", "--model", "gru_1x128",
             "--records", lambda e: e.record("recs/adding_t100/smoke/gru_1x128.s0.json", state="failed", metrics={
                 "test": {"mse": 0.166}, "val": {"mse": 0.2}, "best": {}}).parent.parent.parent,
             "--weights_dir", lambda e: e.a.weights_dir, "--out", lambda e: e.tmp / "release"), CliExit,
         r"zoo: error: run adding_t100.smoke.gru_1x128.s0 is failed, so it is not released: test mse 0.166"),
    case("cli-pretrained-export-weights-missing",
         zoo("pretrained", "export", lambda e: e.record(), "--out", lambda e: e.tmp / "release",
             "--weights_dir", lambda e: e.tmp / "nothing"), CliExit,
         r"zoo: error: the weights of adding_t100.smoke.gru_1x128.s0 are not at .*nothing"),
    case("cli-pretrained-export-lm-without-data-leaves-nothing",
         zoo("pretrained", "export", lambda e: e.record(config={**json.loads(e.a.record_text)["config"], "data": {
             "class": "LanguageModelling", "args": {"corpus": "wikitext2"}}}), "--out", lambda e: e.tmp / "release",
             "--weights_dir", lambda e: e.a.weights_dir, "--data_dir", lambda e: e.folder("no_data")), CliExit,
         r"zoo: error: data file .*wikitext-2/wiki.train.tokens is missing from data folder"),
]

# len(CASES) is the size of the catalogue (reported by test_catalogue).


@pytest.mark.parametrize("call, expected, pattern", CASES)
def test_bad_input(call, expected, pattern, env):
    watched = (env.tmp, env.a.root)
    before = _snapshot(*watched)
    with pytest.raises(expected) as info:
        call(env)
    error = info.value
    if isinstance(error, CliExit):
        assert error.code == 2, error.stderr
        message = error.stderr
        assert "Traceback" not in message
        assert message.count("error:") == 1, message  # one error, not a cascade
    else:
        message = str(error)
        assert message and "Traceback" not in message
    assert re.search(pattern, message), f"{pattern!r} not in {message!r}"
    after = _snapshot(*watched)
    left = sorted(str(p) for p, stat in after.items()
                  if p not in env.made and before.get(p) != stat and not _hub_bookkeeping(env, p))
    assert not left, f"files written or changed by a failed call: {left}"
    assert set(before) <= set(after) | env.made, "a file that was there before is gone"


def test_catalogue():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    assert len(CASES) >= 150
