"""IndRNN, the independently recurrent network (Li, Li, Cook, Zhu & Gao, "Independently Recurrent Neural Network
(IndRNN): Building A Longer and Deeper RNN", CVPR 2018, eq. 2):

    h_t = σ(W x_t + u ⊙ h_{t-1} + b),   σ = relu (the paper's) or tanh,

u a vector (H,) per layer and direction: each unit has one recurrent weight, its own
h_{t-1}, and nothing of the others. The gradient of h_T with respect to h_t is then,
per unit, u_n^(T-t) times the product of σ' (eq. 4), so the paper keeps it bounded
over T steps by constraining |u_n| <= γ^(1/T) for relu (Sec. 3.1; γ = 2 in its adding
problem: "|u_n| ∈ (0, 2^(1/T))"), which the authors enforce by clipping u to
[-γ^(1/T), γ^(1/T)] at every training step (their code clips before each forward,
which is the same as after each optimizer step).

Settings (``RNNConfig.nonlinearity`` and ``cell_options``; see ``INDRNN.options``):
``recurrent_max_len`` T (None: no bound, the README's advice for short sequences),
``recurrent_max_gain`` γ, ``last_layer_min_gain`` ρ (the authors' long-memory init of
the last layer, u ~ U(ρ^(1/T), γ^(1/T)) with ρ = 1/γ in their code: a lower bound at
initialization, not a constraint), ``residual`` and ``batch_norm``. ``constrain_()``
of the layer module clamps u in place; the training loop has to call it after every
optimizer step.

Initialization (``reset_parameters``, what init 'default' means here), after the authors'
code: u ~ U(0, γ^(1/T)), or U(0, 1) without a bound; the last layer's u ~ U(ρ^(1/T), γ^(1/T))
where ``last_layer_min_gain`` is set; biases 0 (a positive bias on a relu unit with u near 1
adds up over the steps); input weights PyTorch's U(-1/sqrt(H), 1/sqrt(H)).

The deep forms (Sec. 4.1, Fig. 1), both built into each layer's input projection and
output so that the unrolled diagnostics (``Cell.project``/``Cell.step``) see them:

- ``batch_norm``: frame-wise batch norm (statistics over batch and time, per feature) of
  every layer's input from layer 1 on, that is after every layer but the last, as the
  authors' sMNIST runs place it ("batch normalization is inserted after each layer",
  Sec. 5.2; their 'bn_after'). Layer k's projection reads W BN(x) + b. The last layer
  has none after it: its h is the final state a head reads and a next batch resumes from.
- ``residual``: the pre-activation residual IndRNN of Fig. 1(b), one layer per residual
  unit: layer k (0 < k < L-1) outputs y_t = x_t + h_t (with BN inside the branch when
  ``batch_norm`` is on: h = IndRNN(W BN(x))). Layer 0 maps the input to H and the last
  layer is plain, the one a head reads, as in the authors' ResidualNet (fc0, blocks,
  IndRNN_last). The paper's block is two IndRNN layers deep; one deep here, because a
  layer's step sees its own input only. It needs num_layers >= 3 and one direction.

The tensors these read are parameters of the layer module, by the zoo's naming convention:
``weight_ih_l{k}`` (H, I), ``bias_ih_l{k}`` (H,), ``weight_hh_l{k}`` = u (H,), and, where
on, ``bn_weight_l{k}``, ``bn_bias_l{k}`` (I,) and ``bn_mean_l{k}``, ``bn_var_l{k}`` (I,), and
``residual_gain_l{k}`` (): a fixed 1, the skip's gain, whose presence marks a residual layer.
The batch-norm statistics and the gain are parameters that take no gradient (not buffers):
``layer_parameters``, through which the unrolled step reads a layer, lists parameters only.

Fast path: ``IndRNNSequence``, one direction of one layer with a hand-written backward:
one matmul for W x of all steps, then per step two elementwise (B, H) ops forward and
three backward, and the weight gradients as whole-sequence matmuls after the loop. At
sMNIST shapes (B 128, T 784, H 128, one thread) a training step of one layer takes about
a tenth of ``nn.LSTM``'s.

Shapes: B batch, T time, I input size, H hidden size, L layers, D directions.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from zoo.cells.base import (Cell, Option, Params, State, diagonal_spectrum, register_cell, split_name,
                            stack_kwargs)
from zoo.errors import ZooError, check_choice, check_float, check_int
from zoo.models.sequence_kernels import POOL, _weight_grad, run_stack

if TYPE_CHECKING:
    from zoo.models.rnn import RNNConfig

NONLINEARITIES = ("relu", "tanh")
BN_EPS = 1e-5  # nn.BatchNorm1d's
BN_MOMENTUM = 0.1


# ----------------------------------------------------------------------------- the fast path
class IndRNNSequence(torch.autograd.Function):
    """One direction of one IndRNN layer over T steps, h_t = act(x_t W^T + b + u ⊙ h_{t-1}).

    The recurrence is elementwise, so each step is two (B, H) ops (a multiply-add and the
    activation, in place) and its backward three: d pre_t = (g_t + u ⊙ d pre_{t+1}) ⊙ act'_t,
    where g_t is the gradient arriving at h_t from outside and act' comes from the saved
    outputs for all steps at once (relu: h > 0; tanh: 1 - h^2). W, b and u's gradients are
    whole-sequence reductions after the loop.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, h0: torch.Tensor, w_ih: torch.Tensor, bias: torch.Tensor, u: torch.Tensor,
                nonlinearity: str):
        # x: (T, B, I); h0: (B, H); w_ih: (H, I); bias: (H,); u: (H,)
        steps, batch, _ = x.shape
        hidden = u.shape[0]
        hs = x.new_empty(steps + 1, batch, hidden)  # h_{t-1} at [t], h_t at [t + 1]: the output, so not pooled
        hs[0] = h0
        torch.addmm(bias, x.reshape(-1, x.shape[2]), w_ih.t(), out=hs[1:].view(-1, hidden))  # every step's W x + b
        activate = torch.relu_ if nonlinearity == "relu" else torch.tanh_
        for previous, h in zip(hs.unbind(0), hs[1:].unbind(0)):
            activate(h.addcmul_(u, previous))  # (B, H)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, w_ih, u)
        ctx.hs, ctx.nonlinearity = hs, nonlinearity
        return hs[1:], hs[steps].clone()  # (T, B, H), (B, H)

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, d_h_n):
        x, w_ih, u = ctx.saved_tensors
        hs = ctx.hs
        steps, batch, hidden = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
        out = hs[1:]
        derivative = POOL.take((steps, batch, hidden), out)  # act'(pre_t), every step at once
        if ctx.nonlinearity == "relu":
            torch.gt(out, 0, out=derivative)  # bool written as 0/1 in out's dtype
        else:
            torch.addcmul(torch.ones((), dtype=out.dtype), out, out, value=-1, out=derivative)
        d_pre = POOL.take((steps, batch, hidden), out)  # gradient of the pre-activations
        incoming = POOL.take((batch, hidden), out)  # g_t + u ⊙ d pre_{t+1}: the gradient at h_t
        if d_h_n is not None:
            incoming.copy_(d_h_n)
        else:
            incoming.zero_()
        outs = d_out.unbind(0) if d_out is not None else None
        factors, pres = derivative.unbind(0), d_pre.unbind(0)
        for t in range(steps - 1, -1, -1):
            if outs is not None:
                incoming.add_(outs[t])
            torch.mul(incoming, factors[t], out=pres[t])
            torch.mul(pres[t], u, out=incoming)  # the part of dh_{t-1} that flows through the recurrence
        d_h0 = incoming.clone()
        flat, x_flat = d_pre.view(-1, hidden), x.reshape(-1, x.shape[2])  # (T*B, H), (T*B, I)
        d_x = (flat @ w_ih).view_as(x) if ctx.needs_input_grad[0] else None
        d_w_ih = _weight_grad(flat, x_flat)  # (H, I)
        d_bias = flat.sum(0)
        # sum over steps and batch of d pre_t ⊙ h_{t-1}, into act's spent buffer (einsum: 50x as long)
        d_u = torch.mul(d_pre, hs[:-1], out=derivative).view(-1, hidden).sum(0)
        POOL.give_back(derivative, d_pre, incoming)
        return d_x, d_h0, d_w_ih, d_bias, d_u, None


