"""Named initialization schemes for recurrent layers, applied gate block by gate block.

A fused LSTM stores its four gates' weights stacked in one matrix (4H × in). Xavier
or orthogonal on the stacked matrix would mix the gates' fan-out and make the
"orthogonal" recurrent matrix orthogonal only as a whole; each gate's own H × H
block is what multiplies h_{t-1}, so each block is initialized on its own.

Input weights (``weight_ih_*``) and recurrent weights (``weight_hh_*``) take separate
schemes: IRNN, for example, is identity on the recurrent matrix and small Gaussian
or default weights on the input.

What a block is comes from the cell's descriptor (``zoo.cells.Cell``): its number of
gate blocks, which parameters are input and which recurrent weights, its forget gate.
A cell whose recurrent weight is no square matrix (an elementwise or diagonal
recurrence, as in IndRNN or the LRU) refuses the recurrent schemes that need one
(``MATRIX_SCHEMES``): an error naming the cell and what it does take, not a silent
skip, so that a study table never lists an init the network did not get.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal, get_args

import torch
from torch import nn

from zoo.errors import ZooError, check_choice, check_float, check_int

if TYPE_CHECKING:
    from zoo.cells import Cell

# The schemes, as a type: ``RNNConfig`` annotates its init fields with it, so ``zoo fit --help`` lists them and
# the CLI refuses any other value. INIT_SCHEMES is read from it: the type is the one list.
InitScheme = Literal[
    "default",  # PyTorch's: U(-1/sqrt(H), 1/sqrt(H)) for every recurrent weight and bias
    "xavier_uniform",  # Glorot & Bengio 2010: Var = 2 / (fan_in + fan_out)
    "xavier_normal",
    "he_uniform",  # He et al. 2015, fan-in mode, gain sqrt(2): Var = 2 / fan_in
    "he_normal",
    "orthogonal",  # Saxe et al. 2014: each block has orthonormal rows or columns
    "identity",  # Le, Jaitly & Hinton 2015 (IRNN): scale * I; square blocks only
    "uniform",  # U(-init_range, init_range), as in Zaremba et al. 2014 (0.1)
]
INIT_SCHEMES: tuple[str, ...] = get_args(InitScheme)

# Need a matrix (fan-in and fan-out, rows and columns): meaningless for an elementwise recurrent weight.
MATRIX_SCHEMES = ("xavier_uniform", "xavier_normal", "he_uniform", "he_normal", "orthogonal", "identity")


def __getattr__(name: str) -> Any:
    # For code older than zoo.cells, derived from the descriptors: GATES (cell -> number of gate blocks) and
    # LSTM_FORGET_GATE (1: PyTorch orders the LSTM's gates input, forget, cell, output).
    if name == "GATES":
        from zoo.cells import cell_names, get_cell

        return {cell: get_cell(cell).num_gates for cell in cell_names()}
    if name == "LSTM_FORGET_GATE":
        lstm = _cell("lstm")
        return lstm.gates.index(lstm.forget_gate)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _cell(cell: Cell | str) -> Cell:
    from zoo.cells import Cell, get_cell  # here, not at the top: zoo.models imports this module and the cells

    return cell if isinstance(cell, Cell) else get_cell(cell)


def check_recurrent_scheme(cell: Cell, scheme: str) -> str:
    """``scheme`` if ``cell`` can take it for its recurrent weights: a scheme that needs a matrix needs one."""
    if scheme in MATRIX_SCHEMES and not cell.recurrent_matrix:
        valid = [s for s in INIT_SCHEMES if s not in MATRIX_SCHEMES]
        raise ZooError(f"recurrent_init {scheme!r} needs a square recurrent matrix, which cell {cell.name!r} does not "
                       f"have ({cell.recurrence_in_words()}); "
                       f"valid choices for {cell.name!r}: {', '.join(valid)}")
    return scheme


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


def layer_weight_names(rnn: nn.Module, cell: Cell | str | None = None) -> list[tuple[str, str]]:
    """(kind, name) for every weight of a recurrent module, kind in {"input", "recurrent"}, in parameter order.

    The kinds are the cell's ``input_weights`` and ``recurrent_weights`` bases; without a
    cell, PyTorch's (``weight_ih_*``, ``weight_hh_*``).
    """
    from zoo.cells.base import split_name

    inputs, recurrent = (("weight_ih",), ("weight_hh",)) if cell is None else \
        (_cell(cell).input_weights, _cell(cell).recurrent_weights)
    names = []
    for name, _ in rnn.named_parameters():
        base = (split_name(name) or ("",))[0]
        if base in inputs:
            names.append(("input", name))
        elif base in recurrent:
            names.append(("recurrent", name))
    return names


def apply_init(
    rnn: nn.Module,
    cell: Cell | str,
    *,
    input_init: str = "default",
    recurrent_init: str = "default",
    identity_scale: float = 1.0,
    init_range: float = 0.1,
    bias_init: float | None = None,
    forget_bias: float | None = None,
    chrono_t_max: int | None = None,
) -> None:
    """Initialize a module whose parameters follow ``nn.RNN``'s names (weight_ih_l0, weight_hh_l0_reverse, ...).

    ``cell`` is the module's cell, a ``zoo.cells.Cell`` or its registered name: it says
    how many gate blocks each weight stacks and which weights are input and which
    recurrent. ``bias_init`` sets every bias to a constant (IRNN uses 0); ``forget_bias``
    then sets the forget gate's total bias (``bias_ih + bias_hh``) to its value, the
    usual cure for forgetting too early (Gers et al. 2000; Jozefowicz et al. 2015 use 1),
    for a cell that has a forget gate (the lstm).

    ``chrono_t_max`` is chrono initialization (Tallec & Ollivier 2018, eq. 16): the keep
    gate's total bias is drawn per unit as log U(1, T_max - 1), so the units start with
    characteristic forgetting times spread over [2, T_max] steps, and an LSTM's input
    gate starts at minus that. It draws from torch's generator only when asked, so other
    configs' initial weights do not move.
    """
    cell = _cell(cell)
    gates = cell.num_gates
    check_choice("input_init", input_init, INIT_SCHEMES)
    check_choice("recurrent_init", recurrent_init, INIT_SCHEMES)
    check_recurrent_scheme(cell, recurrent_init)
    check_float("identity_scale", identity_scale)
    check_float("init_range", init_range, low=0.0)
    if forget_bias is not None and cell.forget_gate is None:
        from zoo.cells import cell_names, get_cell

        takers = [name for name in cell_names() if get_cell(name).forget_gate is not None]
        raise ZooError(f"forget_bias applies to the {' and '.join(takers)} cell{'s' if len(takers) > 1 else ''} only, "
                       f"but cell is {cell.name!r}; "
                       "leave forget_bias unset")
    params = dict(rnn.named_parameters())
    for kind, name in layer_weight_names(rnn, cell):
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
        if chrono_t_max is not None:
            _chrono(params, cell, chrono_t_max)
        if forget_bias is not None:
            check_float("forget_bias", forget_bias)
            for name, param in params.items():
                if name.startswith("bias_"):
                    block = param.chunk(gates, dim=0)[cell.gates.index(cell.forget_gate)]
                    block.fill_(forget_bias if name.startswith("bias_ih_") else 0.0)


def expected_std(scheme: str, fan_in: int, fan_out: int) -> float:
    """The standard deviation a scheme's weights should have, for tests and docs."""
    if scheme.startswith("xavier"):
        return math.sqrt(2.0 / (fan_in + fan_out))
    if scheme.startswith("he"):
        return math.sqrt(2.0 / fan_in)
    raise ZooError(f"no closed-form std for init scheme {scheme!r}; valid choices: xavier_*, he_*")


