"""The GRU (Cho et al. 2014), PyTorch's equations and gate order (r, z, n):

r = sigmoid(x W_ir + b_ir + h W_hr + b_hr), z likewise, n = tanh(x W_in + b_in + r (h W_hn + b_hn)),
h_t = (1 - z) n + z h_{t-1}.

No settings of its own. Fast path: ``ZooGRU``, an ``nn.GRU`` that takes the zoo's own
kernel (``GRUSequence``) call by call where ``implementation`` asks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from zoo.cells.base import CHRONO_OPTION, Cell, Params, State, register_cell, stack_kwargs
from zoo.cells.own_kernels import _ChoosesKernel
from zoo.models.sequence_kernels import GRUSequence

if TYPE_CHECKING:
    from zoo.models.rnn import RNNConfig


class ZooGRU(_ChoosesKernel, nn.GRU):
    cell = "gru"


def _build(input_size: int, config: RNNConfig) -> nn.Module:
    return ZooGRU(implementation=config.implementation, **stack_kwargs(input_size, config))


def _step(params: Params, x_proj: torch.Tensor, state: State, config: RNNConfig) -> tuple[torch.Tensor, State]:
    # x_proj: (B, 3H) = x_t W_ih^T + b_ih; state: (h_{t-1},), (B, H)
    h = state[0]
    h_proj = torch.addmm(params["bias_hh"], h, params["weight_hh"].t())  # (B, 3H)
    x_r, x_z, x_n = x_proj.chunk(3, dim=1)  # reset, update, new
    h_r, h_z, h_n = h_proj.chunk(3, dim=1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    h = (1 - z) * n + z * h
    return h, (h,)


def _sequence(module: nn.Module, params: Params, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
    # x: (T, B, I) -> (T, B, H), ((B, H),)
    out, h = GRUSequence.apply(x, state[0], params["weight_ih"], params["bias_ih"], params["weight_hh"],
                               params["bias_hh"])
    return out, (h,)


GRU = Cell(
    name="gru",
    summary="the GRU",
    gates=("r", "z", "n"),
    state=("h",),
    # h_t = (1 - z) n + z h_{t-1}: PyTorch's update gate z is the one that keeps the state.
    chrono_gates=("z",),
    options={"chrono_t_max": CHRONO_OPTION},
    implementations=("auto", "fused", "loop"),
    build=_build,
    step=_step,
    sequence=_sequence,
    modules=(nn.GRU,),
)

register_cell(GRU)
