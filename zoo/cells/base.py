"""A recurrent cell as one object, and the registry that names them.

Why: a cell used to be spread over seven files (the backbone's if-chain, the init's
gate counts, the unrolled step of the diagnostics, the spectra's gate names, the
kernels' dispatch, ...), each branching on "rnn"/"lstm"/"gru". Now everything the rest
of the zoo asks about a cell is a field of its ``Cell``, and each cell is one file in
``zoo.cells`` that ends by registering it.

Parameters follow PyTorch's names, ``<base>_l<layer>`` and ``<base>_l<layer>_reverse``
(``weight_ih_l0``, ``bias_hh_l1_reverse``): ``layer_parameters`` gathers one direction
of one layer by its bases, so the init, the unrolled step, the kernels and the
stability monitor's parts read every cell's module alike.

This module imports nothing of the zoo but its errors: ``zoo.models`` imports it at
the top, and the cells' files import ``zoo.models``' kernels.

Shapes: B batch, T time, I input size, H hidden size, G gate blocks.
"""

from __future__ import annotations

import fnmatch
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from zoo.errors import ZooError, check_choice, check_int

if TYPE_CHECKING:
    from zoo.models.rnn import RNNConfig

State = tuple[torch.Tensor, ...]  # one (B, H) tensor per name in Cell.state
Params = dict[str, torch.Tensor]  # one direction of one layer, by base name: {"weight_ih": (G*H, I), ...}
# step(params, x_proj_t (B, G*H), state, config) -> (h_t (B, H), new state)
StepFn = Callable[[Params, torch.Tensor, State, "RNNConfig"], tuple[torch.Tensor, State]]
# project(params, x (B, T, I)) -> (B, T, G*H): the part of a step that does not depend on h, for all steps at once
ProjectFn = Callable[[Params, torch.Tensor], torch.Tensor]
# sequence(module, params, x (T, B, I), state) -> (outputs (T, B, H), final state): one direction of one layer
SequenceFn = Callable[[nn.Module, Params, torch.Tensor, State], tuple[torch.Tensor, State]]

_NAME = re.compile(r"(?P<base>.+)_l(?P<layer>\d+)(?P<reverse>_reverse)?")


def split_name(name: str) -> tuple[str, int, bool] | None:
    """``"weight_hh_l1_reverse"`` -> ``("weight_hh", 1, True)``; None for a name outside the convention."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    return match["base"], int(match["layer"]), match["reverse"] is not None


def layer_parameters(module: nn.Module, layer: int, reverse: bool = False) -> Params:
    """One direction of one layer's parameters by base name, the module's own tensors (not copies)."""
    params = {}
    for name, param in module.named_parameters(recurse=False):
        parts = split_name(name)
        if parts is not None and parts[1:] == (layer, reverse):
            params[parts[0]] = param
    return params


def stack_kwargs(input_size: int, config: RNNConfig) -> dict[str, Any]:
    """The settings every layer stack takes, by PyTorch's names: a ``Cell.build`` passes them on."""
    return dict(input_size=input_size, hidden_size=config.hidden_size, num_layers=config.num_layers,
                bidirectional=config.bidirectional, dropout=config.dropout)


def linear_projection(params: Params, x: torch.Tensor) -> torch.Tensor:
    """x W_ih^T + b_ih for every step at once: (B, T, I) -> (B, T, G*H)."""
    return torch.nn.functional.linear(x, params["weight_ih"], params.get("bias_ih"))


def matrix_spectrum(matrix: torch.Tensor) -> dict[str, float]:
    """Spectral radius and largest singular value of one square recurrent block (H, H)."""
    block = matrix.detach().double().cpu()
    return {"radius": float(torch.linalg.eigvals(block).abs().max()),
            "sigma_max": float(torch.linalg.matrix_norm(block, ord=2))}


def diagonal_spectrum(diagonal: torch.Tensor) -> dict[str, float]:
    """The same for a diagonal recurrence diag(d) (IndRNN's u, the LRU's lambda): both are max |d|."""
    top = float(diagonal.detach().abs().double().max())
    return {"radius": top, "sigma_max": top}


@dataclass(frozen=True)
class Option:
    """A cell-specific hyper-parameter: its default and the check of a given value.

    ``check(setting, value)`` returns the value or raises a ZooError naming the setting
    (``zoo.errors.check_float`` and friends have this shape).
    """

    default: Any
    check: Callable[[str, Any], Any]
    doc: str = ""


def check_chrono_t_max(setting: str, value: Any) -> int:
    return check_int(setting, value, low=2)


