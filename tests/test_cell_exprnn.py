"""expRNN (Lezcano-Casado & Martínez-Rubio 2019): the zoo's fast path against the paper's equations, written here.

The reference below is the paper, step by step: A = X⁺ − X⁺ᵀ from the strictly upper
triangle of the parameter X, B = torch.matrix_exp(A) (or the Cayley map), and
h_t = sign(z) · relu(|z| + b) with z = W x_t + B h_{t−1}; a plain loop, no zoo code.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml

import zoo.cells.exprnn as exprnn
from zoo.cells import get_cell
from zoo.errors import ZooError
from zoo.models.rnn import RNNBackbone, RNNConfig
from cell_checks import TINY_FIT


def _reference(x, h0, params, layers, directions, orthogonal_map="matrix_exp"):
    """The paper's equations for a stack: outputs (B, T, D*H) and h_n (L*D, B, H)."""
    steps = x.shape[1]
    layer_input, finals = x, []
    for layer in range(layers):
        outs = []
        for direction in range(directions):
            suffix = "_reverse" if direction else ""
            w = params[f"weight_ih_l{layer}{suffix}"]
            upper = params[f"skew_weight_hh_l{layer}{suffix}"].triu(1)
            a = upper - upper.T  # skew-symmetric
            eye = torch.eye(a.shape[0], dtype=a.dtype)
            rec = torch.matrix_exp(a) if orthogonal_map == "matrix_exp" else \
                (eye + a / 2) @ torch.linalg.inv(eye - a / 2)
            b = params[f"bias_hh_l{layer}{suffix}"]
            h = h0[layer * directions + direction]
            hs = [None] * steps
            for t in (range(steps - 1, -1, -1) if direction else range(steps)):
                z = layer_input[:, t] @ w.T + h @ rec.T
                h = torch.sign(z) * torch.relu(torch.abs(z) + b)
                hs[t] = h
            outs.append(torch.stack(hs, 1))
            finals.append(h)
        layer_input = torch.cat(outs, -1)
    return layer_input, torch.stack(finals)


@pytest.mark.parametrize("orthogonal_map", ["matrix_exp", "cayley"])
def test_fast_path_matches_the_papers_equations_with_gradients(orthogonal_map):
    torch.manual_seed(0)
    config = RNNConfig(cell="exprnn", hidden_size=5, num_layers=2, bidirectional=True,
                       cell_options={"orthogonal_map": orthogonal_map})
    backbone = RNNBackbone(3, config).double()
    with torch.no_grad():  # X with a random lower triangle too (A must ignore it), b with both signs
        for name, p in backbone.rnn.named_parameters():
            if name.startswith("skew_"):
                p.add_(0.3 * torch.randn_like(p))
            if name.startswith("bias_"):
                p.copy_(0.3 * torch.randn_like(p))
    x = torch.randn(4, 7, 3, dtype=torch.double, requires_grad=True)
    h0 = torch.randn(4, 4, 5, dtype=torch.double, requires_grad=True)
    out, h_n = backbone(x, h0)
    params = dict(backbone.rnn.named_parameters())
    ref_out, ref_h = _reference(x, h0, params, 2, 2, orthogonal_map)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-12)
    torch.testing.assert_close(h_n, ref_h, rtol=0, atol=1e-12)
    weights = torch.randn_like(out)
    names = list(params)
    inputs = [x, h0, *params.values()]
    fast = torch.autograd.grad((out * weights).sum() + h_n.square().sum(), inputs)
    ref = torch.autograd.grad((ref_out * weights).sum() + ref_h.square().sum(), inputs)
    for name, got, want in zip(["x", "h0", *names], fast, ref):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10, msg=f"gradient of {name}")
    assert any(name.startswith("skew_weight_hh") and g.abs().max() > 0 for name, g in zip(["x", "h0", *names], fast))


def test_gradcheck_kernel_modrelu_and_maps():
    torch.manual_seed(1)
    d = dict(dtype=torch.double, requires_grad=True)
    x, h0 = torch.randn(3, 2, 2, **d), torch.randn(2, 3, **d)
    w_ih, bias = torch.randn(3, 2, **d), (0.2 * torch.randn(3, dtype=torch.double)).requires_grad_()
    w_hh = exprnn.orthogonal_matrix(torch.randn(3, 3, dtype=torch.double)).detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda *a: exprnn.ExpRNNSequence.apply(*a), (x, h0, w_ih, w_hh, bias))
    z = torch.randn(4, 3, **d)
    assert torch.autograd.gradcheck(exprnn.modrelu, (z, bias))
    for orthogonal_map in exprnn.ORTHOGONAL_MAPS:
        assert torch.autograd.gradcheck(lambda p: exprnn.orthogonal_matrix(p, orthogonal_map),
                                        (torch.randn(4, 4, **d),))


