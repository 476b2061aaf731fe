"""Adding a cell is one file plus one registration line: a toy cell defined here trains, benchmarks and is diagnosed.

The toy, "minimal": h_t = tanh(x_t W^T + b + u ⊙ h_{t-1}), an elementwise recurrent
vector u and no square matrix, so the spectra and the matrix init schemes do not apply
to it. Everything it needs is below: its layer module (a plain Python loop), its step
and its ``Cell``; the one line that plugs it in is ``register_cell(MINIMAL)`` (in the
fixture here, so that it is unregistered again for the other tests).
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

import zoo
from zoo.cells import Cell, Option, cell_of, get_cell, layer_parameters, list_cells, register_cell, unregister_cell
from zoo.cells.base import stack_kwargs
from zoo.errors import ZooError, check_float
from zoo.models.rnn import RNNBackbone, RNNConfig
from zoo.models.sequence_kernels import run_stack
from cell_checks import TINY_FIT


# ----------------------------------------------------------------------------- the toy cell: one file's worth
class MinimalLayers(nn.Module):
    """The minimal cell's stack, its own fast path: a plain loop over time, parameters by PyTorch's names."""

    cell = "minimal"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0, u_init: float = 0.5) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.dropout, self.u_init = bidirectional, dropout, u_init
        directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for suffix in ["", "_reverse"][:directions]:
                shapes = {"weight_ih": (hidden_size, layer_input), "bias_ih": (hidden_size,),
                          "weight_hh": (hidden_size,)}  # weight_hh is u, elementwise: (H,)
                for base, shape in shapes.items():
                    self.register_parameter(f"{base}_l{layer}{suffix}", nn.Parameter(torch.empty(shape)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for name, param in self.named_parameters():
            if name.startswith("weight_hh"):
                nn.init.constant_(param, self.u_init)
            else:
                nn.init.uniform_(param, -bound, bound)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None):
        # x: (B, T, I); state: (L*D, B, H) -> (B, T, D*H), (L*D, B, H)
        directions = 2 if self.bidirectional else 1
        batch, steps, _ = x.shape
        if state is None:
            state = x.new_zeros(self.num_layers * directions, batch, self.hidden_size)
        layer_input, finals = x, []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                p = layer_parameters(self, layer, bool(direction))
                xw = F.linear(layer_input, p["weight_ih"], p["bias_ih"])  # (B, T, H)
                h = state[layer * directions + direction]  # (B, H)
                hs: list[torch.Tensor] = [h] * steps
                for t in (range(steps - 1, -1, -1) if direction else range(steps)):
                    h = torch.tanh(xw[:, t] + p["weight_hh"] * h)
                    hs[t] = h
                outputs.append(torch.stack(hs, dim=1))  # (B, T, H)
                finals.append(h)
            layer_input = torch.cat(outputs, dim=-1)  # (B, T, D*H)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
        return layer_input, torch.stack(finals)


def _build(input_size: int, config: RNNConfig) -> nn.Module:
    return MinimalLayers(**stack_kwargs(input_size, config), u_init=get_cell("minimal").option(config, "u_init"))


def _step(params, x_proj, state, config):
    # x_proj: (B, H) = x_t W^T + b; state: (h_{t-1},)
    h = torch.tanh(x_proj + params["weight_hh"] * state[0])
    return h, (h,)


def _sequence(module, params, x, state):
    # x: (T, B, I) -> (T, B, H): the run_stack hook (where a parallel scan would go), here the same loop
    xw, h, hs = F.linear(x, params["weight_ih"], params["bias_ih"]), state[0], []
    for xw_t in xw.unbind(0):
        h = torch.tanh(xw_t + params["weight_hh"] * h)
        hs.append(h)
    return torch.stack(hs), (h,)


# Every cell the zoo ships, as list_cells sorts them: the three classic cells and the frontier cells.
BUILT_IN = ["cornn", "exprnn", "gru", "indrnn", "lem", "lru", "lstm", "mingru", "minlstm", "rnn"]

MINIMAL = Cell(
    name="minimal",
    summary="the toy minimal cell",
    gates=("",),
    recurrent_matrix=False,
    options={"u_init": Option(0.5, lambda setting, value: check_float(setting, value, low=-1.0, high=1.0),
                              "the elementwise recurrent weight's initial value")},
    implementations=("auto", "loop"),
    build=_build,
    step=_step,
    sequence=_sequence,
)


@pytest.fixture
def minimal():
    register_cell(MINIMAL)  # the one registration line
    try:
        yield MINIMAL
    finally:
        unregister_cell("minimal")
    assert list_cells() == BUILT_IN


# ----------------------------------------------------------------------------- the registry
def test_builtin_cells_and_wildcards():
    assert list_cells() == BUILT_IN == zoo.list_cells()
    assert list_cells("*ru") == ["gru", "lru", "mingru"]
    assert list_cells("[lr]*") == ["lem", "lru", "lstm", "rnn"]
    assert list_cells("x*") == []
    assert [get_cell(name).gates for name in ("rnn", "lstm", "gru")] == [("",), ("i", "f", "g", "o"), ("r", "z", "n")]
    assert get_cell("lstm").state == ("h", "c") and get_cell("gru").state == ("h",)
    assert cell_of(nn.LSTM(2, 3)) is get_cell("lstm") and cell_of(nn.RNN(2, 3)) is get_cell("rnn")
    with pytest.raises(ZooError, match="pattern must be a string"):
        list_cells(3)


def test_unknown_cell_names_the_valid_ones():
    with pytest.raises(ZooError, match="unknown cell 'transformer'; valid choices: rnn, lstm, gru, indrnn"):
        get_cell("transformer")
    with pytest.raises(ZooError, match="unknown cell 'lst'; valid choices: rnn, lstm, gru"):
        RNNConfig(cell="lst")


def test_a_name_registered_twice_names_both_places(minimal):
    twin = dataclasses.replace(MINIMAL)
    with pytest.raises(ZooError) as err:
        register_cell(twin)
    message = str(err.value)
    assert "cell 'minimal' is registered twice" in message
    first, second = message.split("first in ")[1].split("; give")[0].split(", again in ")
    assert "test_cells" in first and f"{__file__}:" in first and f"{__file__}:" in second  # module, file and line
    assert first != second  # the fixture's line, then this test's
    assert get_cell("minimal") is MINIMAL  # the first stays
    with pytest.raises(ZooError, match="registered twice: first in .*zoo.cells.lstm"):
        register_cell(dataclasses.replace(get_cell("lstm")))


def test_registered_cell_is_everywhere(minimal):
    assert list_cells() == sorted([*BUILT_IN, "minimal"]) and list_cells("minim*") == ["minimal"]
    from zoo.models import CELLS

    assert "minimal" in CELLS


# ----------------------------------------------------------------------------- the toy cell through the zoo
def test_toy_cell_settings_are_checked_by_its_descriptor(minimal):
    config = RNNConfig(cell="minimal", hidden_size=3, cell_options={"u_init": 0.25})
    assert RNNConfig.coerce(config.to_dict()) == config  # round trip
    assert RNNConfig(cell="minimal").cell_options == {}  # a config without cell_options loads
    backbone = RNNBackbone(2, config)
    torch.testing.assert_close(backbone.rnn.weight_hh_l0.detach(), torch.full((3,), 0.25))
    cases = [
        (dict(cell_options={"u_init": 2.0}), r"cell_options.u_init must be a number >= -1.0 and <= 1.0, got 2.0"),
        (dict(cell_options={"dt": 0.1}), r"cell 'minimal' has no option\(s\) dt in cell_options; its options: u_init"),
        (dict(nonlinearity="relu"), r"nonlinearity 'relu' was given for cell 'minimal', but only the vanilla "
                                    r"cell 'rnn'"),
        (dict(forget_bias=1.0), r"forget_bias applies to the lstm and minlstm cells only, but cell is 'minimal'"),
        (dict(implementation="fused"), r"cell 'minimal' has no 'fused' implementation; valid choices for 'minimal': "
                                       r"auto, loop"),
        (dict(recurrent_init="orthogonal"), r"recurrent_init 'orthogonal' needs a square recurrent matrix, which "
                                            r"cell 'minimal' does not have .* valid choices for 'minimal': "
                                            r"default, uniform"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ZooError, match=message):
            RNNConfig(cell="minimal", **kwargs)
    with pytest.raises(ZooError, match="cell 'gru' has no option.*it takes none"):
        RNNConfig(cell="gru", cell_options={"u_init": 0.1})
    uniform = RNNBackbone(2, RNNConfig(cell="minimal", hidden_size=3, recurrent_init="uniform", init_range=0.01))
    assert uniform.rnn.weight_hh_l0.abs().max() <= 0.01


def test_toy_cell_unrolls_and_runs_the_stack_hook(minimal):
    from zoo.diagnostics import recurrent_spectra, unrolled_forward

    torch.manual_seed(0)
    backbone = RNNBackbone(3, RNNConfig(cell="minimal", hidden_size=5, num_layers=2, bidirectional=True)).double()
    x = torch.randn(4, 7, 3, dtype=torch.double)
    out, h_n = backbone(x)  # (B, T, D*H), (L*D, B, H)
    assert out.shape == (4, 7, 10) and h_n.shape == (4, 4, 5)
    unrolled, state, hidden = unrolled_forward(backbone, x)
    torch.testing.assert_close(unrolled, out, rtol=0, atol=1e-12)
    torch.testing.assert_close(state, h_n, rtol=0, atol=1e-12)
    assert len(hidden) == 2 and len(hidden[0]) == 2 and len(hidden[0][0]) == 7
    stacked, stacked_h = run_stack(backbone.rnn, x)  # through the cell's sequence function
    torch.testing.assert_close(stacked, out, rtol=0, atol=1e-12)
    torch.testing.assert_close(stacked_h, h_n, rtol=0, atol=1e-12)
    assert backbone.last_features(h_n).shape == (4, 10)
    assert recurrent_spectra(backbone) == {}


def _find(root, pattern: str):
    found = sorted(root.rglob(pattern))
    assert found, f"no {pattern} under {root}"
    return found[-1]


def test_toy_cell_trains_through_zoo_fit_with_diagnostics(minimal, tmp_path, monkeypatch):
    from zoo.app.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["fit", *TINY_FIT, "--model.backbone.cell", "minimal",
                 "--model.backbone.hidden_size", "4", "--model.backbone.cell_options", '{"u_init": 0.3}',
                 "--trainer.default_root_dir", str(tmp_path)]) == 0
    config = yaml.safe_load(_find(tmp_path, "config.yaml").read_text())
    assert config["model"]["backbone"]["cell"] == "minimal"
    assert config["model"]["backbone"]["cell_options"] == {"u_init": 0.3}
    metrics = _find(tmp_path, "metrics.csv").read_text()
    assert "train_loss" in metrics and "gradients/decay_log10" in metrics and "spectral/" not in metrics
    curves = json.loads(_find(tmp_path, "grad_over_time.json").read_text())
    assert [entry["step"] for entry in curves] == [0, 4]
    assert all(len(entry["norms"]["l0"]) == 12 and all(map(math.isfinite, entry["norms"]["l0"])) for entry in curves)


def test_toy_cell_benchmark_run_has_a_record_with_diagnostics(minimal, tmp_path):
    from zoo.app.catalogue import Budget, get_benchmark
    from zoo.app.recipes import Recipe
    from zoo.app.runner import execute
    from zoo.records import test_metric

    recipe = Recipe("minimal_1x4", RNNConfig(cell="minimal", hidden_size=4, cell_options={"u_init": 0.25}))
    tiny = Budget(max_steps=3, data={"seq_len": 12, "batch_size": 8, "batches_per_epoch": 3, "val_size": 16,
                                     "test_size": 16}, seeds=(0,))
    bench = dataclasses.replace(get_benchmark("adding_t100"), models={recipe.name: recipe}, tiers={"smoke": tiny},
                                length_factors=(1, 2))
    config = bench.run_config("smoke", recipe.name)
    assert config["model"]["backbone"]["cell_options"] == {"u_init": 0.25}
    record = execute(config, seed=0, weights_dir=tmp_path)
    assert not record["diverged"] and record["steps"] == 3
    metric, _ = test_metric(record)
    assert math.isfinite(record["metrics"]["test"][metric])
    assert set(record["lengths"]) == {"12", "24"}
    assert record["spectral"] == {"applies": False, "reason": "does not apply: cell 'minimal' has no square "
                                  "recurrent matrix (its recurrent weights weight_hh are elementwise)"}
    gradients = record["gradients"]
    assert gradients["measured_steps"] == [0, 3] and len(gradients["final_norms_l0"]) == 12
    assert math.isfinite(gradients["decay_log10_at_init"]) and math.isfinite(gradients["decay_log10_final"])
    assert record["stability"]["steps"] == 3 and "recurrent_l0" in record["stability"]["max_grad_norm_per_part"]
    assert (tmp_path / f"{record['id']}.safetensors").exists()