# Chrono initialization (Tallec & Ollivier 2018), for the cells with a keep gate: T_max, the longest
# dependency the gates should start able to hold, the argument of the init.
CHRONO_OPTION = Option(None, check_chrono_t_max, "chrono initialization of the gate biases for dependencies up to "
                                                 "this many steps (Tallec & Ollivier 2018)")


@dataclass(frozen=True, eq=False)
class Cell:
    """Everything the zoo asks about one recurrent cell.

    Structure:
        ``gates``: the gate blocks stacked in each weight, in order; ``("",)`` is one
        unnamed block (the vanilla cell). ``len(gates)`` is G: the init and the spectra
        treat each (H, ·) block on its own.
        ``state``: the names of the state's tensors, ``("h",)`` or ``("h", "c")``; a
        state of one name travels as a bare tensor (L*D, B, H), of more as a tuple,
        as PyTorch's modules do.
        ``input_weights`` / ``recurrent_weights``: the parameter bases (``weight_ih``,
        ``weight_hh``) that the input and recurrent init schemes apply to, block by block.
        ``recurrent_matrix``: whether each recurrent block is a square H x H matrix that
        multiplies h_{t-1}. Without one (an elementwise or diagonal recurrence) the
        spectra report that they do not apply, and the recurrent init schemes that need
        a matrix (``MATRIX_SCHEMES`` of zoo.init) are refused.
        ``forget_gate``: the gate whose total bias ``forget_bias`` sets, if any.
        ``chrono_gates``: for chrono initialization (``chrono_t_max``), the gate that keeps
        the state, then any gate whose bias starts at minus the keep gate's (an LSTM's
        input gate); empty for a cell without a keep gate.
    Settings:
        ``options``: the cell-specific settings it takes. Names that are RNNConfig fields
        (``nonlinearity``, ``forget_bias``) come from those fields; any other name from
        ``RNNConfig.cell_options``. Each is checked by its ``Option``.
        ``implementations``: the values of ``RNNConfig.implementation`` it has a path for.
        ``validate(config)``: what depends on more than one setting (no fused kernel for elu).
    Computation:
        ``build(input_size, config)``: the layer stack, all layers and directions, a module
        whose parameters follow the naming convention above; this is the fast path.
        ``project`` and ``step``: the cell's equations one step at a time, reading the
        module's own parameters (``layer_parameters``): the unrolled forward of the
        diagnostics runs them and keeps every h_t in the graph.
        ``sequence``: one direction of one layer over a whole sequence, used by
        ``sequence_kernels.run_stack`` (the zoo's hand-written kernels for the built-in
        cells). It is also the hook for a parallel scan: a cell whose recurrence is
        linear in h (LRU, a diagonal RNN) sets it to a scan and has its module call
        ``run_stack``, and the layers, directions, dropout and state handling come for free.
        ``modules``: PyTorch classes whose bare instances carry this cell's parameters
        (``nn.LSTM``), so ``cell_of`` knows them; the zoo's own layer classes say their
        cell by a ``cell`` attribute instead.
    """

    name: str
    gates: tuple[str, ...]
    build: Callable[[int, RNNConfig], nn.Module]
    step: StepFn
    project: ProjectFn = linear_projection
    sequence: SequenceFn | None = None
    state: tuple[str, ...] = ("h",)
    input_weights: tuple[str, ...] = ("weight_ih",)
    recurrent_weights: tuple[str, ...] = ("weight_hh",)
    recurrent_matrix: bool = True
    forget_gate: str | None = None
    chrono_gates: tuple[str, ...] = ()
    options: Mapping[str, Option] = field(default_factory=dict)
    implementations: tuple[str, ...] = ("auto",)
    validate: Callable[[RNNConfig], None] | None = None
    modules: tuple[type, ...] = ()
    summary: str = ""  # one line for messages and listings, e.g. "the vanilla cell"
    # The boards' "activation" column for this cell when it has no ``nonlinearity`` setting: what shapes its
    # state update ("gated" for the cells whose keep/update gates do; "tanh" for coRNN's oscillator...).
    activation: str = "gated"
    recurrence: str = ""  # for a cell without a square recurrent matrix: what its recurrence is, in words
    # The cell's own spectra, {"l0": {"radius", "sigma_max"}, ...}, for a recurrence the spectra cannot read
    # off a parameter: a matrix computed from one (expRNN's exp(A)) or a diagonal (IndRNN, the LRU).
    spectra: Callable[[nn.Module], dict[str, dict[str, float]]] | None = None

    def recurrence_in_words(self) -> str:
        """Why there is no square recurrent matrix to measure or initialize, for messages."""
        if self.recurrence:
            return self.recurrence
        if not self.recurrent_weights:
            return "it has no recurrent weights: its gates read the input alone"
        return f"its recurrent weights {', '.join(self.recurrent_weights)} are elementwise"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ZooError(f"a cell's name must be an identifier such as 'indrnn', got {self.name!r}")
        if not self.gates or not self.state:
            raise ZooError(f"cell {self.name!r} needs at least one gate block and one state tensor")
        if any(gate not in self.gates for gate in self.chrono_gates):
            raise ZooError(f"cell {self.name!r}: chrono gates {self.chrono_gates} are not all among its gates {self.gates}")
        if self.forget_gate is not None and self.forget_gate not in self.gates:
            raise ZooError(f"cell {self.name!r}: forget gate {self.forget_gate!r} is none of its gates {self.gates}")

    @property
    def num_gates(self) -> int:
        return len(self.gates)

    def option(self, config: RNNConfig, name: str) -> Any:
        """One of this cell's options in ``config``, its default where unset; None if the cell has no such option."""
        if name not in self.options:
            return None
        value = getattr(config, name) if name in type(config).__dataclass_fields__ else config.cell_options.get(name)
        return self.options[name].default if value is None else value

    def zero_state(self, batch: int, hidden: int, like: torch.Tensor, layers: int | None = None) -> State:
        """Zeros for each state tensor: (B, H), or (layers, B, H) for a whole stack."""
        shape = (batch, hidden) if layers is None else (layers, batch, hidden)
        return tuple(like.new_zeros(shape) for _ in self.state)

    def pack_state(self, parts: State) -> Any:
        """A state as the modules pass it: the tensor alone for one name, else the tuple."""
        return parts[0] if len(self.state) == 1 else tuple(parts)

    def unpack_state(self, state: Any) -> State:
        """The inverse of ``pack_state``: always a tuple, ``h`` first."""
        return (state,) if len(self.state) == 1 else tuple(state)


