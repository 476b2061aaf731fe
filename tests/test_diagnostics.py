import json
import math
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from tasks.adding import AddingProblem
from zoo.diagnostics import (
    ConvergenceMonitor,
    GradientOverTime,
    SpectralMonitor,
    StabilityMonitor,
    at_length,
    decay_log10,
    evaluate_at_lengths,
    gradient_over_time,
    recurrent_spectra,
    unrolled_forward,
)
from zoo.diagnostics.stability import part_of
from zoo.errors import ZooError
from zoo.models.rnn import RNNConfig
from zoo.module import DivergedError, SequenceModel
from zoo.optim import OptimConfig
from zoo.task_spec import TaskSpec
from zoo.train import fit_and_test

ADDING = AddingProblem(seq_len=10).task_spec
LM = TaskSpec(name="lm", input_size=7, output_size=7, head="every", input_kind="tokens", stateful=True,
              loss="cross_entropy", metrics=("perplexity",), target_metric="perplexity")


def _trainer(**kw) -> L.Trainer:
    defaults = dict(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False, num_sanity_val_steps=0, deterministic=True)
    return L.Trainer(**{**defaults, **kw})


@pytest.mark.parametrize("config", [
    RNNConfig(cell="rnn", hidden_size=6),
    RNNConfig(cell="rnn", nonlinearity="relu", hidden_size=6, num_layers=2),
    RNNConfig(cell="rnn", nonlinearity="elu", hidden_size=6, bidirectional=True),
    RNNConfig(cell="lstm", hidden_size=6, num_layers=2, bidirectional=True),
    RNNConfig(cell="gru", hidden_size=6, num_layers=2),
], ids=["tanh", "relu-2", "elu-bi", "lstm-2-bi", "gru-2"])
def test_unrolled_loop_reproduces_the_fused_model(config):
    """Same outputs, final state, loss and parameter gradients as the model's own (fused) forward."""
    model = SequenceModel(ADDING, config).eval()
    x, y = torch.randn(4, 9, 2), torch.rand(4)
    outputs, state = model.backbone(x)
    u_outputs, u_state, hidden = unrolled_forward(model.backbone, x)
    torch.testing.assert_close(u_outputs, outputs, atol=1e-5, rtol=1e-5)
    for a, b in zip(u_state if isinstance(u_state, tuple) else (u_state,), state if isinstance(state, tuple) else (state,)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert len(hidden) == config.num_layers and len(hidden[0]) == config.num_directions and len(hidden[0][0]) == 9

    fused_loss = model.task_loss(model(x), y)
    fused = torch.autograd.grad(fused_loss, list(model.parameters()))
    unrolled_loss = model.task_loss(model.read_out(u_outputs, u_state), y)
    unrolled = torch.autograd.grad(unrolled_loss, list(model.parameters()))
    torch.testing.assert_close(unrolled_loss, fused_loss, atol=1e-6, rtol=1e-5)
    for a, b in zip(unrolled, fused):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_gradient_over_time_of_a_linear_rnn_by_hand():
    """h_t = a h_{t-1} + W x_t with positive states (relu is the identity there): ∂L/∂h_t = a^(T-t) ∂L/∂h_T."""
    a, steps = 0.5, 10
    model = SequenceModel(ADDING, RNNConfig(cell="rnn", nonlinearity="relu", hidden_size=3, recurrent_init="identity",
                                            identity_scale=a, bias_init=0.0))
    with torch.no_grad():
        model.backbone.rnn.weight_ih_l0.uniform_(0.1, 1.0)
    x, y = torch.rand(5, steps, 2) + 0.1, torch.rand(5)
    norms = gradient_over_time(model, x, y)["norms"]["l0"]
    assert len(norms) == steps
    for t in range(steps):
        assert norms[t] == pytest.approx(a ** (steps - 1 - t) * norms[-1], rel=1e-5)
    assert decay_log10(norms) == pytest.approx((steps - 1) * math.log10(a), rel=1e-5)
    assert all(p.grad is None for p in model.parameters())  # the probe leaves .grad alone


def test_fused_output_gradients_are_not_the_through_time_ones():
    """Why the probe unrolls: with a last-step loss, the fused output tensor's gradient is zero before T."""
    model = SequenceModel(ADDING, RNNConfig(cell="lstm", hidden_size=4))
    x, y = torch.randn(3, 6, 2), torch.rand(3)
    outputs, state = model.backbone(x)
    last_step_loss = model.task_loss(model.head(outputs[:, -1]).squeeze(-1), y)  # the head on the output at T
    grad = torch.autograd.grad(last_step_loss, outputs)[0]  # (B, T, H)
    assert grad[:, :-1].abs().max() == 0
    norms = gradient_over_time(model, x, y)["norms"]["l0"]
    assert min(norms[:-1]) > 0


def test_every_step_head_probe_uses_the_final_steps_loss():
    model = SequenceModel(LM, RNNConfig(cell="gru", hidden_size=5, bidirectional=False))
    x = torch.randint(0, 7, (2, 8))
    result = gradient_over_time(model, x, torch.randint(0, 7, (2, 8)))
    assert set(result["norms"]) == {"l0"} and len(result["norms"]["l0"]) == 8


def test_spectra_of_known_matrices():
    identity = SequenceModel(ADDING, RNNConfig(cell="rnn", hidden_size=8, recurrent_init="identity", identity_scale=0.9))
    spectra = recurrent_spectra(identity.backbone)
    assert spectra["l0"]["radius"] == pytest.approx(0.9) and spectra["l0"]["sigma_max"] == pytest.approx(0.9)
    lstm = SequenceModel(ADDING, RNNConfig(cell="lstm", hidden_size=8, recurrent_init="orthogonal", bidirectional=True))
    spectra = recurrent_spectra(lstm.backbone)
    assert sorted(spectra) == sorted(f"l0{d}.{g}" for d in ("", "_reverse") for g in "ifgo")
    for values in spectra.values():
        assert values["sigma_max"] == pytest.approx(1.0, abs=1e-6)  # each orthogonal block
        assert values["radius"] == pytest.approx(1.0, abs=1e-6)  # an orthogonal matrix's eigenvalues lie on |z| = 1


def _loader(n=16, steps=10, nan_at=None):
    torch.manual_seed(0)
    x, y = torch.randn(n, steps, 2), torch.rand(n)
    if nan_at is not None:
        y[nan_at * 4] = float("nan")
    return DataLoader(TensorDataset(x, y), batch_size=4)


@pytest.mark.parametrize("clip,share", [(1e-6, 1.0), (1e6, 0.0)])
def test_clip_share_and_pre_clip_norm(clip, share):
    torch.manual_seed(0)
    model = SequenceModel(ADDING, RNNConfig(cell="gru", hidden_size=4), OptimConfig(name="sgd", lr=0.1))
    reference = SequenceModel(ADDING, RNNConfig(cell="gru", hidden_size=4))
    reference.load_state_dict(model.state_dict())
    monitor = StabilityMonitor()
    loader = _loader()
    _trainer(max_steps=1, gradient_clip_val=clip, callbacks=[monitor]).fit(model, loader)
    x, y = next(iter(loader))
    reference.task_loss(reference(x), y).backward()
    expected = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in reference.parameters()]))
    summary = monitor.summary(model)
    assert summary["steps"] == 1 and summary["clip_share"] == share
    assert summary["max_grad_norm"] == pytest.approx(float(expected), rel=1e-5)  # before clipping, even when clipped
    assert set(summary["max_grad_norm_per_part"]) == {"input_l0", "recurrent_l0", "head"}


