"""The LSTM (Hochreiter & Schmidhuber 1997, with a forget gate: Gers et al. 2000), PyTorch's equations and gate order:

i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of (x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), split in four;
c_t = f c_{t-1} + i g,  h_t = o tanh(c_t).

Its one setting is ``forget_bias`` (the forget gate's total bias; unset: left to the
init). Fast path: ``ZooLSTM``, an ``nn.LSTM`` that takes the zoo's own kernel
(``LSTMSequence``) call by call where ``implementation`` asks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from zoo.cells.base import CHRONO_OPTION, Cell, Option, Params, State, register_cell, stack_kwargs
from zoo.cells.own_kernels import _ChoosesKernel
from zoo.errors import check_float
from zoo.models.sequence_kernels import LSTMSequence

if TYPE_CHECKING:
    from zoo.models.rnn import RNNConfig


class ZooLSTM(_ChoosesKernel, nn.LSTM):
    cell = "lstm"


def _build(input_size: int, config: RNNConfig) -> nn.Module:
    return ZooLSTM(implementation=config.implementation, **stack_kwargs(input_size, config))


def _step(params: Params, x_proj: torch.Tensor, state: State, config: RNNConfig) -> tuple[torch.Tensor, State]:
    # x_proj: (B, 4H) = x_t W_ih^T + b_ih; state: (h_{t-1}, c_{t-1}), each (B, H)
    h, c = state
    h_proj = torch.addmm(params["bias_hh"], h, params["weight_hh"].t())  # (B, 4H)
    i, f, g, o = (x_proj + h_proj).chunk(4, dim=1)  # PyTorch's order: input, forget, cell, output
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, (h, c)


def _sequence(module: nn.Module, params: Params, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
    # x: (T, B, I) -> (T, B, H), ((B, H), (B, H)); the kernel wants the gates rolled from (i, f, g, o) to (o, i, f, g)
    hidden = module.hidden_size
    out, h, c = LSTMSequence.apply(x, state[0], state[1], params["weight_ih"].roll(hidden, 0),
                                   (params["bias_ih"] + params["bias_hh"]).roll(hidden, 0),
                                   params["weight_hh"].roll(hidden, 0))
    return out, (h, c)


LSTM = Cell(
    name="lstm",
    summary="the LSTM",
    gates=("i", "f", "g", "o"),
    state=("h", "c"),
    forget_gate="f",
    chrono_gates=("f", "i"),  # Tallec & Ollivier 2018: b_f ~ log U(1, T_max - 1), b_i = -b_f
    options={"forget_bias": Option(None, check_float, "the forget gate's total bias (bias_ih + bias_hh)"),
             "chrono_t_max": CHRONO_OPTION},
    implementations=("auto", "fused", "loop"),
    build=_build,
    step=_step,
    sequence=_sequence,
    modules=(nn.LSTM,),
)

register_cell(LSTM)
