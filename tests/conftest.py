import os

# No test talks to a real host: huggingface_hub's once-a-day telemetry call stays off.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import zoo  # noqa: F401  (first, as in every entry point: flushes denormals before torch threads start)

import hashlib

import pytest
import torch

from tasks import datafiles
from tasks.datafiles import DataFile


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# What a user may have set for their own runs that changes what the zoo reads or how it runs:
# each test starts without them (a test that needs one sets it), so the suite gives the same
# result in any shell. ZOO_FLUSH_DENORMAL is read at import and the cache folders only say
# where caches go: those stay.
USER_SETTINGS = ("ZOO_DATA_DIR", "ZOO_OFFLINE", "ZOO_OWN_KERNELS", "ZOO_HUB_ROOT", "ZOO_WEIGHTS_MIRROR")


@pytest.fixture(autouse=True)
def _without_user_settings(monkeypatch):
    for name in USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _lightning_log_levels():
    """Commands quiet Lightning's loggers for the whole process (zoo.app.runner.quiet_lightning); each test starts
    from the levels Lightning set at import, even after a module- or session-scoped fixture ran a command."""
    for logger, level in zip(_LIGHTNING_LOGGERS, _LIGHTNING_LEVELS):
        logger.setLevel(level)
    yield
    for logger, level in zip(_LIGHTNING_LOGGERS, _LIGHTNING_LEVELS):
        logger.setLevel(level)


def _import_levels():
    import logging

    import lightning  # noqa: F401  (sets its loggers' levels on import)

    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    return loggers, [logger.level for logger in loggers]


_LIGHTNING_LOGGERS, _LIGHTNING_LEVELS = _import_levels()


def _tiny_config(model="rnn_tanh.identity.clip1", steps=6, seq_len=12):
    """A study config shrunk to seconds: the same code path as every benchmark run."""
    from zoo.app.catalogue import get_benchmark

    config = get_benchmark("gradient_study").run_config("smoke", model)
    config["data"]["args"].update(seq_len=seq_len, batch_size=8, val_size=16, test_size=16, batches_per_epoch=3)
    config["trainer"]["max_steps"] = steps
    config["lengths"] = [6, 12, 24]
    config["diagnostics_every_n_steps"] = 3
    return config


@pytest.fixture(scope="session")
def tiny_config():
    """Build a benchmark run config that trains in seconds: ``tiny_config(model, steps, seq_len)``."""
    return _tiny_config


TRAIN = " the cat sat \n the dog sat <unk> \n a cat ran \n" * 20
VALID = " the dog ran \n a zebra sat \n" * 5  # "zebra" is not in the training vocabulary -> <unk>
TEST = " a cat sat \n the dog ran \n" * 5


def register_files(monkeypatch, folder, files: dict[str, str]) -> None:
    """Write small files under ``folder`` and make them the known files (size and sha256)."""
    known = dict(datafiles.FILES)
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode()
        path.write_bytes(data)
        known[name] = DataFile(name, len(data), hashlib.sha256(data).hexdigest())
    monkeypatch.setattr(datafiles, "FILES", known)


@pytest.fixture
def tiny_ptb(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    register_files(monkeypatch, tmp_path / "data", {"ptb/ptb.train.txt": TRAIN, "ptb/ptb.valid.txt": VALID,
                                               "ptb/ptb.test.txt": TEST})
    return tmp_path / "data"