def test_value_clipping_is_detected():
    model = SequenceModel(ADDING, RNNConfig(cell="gru", hidden_size=4))
    monitor = StabilityMonitor()
    _trainer(max_steps=2, gradient_clip_val=1e-8, gradient_clip_algorithm="value", callbacks=[monitor]).fit(model, _loader())
    assert monitor.summary(model)["clip_share"] == 1.0


def test_nan_loss_skip_policy_drops_and_counts_the_step():
    model = SequenceModel(ADDING, RNNConfig(cell="gru", hidden_size=4), OptimConfig(name="sgd", lr=0.1), nonfinite="skip")
    monitor = StabilityMonitor()
    _trainer(max_epochs=1, callbacks=[monitor]).fit(model, _loader(nan_at=1))  # batch 1 of 4 has a NaN target
    assert model.skipped_steps == 1
    assert monitor.summary(model)["steps"] == 3 and monitor.summary(model)["skipped_steps"] == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_nan_loss_in_one_accumulated_batch_drops_that_update_only():
    """The losses are checked with the gradients, at the optimizer step: a NaN in any accumulated batch drops it."""
    model = SequenceModel(ADDING, RNNConfig(cell="gru", hidden_size=4), OptimConfig(name="sgd", lr=0.1), nonfinite="skip")
    monitor = StabilityMonitor()
    # 4 batches, 2 a step: batch 1 (the 1st step's 2nd) has a NaN target
    _trainer(max_epochs=1, accumulate_grad_batches=2, callbacks=[monitor]).fit(model, _loader(nan_at=1))
    assert model.skipped_steps == 1 and monitor.summary(model)["steps"] == 1 and model.global_step == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert model._unchecked_losses == []  # nothing of a step is left for the next to check


