"""coRNN, the coupled oscillatory RNN (Rusch & Mishra, "Coupled Oscillatory Recurrent Neural Network (coRNN): An
accurate and (gradient) stable architecture for learning long time dependencies", ICLR 2021).

A network of driven, damped, coupled nonlinear oscillators, the second-order ODE

    y'' = tanh(W y + 𝒲 y' + V u + b) - γ y - ε y',

written with z = y' as two first-order states and stepped with step size Δt. The
authors' code (tk-rusch/coRNN, every task's coRNNCell) steps it explicitly in the
damping, and that is our default, ``scheme='explicit'``:

    z_n = z_{n-1} + Δt [tanh(W y_{n-1} + 𝒲 z_{n-1} + V u_n + b) - γ y_{n-1} - ε z_{n-1}]
    y_n = y_{n-1} + Δt z_n

The paper's eq. (3) takes the damping implicitly (IMEX), ``scheme='imex'``:

    z_n = z_{n-1} + Δt [tanh(W y_{n-1} + 𝒲 z_{n-1} + V u_n + b) - γ y_{n-1} - ε z_n]

The output h is y; the state is ("h", "z") = (y, z), both zero at the start.

Parameters, per layer and direction: ``weight_ih`` V (H, I), ``bias_ih`` b (H,) (the
authors' one bias) and ``weight_hh`` (2H, H), the two square recurrent matrices
stacked as gate blocks ("y", "z"): rows [0, H) are W (reads y), rows [H, 2H) are 𝒲
(reads z), so the spectra and the init schemes see each H x H matrix on its own.
The 'default' init is the authors': every weight and the bias U(-k, k) with
k = 1/sqrt(I + 2H), what their nn.Linear over [u, z, y] draws.

Settings (``cell_options``): ``dt`` > 0; ``gamma`` >= 0 and ``epsilon`` >= 0 (zero is the
undamped or unrestored oscillator, still a well-defined ODE; a negative value pumps
energy in and the paper's bounded-energy argument needs them positive); ``scheme``.
Refused besides: explicit steps with dt * epsilon >= 2, where the damping step itself
multiplies z by 1 - dt ε <= -1 and so amplifies it (the IMEX step has no such limit).
Fast path: ``CoRNNLayers``, the zoo's loop with a hand-written backward
(``zoo.models.oscillator_kernels.CoRNNSequence``) through ``run_stack``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from zoo.cells.base import Cell, Option, Params, State, register_cell, split_name, stack_kwargs
from zoo.errors import ZooError, check_choice, check_float
from zoo.models.oscillator_kernels import CoRNNSequence, cornn_coefficients
from zoo.models.sequence_kernels import run_stack

if TYPE_CHECKING:
    from zoo.models.rnn import RNNConfig

SCHEMES = ("explicit", "imex")
DEFAULTS = {"dt": 0.042, "gamma": 2.7, "epsilon": 4.7, "scheme": "explicit"}  # the authors' sMNIST run


def _positive(setting: str, value: Any) -> float:
    value = check_float(setting, value)
    if value <= 0:
        raise ZooError(f"{setting} must be a number > 0 (the step size of the ODE), got {value!r}")
    return value


def _non_negative(setting: str, value: Any) -> float:
    return check_float(setting, value, low=0.0)


def _scheme(setting: str, value: Any) -> str:
    return check_choice(setting, value, SCHEMES)


def _settings(config: RNNConfig) -> tuple[float, float, float, str]:
    """(dt, gamma, epsilon, scheme) of ``config``, each its default where unset."""
    dt, gamma, epsilon, scheme = (CORNN.option(config, name) for name in ("dt", "gamma", "epsilon", "scheme"))
    return dt, gamma, epsilon, scheme


def _validate(config: RNNConfig) -> None:
    dt, _, epsilon, scheme = _settings(config)
    if scheme == "explicit" and dt * epsilon >= 2.0:
        raise ZooError(f"cell_options dt * epsilon must be < 2 for scheme 'explicit' (its damping step multiplies z "
                       f"by 1 - dt * epsilon), got dt {dt} * epsilon {epsilon} = {dt * epsilon:g}; "
                       "take a smaller dt or epsilon, or scheme 'imex'")


class CoRNNLayers(nn.Module):
    """A stack of coRNN layers, batch first, parameters by the zoo's names (weight_ih_l0, weight_hh_l0, bias_ih_l0).

    forward(x (B, T, I), state (h_0, z_0) each (L*D, B, H) or None) -> (B, T, D*H), (h_n, z_n).
    """

    cell = "cornn"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0, dt: float = DEFAULTS["dt"], gamma: float = DEFAULTS["gamma"],
                 epsilon: float = DEFAULTS["epsilon"], scheme: str = DEFAULTS["scheme"]) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.dropout = bidirectional, dropout
        self.dt, self.gamma, self.epsilon, self.scheme = dt, gamma, epsilon, scheme
        directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for suffix in ["", "_reverse"][:directions]:
                shapes = {"weight_ih": (hidden_size, layer_input), "weight_hh": (2 * hidden_size, hidden_size),
                          "bias_ih": (hidden_size,)}
                for base, shape in shapes.items():
                    self.register_parameter(f"{base}_l{layer}{suffix}", nn.Parameter(torch.empty(shape)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The authors' init: their one nn.Linear(I + 2H, H) over [u, z, y], so U(-k, k), k = 1/sqrt(I + 2H)."""
        for name, param in self.named_parameters():
            bound = 1.0 / math.sqrt(self._fan_in(split_name(name)[1]))
            nn.init.uniform_(param, -bound, bound)

    def _fan_in(self, layer: int) -> int:
        layer_input = self.input_size if layer == 0 else self.hidden_size * (2 if self.bidirectional else 1)
        return layer_input + 2 * self.hidden_size

    def coefficients(self) -> tuple[float, float, float]:
        """(c_z, c_y, c_a) of z_t = c_z z_{t-1} + c_y y_{t-1} + c_a tanh(pre_t) for this stack's settings."""
        return cornn_coefficients(self.dt, self.gamma, self.epsilon, self.scheme)

    def forward(self, x: torch.Tensor, state: Any = None):
        # x: (B, T, I) -> (B, T, D*H), (h_n, z_n) each (L*D, B, H)
        if state is not None:
            expected = (self.num_layers * (2 if self.bidirectional else 1), x.shape[0], self.hidden_size)
            if not isinstance(state, (tuple, list)) or len(state) != 2 or any(
                    tuple(part.shape) != expected for part in state):
                raise ZooError(f"coRNN state must be a pair (h_0, z_0), each of shape {expected}")
        return run_stack(self, x, state)