def _chrono(params: dict[str, nn.Parameter], cell: Cell, t_max: int) -> None:
    """Chrono initialization of ``cell``'s keep gate (and the gates tied to it), layer by layer, direction by direction."""
    if not cell.chrono_gates:
        from zoo.cells import cell_names, get_cell

        names = " and ".join(name for name in cell_names() if get_cell(name).chrono_gates)
        raise ZooError(f"chrono_t_max applies to the {names} cells only (a keep gate), but cell is {cell.name!r}")
    check_int("chrono_t_max", t_max, low=2)
    keep, *opposed = (cell.gates.index(g) for g in cell.chrono_gates)
    for name, param in params.items():
        if not name.startswith("bias_ih_"):
            continue
        blocks = param.chunk(cell.num_gates, dim=0)  # G of (H,)
        recurrent = params.get("bias_hh_" + name.removeprefix("bias_ih_"))
        rec_blocks = recurrent.chunk(cell.num_gates, dim=0) if recurrent is not None else None
        blocks[keep].copy_(torch.log(torch.empty_like(blocks[keep]).uniform_(1.0, t_max - 1.0)))
        for gate in opposed:
            blocks[gate].copy_(-blocks[keep])
        if rec_blocks is not None:  # the total bias is bias_ih + bias_hh: the recurrent half starts at 0
            for gate in (keep, *opposed):
                rec_blocks[gate].zero_()