def test_unrolled_diagnostics_match_and_matrices_are_orthogonal():
    from zoo.diagnostics import recurrent_spectra, unrolled_forward
    from zoo.diagnostics.spectral import spectra_do_not_apply

    torch.manual_seed(2)
    backbone = RNNBackbone(3, RNNConfig(cell="exprnn", hidden_size=6, num_layers=2, bidirectional=True)).double()
    x = torch.randn(4, 9, 3, dtype=torch.double)
    out, h_n = backbone(x)
    assert out.shape == (4, 9, 12) and h_n.shape == (4, 4, 6)
    unrolled, state, hidden = unrolled_forward(backbone, x)
    torch.testing.assert_close(unrolled, out, rtol=0, atol=1e-12)
    torch.testing.assert_close(state, h_n, rtol=0, atol=1e-12)
    assert len(hidden) == 2 and len(hidden[0]) == 2 and len(hidden[0][0]) == 9
    assert backbone.last_features(h_n).shape == (4, 12)
    # the spectra measure the orthogonal matrices exp(A) themselves (not X): radius and sigma_max 1
    spectra = recurrent_spectra(backbone)
    assert set(spectra) == {"l0", "l0_reverse", "l1", "l1_reverse"}
    assert all(abs(v["radius"] - 1) < 1e-9 and abs(v["sigma_max"] - 1) < 1e-9 for v in spectra.values())
    assert spectra_do_not_apply(backbone.cell) is None
    for orthogonal_map in exprnn.ORTHOGONAL_MAPS:
        rnn = exprnn.ExpRNN(3, 7, num_layers=2, bidirectional=True, orthogonal_map=orthogonal_map)
        with torch.no_grad():
            for name, p in rnn.named_parameters():
                if name.startswith("skew_"):
                    p.add_(torch.randn_like(p))
        matrices = rnn.recurrent_matrices()
        assert set(matrices) == {"l0", "l0_reverse", "l1", "l1_reverse"}
        for key, w in matrices.items():
            w = w.detach().double()
            assert abs(float(torch.linalg.eigvals(w).abs().max()) - 1) < 1e-5, key
            assert abs(float(torch.linalg.matrix_norm(w, ord=2)) - 1) < 1e-5, key
            torch.testing.assert_close(w.T @ w, torch.eye(7, dtype=w.dtype), rtol=0, atol=1e-5)
        torch.testing.assert_close(rnn.weight_hh_l1_reverse, matrices["l1_reverse"])


def test_inits_state_dict_and_orthogonality_after_a_step():
    torch.manual_seed(3)
    henaff = exprnn.ExpRNN(2, 7).skew_weight_hh_l0.detach()
    torch.testing.assert_close(henaff, -henaff.T)
    angles = henaff.diagonal(1)[::2]
    assert angles.numel() == 3 and angles.abs().max() < math.pi and (henaff.triu(2) == 0).all()
    assert (henaff.diagonal(1)[1::2] == 0).all() and (henaff[6] == 0).all()  # odd H: the last unit unrotated
    cayley = exprnn.ExpRNN(2, 8, init="cayley").skew_weight_hh_l0.detach().diagonal(1)[::2]
    assert cayley.numel() == 4 and (cayley <= 0).all() and (cayley > -1).all()  # -tan(s/2), s in (0, pi/2)
    bias = exprnn.ExpRNN(2, 8).bias_hh_l0
    assert bias.abs().max() <= exprnn.MODRELU_BIAS_RANGE

    backbone = RNNBackbone(2, RNNConfig(cell="exprnn", hidden_size=8))
    keys = set(backbone.state_dict())
    assert keys == {"rnn.weight_ih_l0", "rnn.skew_weight_hh_l0", "rnn.bias_hh_l0"}  # X, not exp(A)
    assert [p is q for p, q in zip(exprnn.orthogonal_parameters(backbone), [backbone.rnn.skew_weight_hh_l0])] == [True]
    optimizer = torch.optim.RMSprop(backbone.parameters(), lr=0.05)
    x = torch.randn(4, 10, 2)
    for _ in range(3):
        optimizer.zero_grad()
        backbone(x)[0].square().mean().backward()
        optimizer.step()
    w = backbone.rnn.weight_hh_l0.detach()
    assert (backbone.rnn.skew_weight_hh_l0.detach() - torch.as_tensor(0.0)).abs().max() > 0
    torch.testing.assert_close(w.T @ w, torch.eye(8), rtol=0, atol=1e-5)
    copy = RNNBackbone(2, RNNConfig(cell="exprnn", hidden_size=8))
    copy.load_state_dict(backbone.state_dict())
    torch.testing.assert_close(copy(x)[0], backbone(x)[0], rtol=0, atol=0)
    uniform = RNNBackbone(2, RNNConfig(cell="exprnn", hidden_size=8, recurrent_init="uniform", init_range=0.01))
    assert uniform.rnn.skew_weight_hh_l0.abs().max() <= 0.01  # a small random A: W_hh near the identity
    zero_bias = RNNBackbone(2, RNNConfig(cell="exprnn", hidden_size=8, bias_init=0.0))
    assert (zero_bias.rnn.bias_hh_l0 == 0).all()


