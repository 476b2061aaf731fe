"""Nothing lost: a run killed mid-epoch resumes to the weights and metrics of an uninterrupted run.

The kill is real (SIGKILL to a child process paused at a known step); the loaders,
random states and carried LM state that make the resume exact are tested one by one.
"""

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import TensorDataset

from tasks.loaders import EpochShuffle, ResumableLoader, made_ahead, on_accelerator
from zoo.app.runner import execute
from zoo.errors import ZooError
from zoo.resume import LAST, capture_random_states, restore_random_states

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import zoo  # first: flushes denormals
import json, sys, time
from pathlib import Path
from lightning.pytorch.callbacks import Callback
from zoo.app.runner import execute

class PauseAt(Callback):
    '''At optimizer step k: tell the parent, then wait to be killed.'''
    def __init__(self, step, flag):
        self.step, self.flag = step, Path(flag)
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:
            self.flag.write_text(str(trainer.global_step))
            time.sleep(600)

config_file, out, ckpt, pause, flag = sys.argv[1:6]
callbacks = [PauseAt(int(pause), flag)] if int(pause) else []
record = execute(json.loads(Path(config_file).read_text()), 0, weights_dir=Path(out).parent / "w",
                 checkpoint_dir=ckpt if ckpt != "-" else None, checkpoint_every_n_steps=4, callbacks=callbacks)
