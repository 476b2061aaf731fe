"""Named initialization schemes for recurrent layers, applied gate block by gate block.

A fused LSTM stores its four gates' weights stacked in one matrix (4H × in). Xavier
or orthogonal on the stacked matrix would mix the gates' fan-out and make the
"orthogonal" recurrent matrix orthogonal only as a whole; each gate's own H × H
block is what multiplies h_{t-1}, so each block is initialized on its own.

Input weights (``weight_ih_*``) and recurrent weights (``weight_hh_*``) take separate
schemes: IRNN, for example, is identity on the recurrent matrix and small Gaussian
or default weights on the input.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from zoo.errors import ZooError, check_choice, check_float

INIT_SCHEMES = (
    "default",  # PyTorch's: U(-1/sqrt(H), 1/sqrt(H)) for every recurrent weight and bias
    "xavier_uniform",  # Glorot & Bengio 2010: Var = 2 / (fan_in + fan_out)
    "xavier_normal",
    "he_uniform",  # He et al. 2015, fan-in mode, gain sqrt(2): Var = 2 / fan_in
    "he_normal",
    "orthogonal",  # Saxe et al. 2014: each block has orthonormal rows or columns
    "identity",  # Le, Jaitly & Hinton 2015 (IRNN): scale * I; square blocks only
    "uniform",  # U(-init_range, init_range), as in Zaremba et al. 2014 (0.1)
)

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
LSTM_FORGET_GATE = 1  # PyTorch orders LSTM gates (input, forget, cell, output)


def init_block(block: torch.Tensor, scheme: str, *, identity_scale: float, where: str, init_range: float = 0.1) -> None:
    """Initialize one gate block (H × fan_in) in place."""
    check_choice("init scheme", scheme, INIT_SCHEMES)
    if scheme == "default":
        return
    if scheme == "xavier_uniform":
        nn.init.xavier_uniform_(block)
    elif scheme == "xavier_normal":
        nn.init.xavier_normal_(block)
    elif scheme == "he_uniform":
        nn.init.kaiming_uniform_(block, a=0.0, mode="fan_in", nonlinearity="relu")
    elif scheme == "he_normal":
        nn.init.kaiming_normal_(block, a=0.0, mode="fan_in", nonlinearity="relu")
    elif scheme == "orthogonal":
        nn.init.orthogonal_(block)
    elif scheme == "uniform":
        nn.init.uniform_(block, -init_range, init_range)
    elif scheme == "identity":
        rows, cols = block.shape
        if rows != cols:
            raise ZooError(
                f"identity init needs square matrices, but {where} has gate blocks of shape {rows}x{cols}; "
                "use identity for recurrent_init only, or pick another input_init"
            )
        with torch.no_grad():
            block.copy_(torch.eye(rows, dtype=block.dtype) * identity_scale)


def layer_weight_names(rnn: nn.Module) -> list[tuple[str, str]]:
    """(kind, name) for every weight of a torch-style recurrent module, kind in {"input", "recurrent"}."""
    names = []
    for name, _ in rnn.named_parameters():
        if name.startswith("weight_ih_"):
            names.append(("input", name))
        elif name.startswith("weight_hh_"):
            names.append(("recurrent", name))
    return names


def apply_init(
    rnn: nn.Module,
    cell: str,
    *,
    input_init: str = "default",
    recurrent_init: str = "default",
    identity_scale: float = 1.0,
    init_range: float = 0.1,
    bias_init: float | None = None,
    forget_bias: float | None = None,
) -> None:
    """Initialize a module whose parameters follow ``nn.RNN``'s names (weight_ih_l0, weight_hh_l0_reverse, ...).

    ``bias_init`` sets every bias to a constant (IRNN uses 0); ``forget_bias`` then sets
    the LSTM forget gate's total bias (``bias_ih + bias_hh``) to its value, the usual
    cure for forgetting too early (Gers et al. 2000; Jozefowicz et al. 2015 use 1).
    """
    gates = GATES[check_choice("cell", cell, tuple(GATES))]
    check_choice("input_init", input_init, INIT_SCHEMES)
    check_choice("recurrent_init", recurrent_init, INIT_SCHEMES)
    check_float("identity_scale", identity_scale)
    check_float("init_range", init_range, low=0.0)
    if forget_bias is not None and cell != "lstm":
        raise ZooError(f"forget_bias applies to the lstm cell only, but cell is {cell!r}; leave forget_bias unset")
    params = dict(rnn.named_parameters())
    for kind, name in layer_weight_names(rnn):
        scheme = input_init if kind == "input" else recurrent_init
        for gate, block in enumerate(params[name].data.chunk(gates, dim=0)):
            init_block(block, scheme, identity_scale=identity_scale, init_range=init_range,
                       where=f"{name} (gate block {gate})")
    with torch.no_grad():
        if bias_init is not None:
            check_float("bias_init", bias_init)
            for name, param in params.items():
                if name.startswith("bias_"):
                    param.fill_(bias_init)
        if forget_bias is not None:
            check_float("forget_bias", forget_bias)
            for name, param in params.items():
                if name.startswith("bias_"):
                    block = param.chunk(gates, dim=0)[LSTM_FORGET_GATE]
                    block.fill_(forget_bias if name.startswith("bias_ih_") else 0.0)


def expected_std(scheme: str, fan_in: int, fan_out: int) -> float:
    """The standard deviation a scheme's weights should have, for tests and docs."""
    if scheme.startswith("xavier"):
        return math.sqrt(2.0 / (fan_in + fan_out))
    if scheme.startswith("he"):
        return math.sqrt(2.0 / fan_in)
    raise ZooError(f"no closed-form std for init scheme {scheme!r}; valid choices: xavier_*, he_*")