def test_bad_settings_are_one_clear_error_each():
    cases = [
        (dict(cell_options={"orthogonal_map": "householder"}),
         r"unknown cell_options.orthogonal_map 'householder'; valid choices: matrix_exp, cayley"),
        (dict(cell_options={"init": "haar"}), r"unknown cell_options.init 'haar'; valid choices: henaff, cayley"),
        (dict(cell_options={"lr_orth": 1e-4}), r"cell 'exprnn' has no option\(s\) lr_orth in cell_options"),
        (dict(recurrent_init="orthogonal"), r"recurrent_init 'orthogonal' needs a square recurrent matrix"),
        (dict(recurrent_init="uniform", cell_options={"init": "cayley"}),
         r"recurrent_init 'uniform' and cell_options.init 'cayley' both set exprnn's A"),
        (dict(nonlinearity="tanh"), r"nonlinearity 'tanh' was given for cell 'exprnn'"),
        (dict(implementation="fused"), r"cell 'exprnn' has no 'fused' implementation"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ZooError, match=message):
            RNNConfig(cell="exprnn", **kwargs)
    with pytest.raises(ZooError, match=r"identity init needs square matrices, but weight_ih_l0"):
        RNNBackbone(3, RNNConfig(cell="exprnn", hidden_size=4, input_init="identity"))
    RNNBackbone(4, RNNConfig(cell="exprnn", hidden_size=4, input_init="identity"))  # square: fine
    with pytest.raises(ZooError, match=r"unknown cell_options.orthogonal_map 'expm'"):
        exprnn.ExpRNN(2, 3, orthogonal_map="expm")
    with pytest.raises(ZooError, match=r"exprnn expects a state of shape \(1, 2, 3\), got \(1, 2, 4\)"):
        exprnn.ExpRNN(2, 3)(torch.randn(2, 5, 2), torch.zeros(1, 2, 4))
    assert get_cell("exprnn").option(RNNConfig(cell="exprnn"), "orthogonal_map") == "matrix_exp"


def _find(root, pattern: str):
    found = sorted(root.rglob(pattern))
    assert found, f"no {pattern} under {root}"
    return found[-1]


def test_trains_through_zoo_fit_with_diagnostics(tmp_path, monkeypatch):
    from zoo.app.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["fit", *TINY_FIT, "--model.backbone.cell", "exprnn",
                 "--model.backbone.hidden_size", "4", "--model.backbone.cell_options",
                 '{"init": "cayley", "orthogonal_map": "cayley"}',
                 "--trainer.default_root_dir", str(tmp_path)]) == 0
    config = yaml.safe_load(_find(tmp_path, "config.yaml").read_text())
    assert config["model"]["backbone"]["cell_options"] == {"init": "cayley", "orthogonal_map": "cayley"}
    metrics = _find(tmp_path, "metrics.csv").read_text()
    assert "train_loss" in metrics and "gradients/decay_log10" in metrics
    curves = json.loads(_find(tmp_path, "grad_over_time.json").read_text())
    assert [entry["step"] for entry in curves] == [0, 4]
    assert all(len(entry["norms"]["l0"]) == 12 and all(map(math.isfinite, entry["norms"]["l0"])) for entry in curves)


def test_benchmark_run_has_a_record_with_diagnostics(tmp_path):
    import dataclasses

    from zoo.app.catalogue import Budget, get_benchmark
    from zoo.app.recipes import Recipe
    from zoo.app.runner import execute
    from zoo.records import test_metric

    recipe = Recipe("exprnn_1x4", RNNConfig(cell="exprnn", hidden_size=4, cell_options={"init": "henaff"}))
    tiny = Budget(max_steps=3, data={"seq_len": 12, "batch_size": 8, "batches_per_epoch": 3, "val_size": 16,
                                     "test_size": 16}, seeds=(0,))
    bench = dataclasses.replace(get_benchmark("adding_t100"), models={recipe.name: recipe}, tiers={"smoke": tiny},
                                length_factors=(1, 2))
    record = execute(bench.run_config("smoke", recipe.name), seed=0, weights_dir=tmp_path)
    assert not record["diverged"] and record["steps"] == 3
    assert math.isfinite(record["metrics"]["test"][test_metric(record)[0]])
    assert abs(record["spectral"]["max_radius_at_init"] - 1) < 1e-5  # orthogonal: every |eigenvalue| is 1
    assert "recurrent_l0" in record["stability"]["max_grad_norm_per_part"]  # X and b group as recurrent
    assert math.isfinite(record["gradients"]["decay_log10_final"])
