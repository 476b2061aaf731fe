"""minGRU (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs All We Needed?", arXiv:2410.01201, Sec. 3.1):

z_t = σ(Linear_z(x_t)),  h~_t = g(Linear_h(x_t)),  h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ h~_t,

g(x) = x + 1/2 for x >= 0, σ(x) below (the paper's log-space version, Appendix B.3, which
keeps h~ and so h positive; ``activation='linear'`` is its first form, h~_t = Linear_h(x_t)).

Why it is here: the gates read x_t only, so the recurrence is the elementwise linear
h_t = a_t ⊙ h_{t−1} + b_t with a = 1 − z, b = z ⊙ h~, computed for all steps at once and
then scanned (``zoo.models.linear_recurrence``): a loop with a hand-written backward on a
CPU, the paper's log-space parallel scan on a GPU (option ``scan``). There is no recurrent
matrix (``recurrent_matrix=False``, no recurrent weights): a single layer is a gated
running average of its inputs, and depth is what lets a stack model dependencies (the
paper stacks 3 layers or more).

Parameters per layer and direction: ``weight_ih`` (2H, in) and ``bias_ih`` (2H,), gate
blocks (z, h), nn.Linear's default init. The state is h itself, zeros at the start
(``h_0 = 0``, as lucidrains/minGRU-pytorch without a previous hidden state; the paper's
Appendix B code feeds log g(h_0), i.e. starts from g(h_0) = 0.5 for h_0 = 0, which would
make a carried state mean something else than the h_T it came from), so a state returned
by one call and passed to the next continues the sequence exactly (truncated BPTT).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from zoo.cells.base import Cell, Params, State, register_cell
from zoo.models.linear_recurrence import (ACTIVATION_OPTION, SCAN_OPTION, InputGatedStack, MinRNNSequence,
                                          candidate, layer_scan, log_space_layer, scan_and_activation,
                                          validate_min_rnn)

if TYPE_CHECKING:
    from zoo.models.rnn import RNNConfig


class MinGRUStack(InputGatedStack):
    """The minGRU stack, the fast path: gate blocks (z, h) in ``weight_ih``/``bias_ih``, no recurrent weight."""

    cell = "mingru"
    gates = 2


def _step(params: Params, x_proj: torch.Tensor, state: State, config: RNNConfig) -> tuple[torch.Tensor, State]:
    # x_proj: (B, 2H) = x_t W_ih^T + b_ih, blocks (z, h); state: (h_{t-1},), (B, H)
    k_z, k_h = x_proj.chunk(2, dim=1)
    z = torch.sigmoid(k_z)
    h = (1 - z) * state[0] + z * candidate(k_h, scan_and_activation(config)[1])
    return h, (h,)


def _sequence(module: nn.Module, params: Params, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
    # x: (T, B, I) -> (T, B, H), ((B, H),): all gates at once, then h_t = a_t h_{t-1} + (1 - a_t) h~_t
    hidden = module.hidden_size
    weight, bias = params["weight_ih"], params["bias_ih"]
    if layer_scan(module, x) == "sequential":
        h, last = MinRNNSequence.apply(x, state[0], weight, bias, "mingru", module.activation)
        return h, (last,)
    u = F.linear(x, -weight[:hidden], -bias[:hidden])  # (T, B, H): a = 1 - z = σ(-k_z), so u = -k_z
    k = F.linear(x, weight[hidden:], bias[hidden:])  # (T, B, H): h~'s pre-activation
    h = log_space_layer(u, k, state[0])
    return h, (h[-1],)


MINGRU = Cell(
    name="mingru",
    summary="minGRU (Feng et al. 2024)",
    gates=("z", "h"),
    state=("h",),
    recurrent_weights=(),
    recurrent_matrix=False,
    options={
        "scan": SCAN_OPTION,
        "activation": ACTIVATION_OPTION,
    },
    validate=validate_min_rnn,
    build=MinGRUStack.build,
    step=_step,
    sequence=_sequence,
)

register_cell(MINGRU)
