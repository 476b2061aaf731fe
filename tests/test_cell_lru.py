"""The LRU cell (zoo.cells.lru) against the paper's equations, its scans against each other, and through the zoo.

The reference below is written from Orvieto et al. 2023 (§3, Figure 1, Appendix A) step by
step with complex numbers, reading the module's parameters by name; it calls nothing of
zoo.cells.lru or zoo.models.complex_scan.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml

import zoo.cells.lru  # (registers the cell; the fused-loop test patches it)
from zoo.cells.base import layer_parameters
from zoo.errors import ZooError
from zoo.models.complex_scan import DiagonalRecurrence, LRUSequence, linear_recurrence, parallel_scan
from zoo.models.rnn import RNNBackbone, RNNConfig
from cell_checks import TINY_FIT


# ----------------------------------------------------------------------------- the paper, step by step
def _paper_layer(p: dict[str, torch.Tensor], u_in: torch.Tensor, block: bool, reverse: bool):
    """One LRU block (or bare layer) over a (B, T, I) input: outputs (B, T, H), final y and complex x."""
    batch, steps, _ = u_in.shape
    lam = torch.exp(-torch.exp(p["nu_log"]) + 1j * torch.exp(p["theta_log"]))  # λ_j = exp(-e^ν + i e^θ)
    b_mat = (p["B_re"] + 1j * p["B_im"]) * torch.exp(p["gamma_log"])[:, None]  # diag(γ) B
    c_mat = p["C_re"] + 1j * p["C_im"]
    x = torch.zeros(batch, lam.shape[0], dtype=torch.complex128)
    outs = [None] * steps
    for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
        u = u_in[:, t]
        if "weight_ih" in p:
            u = u @ p["weight_ih"].T + p["bias_ih"]  # the encoder
        z = u
        if "norm_weight" in p:
            mean = u.mean(-1, keepdim=True)
            var = ((u - mean) ** 2).mean(-1, keepdim=True)
            z = (u - mean) / torch.sqrt(var + 1e-5) * p["norm_weight"] + p["norm_bias"]
        x = lam * x + z.to(torch.complex128) @ b_mat.T  # x_k = Λ x_{k-1} + γ ⊙ B u_k
        y = (x @ c_mat.T).real + p["D"] * z  # y_k = Re(C x_k) + D ⊙ u_k
        if block:
            g = 0.5 * y * (1 + torch.erf(y / math.sqrt(2)))  # GELU
            a = g @ p["glu_weight"][: y.shape[1]].T + p["glu_bias"][: y.shape[1]]
            gate = g @ p["glu_weight"][y.shape[1]:].T + p["glu_bias"][y.shape[1]:]
            y = u + a * torch.sigmoid(gate)  # GLU, skip connection
        outs[t] = y
    return torch.stack(outs, 1), outs[0 if reverse else -1], x


def _paper_stack(backbone: RNNBackbone, x: torch.Tensor, block: bool):
    config, rnn = backbone.config, backbone.rnn
    hs, xs, layer_input = [], [], x
    for layer in range(config.num_layers):
        outs = []
        for reverse in [False, True][: config.num_directions]:
            out, h, state = _paper_layer(layer_parameters(rnn, layer, reverse), layer_input, block, reverse)
            outs.append(out)
            hs.append(h)
            xs.append(torch.view_as_real(state).flatten(-2))  # the zoo's interleaved real view
        layer_input = torch.cat(outs, -1)
    return layer_input, torch.stack(hs), torch.stack(xs)


def _backbone(**kwargs) -> RNNBackbone:
    torch.manual_seed(0)
    options = kwargs.pop("cell_options", {})
    return RNNBackbone(3, RNNConfig(cell="lru", hidden_size=5, cell_options=options, **kwargs)).double().eval()


CASES = [dict(num_layers=2), dict(num_layers=2, cell_options={"state_size": 3, "r_min": 0.0, "r_max": 0.5}),
         dict(num_layers=2, bidirectional=True, cell_options={"block": False}),
         dict(cell_options={"block": False, "state_size": 7})]


@pytest.mark.parametrize("kwargs", CASES)
@pytest.mark.parametrize("scan", ["sequential", "parallel"])
def test_fast_path_matches_the_papers_equations_forward_and_gradients(kwargs, scan):
    kwargs = {**kwargs, "cell_options": {**kwargs.get("cell_options", {}), "scan": scan}}
    block = kwargs["cell_options"].get("block", True)
    backbone = _backbone(**kwargs)
    x = torch.randn(3, 6, 3, dtype=torch.double)
    out, (h_n, x_n) = backbone(x)
    ref_out, ref_h, ref_x = _paper_stack(backbone, x, block)
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(h_n, ref_h, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(x_n, ref_x, rtol=1e-10, atol=1e-12)
    weights = [torch.randn_like(t) for t in (out, h_n, x_n)]

    def grads(tensors):
        loss = sum((t * w).sum() for t, w in zip(tensors, weights))
        return torch.autograd.grad(loss, list(backbone.parameters()))

    names = [name for name, _ in backbone.named_parameters()]
    assert {"rnn.nu_log_l0", "rnn.B_re_l0", "rnn.C_im_l0", "rnn.D_l0", "rnn.weight_ih_l0"} <= set(names)
    for name, fast, ref in zip(names, grads((out, h_n, x_n)), grads((ref_out, ref_h, ref_x))):
        torch.testing.assert_close(fast, ref, rtol=1e-9, atol=1e-11, msg=name)


def test_the_state_continues_a_sequence():
    backbone = _backbone(num_layers=2)
    x = torch.randn(2, 8, 3, dtype=torch.double)
    whole, (h, s) = backbone(x)
    first, state = backbone(x[:, :5])
    second, (h2, s2) = backbone(x[:, 5:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), whole, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close((h2, s2), (h, s), rtol=1e-12, atol=1e-12)
    with pytest.raises(ZooError, match=r"state x must be \(B, 2N\) = \(B, 10\)"):
        backbone(x, (h, s[..., :4]))


# ----------------------------------------------------------------------------- the scans
def _recurrence_inputs(steps=7, batch=2, size=3):
    torch.manual_seed(1)
    lam = torch.polar(torch.rand(size, dtype=torch.double) * 0.9 + 0.05, torch.rand(size, dtype=torch.double) * 6)
    b = torch.randn(steps, batch, size, dtype=torch.complex128)
    x0 = torch.randn(batch, size, dtype=torch.complex128)
    return [t.requires_grad_() for t in (lam, b, x0)]


def test_gradcheck_the_recurrence_in_complex128():
    inputs = _recurrence_inputs()
    assert torch.autograd.gradcheck(DiagonalRecurrence.apply, inputs)
    assert torch.autograd.gradcheck(parallel_scan, inputs)
    lam, b, x0 = inputs  # the gradient of one input alone
    assert torch.autograd.gradcheck(lambda b_: DiagonalRecurrence.apply(lam.detach(), b_, x0.detach()), (b,))


@pytest.mark.parametrize("steps", [1, 2, 5, 8, 13])
def test_parallel_scan_equals_the_sequential_loop(steps):
    lam, b, x0 = _recurrence_inputs(steps=steps)
    x, expected = x0.detach(), []
    for b_t in b.detach():
        x = lam.detach() * x + b_t
        expected.append(x)
    seq, par = linear_recurrence(lam, b, x0, "sequential"), linear_recurrence(lam, b, x0, "parallel")
    torch.testing.assert_close(seq, torch.stack(expected), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(par, seq, rtol=1e-12, atol=1e-12)
    w = torch.randn_like(seq)
    g_seq = torch.autograd.grad((seq * w.conj()).real.sum(), (lam, b, x0))
    g_par = torch.autograd.grad((par * w.conj()).real.sum(), (lam, b, x0))
    for a, c in zip(g_seq, g_par):
        torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-12)
    assert linear_recurrence(lam, b[:0], x0).shape == (0, 2, 3)
    with pytest.raises(ZooError, match="scan must be one of auto, sequential, parallel, got 'fast'"):
        linear_recurrence(lam, b, x0, "fast")


@pytest.mark.parametrize("skip", ["matrix", "vector", "none"])
def test_gradcheck_the_fused_layer_in_float64(skip):
    """LRUSequence (the loop with the drive and readout folded in) against finite differences, every input;
    gradcheck takes each output's gradient alone, so the backward's no-y-gradient paths run too."""
    torch.manual_seed(4)
    steps, batch, size, hidden = 5, 2, 3, 4
    width = hidden if skip == "vector" else 2
    lam = torch.polar(torch.rand(size, dtype=torch.double) * 0.8 + 0.1, torch.rand(size, dtype=torch.double) * 6)
    inputs = [torch.randn(steps, batch, width, dtype=torch.double), torch.randn(batch, 2 * size, dtype=torch.double),
              lam, torch.randn(2 * size, width, dtype=torch.double), torch.randn(2 * size, dtype=torch.double),
              torch.randn(hidden, 2 * size, dtype=torch.double),
              {"matrix": torch.randn(hidden, width, dtype=torch.double), "vector": torch.randn(hidden, dtype=torch.double),
               "none": None}[skip],
              torch.randn(hidden, dtype=torch.double) if skip == "matrix" else None]
    inputs = [t.requires_grad_() if t is not None else None for t in inputs]
    assert torch.autograd.gradcheck(LRUSequence.apply, inputs)
    no_bias = inputs[:4] + [None] + inputs[5:]
    assert torch.autograd.gradcheck(LRUSequence.apply, no_bias)


def _windows_and_grads(backbone, x, state, read):
    """Outputs of two windows, the second from the first's state, and the gradients of a loss on ``read``
    (the second window's outputs, h_n, x_n) with respect to every parameter and the carried state."""
    first, carried = backbone(x[:, :4], state)
    carried = tuple(part.detach().requires_grad_() for part in carried)  # truncated BPTT: a new leaf
    second, (h_n, x_n) = backbone(x[:, 4:], carried)
    torch.manual_seed(9)
    loss = sum((t * torch.randn_like(t)).sum() for t, on in zip((second, h_n, x_n), read) if on)
    wrt = [*backbone.parameters(), *carried]  # the carried h is the last output only: nothing reads it
    grads = torch.autograd.grad(loss, wrt, allow_unused=True)
    return (first, second, h_n, x_n), [torch.zeros_like(t) if g is None else g for t, g in zip(wrt, grads)]


@pytest.mark.parametrize("kwargs", CASES)
@pytest.mark.parametrize("read", [(True, True, True), (False, True, False), (False, False, True)],
                         ids=["all", "h_n only", "x_n only"])
def test_fused_loop_equals_the_old_loop_and_the_parallel_scan(kwargs, read, monkeypatch):
    """The fused loop (scan 'sequential', 'auto' on a CPU) gives the numbers of the autograd path around
    DiagonalRecurrence it replaced and of the parallel scan: forward and gradients, from a carried state,
    when a loss reads every output or the last step's alone (sMNIST's head: no gradient for y but y_T)."""
    options = kwargs.get("cell_options", {})
    runs = {}
    for name, scan in (("fused", "sequential"), ("old loop", "sequential"), ("parallel", "parallel")):
        backbone = _backbone(**{**kwargs, "cell_options": {**options, "scan": scan}})
        torch.manual_seed(5)
        x = torch.randn(3, 9, 3, dtype=torch.double)
        state = None
        if name == "old loop":  # the unfused branch of _sequence, whose 'sequential' recurrence is DiagonalRecurrence
            monkeypatch.setattr(zoo.cells.lru, "resolve_scan", lambda scan, device: "unfused")
        runs[name] = _windows_and_grads(backbone, x, state, read)
        monkeypatch.undo()
    fused_out, fused_grads = runs["fused"]
    for name in ("old loop", "parallel"):
        outs, grads = runs[name]
        for a, b in zip(fused_out, outs):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)
        for a, b in zip(fused_grads, grads):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11, msg=name)


