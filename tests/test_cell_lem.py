"""LEM (Rusch, Mishra, Erichson & Mahoney, ICLR 2022): the zoo's fast path against the paper's equations, written out.

The reference reads each named block (V_1, V_2, V_z, V_y; W_1, W_2, W_z, W_y) on its own and
lets W_y read the new z_n, as the paper and tk-rusch/LEM do; the fast path stacks them.
"""

from __future__ import annotations

import json
import math
import sys

import pytest
import torch
import yaml

import zoo.cells  # noqa: F401  (first: the package, whose imports may already register the cell)

_REGISTERED_BY_PACKAGE = "zoo.cells.lem" in sys.modules

from zoo.cells import cell_names, layer_parameters, register_cell, unregister_cell  # noqa: E402
from zoo.cells.lem import LEM, LEMLayers  # noqa: E402
from zoo.errors import ZooError  # noqa: E402
from zoo.models.oscillator_kernels import LEMSequence  # noqa: E402
from zoo.models.rnn import RNNBackbone, RNNConfig  # noqa: E402
from cell_checks import TINY_FIT

if not _REGISTERED_BY_PACKAGE:  # until zoo.cells imports it, the cell is registered only while this module's tests run
    unregister_cell("lem")


@pytest.fixture(autouse=True, scope="module")
def lem_registered():
    added = "lem" not in cell_names()
    if added:
        register_cell(LEM)
    yield
    if added:
        unregister_cell("lem")


# ----------------------------------------------------------------------------- the paper's equations, by hand
def reference_stack(module: LEMLayers, x: torch.Tensor, state=None):
    """The stack run step by step from the equations: x (B, T, I) -> (B, T, D*H), (y_n, z_n) each (L*D, B, H)."""
    dt, hidden, directions = module.dt, module.hidden_size, 2 if module.bidirectional else 1
    batch, steps, _ = x.shape
    layer_input, finals_y, finals_z = x, [], []
    for layer in range(module.num_layers):
        outputs = []
        for direction in range(directions):
            p = layer_parameters(module, layer, bool(direction))
            v_1, v_2, v_z, v_y = p["weight_ih"].split(hidden)
            w_1, w_2, w_z, w_y = p["weight_hh"].split(hidden)
            b_1, b_2, b_z, b_y = (p["bias_ih"] + p["bias_hh"]).split(hidden)
            index = layer * directions + direction
            y = x.new_zeros(batch, hidden) if state is None else state[0][index]
            z = x.new_zeros(batch, hidden) if state is None else state[1][index]
            ys = [None] * steps
            for t in (range(steps - 1, -1, -1) if direction else range(steps)):
                u = layer_input[:, t]
                step_y = dt * torch.sigmoid(y @ w_1.t() + u @ v_1.t() + b_1)  # Δt̄_n
                step_z = dt * torch.sigmoid(y @ w_2.t() + u @ v_2.t() + b_2)  # Δt_n
                z = (1 - step_z) * z + step_z * torch.tanh(y @ w_z.t() + u @ v_z.t() + b_z)
                y = (1 - step_y) * y + step_y * torch.tanh(z @ w_y.t() + u @ v_y.t() + b_y)
                ys[t] = y
            outputs.append(torch.stack(ys, dim=1))
            finals_y.append(y)
            finals_z.append(z)
        layer_input = torch.cat(outputs, dim=2)
    return layer_input, (torch.stack(finals_y), torch.stack(finals_z))


def _loss(out, state, weights):
    return (out * weights[0]).sum() + (state[0] * weights[1]).sum() + (state[1] * weights[2]).sum()


