import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from tasks.adding import AddingProblem
from zoo.errors import ZooError
from zoo.metrics import ToleranceAccuracy
from zoo.models.rnn import RNNConfig
from zoo.module import DivergedError, SequenceModel
from zoo.optim import OptimConfig
from zoo.task_spec import TaskSpec

ADDING = AddingProblem(seq_len=10).task_spec
CLASSIFY = TaskSpec(name="toy", input_size=3, output_size=4, loss="cross_entropy", metrics=("accuracy",),
                    target_metric="accuracy", target_mode="max")


def _trainer(**kw) -> L.Trainer:
    defaults = dict(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False, num_sanity_val_steps=0, deterministic=True)
    return L.Trainer(**{**defaults, **kw})


def test_heads():
    reg = SequenceModel(ADDING, RNNConfig(cell="gru", hidden_size=8))
    assert reg(torch.randn(5, 10, 2)).shape == (5,)
    cls = SequenceModel(CLASSIFY, RNNConfig(cell="lstm", hidden_size=8, bidirectional=True))
    assert cls(torch.randn(5, 10, 3)).shape == (5, 4)


def test_penalties_by_hand():
    model = SequenceModel(ADDING, RNNConfig(cell="rnn", hidden_size=4), l1=0.1, l2=0.01)
    weights = [model.backbone.rnn.weight_ih_l0, model.backbone.rnn.weight_hh_l0, model.head.weight]
    want = 0.1 * sum(w.abs().sum() for w in weights) + 0.01 * sum(w.pow(2).sum() for w in weights)
    torch.testing.assert_close(model.penalty(), want)  # biases are not penalized
    assert SequenceModel(ADDING, RNNConfig(cell="rnn", hidden_size=4)).penalty() is None


def test_l2_penalty_changes_the_update():
    """The penalty's gradient 2*l2*W is added to the loss's, so an SGD step shrinks weights further."""
    torch.manual_seed(0)
    x, y = torch.randn(8, 10, 2), torch.rand(8)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    steps = {}
    for l2 in (0.0, 0.5):
        torch.manual_seed(1)
        model = SequenceModel(ADDING, RNNConfig(cell="rnn", hidden_size=4), OptimConfig(name="sgd", lr=0.1), l2=l2)
        before = model.head.weight.detach().clone()
        _trainer(max_steps=1).fit(model, loader)
        steps[l2] = model.head.weight.detach() - before
    torch.testing.assert_close(steps[0.5] - steps[0.0], -0.1 * 2 * 0.5 * before, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("name,cls", [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam),
                                      ("adamw", torch.optim.AdamW), ("rmsprop", torch.optim.RMSprop)])
def test_optimizers(name, cls):
    model = SequenceModel(ADDING, RNNConfig(cell="gru", hidden_size=4), OptimConfig(name=name, lr=0.01, weight_decay=0.1))
    optimizer = model.configure_optimizers()
    assert isinstance(optimizer, cls)
    assert optimizer.defaults["lr"] == 0.01 and optimizer.defaults["weight_decay"] == 0.1


@pytest.mark.parametrize("schedule,cls,interval", [
    ("step", torch.optim.lr_scheduler.LambdaLR, "epoch"),
    ("plateau", torch.optim.lr_scheduler.ReduceLROnPlateau, "epoch"),
    ("cosine", torch.optim.lr_scheduler.CosineAnnealingLR, "step"),
])
def test_schedules(schedule, cls, interval):
    model = SequenceModel(ADDING, RNNConfig(cell="gru", hidden_size=4), OptimConfig(schedule=schedule))
    data = AddingProblem(seq_len=10, batch_size=4, batches_per_epoch=3, val_size=8, test_size=8)
    trainer = _trainer(max_steps=6)
    trainer.fit(model, data)
    config = trainer.lr_scheduler_configs[0]
    assert isinstance(config.scheduler, cls) and config.interval == interval
    if schedule == "cosine":
        assert config.scheduler.T_max == 6
        assert trainer.optimizers[0].param_groups[0]["lr"] < 1e-3