@pytest.mark.parametrize("kwargs", CASES)
def test_fused_loop_under_inference_mode_then_training(kwargs):
    """Under torch.inference_mode (validation) the fused loop gives the parallel scan's outputs and state, and a
    training step after it works (its pooled buffers are kept apart from the inference-mode ones)."""
    options = kwargs.get("cell_options", {})
    fused = _backbone(**{**kwargs, "cell_options": {**options, "scan": "sequential"}}).float()
    parallel = _backbone(**{**kwargs, "cell_options": {**options, "scan": "parallel"}}).float()
    x = torch.randn(4, 11, 3)
    for _ in range(2):
        with torch.inference_mode():
            out, (h_n, x_n) = fused(x)
            again = fused(x[:, 6:], fused(x[:, :6])[1])  # the state carried across two windows
        ref_out, (ref_h, ref_x) = parallel(x)
        torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close((h_n, x_n), (ref_h, ref_x), rtol=1e-5, atol=1e-5)
        if not kwargs.get("bidirectional"):  # a reverse direction reads the whole window: windows do not compose
            torch.testing.assert_close(again[0], ref_out[:, 6:], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(again[1], (ref_h, ref_x), rtol=1e-5, atol=1e-5)
        fused.train()
        out, (h_n, _) = fused(x)
        (out.square().sum() + h_n.sum()).backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in fused.parameters())
        fused.eval()


