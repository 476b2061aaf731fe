"""The recurrent backbone: vanilla RNN (four activations), LSTM and GRU, any depth, bidirectional.

Three ways to run a layer, all with PyTorch's parameters under PyTorch's names:

- PyTorch's fused kernels (``nn.RNN``, ``nn.LSTM``, ``nn.GRU``; cuDNN on a GPU);
- ``LoopRNN`` for the vanilla cell: the input projection for all steps in one matmul,
  then a Python loop over time that only does h_t = act(xw_t + h_{t-1} W_hh^T), with a
  hand-written backward (``sequence_kernels.RNNSequence``). The fused kernel exists for
  tanh and relu only, so leaky_relu and elu always run this;
- the zoo's own LSTM and GRU kernels for the CPU (``zoo.models.sequence_kernels``),
  a loop with a hand-written backward that beats the fused CPU kernels where
  ``own_kernel_wins`` says. ``ZooLSTM`` and ``ZooGRU`` are ``nn.LSTM`` and ``nn.GRU``
  that take that path call by call.

Shapes: B batch, T time, I input size, H hidden size, L layers, D directions (1 or 2).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ZooError, check_choice, check_float, check_int
from zoo.init import INIT_SCHEMES, apply_init
from zoo.models.sequence_kernels import ELU_ALPHA, LEAKY_RELU_SLOPE, own_kernel_wins, own_kernels_enabled, run_stack

CELLS = ("rnn", "lstm", "gru")
NONLINEARITIES = ("tanh", "relu", "leaky_relu", "elu")
FUSED_NONLINEARITIES = ("tanh", "relu")
IMPLEMENTATIONS = ("auto", "fused", "loop")

ACTIVATIONS = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "leaky_relu": lambda x: F.leaky_relu(x, LEAKY_RELU_SLOPE),
    "elu": lambda x: F.elu(x, ELU_ALPHA),
}


@dataclass(frozen=True)
class RNNConfig:
    """Everything that defines a backbone and its initialization.

    ``nonlinearity`` is for the vanilla cell only (unset means tanh); giving one for
    lstm or gru is an error rather than silently ignored. ``implementation`` chooses
    between PyTorch's fused kernel and the zoo's loop: ``auto`` takes, for the vanilla
    cell, the fused kernel where one exists, and for lstm and gru, on the CPU, whichever
    ``own_kernel_wins`` says is faster for the call (fused on every other device).
    """

    cell: str = "lstm"
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    nonlinearity: str | None = None
    input_init: str = "default"
    recurrent_init: str = "default"
    identity_scale: float = 1.0
    init_range: float = 0.1
    bias_init: float | None = None
    forget_bias: float | None = None
    implementation: str = "auto"

    def __post_init__(self) -> None:
        check_choice("cell", self.cell, CELLS)
        if self.nonlinearity is not None:
            if self.cell != "rnn":
                raise ZooError(
                    f"nonlinearity {self.nonlinearity!r} was given for cell {self.cell!r}, "
                    "but only the vanilla cell 'rnn' takes one; leave nonlinearity unset for lstm and gru"
                )
            check_choice("nonlinearity", self.nonlinearity, NONLINEARITIES)
        check_int("hidden_size", self.hidden_size, low=1, high=1 << 16)
        check_int("num_layers", self.num_layers, low=1, high=64)
        if not isinstance(self.bidirectional, bool):
            raise ZooError(f"bidirectional must be true or false, got {self.bidirectional!r}")
        check_float("dropout", self.dropout, low=0.0, high=1.0, high_open=True)
        if self.dropout > 0 and self.num_layers == 1:
            raise ZooError(f"dropout {self.dropout} acts between layers, so it needs num_layers >= 2, got 1")
        check_choice("input_init", self.input_init, INIT_SCHEMES)
        check_choice("recurrent_init", self.recurrent_init, INIT_SCHEMES)
        check_float("identity_scale", self.identity_scale)
        check_float("init_range", self.init_range, low=0.0)
        if self.bias_init is not None:
            check_float("bias_init", self.bias_init)
        if self.forget_bias is not None:
            if self.cell != "lstm":
                raise ZooError(f"forget_bias applies to the lstm cell only, but cell is {self.cell!r}")
            check_float("forget_bias", self.forget_bias)
        check_choice("implementation", self.implementation, IMPLEMENTATIONS)
        if self.implementation == "fused" and self.cell == "rnn" and self.activation not in FUSED_NONLINEARITIES:
            raise ZooError(
                f"implementation 'fused' has no kernel for nonlinearity {self.activation!r}; "
                f"fused kernels exist for: {', '.join(FUSED_NONLINEARITIES)}; use 'auto' or 'loop'"
            )

    @property
    def activation(self) -> str | None:
        """The vanilla cell's nonlinearity with the default filled in; None for gated cells."""
        if self.cell != "rnn":
            return None
        return self.nonlinearity or "tanh"

    @property
    def uses_loop(self) -> bool:
        if self.cell != "rnn":
            return False
        return self.implementation == "loop" or self.activation not in FUSED_NONLINEARITIES

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def coerce(cls, value: RNNConfig | dict[str, Any]) -> RNNConfig:
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(cls.__dataclass_fields__))
            if unknown:
                raise ZooError(
                    f"unknown backbone setting(s) {', '.join(unknown)}; "
                    f"valid settings: {', '.join(cls.__dataclass_fields__)}"
                )
            return cls(**value)
        raise ZooError(f"backbone must be an RNNConfig or a dict, got {type(value).__name__}")


