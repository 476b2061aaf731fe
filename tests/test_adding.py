import hashlib

import pytest
import torch

from tasks.adding import TRIVIAL_MSE, AddingProblem, make_adding
from zoo.errors import ZooError


def _digest(dataset) -> str:
    x, y = dataset.tensors
    return hashlib.sha256(x.numpy().tobytes() + y.numpy().tobytes()).hexdigest()


def test_one_marker_in_each_half_and_target_is_their_sum():
    T = 11
    x, y = make_adding(500, T, torch.Generator().manual_seed(0))
    assert x.shape == (500, T, 2) and y.shape == (500,)
    values, markers = x[..., 0], x[..., 1]
    assert ((values >= 0) & (values < 1)).all()
    assert set(markers.unique().tolist()) == {0.0, 1.0}
    half = T // 2
    assert (markers[:, :half].sum(1) == 1).all()
    assert (markers[:, half:].sum(1) == 1).all()
    torch.testing.assert_close(y, (values * markers).sum(1))


def test_fixed_sets_are_the_same_everywhere():
    """The val/test sets depend on (data_seed, T, size) only: not on the global RNG, not on the run's seed."""
    torch.manual_seed(123)
    a = AddingProblem(seq_len=10, val_size=50, test_size=100, seed=7)
    torch.manual_seed(456)
    b = AddingProblem(seq_len=10, val_size=50, test_size=100, seed=8)
    assert _digest(a.fixed_set("test")) == _digest(b.fixed_set("test"))
    # Recorded once: if generation changes, every published number changes with it.
    assert _digest(a.fixed_set("val")) == "7af88b35e4903a915408f6e5f8bcb343a071f8114bc1dc886b7f16568d3a4d18"
    assert _digest(a.fixed_set("test")) == "781d5c14a50d992b8e6183eb3208ef80933ca0c9840be58192c8add542c43fc9"
    assert _digest(AddingProblem(seq_len=10, val_size=50, test_size=100, data_seed=1).fixed_set("test")) != _digest(a.fixed_set("test"))


def test_val_and_test_differ():
    dm = AddingProblem(seq_len=10, val_size=100, test_size=100)
    assert not torch.equal(dm.fixed_set("val").tensors[0], dm.fixed_set("test").tensors[0])


def test_training_batches_are_fresh_and_repeatable():
    dm = AddingProblem(seq_len=12, batch_size=4, batches_per_epoch=3, seed=5)
    loader = dm.train_dataloader()
    epoch0 = [x for x, _ in loader]
    loader.sampler.set_epoch(1)
    epoch1 = [x for x, _ in loader]
    assert len(epoch0) == 3 and epoch0[0].shape == (4, 12, 2)
    all_batches = epoch0 + epoch1
    for i in range(len(all_batches)):
        for j in range(i):
            assert not torch.equal(all_batches[i], all_batches[j])
    again = AddingProblem(seq_len=12, batch_size=4, batches_per_epoch=3, seed=5).train_dataloader()
    again.sampler.set_epoch(1)
    for a, b in zip(epoch1, again):
        assert torch.equal(a, b[0])


@pytest.mark.parametrize("task", ["adding", "copy"])
def test_worker_processes_make_the_same_batches_and_resume_where_they_left_off(task):
    from tasks.copy_memory import CopyMemory

    cls = AddingProblem if task == "adding" else CopyMemory

    def epochs(num_workers: int, served: int = 0) -> list[torch.Tensor]:
        loader = cls(seq_len=12, batch_size=4, batches_per_epoch=3, seed=5, num_workers=num_workers).train_dataloader()
        assert loader.num_workers == num_workers and loader.persistent_workers == (num_workers > 0)
        loader.load_state_dict({"served": served})  # as a checkpoint taken mid-epoch brings back
        out = []
        for epoch in range(2):
            loader.sampler.set_epoch(epoch)  # as Lightning does; the workers live on across epochs
            out += [x for x, _ in loader]
        return out

    in_process, in_workers = epochs(0), epochs(2)
    assert len(in_process) == 6 and all(torch.equal(a, b) for a, b in zip(in_process, in_workers))
    resumed = epochs(2, served=2)  # the 1st epoch's last batch, then the 2nd epoch's three
    assert len(resumed) == 4 and all(torch.equal(a, b) for a, b in zip(in_process[2:], resumed))


def test_training_stream_follows_the_run_seed_when_unset():
    dm = AddingProblem(seq_len=12, batch_size=4, batches_per_epoch=1)
    torch.manual_seed(1)
    first = next(iter(dm.train_dataloader()))[0]
    torch.manual_seed(2)
    second = next(iter(dm.train_dataloader()))[0]
    torch.manual_seed(1)
    third = next(iter(dm.train_dataloader()))[0]
    assert not torch.equal(first, second) and torch.equal(first, third)


def test_trivial_baseline_is_one_sixth():
    y = AddingProblem(seq_len=20, test_size=20_000).fixed_set("test").tensors[1]
    mse = (y - 1.0).pow(2).mean().item()
    assert mse == pytest.approx(TRIVIAL_MSE, abs=0.005)
    spec = AddingProblem().task_spec
    assert spec.baselines["mse"] == pytest.approx(1 / 6)
    assert spec.input_size == 2 and spec.output_size == 1 and spec.target == 0.01


@pytest.mark.parametrize("kwargs,message", [
    (dict(seq_len=1), r"seq_len \(T\) must be an integer between 2 and 100000, got 1"),
    (dict(seq_len=200_000), r"seq_len \(T\) must be an integer between 2 and 100000, got 200000"),
    (dict(seq_len="100"), r"seq_len \(T\) must be an integer"),
    (dict(batch_size=0), "batch_size must be an integer >= 1, got 0"),
    (dict(test_size=-5), "test_size must be an integer >= 1, got -5"),
    (dict(num_workers=-1), "num_workers must be an integer >= 0, got -1"),
])
def test_bad_settings(kwargs, message):
    with pytest.raises(ZooError, match=message):
        AddingProblem(**kwargs)
