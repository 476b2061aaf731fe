"""The vanilla cell, h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act one of tanh, relu, leaky_relu, elu.

Its one setting is ``nonlinearity`` (unset: tanh). Fast path: PyTorch's fused
``nn.RNN`` where it has a kernel (tanh, relu) and ``implementation`` is not 'loop';
else ``LoopRNN``, the zoo's loop with a hand-written backward (``RNNSequence``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from zoo.cells.base import Cell, Option, Params, State, register_cell, stack_kwargs
from zoo.errors import ZooError, check_choice
from zoo.models.sequence_kernels import (ACTIVATIONS, ELU_ALPHA, FUSED_NONLINEARITIES, LEAKY_RELU_SLOPE,
                                         NONLINEARITIES, RNNSequence, run_stack)

if TYPE_CHECKING:
    from zoo.models.rnn import RNNConfig


def _check_nonlinearity(setting: str, value: object) -> str:
    return check_choice(setting, value, NONLINEARITIES)


def _validate(config: RNNConfig) -> None:
    if config.implementation == "fused" and config.activation not in FUSED_NONLINEARITIES:
        raise ZooError(
            f"implementation 'fused' has no kernel for nonlinearity {config.activation!r}; "
            f"fused kernels exist for: {', '.join(FUSED_NONLINEARITIES)}; use 'auto' or 'loop'"
        )


class LoopRNN(nn.Module):
    """A vanilla RNN with any activation, parameter for parameter the same as ``nn.RNN``.

    The names and shapes match ``nn.RNN`` (weight_ih_l0, weight_hh_l0, bias_ih_l0,
    bias_hh_l0, ..._reverse), so the init schemes, the diagnostics and a state dict
    work on either, and the two can be checked against each other.
    """

    cell = "rnn"  # the zoo.cells cell whose parameters it carries (run_stack reads it)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bidirectional: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.nonlinearity = check_choice("nonlinearity", nonlinearity, NONLINEARITIES)
        self.bidirectional = bidirectional
        self.dropout = dropout
        directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for suffix in ["", "_reverse"][:directions]:
                self.register_parameter(f"weight_ih_l{layer}{suffix}", nn.Parameter(torch.empty(hidden_size, layer_input)))
                self.register_parameter(f"weight_hh_l{layer}{suffix}", nn.Parameter(torch.empty(hidden_size, hidden_size)))
                self.register_parameter(f"bias_ih_l{layer}{suffix}", nn.Parameter(torch.empty(hidden_size)))
                self.register_parameter(f"bias_hh_l{layer}{suffix}", nn.Parameter(torch.empty(hidden_size)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default for recurrent layers, so that init 'default' means the same on both paths."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for param in self.parameters():
            nn.init.uniform_(param, -bound, bound)

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None):
        # x: (B, T, I); h0: (L*D, B, H) -> (B, T, D*H), (L*D, B, H). The loop over time, with its
        # hand-written backward, is zoo.models.sequence_kernels.RNNSequence.
        return run_stack(self, x, h0)


def _build(input_size: int, config: RNNConfig) -> nn.Module:
    if config.implementation == "loop" or config.activation not in FUSED_NONLINEARITIES:
        return LoopRNN(nonlinearity=config.activation, **stack_kwargs(input_size, config))
    return nn.RNN(nonlinearity=config.activation, batch_first=True, **stack_kwargs(input_size, config))


def _step(params: Params, x_proj: torch.Tensor, state: State, config: RNNConfig) -> tuple[torch.Tensor, State]:
    # x_proj: (B, H) = x_t W_ih^T + b_ih; state: (h_{t-1},), (B, H)
    h_proj = torch.addmm(params["bias_hh"], state[0], params["weight_hh"].t())  # (B, H)
    h = ACTIVATIONS[config.activation](x_proj + h_proj)
    return h, (h,)


def _sequence(module: nn.Module, params: Params, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
    # x: (T, B, I) -> (T, B, H), ((B, H),)
    out, h = RNNSequence.apply(x, state[0], params["weight_ih"], params["bias_ih"] + params["bias_hh"],
                               params["weight_hh"], module.nonlinearity, LEAKY_RELU_SLOPE, ELU_ALPHA)
    return out, (h,)


RNN = Cell(
    name="rnn",
    summary="the vanilla cell",
    gates=("",),
    state=("h",),
    options={"nonlinearity": Option("tanh", _check_nonlinearity, "tanh, relu, leaky_relu or elu")},
    implementations=("auto", "fused", "loop"),
    validate=_validate,
    build=_build,
    step=_step,
    sequence=_sequence,
    modules=(nn.RNN,),
)

register_cell(RNN)