class LoopRNN(nn.Module):
    """A vanilla RNN with any activation, parameter for parameter the same as ``nn.RNN``.

    The names and shapes match ``nn.RNN`` (weight_ih_l0, weight_hh_l0, bias_ih_l0,
    bias_hh_l0, ..._reverse), so the init schemes, the diagnostics and a state dict
    work on either, and the two can be checked against each other.
    """

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


def _wants_own_kernel(module: nn.LSTM | nn.GRU, x: torch.Tensor, cell: str) -> bool:
    """Whether this call runs ``run_stack``: asked for ('loop'), or 'auto' where it is the faster on this input."""
    if module.implementation == "fused" or isinstance(x, nn.utils.rnn.PackedSequence) or x.dim() != 3:
        return False  # packed and unbatched inputs: PyTorch's kernels only
    if module.implementation == "loop":
        return True
    return (x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
            and x.dtype == module.weight_hh_l0.dtype and own_kernels_enabled()
            and not torch.is_autocast_enabled("cpu")
            and own_kernel_wins(cell, batch=x.shape[0], seq_len=x.shape[1], training=torch.is_grad_enabled()))


class _ChoosesKernel:
    """Makes an ``nn.LSTM``/``nn.GRU`` (batch first) run the zoo's own kernels where ``implementation`` asks.

    The module stays an ``nn.LSTM``/``nn.GRU``: the state dict, cuDNN and every type check are theirs.
    """

    cell: str

    def __init__(self, *args: Any, implementation: str = "auto", **kwargs: Any) -> None:
        super().__init__(*args, batch_first=True, **kwargs)
        self.implementation = implementation

    def forward(self, input: torch.Tensor, hx: Any = None):  # noqa: A002 (torch's name)
        if _wants_own_kernel(self, input, self.cell):
            return run_stack(self, input, hx)
        return super().forward(input, hx)


class ZooLSTM(_ChoosesKernel, nn.LSTM):
    cell = "lstm"


class ZooGRU(_ChoosesKernel, nn.GRU):
    cell = "gru"


class RNNBackbone(nn.Module):
    """A recurrent stack built from an ``RNNConfig``, initialized by its schemes.

    ``forward`` returns every step's top-layer output and the final state, as the torch
    modules do; ``last_features`` turns those into the vector a ``last``-step head reads.
    """

    def __init__(self, input_size: int, config: RNNConfig) -> None:
        super().__init__()
        check_int("input_size", input_size, low=1)
        self.config = config
        self.input_size = input_size
        kwargs = dict(
            input_size=input_size,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            bidirectional=config.bidirectional,
            dropout=config.dropout,
        )
        if config.uses_loop:
            self.rnn: nn.Module = LoopRNN(nonlinearity=config.activation, **kwargs)
        elif config.cell == "rnn":
            self.rnn = nn.RNN(nonlinearity=config.activation, batch_first=True, **kwargs)
        elif config.cell == "lstm":
            self.rnn = ZooLSTM(implementation=config.implementation, **kwargs)
        else:
            self.rnn = ZooGRU(implementation=config.implementation, **kwargs)
        apply_init(
            self.rnn,
            config.cell,
            input_init=config.input_init,
            recurrent_init=config.recurrent_init,
            identity_scale=config.identity_scale,
            init_range=config.init_range,
            bias_init=config.bias_init,
            forget_bias=config.forget_bias,
        )

    @property
    def output_size(self) -> int:
        return self.config.hidden_size * self.config.num_directions

    def forward(self, x: torch.Tensor, state: Any = None):
        # x: (B, T, I) -> output (B, T, D*H), state (L*D, B, H) or, for lstm, a pair of them
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
        h_n = state[0] if self.config.cell == "lstm" else state  # (L*D, B, H)
        top = h_n[-self.config.num_directions :]  # (D, B, H)
        return torch.cat(list(top), dim=-1)  # (B, D*H)
