"""IndRNN (Li et al., CVPR 2018): the fast path against the paper's equations, its backward, the zoo around it.

The reference below is written from the paper, h_t = relu(W x_t + u ⊙ h_{t-1} + b) (eq. 2),
a plain loop per layer and direction, with the deep forms of Sec. 4.1 as the module's
docstring places them (frame-wise batch norm after every layer but the last; residual
layers y = x + h between a plain first and last layer). It shares no code with the cell.

The cell is registered by a fixture, not at import, and unregistered after this file
unless ``zoo.cells`` registers it itself: tests/test_cells.py lists the built-in cells.
There is no parallel (scan) path, so there is no scan-against-loop test: the recurrence
is nonlinear.
"""

from __future__ import annotations

import importlib
import json
import math

import pytest
import torch
import yaml

from zoo.cells import cell_names, register_cell, unregister_cell
from zoo.errors import ZooError
from zoo.models.rnn import RNNBackbone, RNNConfig
from cell_checks import TINY_FIT


@pytest.fixture(scope="module")
def indrnn():
    registered_before = "indrnn" in cell_names()
    module = importlib.import_module("zoo.cells.indrnn")
    if "indrnn" not in cell_names():  # imported before and unregistered by a teardown
        register_cell(module.INDRNN)
    yield module
    if not registered_before:
        unregister_cell("indrnn")


# ----------------------------------------------------------------------------- the paper, written out
def paper_layer(x, w, b, u, h0, act, reverse=False):
    """One direction of one layer, eq. 2 step by step: x (B, T, I) -> (B, T, H), h_T (B, H)."""
    h, outs = h0, [None] * x.shape[1]
    for t in (range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1])):
        h = act(x[:, t] @ w.t() + b + u * h)
        outs[t] = h
    return torch.stack(outs, dim=1), h


def frame_batch_norm(x, weight, bias, mean, var, training, eps=1e-5, momentum=0.1):
    """BN over batch and time per feature (the authors' Batch_norm_overtime); training updates mean, var in place."""
    if training:
        flat = x.reshape(-1, x.shape[-1])
        batch_mean, batch_var = flat.mean(0), flat.var(0, unbiased=False)
        with torch.no_grad():
            mean.mul_(1 - momentum).add_(momentum * batch_mean)
            var.mul_(1 - momentum).add_(momentum * flat.var(0, unbiased=True))
        return (x - batch_mean) / torch.sqrt(batch_var + eps) * weight + bias
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def paper_stack(p, x, layers, directions, act, residual=False, batch_norm=False, training=True, h0=None):
    """The whole stack from a dict of tensors named as the zoo names them; returns outputs and h_n (L*D, B, H)."""
    finals, inp = [], x
    for layer in range(layers):
        outs = []
        for d in range(directions):
            s = f"_l{layer}" + ("_reverse" if d else "")
            normed = inp
            if batch_norm and layer > 0:
                normed = frame_batch_norm(inp, p["bn_weight" + s], p["bn_bias" + s], p["bn_mean" + s],
                                          p["bn_var" + s], training)
            hidden = p["weight_hh" + s].shape[0]
            start = h0[layer * directions + d] if h0 is not None else x.new_zeros(x.shape[0], hidden)
            out, h = paper_layer(normed, p["weight_ih" + s], p["bias_ih" + s], p["weight_hh" + s], start, act, bool(d))
            outs.append(out)
            finals.append(h)
        out = torch.cat(outs, dim=-1)
        if residual and 0 < layer < layers - 1:
            out = inp + out
        inp = out
    return inp, torch.stack(finals)


CASES = [
    dict(layers=1, bidirectional=False, nonlinearity="relu", options={"recurrent_max_len": 9}),
    dict(layers=2, bidirectional=True, nonlinearity="tanh", options={}),
    dict(layers=2, bidirectional=True, nonlinearity="relu", options={"batch_norm": True}),
    dict(layers=4, bidirectional=False, nonlinearity="relu",
         options={"residual": True, "batch_norm": True, "recurrent_max_len": 9, "last_layer_min_gain": 0.5}),
    dict(layers=3, bidirectional=False, nonlinearity="relu", options={"residual": True}),
]