def test_step_schedule_factors():
    from zoo.optim import StepFactor

    # PyTorch's StepLR by default
    assert [StepFactor(OptimConfig(schedule="step", step_size=2, gamma=0.1))(e) for e in range(5)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01])
    # Zaremba et al.: lr 1 for four epochs, then halved every epoch
    zaremba = StepFactor(OptimConfig(schedule="step", step_size=1, gamma=0.5, decay_start=4))
    assert [zaremba(e) for e in range(7)] == [1, 1, 1, 1, 0.5, 0.25, 0.125]


def test_no_schedule_returns_bare_optimizer():
    assert isinstance(SequenceModel(ADDING).configure_optimizers(), torch.optim.Adam)


@pytest.mark.parametrize("kwargs,message", [
    (dict(name="adagrad"), "unknown optimizer 'adagrad'; valid choices: sgd, adam, adamw, rmsprop"),
    (dict(schedule="linear"), "unknown schedule 'linear'; valid choices: none, step, plateau, cosine"),
    (dict(lr=0.0), "lr must be a number > 0"),
    (dict(lr=float("nan")), "lr must be a number"),
    (dict(name="adam", momentum=0.9), "momentum 0.9 was given for optimizer 'adam'.*sgd, rmsprop"),
    (dict(name="sgd", momentum=1.5), "momentum must be a number >= 0.0 and < 1.0"),
    (dict(gamma=2.0), "gamma must be a number >= 0.0 and <= 1.0"),
])
def test_bad_optim(kwargs, message):
    with pytest.raises(ZooError, match=message):
        OptimConfig(**kwargs)


def test_bad_penalty():
    with pytest.raises(ZooError, match="l2 must be a number >= 0.0, got -1"):
        SequenceModel(ADDING, l2=-1)


@pytest.mark.parametrize("algorithm", ["value", "norm"])
def test_lightning_clipping_bounds_the_update(algorithm):
    """With SGD lr=1 the step equals the clipped gradient, so the clip threshold bounds it."""
    torch.manual_seed(0)
    x, y = torch.randn(16, 10, 2) * 10, torch.rand(16) * 100  # a loss with large gradients
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    model = SequenceModel(ADDING, RNNConfig(cell="rnn", hidden_size=8), OptimConfig(name="sgd", lr=1.0))
    before = [p.detach().clone() for p in model.parameters()]
    _trainer(max_steps=1, gradient_clip_val=0.01, gradient_clip_algorithm=algorithm).fit(model, loader)
    deltas = [p.detach() - b for p, b in zip(model.parameters(), before)]
    if algorithm == "value":
        assert max(d.abs().max().item() for d in deltas) == pytest.approx(0.01, rel=1e-4)
    else:
        assert torch.sqrt(sum(d.pow(2).sum() for d in deltas)).item() == pytest.approx(0.01, rel=1e-3)


def test_nan_loss_stops_with_a_clear_error():
    x, y = torch.randn(4, 10, 2), torch.tensor([0.0, float("nan"), 1.0, 1.0])
    model = SequenceModel(ADDING, RNNConfig(cell="gru", hidden_size=4))
    with pytest.raises(DivergedError, match="diverged at step 0: training loss is nan"):
        _trainer(max_steps=3).fit(model, DataLoader(TensorDataset(x, y), batch_size=4))


def test_tolerance_accuracy():
    metric = ToleranceAccuracy(0.04)
    metric.update(torch.tensor([1.0, 1.03, 1.05, 0.5]), torch.tensor([1.0, 1.0, 1.0, 0.45]))
    assert metric.compute().item() == pytest.approx(0.25 + 0.25)  # 0.0 and 0.03 inside, 0.05 and 0.05 outside


def test_learns_the_short_adding_problem():
    """End to end: a small GRU gets well under the trivial baseline at T=10."""
    L.seed_everything(0, verbose=False)
    data = AddingProblem(seq_len=10, batch_size=64, batches_per_epoch=50, val_size=256, test_size=512)
    model = SequenceModel(data.task_spec, RNNConfig(cell="gru", hidden_size=32), OptimConfig(lr=1e-2))
    trainer = _trainer(max_steps=300, gradient_clip_val=1.0)
    trainer.fit(model, data)
    mse = trainer.test(model, data, verbose=False)[0]["test_mse"]
    assert mse < 0.05 < 1 / 6


