"""minGRU (Feng et al. 2024) and the linear-recurrence kernels it runs on (zoo.models.linear_recurrence).

The reference below is the paper's equations written out here, one step at a time in
plain torch, not zoo code: z_t = σ(Linear_z(x_t)), h~_t = g(Linear_h(x_t)),
h_t = (1 − z_t) h_{t−1} + z_t h~_t, g(x) = x + 1/2 (x >= 0), σ(x) (x < 0).
"""

from __future__ import annotations

import json
import math

import pytest
import torch

import zoo.cells.mingru  # noqa: F401  (registers the cell)
from zoo.errors import ZooError
from zoo.models.linear_recurrence import (LinearRecurrence, MinRNNSequence, log_space_scan, reverse_recurrence,
                                          resolve_scan)
from zoo.models.rnn import RNNBackbone, RNNConfig
from cell_checks import TINY_FIT

D = torch.float64


def paper_g(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def reference(backbone: RNNBackbone, x: torch.Tensor, activation: str = "g", h0=None):
    """The paper's minGRU, layer after layer, step by step, on the backbone's own weights."""
    hidden, layer_input, finals = backbone.config.hidden_size, x, []
    for layer in range(backbone.config.num_layers):
        w = getattr(backbone.rnn, f"weight_ih_l{layer}")
        b = getattr(backbone.rnn, f"bias_ih_l{layer}")
        w_z, w_h, b_z, b_h = w[:hidden], w[hidden:], b[:hidden], b[hidden:]
        h = x.new_zeros(x.shape[0], hidden) if h0 is None else h0[layer]
        outs = []
        for t in range(x.shape[1]):
            x_t = layer_input[:, t]
            z = torch.sigmoid(x_t @ w_z.T + b_z)
            pre = x_t @ w_h.T + b_h
            h_tilde = paper_g(pre) if activation == "g" else pre
            h = (1 - z) * h + z * h_tilde
            outs.append(h)
        layer_input = torch.stack(outs, dim=1)
        finals.append(h)
    return layer_input, torch.stack(finals)


def make(hidden=5, layers=2, seed=0, **options):
    torch.manual_seed(seed)
    config = RNNConfig(cell="mingru", hidden_size=hidden, num_layers=layers, cell_options=options)
    return RNNBackbone(3, config).to(D)


def grads(backbone, out, h_n):
    loss = (out * torch.linspace(-1, 1, out.shape[-1], dtype=D)).pow(2).sum() + h_n.sin().sum()
    return torch.autograd.grad(loss, list(backbone.parameters()))


@pytest.mark.parametrize("scan,activation", [("sequential", "g"), ("log_space", "g"), ("sequential", "linear")])
def test_fast_path_matches_the_paper_step_by_step(scan, activation):
    backbone = make(scan=scan, activation=activation)
    x = torch.randn(4, 9, 3, dtype=D) * 2  # both signs of every pre-activation
    out, h_n = backbone(x)
    ref_out, ref_h = reference(backbone, x, activation)
    tol = dict(rtol=1e-10, atol=1e-12) if scan == "sequential" else dict(rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(out, ref_out, **tol)
    torch.testing.assert_close(h_n, ref_h, **tol)
    names = [name for name, _ in backbone.named_parameters()]
    assert names == ["rnn.weight_ih_l0", "rnn.bias_ih_l0", "rnn.weight_ih_l1", "rnn.bias_ih_l1"]
    for name, fast, slow in zip(names, grads(backbone, out, h_n), grads(backbone, ref_out, ref_h)):
        torch.testing.assert_close(fast, slow, **tol, msg=lambda m: f"{name}: {m}")


def test_log_space_scan_equals_the_sequential_loop():
    torch.manual_seed(1)
    for dtype, tol in ((D, 1e-10), (torch.float32, 2e-5)):
        seq, log = make(hidden=6, scan="sequential").to(dtype), make(hidden=6, scan="log_space").to(dtype)
        x = torch.randn(3, 12, 3, dtype=dtype)
        h0 = torch.rand(2, 3, 6, dtype=dtype) - 0.5  # any sign: the h_0 term is kept outside the log-space sum
        (o1, h1), (o2, h2) = seq(x, h0), log(x, h0)
        torch.testing.assert_close(o2, o1, rtol=tol, atol=tol)
        torch.testing.assert_close(h2, h1, rtol=tol, atol=tol)
        for g1, g2 in zip(grads(seq, o1.to(D), h1.to(D)), grads(log, o2.to(D), h2.to(D))):
            torch.testing.assert_close(g2, g1, rtol=10 * tol, atol=10 * tol)


def test_loop_equals_the_log_space_scan_under_inference_mode_from_a_carried_state():
    """Validation runs under torch.inference_mode: the loop (no graph, its buffers pooled apart) gives the scan's
    numbers there too, window after window from the carried state, and training after it still works."""
    torch.manual_seed(6)
    seq, log = make(hidden=6, scan="sequential").float(), make(hidden=6, scan="log_space").float()
    x = torch.randn(3, 12, 3)
    with torch.inference_mode():
        first, state = seq(x[:, :5])
        second, h_n = seq(x[:, 5:], state)
        ref_first, ref_state = log(x[:, :5])
        ref_second, ref_h = log(x[:, 5:], ref_state)
    for got, want in ((first, ref_first), (second, ref_second), (state, ref_state), (h_n, ref_h)):
        torch.testing.assert_close(got, want, rtol=2e-5, atol=2e-5)
    out, h = seq(x, state.clone())
    (out.square().sum() + h.sum()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in seq.parameters())


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_a_loss_on_the_last_step_alone_gets_the_scans_gradients(cell):
    """The loop returns h_T on its own, so a last-step head (sMNIST) sends it no gradient for the other steps:
    its backward starts from h_T's alone, and gives the log-space scan's gradients, from a carried state too."""
    import zoo.cells.minlstm  # noqa: F401  (registers the cell)

    results = []
    for scan in ("sequential", "log_space"):
        torch.manual_seed(7)
        config = RNNConfig(cell=cell, hidden_size=5, num_layers=2, cell_options={"scan": scan})
        backbone = RNNBackbone(3, config).to(D)
        x = torch.randn(3, 10, 3, dtype=D)
        h0 = (torch.rand(2, 3, 5, dtype=D) - 0.5).requires_grad_()
        _, h_n = backbone(x, h0)
        loss = (h_n * torch.linspace(-1, 1, 5, dtype=D)).sum()
        results.append((h_n, torch.autograd.grad(loss, [*backbone.parameters(), h0])))
    (h_seq, g_seq), (h_log, g_log) = results
    torch.testing.assert_close(h_seq, h_log, rtol=1e-9, atol=1e-10)
    for a, b in zip(g_seq, g_log):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_kernels_pass_gradcheck():
    torch.manual_seed(2)
    T, B, H = 6, 3, 4
    a = torch.rand(T, B, H, dtype=D, requires_grad=True)
    b = torch.randn(T, B, H, dtype=D, requires_grad=True)
    h0 = torch.randn(B, H, dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(LinearRecurrence.apply, (a, b, h0))
    log_a = torch.randn(T, B, H, dtype=D, requires_grad=True)
    log_b = torch.randn(T, B, H, dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(log_space_scan, (log_a, log_b, h0))
    x = (torch.randn(T, B, 2, dtype=D) * 2).requires_grad_()
    for cell, blocks in (("mingru", 2), ("minlstm", 3)):
        weight = torch.randn(blocks * H, 2, dtype=D, requires_grad=True)
        bias = torch.randn(blocks * H, dtype=D, requires_grad=True)
        for activation in ("g", "linear"):
            def layer(x, h0, weight, bias, cell=cell, activation=activation):
                return MinRNNSequence.apply(x, h0, weight, bias, cell, activation)

            assert torch.autograd.gradcheck(layer, (x, h0, weight, bias))
    # the loop and the scan are the same recurrence
    torch.testing.assert_close(log_space_scan(log_a, log_b, h0), LinearRecurrence.apply(log_a.exp(), log_b.exp(), h0))
    a, b = a.detach(), b.detach()
    torch.testing.assert_close(reverse_recurrence(a, b)[0], sum(a[1:t + 1].prod(0) * b[t] for t in range(T)))


def test_auto_is_the_loop_on_a_cpu_and_the_scan_on_a_gpu():
    assert resolve_scan("auto", torch.device("cpu")) == "sequential"
    assert resolve_scan("auto", torch.device("cuda")) == "log_space"
    assert resolve_scan("log_space", torch.device("cpu")) == "log_space"


@pytest.mark.parametrize("scan", ["sequential", "log_space"])
def test_state_carried_across_windows_continues_the_sequence(scan):
    backbone = make(scan=scan)
    x = torch.randn(2, 10, 3, dtype=D)
    whole, h_whole = backbone(x)
    first, h_first = backbone(x[:, :4])
    second, h_second = backbone(x[:, 4:], h_first)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(h_second, h_whole, rtol=1e-10, atol=1e-12)
    state, outs = None, []  # token by token, as generation runs it
    for t in range(x.shape[1]):
        out, state = backbone(x[:, t : t + 1], state)
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs, dim=1), whole, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(state, h_whole, rtol=1e-10, atol=1e-12)
    with pytest.raises(ZooError, match=r"expects a state of shape \(L\*D, B, H\) = \(2, 2, 5\), got \(2, 3, 5\)"):
        backbone(x, torch.zeros(2, 3, 5, dtype=D))


@pytest.mark.parametrize("scan", ["auto", "log_space"])
def test_unrolled_diagnostics_reproduce_the_backbone_and_spectra_do_not_apply(scan):
    from zoo.diagnostics import recurrent_spectra, unrolled_forward

    torch.manual_seed(3)
    config = RNNConfig(cell="mingru", hidden_size=5, num_layers=2, bidirectional=True, cell_options={"scan": scan})
    backbone = RNNBackbone(3, config).to(D)
    x = torch.randn(4, 7, 3, dtype=D)
    out, h_n = backbone(x)
    assert out.shape == (4, 7, 10) and h_n.shape == (4, 4, 5)
    assert backbone.last_features(h_n).shape == (4, 10)
    unrolled, state, hidden = unrolled_forward(backbone, x)  # the cell's step, one token at a time
    torch.testing.assert_close(unrolled, out, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(state, h_n, rtol=1e-10, atol=1e-12)
    assert len(hidden) == 2 and len(hidden[0]) == 2 and len(hidden[0][0]) == 7
    assert recurrent_spectra(backbone) == {}
    assert [name for name, _ in backbone.rnn.named_parameters()][:4] == [
        "weight_ih_l0", "bias_ih_l0", "weight_ih_l0_reverse", "bias_ih_l0_reverse"]


def test_bad_settings_are_one_clear_error_each():
    cases = [
        (dict(cell_options={"scan": "parallel"}), r"unknown cell_options.scan 'parallel'; valid choices: auto, "
                                                  r"sequential, log_space"),
        (dict(cell_options={"activation": "tanh"}), r"cell_options.activation 'tanh'; valid choices: g, linear"),
        (dict(cell_options={"scan": "log_space", "activation": "linear"}),
         r"cell_options.scan 'log_space' needs a positive candidate"),
        (dict(cell_options={"dt": 0.1}), r"cell 'mingru' has no option\(s\) dt in cell_options; its options: scan, "
                                         r"activation"),
        (dict(recurrent_init="orthogonal"), r"recurrent_init 'orthogonal' needs a square recurrent matrix"),
        (dict(implementation="fused"), r"cell 'mingru' has no 'fused' implementation"),
        (dict(forget_bias=1.0), r"forget_bias applies to the lstm and minlstm cells only, but cell is 'mingru'"),
        (dict(nonlinearity="relu"), r"nonlinearity 'relu' was given for cell 'mingru'"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ZooError, match=message):
            RNNConfig(cell="mingru", **kwargs)


def test_trains_through_zoo_fit_with_diagnostics(tmp_path, monkeypatch):
    from zoo.app.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["fit", *TINY_FIT, "--model.backbone.cell", "mingru",
                 "--model.backbone.hidden_size", "4", "--model.backbone.num_layers", "2",
                 "--model.backbone.cell_options", '{"scan": "sequential"}',
                 "--trainer.default_root_dir", str(tmp_path)]) == 0
    metrics = sorted(tmp_path.rglob("metrics.csv"))[-1].read_text()
    assert "train_loss" in metrics and "gradients/decay_log10" in metrics and "spectral/" not in metrics
    curves = json.loads(sorted(tmp_path.rglob("grad_over_time.json"))[-1].read_text())
    assert all(len(entry["norms"]["l0"]) == 12 and all(map(math.isfinite, entry["norms"]["l0"])) for entry in curves)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_log_space_on_a_gpu_matches_the_cpu_loop():
    cpu = make(hidden=8, scan="sequential").float()
    gpu = make(hidden=8, scan="auto").float().cuda()
    x = torch.randn(4, 300, 3)
    torch.testing.assert_close(gpu(x.cuda())[0].cpu(), cpu(x)[0], rtol=1e-4, atol=1e-5)