# ----------------------------------------------------------------------------- the layer stack
def recurrent_bound(max_len: int | None, max_gain: float) -> float | None:
    """γ^(1/T): the largest |u| for a gradient that grows at most γ-fold over T steps (the paper); None without T."""
    return None if max_len is None else max_gain ** (1.0 / max_len)


class IndRNNLayers(nn.Module):
    """A stack of IndRNN layers, all directions, run by ``run_stack`` with ``IndRNNSequence`` for each layer.

    ``constrain_()`` clamps every u into [-γ^(1/T), γ^(1/T)]: call it after each optimizer step.
    """

    cell = "indrnn"  # the zoo.cells cell whose parameters it carries (run_stack reads it)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0, nonlinearity: str = "relu", recurrent_max_len: int | None = None,
                 recurrent_max_gain: float = 2.0, last_layer_min_gain: float | None = None, residual: bool = False,
                 batch_norm: bool = False) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.dropout = bidirectional, dropout
        self.nonlinearity = check_choice("nonlinearity", nonlinearity, NONLINEARITIES)
        check_bounds(recurrent_max_len, recurrent_max_gain, last_layer_min_gain)
        check_depth(residual, num_layers, bidirectional)
        self.recurrent_max_len, self.recurrent_max_gain = recurrent_max_len, recurrent_max_gain
        self.last_layer_min_gain, self.residual, self.batch_norm = last_layer_min_gain, residual, batch_norm
        self.bound = recurrent_bound(recurrent_max_len, recurrent_max_gain)
        directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for suffix in ["", "_reverse"][:directions]:
                shapes = {"weight_ih": (hidden_size, layer_input), "bias_ih": (hidden_size,),
                          "weight_hh": (hidden_size,)}  # weight_hh is u, elementwise: (H,)
                if batch_norm and layer > 0:
                    shapes.update(bn_weight=(layer_input,), bn_bias=(layer_input,))
                for base, shape in shapes.items():
                    self.register_parameter(f"{base}_l{layer}{suffix}", nn.Parameter(torch.empty(shape)))
                fixed = {}  # no gradient: statistics and the skip's gain (see the module docstring for why parameters)
                if batch_norm and layer > 0:
                    fixed.update(bn_mean=(layer_input,), bn_var=(layer_input,))
                if residual and 0 < layer < num_layers - 1:
                    fixed.update(residual_gain=())
                for base, shape in fixed.items():
                    self.register_parameter(f"{base}_l{layer}{suffix}",
                                            nn.Parameter(torch.empty(shape), requires_grad=False))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The authors' init for u and the biases, PyTorch's for the input weights (module docstring)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        u_high = 1.0 if self.bound is None else self.bound
        last = f"_l{self.num_layers - 1}"
        with torch.no_grad():
            for name, param in self.named_parameters():
                base = split_name(name)[0]
                if base == "weight_ih":
                    nn.init.uniform_(param, -bound, bound)
                elif base == "weight_hh":
                    on_last = name.endswith(last) or name.endswith(f"{last}_reverse")
                    low = 0.0
                    if on_last and self.last_layer_min_gain is not None:
                        low = self.last_layer_min_gain ** (1.0 / self.recurrent_max_len)
                    nn.init.uniform_(param, low, u_high)
                elif base in ("bn_weight", "bn_var", "residual_gain"):
                    param.fill_(1.0)
                else:  # bias_ih, bn_bias, bn_mean
                    param.zero_()

    @torch.no_grad()
    def constrain_(self) -> None:
        """Clamp every u into [-γ^(1/T), γ^(1/T)] in place (the paper's constraint); nothing without a bound."""
        if self.bound is None:
            return
        for name, param in self.named_parameters():
            if name.startswith("weight_hh_l"):
                param.clamp_(-self.bound, self.bound)

    def max_recurrent_gain(self) -> float:
        """max |u| over every layer and direction: what to watch instead of a spectral radius."""
        return max(float(p.detach().abs().max()) for n, p in self.named_parameters() if n.startswith("weight_hh_l"))

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None):
        # x: (B, T, I); h0: (L*D, B, H) -> (B, T, D*H), (L*D, B, H)
        if x.dim() != 3 or x.shape[2] != self.input_size:
            raise ZooError(f"IndRNN expects input of shape (B, T, {self.input_size}), got {tuple(x.shape)}")
        expected = ((2 if self.bidirectional else 1) * self.num_layers, x.shape[0], self.hidden_size)
        if h0 is not None and tuple(h0.shape) != expected:
            raise ZooError(f"IndRNN expects an initial state of shape {expected}, got {tuple(h0.shape)}")
        return run_stack(self, x, h0)


