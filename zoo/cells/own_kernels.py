"""What makes an ``nn.LSTM``/``nn.GRU`` take the zoo's own CPU kernels (``zoo.models.sequence_kernels``) call by call.

Shared by the lstm and gru cells' layer classes (``ZooLSTM`` in ``zoo.cells.lstm``,
``ZooGRU`` in ``zoo.cells.gru``). It imports only the kernels, so it sits below
the cells' files and above ``zoo.cells.base``; ``run_stack`` is looked up here at
call time (a test that spies on it patches ``zoo.cells.own_kernels.run_stack``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.models.sequence_kernels import own_kernel_wins, own_kernels_enabled, run_stack


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