@pytest.mark.parametrize("layers,bidirectional,dt", [(1, False, 0.21), (2, True, 1.0), (2, False, 0.6)])
def test_fast_path_matches_the_papers_equations(layers, bidirectional, dt):
    torch.manual_seed(1)
    backbone = RNNBackbone(3, RNNConfig(cell="lem", hidden_size=5, num_layers=layers, bidirectional=bidirectional,
                                        cell_options={"dt": dt})).double()
    module = backbone.rnn
    assert isinstance(module, LEMLayers) and module.dt == dt
    x = torch.randn(4, 9, 3, dtype=torch.double, requires_grad=True)
    d = 2 if bidirectional else 1
    state = tuple(torch.randn(layers * d, 4, 5, dtype=torch.double, requires_grad=True) for _ in range(2))
    out, final = backbone(x, state)
    ref_out, ref_final = reference_stack(module, x, state)
    weights = (torch.randn_like(out), torch.randn_like(final[0]), torch.randn_like(final[1]))
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-12)
    for got, want in zip(final, ref_final):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    inputs = [x, *state, *module.parameters()]
    grads = torch.autograd.grad(_loss(out, final, weights), inputs)
    ref_grads = torch.autograd.grad(_loss(ref_out, ref_final, weights), inputs)
    names = ["x", "h0", "z0", *(name for name, _ in module.named_parameters())]
    for name, got, want in zip(names, grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12, msg=lambda m, name=name: f"{name}: {m}")


def test_only_the_output_or_only_the_final_state_carries_a_gradient():
    """A last-step head reads h_n only, a per-step head only the outputs: the backward takes either alone."""
    backbone = RNNBackbone(2, RNNConfig(cell="lem", hidden_size=4)).double()
    x = torch.randn(3, 6, 2, dtype=torch.double)
    for pick in (lambda out, state: out.sum(), lambda out, state: state[0].sum(), lambda out, state: state[1].sum()):
        out, state = backbone(x)
        ref_out, ref_state = reference_stack(backbone.rnn, x)
        params = list(backbone.parameters())
        for got, want in zip(torch.autograd.grad(pick(out, state), params),
                             torch.autograd.grad(pick(ref_out, ref_state), params, allow_unused=True)):
            torch.testing.assert_close(got, torch.zeros_like(got) if want is None else want, rtol=1e-10, atol=1e-12)


def test_gradcheck_of_the_sequence_function():
    torch.manual_seed(2)
    d = torch.double
    x = torch.randn(6, 3, 2, dtype=d, requires_grad=True)
    y0, z0 = (torch.randn(3, 4, dtype=d, requires_grad=True) for _ in range(2))
    w_ih = torch.randn(16, 2, dtype=d, requires_grad=True)
    b_ih, b_hh = (torch.randn(16, dtype=d, requires_grad=True) for _ in range(2))
    w_hh = (0.5 * torch.randn(16, 4, dtype=d)).requires_grad_()
    assert torch.autograd.gradcheck(lambda *a: LEMSequence.apply(*a, 0.7), (x, y0, z0, w_ih, b_ih, w_hh, b_hh))


def test_unrolled_diagnostics_and_spectra():
    from zoo.diagnostics import recurrent_spectra, unrolled_forward

    backbone = RNNBackbone(3, RNNConfig(cell="lem", hidden_size=5, num_layers=2, bidirectional=True,
                                        cell_options={"dt": 0.5})).double()
    x = torch.randn(4, 7, 3, dtype=torch.double)
    out, (h_n, z_n) = backbone(x)
    assert out.shape == (4, 7, 10) and h_n.shape == z_n.shape == (4, 4, 5)
    unrolled, (u_h, u_z), hidden = unrolled_forward(backbone, x)
    torch.testing.assert_close(unrolled, out, rtol=0, atol=1e-12)
    torch.testing.assert_close(u_h, h_n, rtol=0, atol=1e-12)
    torch.testing.assert_close(u_z, z_n, rtol=0, atol=1e-12)
    assert len(hidden) == 2 and len(hidden[1]) == 2 and len(hidden[0][0]) == 7
    assert backbone.last_features((h_n, z_n)).shape == (4, 10)
    spectra = recurrent_spectra(backbone)
    gates = ("dt_bar", "dt", "z", "y")
    assert sorted(spectra) == sorted(f"l{k}{s}.{g}" for k in (0, 1) for s in ("", "_reverse") for g in gates)
    assert all(math.isfinite(v["radius"]) and v["sigma_max"] >= v["radius"] - 1e-9 for v in spectra.values())


