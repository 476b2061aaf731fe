"""The recurrent backbone: any registered cell (``zoo.cells``: vanilla RNN, LSTM, GRU, ...), any depth, bidirectional.

What a cell is (its gates, state, settings, layer module, step) is its ``Cell``
descriptor; ``RNNConfig`` checks a config against it and ``RNNBackbone`` builds and
initializes the cell's layer stack from it, so neither branches on a cell's name.

The built-in cells run a layer three ways, all with PyTorch's parameters under PyTorch's names:

- PyTorch's fused kernels (``nn.RNN``, ``nn.LSTM``, ``nn.GRU``; cuDNN on a GPU);
- ``LoopRNN`` for the vanilla cell: the input projection for all steps in one matmul,
  then a Python loop over time that only does h_t = act(xw_t + h_{t-1} W_hh^T), with a
  hand-written backward (``sequence_kernels.RNNSequence``). The fused kernel exists for
  tanh and relu only, so leaky_relu and elu always run this;
- the zoo's own LSTM and GRU kernels for the CPU (``zoo.models.sequence_kernels``),
  a loop with a hand-written backward that beats the fused CPU kernels where
  ``own_kernel_wins`` says. ``ZooLSTM`` and ``ZooGRU`` are ``nn.LSTM`` and ``nn.GRU``
  that take that path call by call.

Those layer classes live with their cells (``LoopRNN`` in ``zoo.cells.rnn``, ``ZooLSTM``
in ``zoo.cells.lstm``, ``ZooGRU`` in ``zoo.cells.gru``, their shared kernel choice in
``zoo.cells.own_kernels``), below this module, and are re-exported here. The imports run
one way: zoo.cells.base <- zoo.models.sequence_kernels <- the cells' files <- zoo.cells
<- zoo.init <- this module.

Shapes: B batch, T time, I input size, H hidden size, L layers, D directions (1 or 2).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from zoo.cells import Cell, cell_names, get_cell
from zoo.cells.gru import ZooGRU  # noqa: F401 (re-exported: the layer classes live with their cells)
from zoo.cells.lstm import ZooLSTM  # noqa: F401 (re-exported)
from zoo.cells.own_kernels import _ChoosesKernel, _wants_own_kernel  # noqa: F401 (re-exported)
from zoo.cells.rnn import LoopRNN  # noqa: F401 (re-exported)
from zoo.errors import ZooError, check_choice, check_float, check_int, coerce_config
from zoo.init import INIT_SCHEMES, InitScheme, apply_init, check_recurrent_scheme
from zoo.models.sequence_kernels import ACTIVATIONS, FUSED_NONLINEARITIES, NONLINEARITIES  # noqa: F401 (re-exported)

# The choices of RNNConfig's fields, as types, so ``zoo fit --help`` lists them and the CLI refuses any other value;
# each is read from its registry (the cells, the kernels' activations, zoo.init's schemes), never written twice.
# A cell registered after this import (a plugin, a test's toy cell) is added by refresh_cell_choices, which
# the CLI calls before it builds its parser; RNNConfig itself checks the registry at every construction.
CellName = Literal[cell_names()]  # Literal[("a", "b")] is Literal["a", "b"]
Nonlinearity = Literal[NONLINEARITIES]


def refresh_cell_choices() -> Any:
    """``CellName`` again from the registry as it is now, for a parser about to be built; returns it."""
    global CellName
    CellName = Literal[cell_names()]
    return CellName


# RNNConfig's fields that only some cells take (the cells that list them in Cell.options), and what a config
# that gives one to another cell is told. Any other cell-specific setting goes in cell_options.
CELL_SETTINGS = {
    "nonlinearity": "nonlinearity {value!r} was given for cell {cell!r}, but only {takers} take{verb_s} one; "
                    "leave nonlinearity unset for {cell}",
    "forget_bias": "forget_bias applies to the {names} cell{plural} only, but cell is {cell!r}",
    "chrono_t_max": "chrono_t_max (chrono initialization) applies to the {names} cell{plural} only, but cell is {cell!r}",
}


def __getattr__(name: str) -> Any:
    if name == "CELLS":  # for code older than the registry: the registered cells' names, read when asked
        return cell_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _refuse(setting: str, value: Any, cell: str) -> ZooError:
    takers = [get_cell(name) for name in cell_names() if setting in get_cell(name).options]
    return ZooError(CELL_SETTINGS[setting].format(
        value=value, cell=cell, names=" and ".join(c.name for c in takers) or "no", plural="s" if len(takers) > 1 else "", verb_s="" if len(takers) > 1 else "s",
        takers=" and ".join(f"{c.summary or 'the cell'} {c.name!r}" for c in takers) or "no cell"))


@dataclass(frozen=True)
class RNNConfig:
    """Everything that defines a backbone and its initialization.

    ``cell`` is a registered cell's name (``zoo.list_cells()``). The settings only some
    cells take are checked by that cell's descriptor: ``nonlinearity`` is for the vanilla
    cell only (unset means tanh), ``forget_bias`` for the lstm, ``chrono_t_max`` (chrono
    initialization, Tallec & Ollivier 2018) for the lstm and gru; giving one to another
    cell is an error rather than silently ignored. ``cell_options`` holds the settings
    of cells that have their own (a step size, a damping...), by the names in their
    ``Cell.options``; it is empty for the built-in cells, and a config without it
    loads as empty. ``implementation`` chooses between PyTorch's fused kernel and the
    zoo's loop: ``auto`` takes, for the vanilla cell, the fused kernel where one exists,
    and for lstm and gru, on the CPU, whichever ``own_kernel_wins`` says is faster for
    the call (fused on every other device).
    """

    cell: CellName = "lstm"
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    nonlinearity: Nonlinearity | None = None
    input_init: InitScheme = "default"
    recurrent_init: InitScheme = "default"
    identity_scale: float = 1.0
    init_range: float = 0.1
    bias_init: float | None = None
    forget_bias: float | None = None
    chrono_t_max: int | None = None
    implementation: str = "auto"
    cell_options: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        cell = get_cell(self.cell)
        for setting in CELL_SETTINGS:
            if getattr(self, setting) is not None and setting not in cell.options:
                raise _refuse(setting, getattr(self, setting), self.cell)
        check_int("hidden_size", self.hidden_size, low=1, high=1 << 16)
        check_int("num_layers", self.num_layers, low=1, high=64)
        if not isinstance(self.bidirectional, bool):
            raise ZooError(f"bidirectional must be true or false, got {self.bidirectional!r}")
        check_float("dropout", self.dropout, low=0.0, high=1.0, high_open=True)
        if self.dropout > 0 and self.num_layers == 1:
            raise ZooError(f"dropout {self.dropout} acts between layers, so it needs num_layers >= 2, got 1")
        check_choice("input_init", self.input_init, INIT_SCHEMES)
        check_choice("recurrent_init", self.recurrent_init, INIT_SCHEMES)
        check_recurrent_scheme(cell, self.recurrent_init)
        check_float("identity_scale", self.identity_scale)
        check_float("init_range", self.init_range, low=0.0)
        if self.bias_init is not None:
            check_float("bias_init", self.bias_init)
        if self.chrono_t_max is not None and self.forget_bias is not None:
            raise ZooError(f"chrono_t_max {self.chrono_t_max} and forget_bias {self.forget_bias} both set the forget "
                           "gate's bias; give one of them")
        self._check_cell_options(cell)
        known = tuple(dict.fromkeys(i for name in cell_names() for i in get_cell(name).implementations))
        check_choice("implementation", self.implementation, known)
        if self.implementation not in cell.implementations:
            raise ZooError(f"cell {self.cell!r} has no {self.implementation!r} implementation; "
                           f"valid choices for {self.cell!r}: {', '.join(cell.implementations)}")
        if cell.validate is not None:
            cell.validate(self)

    def _check_cell_options(self, cell: Cell) -> None:
        """Each of the cell's settings that is given, by its ``Option.check``; a cell_options name it lacks is an error."""
        if not isinstance(self.cell_options, dict) or not all(isinstance(k, str) for k in self.cell_options):
            raise ZooError(f"cell_options must be a mapping of option names to values, got {self.cell_options!r}")
        object.__setattr__(self, "cell_options", dict(self.cell_options))  # a copy: the config stays as it was built
        own = [name for name in cell.options if name not in self.__dataclass_fields__]
        unknown = sorted(set(self.cell_options) - set(own))
        if unknown:
            raise ZooError(f"cell {self.cell!r} has no option(s) {', '.join(unknown)} in cell_options; "
                           + (f"its options: {', '.join(own)}" if own else "it takes none"))
        for name, option in cell.options.items():
            given = name in self.__dataclass_fields__
            value = getattr(self, name) if given else self.cell_options.get(name)
            if value is not None:
                option.check(name if given else f"cell_options.{name}", value)

    @property
    def activation(self) -> str | None:
        """The cell's nonlinearity, its default filled in (tanh for the vanilla cell); None for a cell without one."""
        return get_cell(self.cell).option(self, "nonlinearity")

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def coerce(cls, value: RNNConfig | dict[str, Any]) -> RNNConfig:
        return coerce_config(cls, value, "backbone")


