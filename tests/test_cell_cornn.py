"""coRNN (Rusch & Mishra, ICLR 2021): the zoo's fast path against the paper's equations, written out here.

The reference below is the authors' form of the step, one linear map of [u, z, y]
(tk-rusch/coRNN: ``i2h(cat(x, hz, hy))``), not the zoo's stacked [W; 𝒲] layout, so a
mix-up of which recurrent block reads y and which reads z fails the parity test.
"""

from __future__ import annotations

import json
import math
import sys

import pytest
import torch
import yaml

import zoo.cells  # noqa: F401  (first: the package, whose imports may already register the cell)

_REGISTERED_BY_PACKAGE = "zoo.cells.cornn" in sys.modules

from zoo.cells import cell_names, layer_parameters, register_cell, unregister_cell  # noqa: E402
from zoo.cells.cornn import CORNN, CoRNNLayers  # noqa: E402
from zoo.errors import ZooError  # noqa: E402
from zoo.models.oscillator_kernels import CoRNNSequence, cornn_coefficients  # noqa: E402
from zoo.models.rnn import RNNBackbone, RNNConfig  # noqa: E402
from cell_checks import TINY_FIT

if not _REGISTERED_BY_PACKAGE:  # until zoo.cells imports it, the cell is registered only while this module's tests run
    unregister_cell("cornn")


@pytest.fixture(autouse=True, scope="module")
def cornn_registered():
    added = "cornn" not in cell_names()
    if added:
        register_cell(CORNN)
    yield
    if added:
        unregister_cell("cornn")


# ----------------------------------------------------------------------------- the paper's equations, by hand
def reference_stack(module: CoRNNLayers, x: torch.Tensor, state=None):
    """The stack run step by step from the equations: x (B, T, I) -> (B, T, D*H), (y_n, z_n) each (L*D, B, H)."""
    dt, gamma, eps, scheme = module.dt, module.gamma, module.epsilon, module.scheme
    hidden, directions = module.hidden_size, 2 if module.bidirectional else 1
    batch, steps, _ = x.shape
    layer_input, finals_y, finals_z = x, [], []
    for layer in range(module.num_layers):
        outputs = []
        for direction in range(directions):
            p = layer_parameters(module, layer, bool(direction))
            big_w, big_wz = p["weight_hh"][:hidden], p["weight_hh"][hidden:]  # W reads y, 𝒲 reads z
            i2h = torch.cat([p["weight_ih"], big_wz, big_w], dim=1)  # the authors' Linear over [u, z, y]
            index = layer * directions + direction
            y = x.new_zeros(batch, hidden) if state is None else state[0][index]
            z = x.new_zeros(batch, hidden) if state is None else state[1][index]
            ys = [None] * steps
            for t in (range(steps - 1, -1, -1) if direction else range(steps)):
                sigma = torch.tanh(torch.cat([layer_input[:, t], z, y], dim=1) @ i2h.t() + p["bias_ih"])
                if scheme == "explicit":
                    z = z + dt * (sigma - gamma * y - eps * z)
                else:  # the paper's eq. (3): z_n on the right of the damping
                    z = (z + dt * (sigma - gamma * y)) / (1 + dt * eps)
                y = y + dt * z
                ys[t] = y
            outputs.append(torch.stack(ys, dim=1))
            finals_y.append(y)
            finals_z.append(z)
        layer_input = torch.cat(outputs, dim=2)
    return layer_input, (torch.stack(finals_y), torch.stack(finals_z))


def _loss(out, state, weights):
    return (out * weights[0]).sum() + (state[0] * weights[1]).sum() + (state[1] * weights[2]).sum()


@pytest.mark.parametrize("layers,bidirectional,scheme", [(1, False, "explicit"), (2, True, "explicit"),
                                                         (2, False, "imex")])
def test_fast_path_matches_the_papers_equations(layers, bidirectional, scheme):
    torch.manual_seed(1)
    options = {"dt": 0.3, "gamma": 1.7, "epsilon": 2.1, "scheme": scheme}
    backbone = RNNBackbone(3, RNNConfig(cell="cornn", hidden_size=5, num_layers=layers, bidirectional=bidirectional,
                                        cell_options=options)).double()
    module = backbone.rnn
    assert isinstance(module, CoRNNLayers) and (module.dt, module.scheme) == (0.3, scheme)
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
    backbone = RNNBackbone(2, RNNConfig(cell="cornn", hidden_size=4, cell_options={"dt": 0.2})).double()
    x = torch.randn(3, 6, 2, dtype=torch.double)
    for pick in (lambda out, state: out.sum(), lambda out, state: state[0].sum(), lambda out, state: state[1].sum()):
        out, state = backbone(x)
        ref_out, ref_state = reference_stack(backbone.rnn, x)
        params = list(backbone.parameters())
        for got, want in zip(torch.autograd.grad(pick(out, state), params),
                             torch.autograd.grad(pick(ref_out, ref_state), params)):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("scheme", ["explicit", "imex"])
def test_gradcheck_of_the_sequence_function(scheme):
    torch.manual_seed(2)
    d = torch.double
    x = torch.randn(6, 3, 2, dtype=d, requires_grad=True)
    y0, z0 = (torch.randn(3, 4, dtype=d, requires_grad=True) for _ in range(2))
    w_ih = torch.randn(4, 2, dtype=d, requires_grad=True)
    bias = torch.randn(4, dtype=d, requires_grad=True)
    w_hh = (0.5 * torch.randn(8, 4, dtype=d)).requires_grad_()
    c_z, c_y, c_a = cornn_coefficients(0.2, 3.0, 1.5, scheme)
    assert torch.autograd.gradcheck(lambda *a: CoRNNSequence.apply(*a, 0.2, c_z, c_y, c_a),
                                    (x, y0, z0, w_ih, bias, w_hh))


