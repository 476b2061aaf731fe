"""minLSTM (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs All We Needed?", arXiv:2410.01201, Sec. 3.2):

f_t = σ(Linear_f(x_t)),  i_t = σ(Linear_i(x_t)),  h~_t = g(Linear_h(x_t)),
f'_t = f_t / (f_t + i_t),  i'_t = i_t / (f_t + i_t),  h_t = f'_t ⊙ h_{t−1} + i'_t ⊙ h~_t,

g(x) = x + 1/2 for x >= 0, σ(x) below (the paper's log-space version, Appendix B.3, which
keeps h~ and so h positive; ``activation='linear'`` is its first form, h~_t = Linear_h(x_t)).

Why it is here: the gates read x_t only, so the recurrence is the elementwise linear
h_t = a_t ⊙ h_{t−1} + b_t with a = f', b = i' ⊙ h~ (and i' = 1 − f', so it is minGRU's
recurrence with a = f' = σ(log f − log i)), computed for all steps at once and then
scanned (``zoo.models.linear_recurrence``): a loop with a hand-written backward on a CPU,
the paper's log-space parallel scan on a GPU (option ``scan``). There is no recurrent
matrix (``recurrent_matrix=False``, no recurrent weights): a single layer is a gated
running average of its inputs, and depth is what lets a stack model dependencies (the
paper stacks 3 layers or more).

Parameters per layer and direction: ``weight_ih`` (3H, in) and ``bias_ih`` (3H,), gate
blocks (f, i, h), nn.Linear's default init; ``forget_bias`` sets the f block of ``bias_ih``
(the gates are normalised, so what counts is b_f − b_i: f' = σ(log f − log i)). The state
is h itself, zeros at the start (``h_0 = 0``, as lucidrains/minGRU-pytorch without a
previous hidden state; the paper's Appendix B code feeds log g(h_0), i.e. starts from
g(h_0) = 0.5 for h_0 = 0, which would make a carried state mean something else than the
h_T it came from), so a state returned by one call and passed to the next continues the
sequence exactly (truncated BPTT).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from zoo.cells.base import Cell, Option, Params, State, register_cell
from zoo.errors import check_float
from zoo.models.linear_recurrence import (ACTIVATION_OPTION, SCAN_OPTION, InputGatedStack, MinRNNSequence,
                                          candidate, layer_scan, log_space_layer, scan_and_activation,
                                          validate_min_rnn)

if TYPE_CHECKING:
    from zoo.models.rnn import RNNConfig


class MinLSTMStack(InputGatedStack):
    """The minLSTM stack, the fast path: gate blocks (f, i, h) in ``weight_ih``/``bias_ih``, no recurrent weight."""

    cell = "minlstm"
    gates = 3


def _step(params: Params, x_proj: torch.Tensor, state: State, config: RNNConfig) -> tuple[torch.Tensor, State]:
    # x_proj: (B, 3H) = x_t W_ih^T + b_ih, blocks (f, i, h); state: (h_{t-1},), (B, H)
    k_f, k_i, k_h = x_proj.chunk(3, dim=1)
    f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
    h = (f * state[0] + i * candidate(k_h, scan_and_activation(config)[1])) / (f + i)
    return h, (h,)


def _sequence(module: nn.Module, params: Params, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
    # x: (T, B, I) -> (T, B, H), ((B, H),): all gates at once, then h_t = a_t h_{t-1} + (1 - a_t) h~_t
    hidden = module.hidden_size
    weight, bias = params["weight_ih"], params["bias_ih"]
    if layer_scan(module, x) == "sequential":
        h, last = MinRNNSequence.apply(x, state[0], weight, bias, "minlstm", module.activation)
        return h, (last,)
    k_f = F.linear(x, weight[:hidden], bias[:hidden])  # (T, B, H) each
    k_i = F.linear(x, weight[hidden : 2 * hidden], bias[hidden : 2 * hidden])
    k = F.linear(x, weight[2 * hidden :], bias[2 * hidden :])  # h~'s pre-activation
    u = F.softplus(-k_i) - F.softplus(-k_f)  # a = f' = f / (f + i) = σ(log f - log i)
    h = log_space_layer(u, k, state[0])
    return h, (h[-1],)


MINLSTM = Cell(
    name="minlstm",
    summary="minLSTM (Feng et al. 2024)",
    gates=("f", "i", "h"),
    forget_gate="f",
    state=("h",),
    recurrent_weights=(),
    recurrent_matrix=False,
    options={
        "forget_bias": Option(None, check_float, "the forget gate's bias (bias_ih's f block; unset: left to the init)"),
        "scan": SCAN_OPTION,
        "activation": ACTIVATION_OPTION,
    },
    validate=validate_min_rnn,
    build=MinLSTMStack.build,
    step=_step,
    sequence=_sequence,
)

register_cell(MINLSTM)
