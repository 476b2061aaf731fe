"""LEM, Long Expressive Memory (Rusch, Mishra, Erichson & Mahoney, "Long Expressive Memory for Sequence Modeling",
ICLR 2022).

A multiscale ODE system discretised with learned, state-dependent step sizes: two
states, y (the output, the zoo's "h") and z, each moved towards a tanh candidate by
its own gated step,

    Δt̄_n = Δt σ(W_1 y_{n-1} + V_1 u_n + b_1)
    Δt_n  = Δt σ(W_2 y_{n-1} + V_2 u_n + b_2)
    z_n = (1 - Δt_n) ⊙ z_{n-1} + Δt_n ⊙ tanh(W_z y_{n-1} + V_z u_n + b_z)
    y_n = (1 - Δt̄_n) ⊙ y_{n-1} + Δt̄_n ⊙ tanh(W_y z_n + V_y u_n + b_y)

σ the sigmoid. Note W_y reads the *new* z_n, the other three y_{n-1} (checked against
tk-rusch/LEM, src/sMNIST/network.py: its ``transform_z`` is W_y). The state is
("h", "z") = (y, z), both zero at the start.

Parameters, per layer and direction, PyTorch-style and in the paper's gate order
("dt_bar", "dt", "z", "y"): ``weight_ih`` [V_1; V_2; V_z; V_y] (4H, I), ``weight_hh``
[W_1; W_2; W_z; W_y] (4H, H), every block a square H x H matrix (so the spectra and the
init schemes apply block by block), ``bias_ih`` and ``bias_hh`` (4H,) each (their
sum is b; the authors too have an input bias and a recurrent one per block). The
'default' init is the authors': every weight and bias U(-1/sqrt(H), 1/sqrt(H)).

Setting (``cell_options``): ``dt`` in (0, 1]. Why at most 1: with Δt <= 1 both gated
steps lie in (0, 1), so each update is a convex combination of the old state and a
tanh candidate and |y|, |z| stay bounded by max(1, |y_0|, |z_0|), the bound the paper's
gradient analysis starts from; above 1 the factor 1 - Δt_n can turn negative. The
authors used 0.21 (sMNIST), 0.31 (psMNIST), 0.0242 (adding), and Δt = 1 (no scale) on PTB.
Fast path: ``LEMLayers``, the zoo's loop with a hand-written backward
(``zoo.models.oscillator_kernels.LEMSequence``) through ``run_stack``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from zoo.cells.base import Cell, Option, Params, State, register_cell, stack_kwargs
from zoo.errors import ZooError, check_float
from zoo.models.oscillator_kernels import LEMSequence
from zoo.models.sequence_kernels import run_stack

if TYPE_CHECKING:
    from zoo.models.rnn import RNNConfig

DEFAULT_DT = 0.21  # the authors' sMNIST run


def _check_dt(setting: str, value: Any) -> float:
    value = check_float(setting, value)
    if not 0.0 < value <= 1.0:
        raise ZooError(f"{setting} must be a number > 0 and <= 1 (LEM's largest step; above 1 the factor 1 - Δt_n "
                       f"can turn negative), got {value!r}")
    return value


class LEMLayers(nn.Module):
    """A stack of LEM layers, batch first, parameters by PyTorch's names (weight_ih_l0, ..., bias_hh_l0_reverse).

    forward(x (B, T, I), state (h_0, z_0) each (L*D, B, H) or None) -> (B, T, D*H), (h_n, z_n).
    """

    cell = "lem"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0, dt: float = DEFAULT_DT) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.dropout, self.dt = bidirectional, dropout, dt
        directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for suffix in ["", "_reverse"][:directions]:
                shapes = {"weight_ih": (4 * hidden_size, layer_input), "weight_hh": (4 * hidden_size, hidden_size),
                          "bias_ih": (4 * hidden_size,), "bias_hh": (4 * hidden_size,)}
                for base, shape in shapes.items():
                    self.register_parameter(f"{base}_l{layer}{suffix}", nn.Parameter(torch.empty(shape)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The authors' init (and PyTorch's for its recurrent layers): every parameter U(-1/sqrt(H), 1/sqrt(H))."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for param in self.parameters():
            nn.init.uniform_(param, -bound, bound)

    def forward(self, x: torch.Tensor, state: Any = None):
        # x: (B, T, I) -> (B, T, D*H), (h_n, z_n) each (L*D, B, H)
        if state is not None:
            expected = (self.num_layers * (2 if self.bidirectional else 1), x.shape[0], self.hidden_size)
            if not isinstance(state, (tuple, list)) or len(state) != 2 or any(
                    tuple(part.shape) != expected for part in state):
                raise ZooError(f"LEM state must be a pair (h_0, z_0), each of shape {expected}")
        return run_stack(self, x, state)


def _build(input_size: int, config: RNNConfig) -> nn.Module:
    return LEMLayers(**stack_kwargs(input_size, config), dt=LEM.option(config, "dt"))


def _step(params: Params, x_proj: torch.Tensor, state: State, config: RNNConfig) -> tuple[torch.Tensor, State]:
    # x_proj: (B, 4H) = u_t [V_1; V_2; V_z; V_y]^T + b_ih; state: (y_{t-1}, z_{t-1}), each (B, H)
    dt = LEM.option(config, "dt")
    y, z = state
    w_1, w_2, w_z, w_y = params["weight_hh"].chunk(4, dim=0)  # (H, H) each
    b_1, b_2, b_z, b_y = params["bias_hh"].chunk(4, dim=0)
    u_1, u_2, u_z, u_y = x_proj.chunk(4, dim=1)
    dt_bar = dt * torch.sigmoid(u_1 + y @ w_1.t() + b_1)
    dt_z = dt * torch.sigmoid(u_2 + y @ w_2.t() + b_2)
    z = (1 - dt_z) * z + dt_z * torch.tanh(u_z + y @ w_z.t() + b_z)
    y = (1 - dt_bar) * y + dt_bar * torch.tanh(u_y + z @ w_y.t() + b_y)  # reads the new z
    return y, (y, z)


def _sequence(module: nn.Module, params: Params, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
    # x: (T, B, I) -> (T, B, H), ((B, H), (B, H))
    out, y, z = LEMSequence.apply(x, state[0], state[1], params["weight_ih"], params["bias_ih"], params["weight_hh"],
                                  params["bias_hh"], module.dt)
    return out, (y, z)


LEM = Cell(
    name="lem",
    summary="Long Expressive Memory",
    gates=("dt_bar", "dt", "z", "y"),
    state=("h", "z"),
    options={"dt": Option(DEFAULT_DT, _check_dt, "the largest step, in (0, 1] (authors: 0.21 sMNIST, 0.31 psMNIST)")},
    implementations=("auto", "loop"),
    build=_build,
    step=_step,
    sequence=_sequence,
)

register_cell(LEM)