def test_nan_loss_stop_policy_is_a_result_in_fit_and_test():
    data = AddingProblem(seq_len=10, batch_size=8, batches_per_epoch=5, val_size=16, test_size=16)
    model = SequenceModel(data.task_spec, RNNConfig(cell="rnn", nonlinearity="relu", hidden_size=16,
                                                    recurrent_init="identity", identity_scale=3.0),
                          OptimConfig(name="sgd", lr=1e6))
    result = fit_and_test(model, data, max_steps=50, clip_val=None, diagnostics=True)
    assert result.diverged is not None and result.diverged.startswith("diverged at step ")
    assert result.test == {}  # a diverged run is not tested
    assert all(math.isfinite(v) for v in [result.diagnostics["stability"]["max_grad_norm"]])


def _poison_head_gradient(model, at_call: int):
    calls = {"n": 0}

    def hook(grad):
        calls["n"] += 1
        return torch.full_like(grad, float("inf")) if calls["n"] == at_call else grad

    model.head.weight.register_hook(hook)


def test_nonfinite_gradient_stop_names_the_parameter():
    model = SequenceModel(ADDING, RNNConfig(cell="gru", hidden_size=4))
    _poison_head_gradient(model, at_call=2)
    with pytest.raises(DivergedError, match="diverged at step 1: non-finite gradient in head.weight"):
        _trainer(max_steps=3).fit(model, _loader())


def test_nonfinite_gradient_skip_leaves_the_weights_alone():
    model = SequenceModel(ADDING, RNNConfig(cell="gru", hidden_size=4), OptimConfig(name="sgd", lr=0.1), nonfinite="skip")
    _poison_head_gradient(model, at_call=1)
    before = [p.detach().clone() for p in model.parameters()]
    _trainer(max_steps=1).fit(model, _loader())
    assert model.skipped_steps == 1
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_unknown_nonfinite_policy():
    with pytest.raises(ZooError, match="unknown nonfinite 'ignore'; valid choices: stop, skip"):
        SequenceModel(ADDING, RNNConfig(cell="gru", hidden_size=4), nonfinite="ignore")