# ----------------------------------------------------------------------------- diagnostics
@pytest.mark.parametrize("kwargs", CASES)
def test_unrolled_diagnostics_reproduce_the_backbone(kwargs):
    from zoo.diagnostics import recurrent_spectra, unrolled_forward
    from zoo.diagnostics.spectral import spectra_do_not_apply

    backbone = _backbone(**kwargs)
    x = torch.randn(4, 7, 3, dtype=torch.double)
    out, state = backbone(x)
    unrolled, unrolled_state, hidden = unrolled_forward(backbone, x)
    torch.testing.assert_close(unrolled, out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(unrolled_state, state, rtol=1e-12, atol=1e-12)
    assert len(hidden) == backbone.config.num_layers and len(hidden[0][0]) == 7
    assert backbone.last_features(state).shape == (4, backbone.output_size)
    # diag(lambda): radius and largest singular value are max |lambda|, inside the init ring
    spectra = recurrent_spectra(backbone)
    assert spectra and spectra_do_not_apply(backbone.cell) is None
    assert all(values["radius"] == values["sigma_max"] < 1 for values in spectra.values())
    options = backbone.config.cell_options
    for radii in backbone.rnn.eigenvalue_radii().values():  # the stand-in: |λ| on the init ring
        assert options.get("r_min", 0.9) <= radii["radius_min"] <= radii["radius_max"] <= options.get("r_max", 0.999)


def test_init_follows_the_paper():
    torch.manual_seed(0)
    rnn = RNNBackbone(1, RNNConfig(cell="lru", hidden_size=64, cell_options={"r_min": 0.4, "r_max": 0.8,
                                                                              "max_phase": 3.0})).rnn
    p = layer_parameters(rnn, 0)
    lam = torch.exp(-torch.exp(p["nu_log"]) + 1j * torch.exp(p["theta_log"]))
    assert 0.4 <= lam.abs().min() and lam.abs().max() <= 0.8
    assert 0 <= lam.angle().min() and lam.angle().max() <= 3.0
    torch.testing.assert_close(torch.exp(p["gamma_log"]), torch.sqrt(1 - lam.abs() ** 2), rtol=1e-5, atol=1e-6)
    assert p["B_re"].shape == (64, 64) and abs(float(p["B_re"].std()) - 1 / math.sqrt(128)) < 0.02
    assert abs(float(p["C_im"].std()) - 1 / math.sqrt(64)) < 0.02


# ----------------------------------------------------------------------------- settings
BAD = [
    ({"r_max": 1.0}, r"cell_options.r_max must be >= 0 and < 1 .*got 1.0"),
    ({"r_min": 1.2}, r"cell_options.r_min must be >= 0 and < 1 .*got 1.2"),
    ({"r_min": -0.1}, r"cell_options.r_min must be a number >= 0.0"),
    ({"r_min": 0.5, "r_max": 0.5}, r"cell_options.r_min must be < cell_options.r_max, got r_min 0.5 and r_max 0.5"),
    ({"max_phase": 0.0}, r"cell_options.max_phase must be > 0 and <= 2π"),
    ({"max_phase": 7.0}, r"cell_options.max_phase must be a number >= 0.0 and <= 6.28"),
    ({"state_size": 0}, r"cell_options.state_size must be"),
    ({"block": "yes"}, r"cell_options.block must be true or false, got 'yes'"),
    ({"norm": "batch"}, r"unknown cell_options.norm 'batch'; valid choices: layer, none"),
    ({"scan": "fast"}, r"unknown cell_options.scan 'fast'; valid choices: auto, sequential, parallel"),
    ({"block_dropout": 1.0}, r"cell_options.block_dropout must be"),
    ({"block": False, "norm": "none"}, r"cell_options.norm and cell_options.block_dropout belong to the LRU block"),
    ({"dt": 0.1}, r"cell 'lru' has no option\(s\) dt in cell_options"),
]


@pytest.mark.parametrize("options, message", BAD)
def test_bad_settings_are_one_clear_error(options, message):
    with pytest.raises(ZooError, match=message):
        RNNConfig(cell="lru", cell_options=options)


def test_settings_the_lru_cannot_take_are_refused():
    with pytest.raises(ZooError, match="the LRU block .* is unidirectional"):
        RNNConfig(cell="lru", bidirectional=True)
    with pytest.raises(ZooError, match="recurrent_init 'uniform' does not apply to cell 'lru'"):
        RNNConfig(cell="lru", recurrent_init="uniform")
    with pytest.raises(ZooError, match="recurrent_init 'orthogonal' needs a square recurrent matrix"):
        RNNConfig(cell="lru", recurrent_init="orthogonal")
    config = RNNConfig(cell="lru", hidden_size=4, cell_options={"r_min": 0.5})
    assert RNNConfig.coerce(config.to_dict()) == config


def test_block_dropout_masks_only_in_training():
    backbone = _backbone(num_layers=2, dropout=0.25, cell_options={"block_dropout": 0.5})
    x = torch.randn(2, 5, 3, dtype=torch.double)
    eval_out = backbone(x)[0]
    torch.testing.assert_close(backbone(x)[0], eval_out)  # eval: deterministic
    backbone.train()
    assert not torch.allclose(backbone(x)[0], eval_out)


# ----------------------------------------------------------------------------- through the zoo
def _find(root, pattern: str):
    found = sorted(root.rglob(pattern))
    assert found, f"no {pattern} under {root}"
    return found[-1]


def test_lru_trains_through_zoo_fit_with_diagnostics(tmp_path, monkeypatch):
    from zoo.app.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["fit", *TINY_FIT, "--model.backbone.cell", "lru",
                 "--model.backbone.hidden_size", "4", "--model.backbone.num_layers", "2",
                 "--model.backbone.cell_options", '{"r_min": 0.5, "state_size": 3}',
                 "--trainer.default_root_dir", str(tmp_path)]) == 0
    config = yaml.safe_load(_find(tmp_path, "config.yaml").read_text())
    assert config["model"]["backbone"]["cell"] == "lru"
    assert config["model"]["backbone"]["cell_options"] == {"r_min": 0.5, "state_size": 3}
    metrics = _find(tmp_path, "metrics.csv").read_text()
    assert "train_loss" in metrics and "gradients/decay_log10" in metrics and "spectral/l0/radius" in metrics  # max |lambda|
    curves = json.loads(_find(tmp_path, "grad_over_time.json").read_text())
    assert [entry["step"] for entry in curves] == [0, 4]
    assert all(len(entry["norms"]["l0"]) == 12 and all(map(math.isfinite, entry["norms"]["l0"])) for entry in curves)