def _backbone(case, input_size=3, hidden=5, seed=0):
    torch.manual_seed(seed)
    config = RNNConfig(cell="indrnn", hidden_size=hidden, num_layers=case["layers"],
                       bidirectional=case["bidirectional"], nonlinearity=case["nonlinearity"],
                       cell_options=case["options"])
    backbone = RNNBackbone(input_size, config).double()
    with torch.no_grad():  # away from the init's zero biases and unit statistics, so every term is exercised
        for name, param in backbone.rnn.named_parameters():
            if name.startswith(("bias_ih", "bn_bias", "bn_mean")):
                param.uniform_(-0.3, 0.3)
            elif name.startswith(("bn_weight", "bn_var")):
                param.uniform_(0.5, 1.5)
    return backbone


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['layers']}L-{'bi' if c['bidirectional'] else 'uni'}-"
                         f"{c['nonlinearity']}-{'-'.join(sorted(c['options'])) or 'plain'}")
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_fast_path_matches_the_papers_equations(indrnn, case, training):
    backbone = _backbone(case)
    backbone.train(training)
    rnn = backbone.rnn
    directions = 2 if case["bidirectional"] else 1
    reference = {name: param.detach().clone().requires_grad_(param.requires_grad)
                 for name, param in rnn.named_parameters()}
    x = torch.randn(4, 9, 3, dtype=torch.double)
    h0 = torch.randn(case["layers"] * directions, 4, 5, dtype=torch.double, requires_grad=True)
    h0_ref = h0.detach().clone().requires_grad_()
    out, h_n = backbone(x, h0)
    act = torch.relu if case["nonlinearity"] == "relu" else torch.tanh
    want, want_h = paper_stack(reference, x, case["layers"], directions, act, residual=case["options"].get("residual"),
                               batch_norm=case["options"].get("batch_norm"), training=training, h0=h0_ref)
    torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h_n, want_h, rtol=1e-12, atol=1e-12)
    for name, param in rnn.named_parameters():
        if not param.requires_grad:  # the running statistics: updated alike
            torch.testing.assert_close(param, reference[name], rtol=1e-12, atol=1e-12)
    weights = torch.randn_like(out)
    ((out * weights).sum() + h_n.pow(2).sum()).backward()
    ((want * weights).sum() + want_h.pow(2).sum()).backward()
    trained = [(name, param) for name, param in rnn.named_parameters() if param.requires_grad]
    assert {n for n, _ in trained} >= {"weight_ih_l0", "bias_ih_l0", "weight_hh_l0"}
    for name, param in trained:
        torch.testing.assert_close(param.grad, reference[name].grad, rtol=1e-10, atol=1e-12, msg=name)
    torch.testing.assert_close(h0.grad, h0_ref.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("nonlinearity", ["relu", "tanh"])
def test_sequence_function_passes_gradcheck(indrnn, nonlinearity):
    torch.manual_seed(1)
    args = [torch.randn(5, 3, 2, dtype=torch.double, requires_grad=True),  # x (T, B, I)
            torch.randn(3, 4, dtype=torch.double, requires_grad=True),  # h0 (B, H)
            torch.randn(4, 2, dtype=torch.double, requires_grad=True),  # W (H, I)
            torch.randn(4, dtype=torch.double, requires_grad=True),  # b (H,)
            torch.empty(4, dtype=torch.double).uniform_(-1.1, 1.1).requires_grad_()]  # u (H,)
    assert torch.autograd.gradcheck(lambda *a: indrnn.IndRNNSequence.apply(*a, nonlinearity), args)
    # gradients arriving only at the final state, or only at the outputs
    assert torch.autograd.gradcheck(lambda *a: indrnn.IndRNNSequence.apply(*a, nonlinearity)[1], args)
    assert torch.autograd.gradcheck(lambda *a: indrnn.IndRNNSequence.apply(*a, nonlinearity)[0], args)


@pytest.mark.parametrize("case", CASES[1:4], ids=["bi-tanh", "bi-bn", "residual-bn"])
def test_unrolled_diagnostics_reproduce_the_backbone(indrnn, case):
    from zoo.diagnostics import recurrent_spectra, unrolled_forward
    from zoo.diagnostics.spectral import spectra_do_not_apply

    backbone = _backbone(case).eval()  # the probe runs the network in eval mode (batch norm by its statistics)
    x = torch.randn(4, 7, 3, dtype=torch.double)
    out, h_n = backbone(x)
    unrolled, state, hidden = unrolled_forward(backbone, x)
    torch.testing.assert_close(unrolled, out, rtol=0, atol=1e-12)
    torch.testing.assert_close(state, h_n, rtol=0, atol=1e-12)
    directions = 2 if case["bidirectional"] else 1
    assert len(hidden) == case["layers"] and len(hidden[0]) == directions and len(hidden[0][0]) == 7
    assert out.shape == (4, 7, 5 * directions) and h_n.shape == (case["layers"] * directions, 4, 5)
    assert backbone.last_features(h_n).shape == (4, 5 * directions)
    # diag(u): the radius and the largest singular value are max |u| of each layer and direction
    spectra = recurrent_spectra(backbone)
    for key, values in spectra.items():
        u = getattr(backbone.rnn, f"weight_hh_{key}").detach().abs().max()
        assert values == {"radius": float(u), "sigma_max": float(u)}
    assert len(spectra) == case["layers"] * directions and spectra_do_not_apply(backbone.cell) is None


def test_constrain_clamps_u_and_init_respects_the_bounds(indrnn):
    config = RNNConfig(cell="indrnn", hidden_size=64, num_layers=3,
                       cell_options={"recurrent_max_len": 10, "last_layer_min_gain": 0.5})
    rnn = RNNBackbone(2, config).rnn
    bound, low = 2.0 ** (1 / 10), 0.5 ** (1 / 10)
    assert rnn.bound == pytest.approx(bound)
    for layer in range(2):
        u = getattr(rnn, f"weight_hh_l{layer}").detach()
        assert u.min() >= 0 and u.max() <= bound
    last = rnn.weight_hh_l2.detach()
    assert last.min() >= low and last.max() <= bound
    assert float(rnn.bias_ih_l0.detach().abs().max()) == 0.0
    with torch.no_grad():
        for layer in range(3):
            getattr(rnn, f"weight_hh_l{layer}").copy_(torch.linspace(-3, 3, 64))
    assert rnn.max_recurrent_gain() == pytest.approx(3.0)
    rnn.constrain_()
    for layer in range(3):
        u = getattr(rnn, f"weight_hh_l{layer}").detach()
        assert float(u.max()) == pytest.approx(bound) and float(u.min()) == pytest.approx(-bound)
        inside = torch.linspace(-3, 3, 64).abs() <= bound
        torch.testing.assert_close(u[inside], torch.linspace(-3, 3, 64)[inside])  # those inside stay
    assert rnn.max_recurrent_gain() == pytest.approx(bound)
    free = RNNBackbone(2, RNNConfig(cell="indrnn", hidden_size=8)).rnn  # no T: no bound, u ~ U(0, 1)
    assert free.bound is None and 0 <= float(free.weight_hh_l0.min()) and float(free.weight_hh_l0.max()) <= 1
    with torch.no_grad():
        free.weight_hh_l0.fill_(5.0)
    free.constrain_()
    assert float(free.weight_hh_l0.min()) == 5.0


def test_settings_and_their_defaults(indrnn):
    config = RNNConfig(cell="indrnn", hidden_size=3)
    assert config.activation == "relu" and RNNConfig.coerce(config.to_dict()) == config
    assert RNNBackbone(2, RNNConfig(cell="indrnn", nonlinearity="tanh")).rnn.nonlinearity == "tanh"
    options = {"recurrent_max_len": 784, "recurrent_max_gain": 10, "residual": True, "batch_norm": True}
    config = RNNConfig(cell="indrnn", hidden_size=3, num_layers=3, cell_options=options)
    assert RNNConfig.coerce(config.to_dict()) == config
    rnn = RNNBackbone(1, config).rnn
    assert rnn.bound == pytest.approx(10 ** (1 / 784)) and rnn.residual and rnn.batch_norm
    assert not rnn.bn_mean_l1.requires_grad and not rnn.residual_gain_l1.requires_grad
    assert not hasattr(rnn, "residual_gain_l2") and not hasattr(rnn, "bn_weight_l0")  # plain first and last layers


BAD = [
    (dict(cell_options={"recurrent_max_len": 0}), r"cell_options.recurrent_max_len must be an integer >= 1, got 0"),
    (dict(cell_options={"recurrent_max_len": -5}), r"recurrent_max_len must be an integer >= 1, got -5"),
    (dict(cell_options={"recurrent_max_len": 7.5}), r"recurrent_max_len must be an integer >= 1, got 7.5"),
    (dict(cell_options={"recurrent_max_gain": 0}), r"cell_options.recurrent_max_gain must be a number > 0"),
    (dict(cell_options={"recurrent_max_gain": -2.0}), r"recurrent_max_gain must be a number >= 0.0, got -2.0"),
    (dict(cell_options={"recurrent_max_gain": float("inf")}), r"recurrent_max_gain must be a number"),
    (dict(cell_options={"recurrent_max_len": 10, "recurrent_max_gain": 2.0, "last_layer_min_gain": 3.0}),
     r"last_layer_min_gain 3.0 is above recurrent_max_gain 2.0.*an empty range"),
    (dict(cell_options={"last_layer_min_gain": 0.5}),
     r"last_layer_min_gain 0.5 .* needs cell_options.recurrent_max_len"),
    (dict(cell_options={"recurrent_max_len": 10, "last_layer_min_gain": 0.0}),
     r"last_layer_min_gain must be a number > 0, got 0.0"),
    (dict(cell_options={"residual": True}, num_layers=2), r"residual needs num_layers >= 3 .*got num_layers 2"),
    (dict(cell_options={"residual": True}, num_layers=3, bidirectional=True), r"residual .* cannot be bidirectional"),
    (dict(cell_options={"residual": "yes"}), r"cell_options.residual must be true or false, got 'yes'"),
    (dict(cell_options={"batch_norm": 1}), r"cell_options.batch_norm must be true or false, got 1"),
    (dict(nonlinearity="elu"), r"unknown nonlinearity 'elu'; valid choices: relu, tanh"),
    (dict(recurrent_init="orthogonal"), r"recurrent_init 'orthogonal' needs a square recurrent matrix, which cell "
                                        r"'indrnn' does not have"),
    (dict(implementation="fused"), r"cell 'indrnn' has no 'fused' implementation; valid choices for 'indrnn': auto"),
    (dict(cell_options={"dt": 0.1}), r"cell 'indrnn' has no option\(s\) dt in cell_options; its options: "
                                     r"recurrent_max_len, recurrent_max_gain, last_layer_min_gain, residual, "
                                     r"batch_norm"),
]


@pytest.mark.parametrize("kwargs,message", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_settings_are_one_clear_error(indrnn, kwargs, message):
    with pytest.raises(ZooError, match=message):
        RNNConfig(cell="indrnn", **kwargs)


def test_the_layer_module_checks_its_own_arguments(indrnn):
    with pytest.raises(ZooError, match="empty range"):
        indrnn.IndRNNLayers(2, 3, recurrent_max_len=4, recurrent_max_gain=1.5, last_layer_min_gain=2.0)
    rnn = indrnn.IndRNNLayers(2, 3, num_layers=2)
    with pytest.raises(ZooError, match=r"initial state of shape \(2, 4, 3\), got \(1, 4, 3\)"):
        rnn(torch.randn(4, 5, 2), torch.zeros(1, 4, 3))
    with pytest.raises(ZooError, match=r"input of shape \(B, T, 2\), got \(4, 5, 3\)"):
        rnn(torch.randn(4, 5, 3))


def _find(root, pattern: str):
    found = sorted(root.rglob(pattern))
    assert found, f"no {pattern} under {root}"
    return found[-1]


def test_indrnn_trains_through_zoo_fit_with_diagnostics(indrnn, tmp_path, monkeypatch):
    from zoo.app.cli import main

    monkeypatch.chdir(tmp_path)
    options = {"recurrent_max_len": 12, "batch_norm": True}
    assert main(["fit", *TINY_FIT, "--model.backbone.cell", "indrnn",
                 "--model.backbone.hidden_size", "4", "--model.backbone.num_layers", "2",
                 "--model.backbone.bidirectional", "true", "--model.backbone.cell_options", json.dumps(options),
                 "--trainer.default_root_dir", str(tmp_path)]) == 0
    config = yaml.safe_load(_find(tmp_path, "config.yaml").read_text())
    assert config["model"]["backbone"]["cell"] == "indrnn"
    assert config["model"]["backbone"]["cell_options"] == options
    metrics = _find(tmp_path, "metrics.csv").read_text()
    assert "train_loss" in metrics and "gradients/decay_log10" in metrics and "spectral/l0/radius" in metrics  # max |u|
    curves = json.loads(_find(tmp_path, "grad_over_time.json").read_text())
    assert [entry["step"] for entry in curves] == [0, 4]
    for entry in curves:
        assert set(entry["norms"]) == {"l0", "l0_reverse", "l1", "l1_reverse"}
        assert all(len(norms) == 12 and all(map(math.isfinite, norms)) for norms in entry["norms"].values())