class RNNBackbone(nn.Module):
    """A recurrent stack built from an ``RNNConfig``, initialized by its schemes.

    The layer module is the cell's (``Cell.build``: the fast path), and the init reads
    the cell's gate blocks and weight kinds, so a new cell needs nothing here.
    ``forward`` returns every step's top-layer output and the final state, as the torch
    modules do; ``last_features`` turns those into the vector a ``last``-step head reads.
    """

    def __init__(self, input_size: int, config: RNNConfig) -> None:
        super().__init__()
        check_int("input_size", input_size, low=1)
        self.config = config
        self.input_size = input_size
        cell = self.cell
        self.rnn: nn.Module = cell.build(input_size, config)
        apply_init(
            self.rnn,
            cell,
            input_init=config.input_init,
            recurrent_init=config.recurrent_init,
            identity_scale=config.identity_scale,
            init_range=config.init_range,
            bias_init=config.bias_init,
            forget_bias=config.forget_bias,
            chrono_t_max=config.chrono_t_max,
        )

    @property
    def cell(self) -> Cell:
        """The config's cell (looked up, not stored: a module holds no functions it would have to pickle)."""
        return get_cell(self.config.cell)

    @property
    def output_size(self) -> int:
        return self.config.hidden_size * self.config.num_directions

    def forward(self, x: torch.Tensor, state: Any = None):
        # x: (B, T, I) -> output (B, T, D*H), state (L*D, B, H) or, for a cell with more than h (lstm), a tuple
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ZooError(f"backbone expects input of shape (B, T, {self.input_size}), got {tuple(x.shape)}")
        if isinstance(self.rnn, nn.LSTM) and x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # CPU autocast (bf16-mixed) sends a float32 input to a oneDNN LSTM kernel that a CPU without
            # bf16 instructions cannot build ("could not create a primitive descriptor"); an input
            # already in the autocast dtype runs on every CPU.
            x = x.to(torch.get_autocast_dtype("cpu"))
        return self.rnn(x, state)

    def last_features(self, state: Any) -> torch.Tensor:
        """The top layer's final hidden state per direction, concatenated: (B, D*H).

        For a bidirectional stack this is the forward direction after step T and the
        backward direction after reading the whole sequence back to step 1 — not the
        backward direction's state at step T, which has seen a single input.
        """
        h_n = self.cell.unpack_state(state)[0]  # (L*D, B, H)
        top = h_n[-self.config.num_directions :]  # (D, B, H)
        return torch.cat(list(top), dim=-1)  # (B, D*H)