def test_loss_spikes_against_the_running_median():
    monitor = StabilityMonitor(spike_factor=3.0, spike_window=50)
    trainer = SimpleNamespace(gradient_clip_val=None, gradient_clip_algorithm=None, global_step=1, log_every_n_steps=50,
                              loggers=[])
    module = SimpleNamespace(grad_norms={"head.weight": torch.tensor(1.0)}, skipped_steps=0)
    for loss in [1.0] * 20 + [2.9, 3.5, 1.0, 10.0]:
        monitor.on_train_batch_end(trainer, module, {"loss": torch.tensor(loss)}, None, 0)
    assert monitor.spikes == 2


def test_parts():
    assert part_of("embedding.weight") == "embedding"
    assert part_of("backbone.rnn.weight_ih_l1_reverse") == "input_l1"
    assert part_of("backbone.rnn.bias_hh_l0") == "recurrent_l0"
    assert part_of("head.bias") == "head"


def test_convergence_steps_samples_and_best():
    task = TaskSpec(name="easy", input_size=2, output_size=1, target=10.0)  # MSE <= 10: met at the first validation
    model = SequenceModel(task, RNNConfig(cell="gru", hidden_size=4))
    monitor = ConvergenceMonitor(task, stop=True)
    loader = _loader()
    _trainer(max_steps=20, val_check_interval=2, callbacks=[monitor]).fit(model, loader, loader)
    assert monitor.reached and monitor.step == 2 and monitor.samples_at_target == 8
    assert monitor.best is not None and monitor.best_step == 2 and monitor.seconds > 0


def test_diagnostics_in_a_logged_run(tmp_path):
    data = AddingProblem(seq_len=12, batch_size=8, batches_per_epoch=4, val_size=16, test_size=16)
    model = SequenceModel(data.task_spec, RNNConfig(cell="lstm", hidden_size=8))
    probe, spectral = GradientOverTime(every_n_steps=4, probe_size=5), SpectralMonitor(every_n_steps=4)
    _trainer(max_steps=8, logger=CSVLogger(tmp_path), log_every_n_steps=1,
             callbacks=[probe, spectral, StabilityMonitor()]).fit(model, data)
    assert [entry["step"] for entry in probe.history] == [0, 4, 8]
    saved = json.loads((tmp_path / "lightning_logs" / "version_0" / "grad_over_time.json").read_text())
    assert len(saved[-1]["norms"]["l0"]) == 12
    assert probe.summary()["decay_log10_at_init"] == saved[0]["decay_log10"]
    assert [entry["step"] for entry in spectral.history] == [0, 4, 8]
    header = (tmp_path / "lightning_logs" / "version_0" / "metrics.csv").read_text().splitlines()[0]
    for column in ("stability/grad_norm", "stability/clip_share", "gradients/decay_log10", "spectral/l0.f/radius"):
        assert column in header


def test_lengths():
    data = AddingProblem(seq_len=10, batch_size=8, val_size=16, test_size=32, data_seed=3)
    longer = at_length(data, 40)
    assert longer.seq_len == 40 and longer.test_size == 32 and longer.data_seed == 3
    model = SequenceModel(data.task_spec, RNNConfig(cell="gru", hidden_size=4))
    results = evaluate_at_lengths(model, data, [5, 10, 20], accelerator="cpu")
    assert sorted(results) == [5, 10, 20] and all(0 <= r["mse"] < 10 for r in results.values())


def test_lengths_need_a_seq_len():
    with pytest.raises(ZooError, match="SimpleNamespace cannot be tested at length 10: length tests need a task that "
                                       r"takes seq_len and supports that length \(its supports_length\)"):
        at_length(SimpleNamespace(hparams={"corpus": "ptb"}), 10)


def test_lengths_ask_the_task_which_lengths_it_supports():
    """A task with seq_len that cannot be read at a length (MNIST is 784 pixels) says so, naming the length."""
    class FixedLength(SimpleNamespace):
        def supports_length(self, seq_len):
            return seq_len == 784

    with pytest.raises(ZooError, match="FixedLength cannot be tested at length 392"):
        at_length(FixedLength(hparams={"seq_len": 784}), 392)
