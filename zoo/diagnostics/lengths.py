"""Long-dependency accuracy: a model trained at length T, tested at other lengths."""

from __future__ import annotations

from typing import Any

import lightning as L

from zoo.errors import ZooError, check_int


def at_length(data: L.LightningDataModule, seq_len: int) -> L.LightningDataModule:
    """The same task with sequences of ``seq_len`` steps: the DataModule rebuilt with its own settings but that one.

    The task itself says which lengths it can be read at (``supports_length``, from
    ``tasks.base.TaskDataModule``) and must take ``seq_len`` and have saved its
    hyperparameters; the test set of the new length is fixed by the same data seed.
    """
    check_int("seq_len", seq_len, low=1)
    supports = getattr(data, "supports_length", None)
    if "seq_len" not in data.hparams or supports is None or not supports(seq_len):
        raise ZooError(f"{type(data).__name__} cannot be tested at length {seq_len}: length tests need a task "
                       "that takes seq_len and supports that length (its supports_length)")
    return type(data)(**{**data.hparams, "seq_len": seq_len})


def length_factors(seq_len: int, factors: tuple[float, ...] = (0.5, 1, 2, 4)) -> list[int]:
    """The lengths a model trained at ``seq_len`` is tested at: T/2, T, 2T, 4T by default."""
    return sorted({max(1, int(seq_len * f)) for f in factors})


def evaluate_at_lengths(model: L.LightningModule, data: L.LightningDataModule, lengths: list[int],
                        **trainer_kwargs: Any) -> dict[int, dict[str, float]]:
    """Test ``model`` on the task of ``data`` at each of ``lengths``: {T: {"mse": ..., ...}}."""
    kwargs = dict(logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    kwargs.update(trainer_kwargs)
    results = {}
    for seq_len in lengths:
        tested = L.Trainer(**kwargs).test(model, datamodule=at_length(data, seq_len), verbose=False)[0]
        results[seq_len] = {k.removeprefix("test_"): float(v) for k, v in tested.items()}
    return results