# ----------------------------------------------------------------------------- the equations, one step at a time
def _normalize(params: Params, x: torch.Tensor) -> torch.Tensor:
    """Batch norm of a layer's input by its running statistics (the network in eval mode), (..., I) -> (..., I)."""
    scale = params["bn_weight"] * torch.rsqrt(params["bn_var"] + BN_EPS)
    return (x - params["bn_mean"]) * scale + params["bn_bias"]


def _project(params: Params, x: torch.Tensor) -> torch.Tensor:
    # x: (B, T, I) -> (B, T, H) = W BN(x) + b; a residual layer appends x itself (the skip): (B, T, H + I)
    normed = _normalize(params, x) if "bn_weight" in params else x
    projected = F.linear(normed, params["weight_ih"], params["bias_ih"])
    return torch.cat([projected, x], dim=-1) if "residual_gain" in params else projected


def _step(params: Params, x_proj: torch.Tensor, state: State, config: RNNConfig) -> tuple[torch.Tensor, State]:
    # x_proj: (B, H) = W BN(x_t) + b, or (B, H + I) with the skip x_t; state: (h_{t-1},), (B, H)
    u = params["weight_hh"]
    skip = None
    if "residual_gain" in params:
        x_proj, skip = x_proj.split([u.shape[0], x_proj.shape[1] - u.shape[0]], dim=1)
    pre = x_proj + u * state[0]
    h = torch.relu(pre) if config.activation == "relu" else torch.tanh(pre)
    out = h if skip is None else h + params["residual_gain"] * skip  # y_t = x_t + h_t on a residual layer
    return out, (h,)


