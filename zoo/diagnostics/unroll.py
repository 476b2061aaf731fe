"""The backbone run one step at a time with its own weights, so every h_t is a tensor we can differentiate.

The fused kernels (``nn.LSTM`` and friends, cuDNN) hide the hidden states between
steps: their output tensor is a copy, and with a last-step loss its gradient is zero
at every step but the last. To measure ‖∂L/∂h_t‖ through time we recompute the same
network as a plain loop over the cell equations (PyTorch's gate order and biases),
reading the very parameters of the model, and keep each h_t in the graph. A test
checks that this loop reproduces the fused model's outputs, loss and gradients.

Shapes: B batch, T time, I input, H hidden, L layers, D directions.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.models.rnn import ACTIVATIONS, RNNBackbone


def _cell_step(cell: str, act, x_proj: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None,
               w_hh: torch.Tensor, b_hh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One step of one direction of one layer; x_proj = x_t W_ih^T + b_ih, (B, G*H)."""
    h_proj = torch.addmm(b_hh, h, w_hh.t())  # (B, G*H)
    if cell == "rnn":
        return act(x_proj + h_proj), None
    if cell == "lstm":
        i, f, g, o = (x_proj + h_proj).chunk(4, dim=1)  # PyTorch's order: input, forget, cell, output
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
    x_r, x_z, x_n = x_proj.chunk(3, dim=1)  # GRU: reset, update, new
    h_r, h_z, h_n = h_proj.chunk(3, dim=1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h, None


def unrolled_forward(backbone: RNNBackbone, x: torch.Tensor) -> tuple[torch.Tensor, Any, list[list[list[torch.Tensor]]]]:
    """Run ``backbone`` on ``x`` (B, T, I) from a zero state, one step at a time.

    Returns what the backbone itself returns, the outputs (B, T, D*H) and the final state
    (h_n (L*D, B, H), or (h_n, c_n) for an LSTM), plus ``hidden[layer][direction][t]``,
    the (B, H) state after reading step t, in time order for both directions. No
    dropout is applied between layers: the probe measures the network, not a mask.
    """
    config = backbone.config
    rnn: nn.Module = backbone.rnn
    act = ACTIVATIONS[config.activation] if config.cell == "rnn" else None
    batch, steps, _ = x.shape
    layer_input = x
    hidden: list[list[list[torch.Tensor]]] = []
    h_n, c_n = [], []
    for layer in range(config.num_layers):
        outputs, per_direction = [], []
        for direction, suffix in enumerate(["", "_reverse"][: config.num_directions]):
            w_ih = getattr(rnn, f"weight_ih_l{layer}{suffix}")
            w_hh = getattr(rnn, f"weight_hh_l{layer}{suffix}")
            b_ih = getattr(rnn, f"bias_ih_l{layer}{suffix}")
            b_hh = getattr(rnn, f"bias_hh_l{layer}{suffix}")
            x_proj = torch.nn.functional.linear(layer_input, w_ih, b_ih).unbind(1)  # T of (B, G*H)
            h = x.new_zeros(batch, config.hidden_size)  # (B, H)
            c = x.new_zeros(batch, config.hidden_size) if config.cell == "lstm" else None
            order = range(steps - 1, -1, -1) if direction == 1 else range(steps)
            states: list[torch.Tensor] = [x.new_empty(0)] * steps
            for t in order:
                h, c = _cell_step(config.cell, act, x_proj[t], h, c, w_hh, b_hh)
                states[t] = h
            per_direction.append(states)
            outputs.append(torch.stack(states, dim=1))  # (B, T, H)
            h_n.append(h)
            if c is not None:
                c_n.append(c)
        hidden.append(per_direction)
        layer_input = torch.cat(outputs, dim=-1)  # (B, T, D*H)
    state: Any = torch.stack(h_n)  # (L*D, B, H)
    if config.cell == "lstm":
        state = (state, torch.stack(c_n))
    return layer_input, state, hidden