def _build(input_size: int, config: RNNConfig) -> nn.Module:
    dt, gamma, epsilon, scheme = _settings(config)
    return CoRNNLayers(**stack_kwargs(input_size, config), dt=dt, gamma=gamma, epsilon=epsilon, scheme=scheme)


def _step(params: Params, x_proj: torch.Tensor, state: State, config: RNNConfig) -> tuple[torch.Tensor, State]:
    # x_proj: (B, H) = u_t V^T + b; state: (y_{t-1}, z_{t-1}), each (B, H). The paper's step, term by term.
    dt, gamma, epsilon, scheme = _settings(config)
    y, z = state
    w_y, w_z = params["weight_hh"].chunk(2, dim=0)  # W (reads y), 𝒲 (reads z): (H, H) each
    drive = torch.tanh(x_proj + y @ w_y.t() + z @ w_z.t())  # (B, H)
    if scheme == "imex":
        z = (z + dt * (drive - gamma * y)) / (1.0 + dt * epsilon)
    else:
        z = z + dt * (drive - gamma * y - epsilon * z)
    y = y + dt * z
    return y, (y, z)


def _sequence(module: nn.Module, params: Params, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
    # x: (T, B, I) -> (T, B, H), ((B, H), (B, H))
    c_z, c_y, c_a = module.coefficients()
    out, y, z = CoRNNSequence.apply(x, state[0], state[1], params["weight_ih"], params["bias_ih"],
                                    params["weight_hh"], module.dt, c_z, c_y, c_a)
    return out, (y, z)


CORNN = Cell(
    name="cornn",
    summary="the coupled oscillatory RNN",
    activation="tanh",
    gates=("y", "z"),
    state=("h", "z"),
    options={
        "dt": Option(DEFAULTS["dt"], _positive, "the ODE's step size Δt, > 0 (authors: 0.042 sMNIST, 0.076 psMNIST)"),
        "gamma": Option(DEFAULTS["gamma"], _non_negative, "γ, the restoring force on y, >= 0"),
        "epsilon": Option(DEFAULTS["epsilon"], _non_negative, "ε, the damping of z = y', >= 0"),
        "scheme": Option(DEFAULTS["scheme"], _scheme, "'explicit' (the authors' code) or 'imex' (the paper's eq. 3)"),
    },
    implementations=("auto", "loop"),
    validate=_validate,
    build=_build,
    step=_step,
    sequence=_sequence,
)

register_cell(CORNN)