def test_unrolled_diagnostics_and_spectra():
    from zoo.diagnostics import recurrent_spectra, unrolled_forward

    backbone = RNNBackbone(3, RNNConfig(cell="cornn", hidden_size=5, num_layers=2, bidirectional=True,
                                        cell_options={"dt": 0.1, "scheme": "imex"})).double()
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
    assert sorted(spectra) == sorted(f"l{k}{s}.{g}" for k in (0, 1) for s in ("", "_reverse") for g in ("y", "z"))
    assert all(math.isfinite(v["radius"]) and v["sigma_max"] >= v["radius"] - 1e-9 for v in spectra.values())


def test_init_default_is_the_authors_and_matrix_schemes_apply_per_block():
    backbone = RNNBackbone(3, RNNConfig(cell="cornn", hidden_size=6, num_layers=2))
    for name, param in backbone.rnn.named_parameters():
        fan_in = (3 if name.endswith("l0") else 6) + 2 * 6
        assert param.abs().max() <= 1 / math.sqrt(fan_in), name
    orthogonal = RNNBackbone(3, RNNConfig(cell="cornn", hidden_size=6, recurrent_init="orthogonal")).rnn
    for block in orthogonal.weight_hh_l0.detach().chunk(2, dim=0):  # W and 𝒲, each orthogonal on its own
        torch.testing.assert_close(block @ block.t(), torch.eye(6), atol=1e-5, rtol=0)


@pytest.mark.parametrize("kwargs,message", [
    (dict(cell_options={"dt": 0}), r"cell_options.dt must be a number > 0 .*got 0"),
    (dict(cell_options={"dt": -0.1}), r"cell_options.dt must be a number > 0 .*got -0.1"),
    (dict(cell_options={"dt": "fast"}), r"cell_options.dt must be a number finite, got 'fast'"),
    (dict(cell_options={"gamma": -1.0}), r"cell_options.gamma must be a number >= 0.0, got -1.0"),
    (dict(cell_options={"epsilon": -0.5}), r"cell_options.epsilon must be a number >= 0.0, got -0.5"),
    (dict(cell_options={"epsilon": float("nan")}), r"cell_options.epsilon must be a number >= 0.0, got nan"),
    (dict(cell_options={"scheme": "rk4"}), r"unknown cell_options.scheme 'rk4'; valid choices: explicit, imex"),
    (dict(cell_options={"dt": 0.5, "epsilon": 4.0}), r"dt \* epsilon must be < 2 for scheme 'explicit'.* = 2;"),
    (dict(cell_options={"beta": 1.0}), r"cell 'cornn' has no option\(s\) beta in cell_options; its options: dt, "
                                       r"gamma, epsilon, scheme"),
    (dict(nonlinearity="relu"), r"nonlinearity 'relu' was given for cell 'cornn'"),
    (dict(implementation="fused"), r"cell 'cornn' has no 'fused' implementation"),
])
def test_bad_settings_are_one_clear_error(kwargs, message):
    with pytest.raises(ZooError, match=message):
        RNNConfig(cell="cornn", **kwargs)


def test_good_settings_and_the_state_shape():
    RNNConfig(cell="cornn", cell_options={"dt": 0.5, "epsilon": 4.0, "scheme": "imex"})  # imex has no dt ε limit
    RNNConfig(cell="cornn", cell_options={"gamma": 0, "epsilon": 0})  # the undamped oscillator is allowed
    config = RNNConfig(cell="cornn", hidden_size=3, cell_options={"dt": 0.076, "gamma": 0.4, "epsilon": 8.0})
    assert RNNConfig.coerce(config.to_dict()) == config
    backbone = RNNBackbone(2, config)
    assert (backbone.rnn.dt, backbone.rnn.gamma, backbone.rnn.epsilon) == (0.076, 0.4, 8.0)
    with pytest.raises(ZooError, match=r"coRNN state must be a pair \(h_0, z_0\), each of shape \(1, 2, 3\)"):
        backbone(torch.randn(2, 4, 2), torch.zeros(1, 2, 3))


def _find(root, pattern: str):
    found = sorted(root.rglob(pattern))
    assert found, f"no {pattern} under {root}"
    return found[-1]


def test_trains_through_zoo_fit_with_diagnostics(tmp_path, monkeypatch):
    from zoo.app.cli import main

    monkeypatch.chdir(tmp_path)
    options = '{"dt": 0.1, "gamma": 2.0, "epsilon": 3.0}'
    assert main(["fit", *TINY_FIT, "--model.backbone.cell", "cornn",
                 "--model.backbone.hidden_size", "4", "--model.backbone.cell_options", options,
                 "--trainer.default_root_dir", str(tmp_path)]) == 0
    config = yaml.safe_load(_find(tmp_path, "config.yaml").read_text())
    assert config["model"]["backbone"]["cell"] == "cornn"
    assert config["model"]["backbone"]["cell_options"] == json.loads(options)
    metrics = _find(tmp_path, "metrics.csv").read_text()
    assert "train_loss" in metrics and "gradients/decay_log10" in metrics and "spectral/l0.y" in metrics
    curves = json.loads(_find(tmp_path, "grad_over_time.json").read_text())
    assert all(len(entry["norms"]["l0"]) == 12 and all(map(math.isfinite, entry["norms"]["l0"])) for entry in curves)