def test_checkpoint_round_trip(tmp_path):
    data = AddingProblem(seq_len=10, batch_size=8, batches_per_epoch=2, val_size=8, test_size=8)
    model = SequenceModel(data.task_spec, RNNConfig(cell="rnn", nonlinearity="elu", hidden_size=6, num_layers=2, dropout=0.1))
    trainer = _trainer(max_steps=2)
    trainer.fit(model, data)
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    loaded = SequenceModel.load_from_checkpoint(path, weights_only=True)
    assert loaded.backbone_config == model.backbone_config and loaded.task == model.task
    x = torch.randn(3, 10, 2)
    torch.testing.assert_close(loaded.eval()(x), model.eval()(x))


def test_io_dropout_drops_embedding_and_decoder_input_in_training_only():
    lm = TaskSpec(name="lm", input_size=11, output_size=11, head="every", input_kind="tokens", stateful=True,
                  loss="cross_entropy", metrics=("perplexity",), target_metric="perplexity")
    x = torch.randint(0, 11, (3, 5))
    model = SequenceModel(lm, RNNConfig(cell="gru", hidden_size=8), io_dropout=0.5)
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    a = model(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, model(x))
    assert isinstance(SequenceModel(lm, RNNConfig(cell="gru", hidden_size=8)).io_dropout, torch.nn.Identity)
    with pytest.raises(ZooError, match=r"io_dropout must be a number >= 0.0 and < 1.0, got 1.5"):
        SequenceModel(lm, RNNConfig(cell="gru", hidden_size=8), io_dropout=1.5)


def test_a_layers_constraint_holds_after_every_update():
    """A backbone layer with ``constrain_`` (IndRNN's |u| bound) is put back inside it after each optimizer step."""
    class Clamped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def constrain_(self) -> None:
            self.calls += 1
            for p in model.backbone.rnn.parameters():
                p.clamp_(-0.01, 0.01)

    model = SequenceModel(ADDING, RNNConfig(cell="rnn", hidden_size=4), OptimConfig(name="sgd", lr=10.0))
    model.backbone.add_module("clamped", Clamped())
    data = AddingProblem(seq_len=5, batch_size=4, batches_per_epoch=3, val_size=4, test_size=4)
    _trainer(max_steps=3).fit(model, data)
    assert model.backbone.clamped.calls == 3
    assert all(float(p.abs().max()) <= 0.01 for p in model.backbone.rnn.parameters())


# ----------------------------------------------------------------- a bidirectional backbone under a whole-sequence head
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("implementation", ["fused", "loop"])
def test_a_last_step_head_reads_both_directions_final_states(cell, num_layers, implementation):
    """The forward direction after step T and the backward one after reading back to step 1, not its state at step T.

    At step T the backward direction has read one input; its state after the whole sequence
    is its output at step 1. The head must see that one, and the input at step 1 must reach
    the prediction through both directions.
    """
    torch.manual_seed(0)
    hidden = 5
    model = SequenceModel(CLASSIFY, RNNConfig(cell=cell, hidden_size=hidden, num_layers=num_layers,
                                              bidirectional=True, implementation=implementation))
    x = torch.randn(4, 70, 3, requires_grad=True)
    outputs, state = model.backbone(x)
    assert outputs.shape == (4, 70, 2 * hidden) and model.head.in_features == 2 * hidden
    both_ends = torch.cat([outputs[:, -1, :hidden], outputs[:, 0, hidden:]], dim=-1)
    torch.testing.assert_close(model.backbone.last_features(state), both_ends)
    torch.testing.assert_close(model(x), model.head(both_ends))
    # the first input reaches the prediction through the backward direction's final state alone too
    backward_only = model.head.weight[:, hidden:] @ model.backbone.last_features(state)[:, hidden:].T
    (grad,) = torch.autograd.grad(backward_only.sum(), x)
    assert grad[:, 0].abs().sum() > 0 and grad[:, -1].abs().sum() > 0


def test_an_every_step_head_of_a_whole_sequence_task_takes_a_bidirectional_backbone():
    """Copy memory (every-step, not a stream) is no language model: both directions feed each step's output."""
    from tasks.copy_memory import CopyMemory

    task = CopyMemory(seq_len=10).task_spec
    model = SequenceModel(task, RNNConfig(cell="gru", hidden_size=6, bidirectional=True))
    out = model(torch.randint(0, task.input_size, (3, 30)))
    assert out.shape == (3, 30, task.output_size) and model.head.in_features == 12