Path(out).write_text(json.dumps(record))
"""


def _child(tmp_path: Path, config: dict, name: str, ckpt: str, pause: int = 0) -> subprocess.Popen:
    (tmp_path / "child.py").write_text(CHILD)
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / name).mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(tmp_path / "child.py"), str(tmp_path / "config.json"),
                             str(tmp_path / name / "record.json"), ckpt, str(pause), str(tmp_path / "paused")],
                            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, tmp_path: Path, name: str) -> dict:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return json.loads((tmp_path / name / "record.json").read_text())


def _same_run(a: dict, b: dict) -> None:
    assert a["weights"]["sha256"] == b["weights"]["sha256"]
    assert a["metrics"] == b["metrics"]
    assert a["steps"] == b["steps"] and a["epochs"] == b["epochs"]
    for part in ("stability", "gradients", "spectral", "convergence", "lengths"):
        got, want = dict(b[part]), dict(a[part])
        got.pop("seconds_to_target", None), want.pop("seconds_to_target", None)
        assert got == want, part


def _dropout_lstm_config(tiny_config) -> dict:
    """A 2-layer LSTM with dropout between its layers on fresh adding-problem batches: 7 batches an epoch."""
    config = tiny_config("lstm.default.clip1", steps=20, seq_len=12)
    config["model"]["backbone"].update(num_layers=2, dropout=0.3)
    config["data"]["args"]["batches_per_epoch"] = 7
    config["stop_at_target"] = False
    return config


def test_a_run_killed_with_sigkill_mid_epoch_resumes_to_the_same_weights_and_metrics(tmp_path, tiny_config):
    config = _dropout_lstm_config(tiny_config)
    ckpt = str(tmp_path / "ckpt")
    whole = _child(tmp_path, config, "whole", "-")
    # Paused after step 10, the 4th batch of epoch 2; its last checkpoint is from step 8.
    victim = _child(tmp_path, config, "killed", ckpt, pause=10)
    deadline = time.monotonic() + 240
    while not (tmp_path / "paused").exists():
        assert victim.poll() is None, victim.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "the child never reached step 10"
        time.sleep(0.1)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    saved = torch.load(Path(ckpt) / LAST, weights_only=True)
    assert saved["global_step"] == 8 and saved["loops"]["fit_loop"]["epoch_progress"]["current"]["completed"] == 1
    assert not (tmp_path / "killed" / "record.json").exists()

    resumed = _finish(_child(tmp_path, config, "killed", ckpt), tmp_path, "killed")
    uninterrupted = _finish(whole, tmp_path, "whole")
    assert uninterrupted["steps"] == 20
    _same_run(uninterrupted, resumed)


class Interrupt(Exception):
    pass


class InterruptAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise Interrupt


def test_a_language_model_resumes_its_carried_state_and_dropout(tmp_path, tiny_ptb):
    """Truncated BPTT carries the hidden state from batch to batch: a resume must bring it back."""
    from zoo.app.catalogue import get_benchmark

    config = get_benchmark("ptb_word").run_config("smoke", "lstm_2x200")
    config["data"]["args"].update(batch_size=2, bptt=5, data_dir=str(tiny_ptb))
    config["model"]["backbone"].update(hidden_size=8, dropout=0.3)
    config["model"]["module"]["io_dropout"] = 0.2
    config["trainer"].update(max_epochs=-1, max_steps=30, limit_train_batches=1.0)
    config["diagnostics_every_n_steps"] = 5
    whole = execute(config, 0, weights_dir=tmp_path / "w0")
    with pytest.raises(Interrupt):
        execute(config, 0, weights_dir=tmp_path / "w1", checkpoint_dir=tmp_path / "ck", checkpoint_every_n_steps=4,
                callbacks=[InterruptAt(11)])
    saved = torch.load(tmp_path / "ck" / LAST, weights_only=True)
    assert saved["global_step"] == 8 and saved["carried_state"] is not None
    resumed = execute(config, 0, weights_dir=tmp_path / "w1", checkpoint_dir=tmp_path / "ck",
                      checkpoint_every_n_steps=4)
    assert whole["epochs"] >= 1  # the run crosses an epoch boundary after the resume
    _same_run(whole, resumed)


def test_a_run_whose_epochs_are_as_long_as_the_checkpoint_cadence_still_checkpoints(tmp_path, tiny_config):
    """The synthetic tasks' epochs are 100 batches and the cadence is 100 steps: every due step ends an epoch,
    where no checkpoint may be written. The checkpoint is then written one step later, and resumes exactly."""
    config = _dropout_lstm_config(tiny_config)
    config["data"]["args"]["batches_per_epoch"] = 4
    config["trainer"]["max_steps"] = 14
    whole = execute(config, 0, weights_dir=tmp_path / "w0")
    with pytest.raises(Interrupt):
        execute(config, 0, weights_dir=tmp_path / "w1", checkpoint_dir=tmp_path / "ck", checkpoint_every_n_steps=4,
                callbacks=[InterruptAt(11)])
    saved = torch.load(tmp_path / "ck" / LAST, weights_only=True)
    assert saved["global_step"] == 9  # steps 4 and 8 end epochs: the checkpoints came at steps 5 and 9
    first = FirstStep()
    resumed = execute(config, 0, weights_dir=tmp_path / "w1", checkpoint_dir=tmp_path / "ck",
                      checkpoint_every_n_steps=4, callbacks=[first])
    assert first.step == 9 and whole["steps"] == 14
    _same_run(whole, resumed)


class FirstStep(Callback):
    """Notes the global step the first training batch starts from: 0 for a fresh run, k for one resumed at k."""

    def __init__(self) -> None:
        self.step: int | None = None

    def on_train_batch_start(self, trainer, *args) -> None:
        if self.step is None:
            self.step = trainer.global_step


NEW_CELLS = ["lru_1x128", "lru_4x128", "mingru_3x128", "minlstm_3x128", "indrnn_2x128", "cornn_1x128", "lem_1x128",
             "exprnn_1x128"]


@pytest.mark.parametrize("model", NEW_CELLS)
def test_the_newer_cells_resume_from_a_mid_epoch_checkpoint_to_the_uninterrupted_record(tmp_path, model):
    """Each cell's own fast path (pooled buffers, hand-written backward, complex or orthogonal weights and their
    optimizer state) resumed in a process whose buffer pool is empty, as a fresh one's is: the same record."""
    from zoo.app.catalogue import get_benchmark
    from zoo.models.sequence_kernels import POOL

    config = get_benchmark("adding_t100").run_config("smoke", model)  # the catalogue's settings for the cell
    config["data"]["args"].update(seq_len=12, batch_size=8, val_size=16, test_size=16, batches_per_epoch=3)
    config["trainer"]["max_steps"] = 8
    config["lengths"], config["diagnostics_every_n_steps"], config["stop_at_target"] = [6, 24], 3, False
    whole = execute(config, 0, weights_dir=tmp_path / "w0")
    with pytest.raises(Interrupt):  # step 4 is the first of epoch 2: a checkpoint after a validation, mid-epoch
        execute(config, 0, weights_dir=tmp_path / "w1", checkpoint_dir=tmp_path / "ck", checkpoint_every_n_steps=4,
                callbacks=[InterruptAt(6)])
    assert torch.load(tmp_path / "ck" / LAST, weights_only=True)["global_step"] == 4
    POOL.clear()
    first = FirstStep()
    resumed = execute(config, 0, weights_dir=tmp_path / "w1", checkpoint_dir=tmp_path / "ck",
                      checkpoint_every_n_steps=4, callbacks=[first])
    assert first.step == 4 and whole["steps"] == 8  # it did resume, and both ran to the end
    _same_run(whole, resumed)


