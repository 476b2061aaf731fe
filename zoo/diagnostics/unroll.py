"""The backbone run one step at a time with its own weights, so every h_t is a tensor we can differentiate.

The fused kernels (``nn.LSTM`` and friends, cuDNN) hide the hidden states between
steps: their output tensor is a copy, and with a last-step loss its gradient is zero
at every step but the last. To measure ‖∂L/∂h_t‖ through time we recompute the same
network as a plain loop over the cell equations, reading the very parameters of the
model, and keep each h_t in the graph. The equations are the cell's own (``Cell.project``
for the input projection of all steps, ``Cell.step`` for one step; zoo.cells), so any
registered cell is unrolled alike. A test checks that this loop reproduces the fused
model's outputs, loss and gradients.

Shapes: B batch, T time, I input, H hidden, L layers, D directions.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.cells import layer_parameters
from zoo.models.rnn import RNNBackbone


def unrolled_forward(backbone: RNNBackbone, x: torch.Tensor) -> tuple[torch.Tensor, Any, list[list[list[torch.Tensor]]]]:
    """Run ``backbone`` on ``x`` (B, T, I) from a zero state, one step at a time.

    Returns what the backbone itself returns, the outputs (B, T, D*H) and the final state
    (h_n (L*D, B, H), or a tuple such as (h_n, c_n) for an LSTM), plus
    ``hidden[layer][direction][t]``, the (B, H) output after reading step t, in time
    order for both directions. No dropout is applied between layers: the probe measures
    the network, not a mask.
    """
    config, cell = backbone.config, backbone.cell
    rnn: nn.Module = backbone.rnn
    batch, steps, _ = x.shape
    layer_input = x
    hidden: list[list[list[torch.Tensor]]] = []
    finals: list[list[torch.Tensor]] = [[] for _ in cell.state]
    for layer in range(config.num_layers):
        outputs, per_direction = [], []
        for direction in range(config.num_directions):
            params = layer_parameters(rnn, layer, bool(direction))
            x_proj = cell.project(params, layer_input).unbind(1)  # T of (B, G*H)
            state = cell.zero_state(batch, config.hidden_size, x)  # each (B, H)
            order = range(steps - 1, -1, -1) if direction == 1 else range(steps)
            states: list[torch.Tensor] = [x.new_empty(0)] * steps
            for t in order:
                states[t], state = cell.step(params, x_proj[t], state, config)
            per_direction.append(states)
            outputs.append(torch.stack(states, dim=1))  # (B, T, H)
            for final, part in zip(finals, state):
                final.append(part)
        hidden.append(per_direction)
        layer_input = torch.cat(outputs, dim=-1)  # (B, T, D*H)
    return layer_input, cell.pack_state(tuple(torch.stack(final) for final in finals)), hidden  # state: (L*D, B, H)
