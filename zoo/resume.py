"""Exact resume: what a run killed mid-epoch needs so that, resumed, it ends where an uninterrupted run ends.

Lightning's checkpoint already holds the weights, the optimizer, the schedulers, the
loops' progress, every stateful callback and the train loader's position
(``tasks/loaders.py``). It does not hold the random states, which drive dropout:
``RandomStates`` adds them. ``StepCheckpoint`` writes ``last.ckpt`` every n steps
but never right after an epoch's last batch, where Lightning would resume without the
validation that epoch still owes. ``SafeCheckpointIO`` reads checkpoints with
``weights_only=True`` (nothing is unpickled) and turns a truncated or corrupt file
into one error naming it, and writes a checkpoint to a temporary name beside it, then
renames it: a kill mid-write leaves the previous checkpoint whole, and a full disk is one
error naming the checkpoint. (Lightning's own writer stages the file in the system's
temporary folder, where a kill leaves it behind, and moves it over by a copy where that
folder is another disk.)
"""

from __future__ import annotations

import io
import os
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from zoo.cadence import CHECKPOINT_EVERY_N_STEPS
from zoo.errors import ZooError
from zoo.files import replaced_atomically

LAST = "last.ckpt"


def capture_random_states() -> dict[str, Any]:
    """torch (CPU and every CUDA device), numpy and Python random states as tensors and lists: weights_only-safe."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }


def restore_random_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = states["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))


class RandomStates(Callback):
    """Saves the random states with each checkpoint and puts them back right before the first resumed step.

    Not at load time: between the restore and the first step Lightning builds the
    loader iterators, which draw from torch's generator, where the uninterrupted run
    drew nothing. The states saved are those after step k's callbacks (Lightning runs
    checkpoint callbacks last), i.e. exactly what step k+1 starts from.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint["random_states"] = capture_random_states()

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        self._pending = checkpoint.get("random_states")

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if self._pending is not None:
            restore_random_states(self._pending)
            self._pending = None


class StepCheckpoint(ModelCheckpoint):
    """``last.ckpt`` about every ``every_n_steps`` optimizer steps, never right after an epoch's last batch.

    A checkpoint is due once a multiple of ``every_n_steps`` has been passed since the last
    one, and is written at the first step from then on that does not end an epoch (see the
    module doc). Skipping the due step alone would never checkpoint a task whose epochs are
    ``every_n_steps`` batches long: the synthetic tasks' 100 batches at a cadence of 100.
    """

    def __init__(self, dirpath: str | os.PathLike, every_n_steps: int = CHECKPOINT_EVERY_N_STEPS) -> None:
        super().__init__(dirpath=dirpath, every_n_train_steps=1, save_top_k=0, save_last=True,
                         enable_version_counter=False)
        self.every_n_steps = every_n_steps
        self._saved_step = 0  # the step of the last checkpoint (or of the resume)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._saved_step = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = trainer.global_step
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return
        if step // self.every_n_steps <= self._saved_step // self.every_n_steps:
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        self._saved_step = step


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A Lightning checkpoint, read without unpickling code; a missing or unreadable file is one error naming it."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"checkpoint {path} {'is a folder, not a file' if path.is_dir() else 'does not exist'}")
    try:
        ckpt = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # noqa: BLE001 - zip, pickle and EOF errors alike: the file is not a readable checkpoint
        raise ZooError(f"checkpoint {path} is not a readable checkpoint (truncated, corrupt or another kind of file; "
                       f"torch.load says {type(err).__name__}); delete it to start over from the beginning") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise ZooError(f"{path} is not a Lightning checkpoint: it has no state_dict")
    return ckpt


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint reader, through ``read_checkpoint``: ``weights_only`` always, a bad file named."""

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return read_checkpoint(path)

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        """A local checkpoint goes to a temporary name beside ``path`` and is renamed; a remote one is Lightning's."""
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        with replaced_atomically(path) as tmp:  # a full disk: one ZooError naming it, the previous file kept
            tmp.write_bytes(buffer.getbuffer())


def resume_callbacks(dirpath: str | os.PathLike, every_n_steps: int = CHECKPOINT_EVERY_N_STEPS) -> list[Callback]:
    return [RandomStates(), StepCheckpoint(dirpath, every_n_steps)]


def last_checkpoint(dirpath: str | os.PathLike) -> Path | None:
    path = Path(dirpath) / LAST
    return path if path.is_file() else None


__all__ = ["LAST", "RandomStates", "SafeCheckpointIO", "StepCheckpoint", "capture_random_states", "last_checkpoint",
           "read_checkpoint", "restore_random_states", "resume_callbacks"]