def test_epoch_shuffle_is_a_function_of_seed_and_epoch():
    a, b = EpochShuffle(10, 4, seed=3), EpochShuffle(10, 4, seed=3)
    first = list(a)
    assert sorted(i for batch in first for i in batch) == list(range(10)) and [len(x) for x in first] == [4, 4, 2]
    torch.rand(5)  # the global random state plays no part
    assert list(b) == first
    a.set_epoch(1)
    assert list(a) != first and list(EpochShuffle(10, 4, seed=4)) != first


@pytest.mark.parametrize("background", [False, True], ids=["in_loop", "made_ahead"])
def test_a_loader_restored_mid_epoch_serves_the_rest_of_that_epoch(background):
    data = TensorDataset(torch.arange(10))

    def loader():
        return ResumableLoader(data, sampler=EpochShuffle(10, 3, seed=0), batch_size=None, background=background)

    one = loader()
    one.sampler.set_epoch(2)
    epoch = [batch[0].tolist() for batch in one]
    it = iter(one)
    seen = [next(it)[0].tolist(), next(it)[0].tolist()]
    assert seen == epoch[:2] and one.state_dict() == {"served": 2}
    two = loader()
    two.load_state_dict(one.state_dict())
    two.sampler.set_epoch(2)  # Lightning sets the epoch after making the iterator: the order is drawn lazily
    assert [batch[0].tolist() for batch in two] == epoch[2:]
    assert [batch[0].tolist() for batch in two] == epoch  # the next epoch is whole again
    three = loader()
    three.load_state_dict({"served": 4})  # saved after an epoch's last batch: the next epoch starts from its start
    assert len([batch for batch in three]) == 4


def test_made_ahead_makes_the_next_item_in_a_thread_while_this_one_is_used():
    made: list[tuple[int, str]] = []
    second_made = threading.Event()

    def items():
        for i in range(4):
            made.append((i, threading.current_thread().name))
            if i == 1:
                second_made.set()
            yield i

    it = made_ahead(items())
    assert next(it) == 0
    assert second_made.wait(5)  # made while the caller still holds item 0
    assert list(it) == [1, 2, 3]
    assert [i for i, _ in made] == [0, 1, 2, 3]
    assert all(name.startswith("zoo-next-batch") for _, name in made)


def test_made_ahead_raises_the_makers_error_and_closes_early():
    def failing():
        yield 1
        raise ValueError("batch 2 is bad")

    it = made_ahead(failing())
    assert next(it) == 1
    with pytest.raises(ValueError, match="batch 2 is bad"):
        next(it)
    endless = made_ahead(iter(range(10**9)))
    assert next(endless) == 0
    endless.close()  # returns: the one item in the making is dropped, the thread ends


def test_background_loading_only_on_an_accelerator():
    from types import SimpleNamespace

    from tasks.adding import AddingProblem

    data = AddingProblem(seq_len=6, batch_size=2, batches_per_epoch=2)
    assert not on_accelerator(data) and not data.train_dataloader().background  # no Trainer: the loop makes them
    data.trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False)
    assert not on_accelerator(data)
    data.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cuda", 0)))
    assert on_accelerator(data) and data.train_dataloader().background


def test_random_states_come_back_and_load_without_unpickling(tmp_path):
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    states = capture_random_states()
    torch.save(states, tmp_path / "s.pt")
    draws = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    restore_random_states(torch.load(tmp_path / "s.pt", weights_only=True))
    again = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    assert torch.equal(draws[0], again[0]) and np.array_equal(draws[1], again[1]) and draws[2] == again[2]


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_checkpoint_is_an_error_naming_it_never_a_silent_restart(tmp_path, tiny_config, damage):
    config = tiny_config("lstm.default.clip1", steps=9)
    config["stop_at_target"] = False
    with pytest.raises(Interrupt):
        execute(config, 0, weights_dir=tmp_path, checkpoint_dir=tmp_path / "ck", checkpoint_every_n_steps=4,
                callbacks=[InterruptAt(5)])
    last = tmp_path / "ck" / LAST
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a checkpoint" * 100)
    with pytest.raises(ZooError, match=f"checkpoint {last} is not a readable checkpoint .*delete it to start over"):
        execute(config, 0, weights_dir=tmp_path, checkpoint_dir=tmp_path / "ck")


class NotATensor:
    """Unpickling this would run code of our choosing: a checkpoint holding it must be refused, not loaded."""


def test_a_checkpoint_that_needs_unpickling_is_refused(tmp_path):
    from zoo.resume import read_checkpoint

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": NotATensor()}, path)
    with pytest.raises(ZooError, match=f"checkpoint {path} is not a readable checkpoint .*UnpicklingError"):
        read_checkpoint(path)