_REGISTRY: dict[str, tuple[Cell, str]] = {}  # name -> (cell, where it was registered), in registration order


def _caller(depth: int) -> str:
    frame = sys._getframe(depth + 1)
    return f"{frame.f_globals.get('__name__', '?')} ({frame.f_code.co_filename}:{frame.f_lineno})"


def register_cell(cell: Cell) -> Cell:
    """Add ``cell`` to the registry under its name and return it; a name taken twice is an error naming both places."""
    if not isinstance(cell, Cell):
        raise ZooError(f"register_cell takes a zoo.cells.Cell, got {type(cell).__name__}")
    where = _caller(1)
    if cell.name in _REGISTRY:
        first = _REGISTRY[cell.name][1]
        raise ZooError(f"cell {cell.name!r} is registered twice: first in {first}, again in {where}; "
                       f"give the new cell another name, or unregister_cell({cell.name!r}) first")
    _REGISTRY[cell.name] = (cell, where)
    return cell


def unregister_cell(name: str) -> Cell:
    """Remove a cell from the registry (tests, notebooks redefining a cell) and return it."""
    return _REGISTRY.pop(check_choice("cell", name, tuple(_REGISTRY)))[0]


def get_cell(name: Any) -> Cell:
    """The registered cell of that name; an unknown name is a ZooError listing the registered ones."""
    return _REGISTRY[check_choice("cell", name, cell_names())][0]


def cell_names() -> tuple[str, ...]:
    """The registered names in registration order (the built-ins: rnn, lstm, gru), the order error messages list."""
    return tuple(_REGISTRY)


def list_cells(pattern: str = "*") -> list[str]:
    """Registered cell names that match ``pattern`` (fnmatch wildcards: ``"*ru"``, ``"[lg]*"``), sorted."""
    if not isinstance(pattern, str):
        raise ZooError(f"pattern must be a string of shell wildcards such as 'l*', got {pattern!r}")
    return sorted(name for name in _REGISTRY if fnmatch.fnmatchcase(name, pattern))


def cell_of(module: nn.Module) -> Cell:
    """The cell whose parameters ``module`` carries: its ``cell`` attribute, else its PyTorch class (``Cell.modules``)."""
    name = getattr(module, "cell", None)
    if isinstance(name, str):
        return get_cell(name)
    for cell, _ in _REGISTRY.values():
        if cell.modules and isinstance(module, cell.modules):
            return cell
    raise ZooError(f"{type(module).__name__} is the module of no registered cell; registered: {', '.join(_REGISTRY)}")
