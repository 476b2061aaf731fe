"""A tiny release for the weights and paths trials: a GRU's good tensors, and a manifest entry that vouches for bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors.torch import save as save_bytes

from zoo.models.rnn import RNNConfig
from zoo.module import SequenceModel
from zoo.task_spec import TaskSpec

TASK = TaskSpec("adding_T12", 2, 1, metrics=("mse",))
BACKBONE = RNNConfig(cell="gru", hidden_size=8)
REPO, COMMIT = "zoo-hostile/gru", "fade" + "0" * 36
NAME = "gru_1x8.hostile"


def _good_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(3)
    model = SequenceModel(TASK, BACKBONE)
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


GOOD = _good_state()
GOOD_BYTES = save_bytes(GOOD)


def card(data: bytes, name: str = "w.safetensors") -> dict:
    """A manifest entry that vouches for ``data`` (its size and sha256), to be fetched from the Hub repo."""
    return {"arch": "gru_1x8", "tag": "hostile", "task": TASK.to_dict(),
            "model": {"backbone": BACKBONE.to_dict(), "module": {}}, "metric": "mse", "metrics": {"mse": 0.1},
            "file": {"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()},
            "extras": {}, "hub": {"repo": REPO, "revision": COMMIT}, "preprocessing": {}}


def data_left(cache: Path) -> list[str]:
    """Files of the Hub cache that hold downloaded data (not the client's lock files and cache tag)."""
    if not cache.exists():
        return []
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*")
                  if (p.is_file() or p.is_symlink()) and p.relative_to(cache).parts[0] != ".locks"
                  and p.name != "CACHEDIR.TAG" and "refs" not in p.relative_to(cache).parts)