def _sequence(module: nn.Module, params: Params, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
    # x: (T, B, I) -> (T, B, H), ((B, H),); batch norm by the batch's statistics while training, as nn.BatchNorm1d
    normed = x
    if "bn_weight" in params:
        normed = F.batch_norm(x.reshape(-1, x.shape[2]), params["bn_mean"], params["bn_var"], params["bn_weight"],
                              params["bn_bias"], training=module.training, momentum=BN_MOMENTUM,
                              eps=BN_EPS).view_as(x)
    out, h = IndRNNSequence.apply(normed, state[0], params["weight_ih"], params["bias_ih"], params["weight_hh"],
                                  module.nonlinearity)
    if "residual_gain" in params:
        out = out + params["residual_gain"] * x
    return out, (h,)


# ----------------------------------------------------------------------------- settings
def _check_nonlinearity(setting: str, value: Any) -> str:
    return check_choice(setting, value, NONLINEARITIES)


def _check_bool(setting: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ZooError(f"{setting} must be true or false, got {value!r}")
    return value


def check_bounds(max_len: Any, max_gain: Any, min_gain: Any) -> None:
    """The constraint can hold: T >= 1, γ > 0, and ρ in (0, γ] with a T to take its root by."""
    if max_len is not None:
        check_int("cell_options.recurrent_max_len", max_len, low=1)
    if not check_float("cell_options.recurrent_max_gain", max_gain, low=0.0) > 0:
        raise ZooError(f"cell_options.recurrent_max_gain must be a number > 0 (|u| <= gain^(1/T)), got {max_gain!r}")
    if min_gain is None:
        return
    if not check_float("cell_options.last_layer_min_gain", min_gain, low=0.0) > 0:
        raise ZooError(f"cell_options.last_layer_min_gain must be a number > 0, got {min_gain!r}")
    if max_len is None:
        raise ZooError(f"cell_options.last_layer_min_gain {min_gain} initializes u in [gain^(1/T), ...] and needs "
                       "cell_options.recurrent_max_len (T); set it, or leave last_layer_min_gain unset")
    if min_gain > max_gain:
        raise ZooError(f"cell_options.last_layer_min_gain {min_gain} is above recurrent_max_gain {max_gain}: the "
                       f"last layer's u would start in [{min_gain ** (1 / max_len):.6g}, "
                       f"{max_gain ** (1 / max_len):.6g}], an empty range; give a lower bound <= {max_gain}")


def check_depth(residual: bool, num_layers: int, bidirectional: bool) -> None:
    """A residual stack has a plain first and last layer and at least one residual layer between, in one direction."""
    if not residual:
        return
    if num_layers < 3:
        raise ZooError(f"cell_options.residual needs num_layers >= 3 (a plain first layer, residual layers, a plain "
                       f"last layer), got num_layers {num_layers}")
    if bidirectional:
        raise ZooError("cell_options.residual is the paper's one-direction residual IndRNN: it cannot be "
                       "bidirectional; set bidirectional false or residual false")


def _options(config: RNNConfig) -> dict[str, Any]:
    cell = INDRNN
    return {name: cell.option(config, name) for name in
            ("recurrent_max_len", "recurrent_max_gain", "last_layer_min_gain", "residual", "batch_norm")}


def _validate(config: RNNConfig) -> None:
    options = _options(config)
    check_bounds(options["recurrent_max_len"], options["recurrent_max_gain"], options["last_layer_min_gain"])
    check_depth(options["residual"], config.num_layers, config.bidirectional)


def _build(input_size: int, config: RNNConfig) -> nn.Module:
    return IndRNNLayers(nonlinearity=config.activation, **_options(config), **stack_kwargs(input_size, config))


def _spectra(module: nn.Module) -> dict[str, dict[str, float]]:
    """diag(u) per layer and direction: its radius and largest singular value are both max |u|."""
    return {name.removeprefix("weight_hh_"): diagonal_spectrum(u) for name, u in module.named_parameters()
            if name.startswith("weight_hh_l")}


INDRNN = Cell(
    name="indrnn",
    summary="the independently recurrent network",
    gates=("",),
    state=("h",),
    recurrent_matrix=False,
    recurrence="its recurrent weights weight_hh are elementwise gains u, a diagonal recurrence",
    spectra=_spectra,
    options={
        "nonlinearity": Option("relu", _check_nonlinearity, "relu (the paper's) or tanh"),
        "recurrent_max_len": Option(None, lambda s, v: check_int(s, v, low=1),
                                    "T of the constraint |u| <= gain^(1/T), the task's sequence length; "
                                    "None: u unconstrained"),
        "recurrent_max_gain": Option(2.0, lambda s, v: check_float(s, v, low=0.0),
                                     "the constraint's gain γ, > 0: |u| <= γ^(1/T) (the paper's adding problem: 2)"),
        "last_layer_min_gain": Option(None, lambda s, v: check_float(s, v, low=0.0),
                                      "ρ: the last layer's u starts in [ρ^(1/T), γ^(1/T)] for long memory "
                                      "(the authors: 1/γ); None: [0, γ^(1/T)] like the others"),
        "residual": Option(False, _check_bool, "the residual IndRNN: layers 1..L-2 output x + h"),
        "batch_norm": Option(False, _check_bool, "frame-wise batch norm after every layer but the last"),
    },
    implementations=("auto",),
    validate=_validate,
    build=_build,
    project=_project,
    step=_step,
    sequence=_sequence,
)

register_cell(INDRNN)