def test_init_default_is_the_authors_and_matrix_schemes_apply_per_block():
    backbone = RNNBackbone(3, RNNConfig(cell="lem", hidden_size=6, num_layers=2, bidirectional=True))
    assert all(param.abs().max() <= 1 / math.sqrt(6) for param in backbone.parameters())
    orthogonal = RNNBackbone(3, RNNConfig(cell="lem", hidden_size=6, recurrent_init="orthogonal")).rnn
    for block in orthogonal.weight_hh_l0.detach().chunk(4, dim=0):
        torch.testing.assert_close(block @ block.t(), torch.eye(6), atol=1e-5, rtol=0)


@pytest.mark.parametrize("kwargs,message", [
    (dict(cell_options={"dt": 0}), r"cell_options.dt must be a number > 0 and <= 1 .*got 0"),
    (dict(cell_options={"dt": -0.2}), r"cell_options.dt must be a number > 0 and <= 1 .*got -0.2"),
    (dict(cell_options={"dt": 1.5}), r"cell_options.dt must be a number > 0 and <= 1 .*got 1.5"),
    (dict(cell_options={"dt": "big"}), r"cell_options.dt must be a number finite, got 'big'"),
    (dict(cell_options={"dt": True}), r"cell_options.dt must be a number finite, got True"),
    (dict(cell_options={"gamma": 1.0}), r"cell 'lem' has no option\(s\) gamma in cell_options; its options: dt"),
    (dict(forget_bias=1.0), r"forget_bias applies to the lstm and minlstm cells only, but cell is 'lem'"),
    (dict(implementation="fused"), r"cell 'lem' has no 'fused' implementation"),
])
def test_bad_settings_are_one_clear_error(kwargs, message):
    with pytest.raises(ZooError, match=message):
        RNNConfig(cell="lem", **kwargs)


def test_good_settings_and_the_state_shape():
    config = RNNConfig(cell="lem", hidden_size=3, cell_options={"dt": 1})  # PTB's unscaled steps
    assert RNNConfig.coerce(config.to_dict()) == config
    backbone = RNNBackbone(2, config)
    assert backbone.rnn.dt == 1 and RNNBackbone(2, RNNConfig(cell="lem", hidden_size=3)).rnn.dt == 0.21
    with pytest.raises(ZooError, match=r"LEM state must be a pair \(h_0, z_0\), each of shape \(1, 2, 3\)"):
        backbone(torch.randn(2, 4, 2), (torch.zeros(1, 2, 3), torch.zeros(2, 2, 3)))


def _find(root, pattern: str):
    found = sorted(root.rglob(pattern))
    assert found, f"no {pattern} under {root}"
    return found[-1]


def test_trains_through_zoo_fit_with_diagnostics(tmp_path, monkeypatch):
    from zoo.app.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["fit", *TINY_FIT, "--model.backbone.cell", "lem",
                 "--model.backbone.hidden_size", "4", "--model.backbone.num_layers", "2",
                 "--model.backbone.cell_options", '{"dt": 0.5}', "--trainer.default_root_dir", str(tmp_path)]) == 0
    config = yaml.safe_load(_find(tmp_path, "config.yaml").read_text())
    assert config["model"]["backbone"]["cell"] == "lem"
    assert config["model"]["backbone"]["cell_options"] == {"dt": 0.5}
    metrics = _find(tmp_path, "metrics.csv").read_text()
    assert "train_loss" in metrics and "gradients/decay_log10" in metrics and "spectral/l1.dt_bar" in metrics
    curves = json.loads(_find(tmp_path, "grad_over_time.json").read_text())
    assert all(len(entry["norms"]["l0"]) == 12 and all(map(math.isfinite, entry["norms"]["l0"])) for entry in curves)
