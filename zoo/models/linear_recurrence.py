"""The elementwise linear recurrence h_t = a_t ⊙ h_{t-1} + b_t: a loop with a hand-written backward, a log-space scan.

Why: minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?", arXiv:2410.01201)
are this recurrence and nothing more, with a_t and b_t computed from x_t alone (zoo.cells.mingru,
zoo.cells.minlstm). Two ways to run it over T steps:

- the loop (``scan="sequential"``): one fused op a step into a buffer allocated once, and
  a backward that is the same recurrence run in reverse (``reverse_recurrence``),

      g_t = dL/dh_t (direct) + a_{t+1} ⊙ g_{t+1},   dL/db_t = g_t,   dL/da_t = g_t ⊙ h_{t-1},
      dL/dh_0 = a_1 ⊙ g_1,

  again one op a step, then whole-sequence products. Autograd through the same loop
  would record a graph node per step and op, and walk them one by one in the backward; here
  the per-step cost is one small kernel launch each way. ``LinearRecurrence`` is this for
  any a and b (the building block for another cell of this kind); ``MinRNNSequence`` is the
  cells' fast path, the same loop with their gates and projection folded in, because at
  sequential-MNIST shapes the whole-sequence elementwise passes, not the loop, are the cost
  (measured at B=128, T=784, H=128, one thread: minGRU's training step about 0.19x the fused
  LSTM's, minLSTM's 0.27x; autograd over gates + ``LinearRecurrence`` was 0.55x).
- ``log_space_scan`` (``scan="log_space"``): the paper's parallel form (its Appendix B, after
  Heinsen 2023), for positive b: with a*_t = Σ_{k≤t} log a_k,

      h_t = exp(a*_t + logcumsumexp_k≤t(log b_k − a*_k)) + exp(a*_t) ⊙ h_0,

  O(log T) depth in a handful of whole-sequence ops, plain autograd. It is for a GPU and
  long T, where T sequential launches would leave the device idle; on a CPU it makes several
  transcendental passes over (T, B, H) and is the slower (about 3.3x an LSTM step at the
  shapes above). The h_0 term is kept apart from the log-space sum, so h_0 may have any
  sign (the paper's code takes log g(h_0), which needs h_0 > 0 and changes what h_0 means).

The cumulative-product shortcut h_t = A_t (h_0 + Σ_k b_k / A_k), A_t = Π a_k, is not used:
A_t underflows within a few hundred steps of a < 1.

``resolve_scan`` turns the cells' ``scan`` option into one of the two: ``auto`` is the
loop on a CPU and the log-space scan on a GPU.

Shapes: T time, B batch, H hidden; every tensor is time-major, (T, B, H), so step t is one contiguous block.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from zoo.cells.base import Option, get_cell, stack_kwargs
from zoo.errors import ZooError, check_choice
from zoo.models.sequence_kernels import POOL, _Lease, run_stack

SCANS = ("auto", "sequential", "log_space")


def resolve_scan(scan: str, device: torch.device) -> str:
    """``sequential`` or ``log_space`` for a run on ``device``: ``auto`` is the loop on a CPU, the scan elsewhere."""
    scan = check_choice("scan", scan, SCANS)
    if scan == "auto":
        return "sequential" if device.type == "cpu" else "log_space"
    return scan


def reverse_recurrence(a: torch.Tensor, d_h: torch.Tensor | None, out: torch.Tensor | None = None, *,
                       last: torch.Tensor | None = None) -> torch.Tensor:
    """g_t = d_h_t + a_{t+1} ⊙ g_{t+1} from g_T = d_h_T down: dL/dh_t from its direct part d_h (T, B, H).

    d_h is copied first into ``out`` (contiguous, (T, B, H); new if None), then updated in
    place: a d_h that is a transposed view of a (B, T, H) gradient is read once in one pass,
    not step by step with a stride of T*H. ``last`` (B, H) is more direct gradient at step T
    (a final state returned on its own); with d_h None it is all of it, and every earlier
    step is g_t = a_{t+1} ⊙ g_{t+1}, one multiply a step and no copy of a mostly-zero d_h.
    """
    grad = a.new_empty(a.shape) if out is None else out
    if d_h is not None:
        grad.copy_(d_h)
        if last is not None:
            grad[-1] += last
    else:
        grad[-1] = last
    for a_next, g_next, g_t in zip(a.unbind(0)[:0:-1], grad.unbind(0)[:0:-1], grad.unbind(0)[-2::-1]):
        if d_h is not None:
            g_t.addcmul_(a_next, g_next)
        else:
            torch.mul(a_next, g_next, out=g_t)
    return grad


class LinearRecurrence(torch.autograd.Function):
    """h_t = a_t ⊙ h_{t-1} + b_t for t = 1..T from h_0: a loop forward, the reverse recurrence backward.

    ``apply(a (T, B, H), b (T, B, H), h0 (B, H)) -> h (T, B, H)``. Differentiable once (no double backward).
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        steps = a.shape[0]
        hs = b.new_empty((steps + 1, *h0.shape))  # h_{t-1} at [t], h_t at [t + 1]; hs[1:] is the output
        hs[0] = h0
        for a_t, b_t, previous, h in zip(a.unbind(0), b.unbind(0), hs.unbind(0), hs[1:].unbind(0)):
            torch.addcmul(b_t, a_t, previous, out=h)  # (B, H)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(a, hs)
        return hs[1:]

    @staticmethod
    @once_differentiable
    def backward(ctx, d_h: torch.Tensor | None):
        a, hs = ctx.saved_tensors
        if d_h is None:
            return None, None, None
        grad = reverse_recurrence(a, d_h)  # g_t = dL/dh_t through everything after t: dL/db_t itself
        d_a = grad * hs[:-1] if ctx.needs_input_grad[0] else None  # (T, B, H)
        d_h0 = a[0] * grad[0] if ctx.needs_input_grad[2] else None  # (B, H)
        return d_a, grad, d_h0


def linear_recurrence(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """h_t = a_t ⊙ h_{t-1} + b_t, (T, B, H) each and h0 (B, H) -> (T, B, H), by the loop (``LinearRecurrence``)."""
    return LinearRecurrence.apply(a, b, h0)


def log_space_scan(log_a: torch.Tensor, log_b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """The same recurrence from log a_t and log b_t (so b_t > 0), (T, B, H) each, and h0 (B, H): the parallel scan.

    Plain autograd. The logs come in rather than a and b because the cells compute them
    directly from the pre-activations (log σ(k) = −softplus(−k)), which stays finite where
    σ(k) itself rounds to 0 or 1.
    """
    a_star = log_a.cumsum(0)  # (T, B, H): log Π_{k<=t} a_k
    h = (a_star + (log_b - a_star).logcumsumexp(0)).exp()  # Σ_{k<=t} (Π_{k<j<=t} a_j) b_k
    return h + a_star.exp() * h0  # + (Π_{k<=t} a_k) h_0


class MinRNNSequence(torch.autograd.Function):
    """One direction of one minGRU or minLSTM layer on a CPU, input projection included, backward by hand.

    ``apply(x (T, B, I), h0 (B, H), weight (G*H, I), bias (G*H,), cell, activation) -> h (T, B, H), h_T (B, H)``;
    h_T is h's last step again as its own tensor (as the LSTM/GRU kernels return h_n), so that a loss
    reading the last step only sends no gradient for the others and the backward starts from h_T's.
    Both cells are h_t = a_t ⊙ h_{t-1} + (1 − a_t) ⊙ h~_t, h~ = g(k_h) ('linear': k_h), with
    a = σ(u) from the logit u of the coefficient:

    - minGRU (blocks z, h): a = 1 − z = σ(−k_z), u = −k_z;
    - minLSTM (blocks f, i, h): a = f' = f / (f + i) = σ(log f − log i), i' = i / (f + i) = 1 − a,
      u = softplus(−k_i) − softplus(−k_f), which stays finite where f and i both round to 0.

    Why a function of its own rather than autograd over ``LinearRecurrence``: at
    sequential-MNIST shapes a training step is memory-bound, and autograd over a = 1 − z,
    b = z h~, g as ``where`` and a chunked projection makes some thirty passes over (T, B, H)
    tensors, each into freshly allocated (page-faulting) memory; the loops over time are a
    tenth of the time. Here the intermediates live in pooled buffers (``sequence_kernels.POOL``),
    the projection's sign is folded into the matmul (−k_z comes out of it), g is one
    ``maximum`` (g(k) = max(σ(k), k + 1/2): σ(k) < k + 1/2 for k > 0 and σ(k) > k + 1/2 for
    k < 0), and the loop is one ``lerp`` a step; the backward is ``reverse_recurrence`` (one
    ``addcmul`` a step) and a few whole-sequence products:
        dL/du_t = g_t ⊙ (h_{t-1} − h~_t) a_t (1 − a_t),   dL/dk_h = g_t ⊙ (1 − a_t) g'(k_h),
        g'(k) = 1 (k >= 0), σ(k)(1 − σ(k)) (k < 0);
        minLSTM: dL/dk_f = dL/du σ(−k_f), dL/dk_i = −dL/du σ(−k_i).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, h0: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, cell: str,
                activation: str) -> torch.Tensor:
        steps, batch, _ = x.shape
        hidden = h0.shape[1]
        x_flat = x.reshape(-1, x.shape[2])  # (T*B, I)
        shape = (steps, batch, hidden)

        def project(block: int, sign: float, out: torch.Tensor) -> torch.Tensor:  # sign (x W_block^T + b_block)
            rows = slice(block * hidden, (block + 1) * hidden)
            torch.addmm(bias[rows], x_flat, weight[rows].t(), beta=sign, alpha=sign, out=out.view(-1, hidden))
            return out

        a = POOL.take(shape, x)  # the recurrence's coefficient
        gate_logits = ()  # minLSTM's -k_f, -k_i, kept for the backward's σ(-k_f), σ(-k_i)
        if cell == "mingru":
            project(0, -1.0, a).sigmoid_()  # a = σ(-k_z)
        else:
            neg_f, neg_i = project(0, -1.0, POOL.take(shape, x)), project(1, -1.0, POOL.take(shape, x))
            torch.ops.aten.softplus.out(neg_i, 1, 20, out=a)
            softplus_f = torch.ops.aten.softplus.out(neg_f, 1, 20, out=POOL.take(shape, x))  # pooled: no page faults
            a.sub_(softplus_f).sigmoid_()  # σ(softplus(-k_i) - softplus(-k_f))
            POOL.give_back(softplus_f)
            gate_logits = (neg_f, neg_i)
        k = project(weight.shape[0] // hidden - 1, 1.0, POOL.take(shape, x))  # h~'s pre-activation
        positive = None
        if activation == "g":
            positive = POOL.take(shape, x.new_empty(0, dtype=torch.bool))
            torch.ge(k, 0, out=positive)  # where g'(k) = 1
            candidate = POOL.take(shape, x)
            torch.sigmoid(k, out=candidate)
            torch.maximum(candidate, k.add_(0.5), out=candidate)  # g(k) = max(σ(k), k + 1/2)
            POOL.give_back(k)
        else:
            candidate = k
        hs = x.new_empty(steps + 1, batch, hidden)  # h_{t-1} at [t], h_t at [t + 1]: the output
        hs[0] = h0
        for a_t, c_t, previous, h in zip(a.unbind(0), candidate.unbind(0), hs.unbind(0), hs[1:].unbind(0)):
            torch.lerp(c_t, previous, a_t, out=h)  # h_t = a_t h_{t-1} + (1 - a_t) h~_t
        ctx.set_materialize_grads(False)
        pooled = (a, candidate, *gate_logits) + ((positive,) if positive is not None else ())
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(x, weight)
            ctx.buffers = (a, candidate, positive, gate_logits, hs)
            ctx.lease = _Lease(*pooled)
        else:
            POOL.give_back(*pooled)
        return hs[1:], hs[steps].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, d_h: torch.Tensor | None, d_h_last: torch.Tensor | None):
        if d_h is None and d_h_last is None:
            return None, None, None, None, None, None
        x, weight = ctx.saved_tensors
        a, candidate, positive, gate_logits, hs = ctx.buffers
        steps, batch, hidden = a.shape
        if steps == 0:
            return None, d_h_last, None, None, None, None
        grad = reverse_recurrence(a, d_h, out=POOL.take(a.shape, a), last=d_h_last)  # dL/dh_t, every step
        d_h0 = a[0] * grad[0] if ctx.needs_input_grad[1] else None
        blocks = weight.shape[0] // hidden
        d_pre = POOL.take((blocks, steps, batch, hidden), a)  # the pre-activations' gradients, block by block
        d_u, d_k = d_pre[0], d_pre[-1]
        torch.sub(hs[:-1], candidate, out=d_u).mul_(grad)  # dL/da
        torch.ops.aten.sigmoid_backward.grad_input(d_u, a, grad_input=d_u)  # dL/du
        torch.addcmul(grad, grad, a, value=-1, out=d_k)  # dL/dh~ = g (1 - a)
        if positive is not None:
            through_sigmoid = torch.ops.aten.sigmoid_backward.grad_input(d_k, candidate, grad_input=grad)
            torch.where(positive, d_k, through_sigmoid, out=d_k)  # where k < 0, h~ = σ(k)
        if not gate_logits:
            d_u.neg_()  # u = -k_z
        else:
            neg_f, neg_i = gate_logits
            torch.mul(d_u, torch.sigmoid(neg_i, out=grad), out=d_pre[1]).neg_()  # dL/dk_i = -dL/du σ(-k_i)
            d_u.mul_(torch.sigmoid(neg_f, out=grad))  # dL/dk_f = dL/du σ(-k_f)
        flat = d_pre.view(blocks, -1, hidden)  # (G, T*B, H)
        x_flat = x.reshape(-1, x.shape[2])  # (T*B, I)
        d_weight = torch.cat([block.t() @ x_flat for block in flat]) if ctx.needs_input_grad[2] else None  # (G*H, I)
        d_bias = flat.sum(1).view(-1) if ctx.needs_input_grad[3] else None  # (G*H,)
        d_x = None
        if ctx.needs_input_grad[0]:
            d_x = flat[0] @ weight[:hidden]
            for block in range(1, blocks):
                d_x.addmm_(flat[block], weight[block * hidden : (block + 1) * hidden])
            d_x = d_x.view_as(x)
        POOL.give_back(grad, d_pre)
        return d_x, d_h0, d_weight, d_bias, None, None


def log_space_layer(u: torch.Tensor, k: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """h_t = σ(u_t) h_{t-1} + (1 − σ(u_t)) g(k_t), (T, B, H) each and h0 (B, H) -> (T, B, H): the paper's scan.

    From log a = −softplus(−u) and log b = log(1 − a) + log g(k) = −softplus(u) + log g(k),
    which are finite for any u and k (b > 0 needs g: activation 'linear' has the loop only).
    """
    return log_space_scan(-F.softplus(-u), log_g(k) - F.softplus(u), h0)


# ----------------------------------------------------------------------------- the activation g of minGRU/minLSTM
def g(x: torch.Tensor) -> torch.Tensor:
    """The paper's g: x + 1/2 for x >= 0, σ(x) below; continuous, positive, increasing (its Appendix B.3)."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: torch.Tensor) -> torch.Tensor:
    """log g(x) without forming g where it is tiny: log(x + 1/2) for x >= 0, −softplus(−x) below."""
    return torch.where(x >= 0, (F.relu(x) + 0.5).log(), -F.softplus(-x))


# ----------------------------------------------------------------------------- the layer stack both cells build
class InputGatedStack(nn.Module):
    """A stack of layers whose gates read x_t only: per layer and direction ``weight_ih`` (G*H, in) and ``bias_ih``.

    There is no recurrent weight at all (the recurrence is the elementwise a_t ⊙ h_{t-1}),
    so the parameters are ``weight_ih_l<k>[_reverse]`` and ``bias_ih_l<k>[_reverse]`` only.
    The layers, directions, dropout between layers and the state (L*D, B, H) are
    ``run_stack``'s; one direction of one layer is the cell's ``Cell.sequence``, which reads
    ``scan`` and ``activation`` from here. A subclass names its ``cell`` and ``gates`` (G).
    """

    cell: str
    gates: int

    @classmethod
    def build(cls, input_size: int, config: Any) -> InputGatedStack:
        """The stack a config asks for: a ``Cell.build`` for minGRU and minLSTM."""
        scan, activation = scan_and_activation(config)
        return cls(**stack_kwargs(input_size, config), scan=scan, activation=activation)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0, *, scan: str = "auto", activation: str = "g") -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.dropout = bidirectional, dropout
        self.scan = check_choice("scan", scan, SCANS)
        self.activation = check_choice("activation", activation, ACTIVATIONS)
        directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for suffix in ["", "_reverse"][:directions]:
                self.register_parameter(f"weight_ih_l{layer}{suffix}",
                                        nn.Parameter(torch.empty(self.gates * hidden_size, layer_input)))
                self.register_parameter(f"bias_ih_l{layer}{suffix}",
                                        nn.Parameter(torch.empty(self.gates * hidden_size)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.Linear``'s default, U(±1/sqrt(fan_in)) for weight and bias: the paper's gates are ``nn.Linear``s."""
        for name, param in self.named_parameters():
            fan_in = getattr(self, name.replace("bias_ih", "weight_ih")).shape[1]
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(param, -bound, bound)

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"bidirectional={self.bidirectional}, dropout={self.dropout}, scan={self.scan!r}, "
                f"activation={self.activation!r}")

    def forward(self, x: torch.Tensor, state: Any = None):
        # x: (B, T, I); state: (L*D, B, H) or None (zeros) -> (B, T, D*H), (L*D, B, H)
        layers = self.num_layers * (2 if self.bidirectional else 1)
        if x.dim() != 3 or x.shape[2] != self.input_size:
            raise ZooError(f"{self.cell} expects input of shape (B, T, {self.input_size}), got {tuple(x.shape)}")
        if state is not None and (not isinstance(state, torch.Tensor)
                                  or tuple(state.shape) != (layers, x.shape[0], self.hidden_size)):
            shape = tuple(state.shape) if isinstance(state, torch.Tensor) else type(state).__name__
            raise ZooError(f"{self.cell} expects a state of shape (L*D, B, H) = "
                           f"{(layers, x.shape[0], self.hidden_size)}, got {shape}")
        return run_stack(self, x, state)


ACTIVATIONS = ("g", "linear")  # of the candidate h~: the paper's log-space g, or its first form, no activation



# The options minGRU and minLSTM share (their Cell.options), and the build and check both cells read them through.
SCAN_OPTION = Option("auto", lambda setting, value: check_choice(setting, value, SCANS),
                     "how the recurrence runs: 'sequential' (a loop with its own backward), 'log_space' (the "
                     "paper's parallel scan), 'auto' (the loop on a CPU, the scan on a GPU)")
ACTIVATION_OPTION = Option("g", lambda setting, value: check_choice(setting, value, ACTIVATIONS),
                           "of the candidate h~: 'g' (the paper's log-space form, h > 0) or 'linear' (none; "
                           "sequential only)")


def scan_and_activation(config: Any) -> tuple[str, str]:
    """The config's ``scan`` and ``activation`` options, their cell's defaults filled in."""
    cell = get_cell(config.cell)
    return cell.option(config, "scan"), cell.option(config, "activation")


def validate_min_rnn(config: Any) -> None:
    """A Cell.validate for minGRU and minLSTM."""
    check_scan_fits_activation(config.cell, *scan_and_activation(config))


def check_scan_fits_activation(cell: str, scan: str, activation: str) -> None:
    """The log-space scan takes logs of h~, so it needs the positive candidate g; the linear one can be negative."""
    if scan == "log_space" and activation == "linear":
        raise ZooError(f"cell_options.scan 'log_space' needs a positive candidate h~ (activation 'g'), but "
                       f"cell {cell!r} has activation 'linear'; use scan 'sequential' or 'auto', or activation 'g'")


def candidate(k: torch.Tensor, activation: str) -> torch.Tensor:
    """h~_t from its pre-activation: g(k) (positive, so the log-space scan applies) or k itself ('linear')."""
    return g(k) if activation == "g" else k


def layer_scan(module: InputGatedStack, x: torch.Tensor) -> str:
    """The scan that runs this call: ``module.scan`` resolved for x's device; 'linear' has the loop only."""
    if module.activation == "linear":
        return "sequential"  # validated: a 'linear' cell never asks for log_space explicitly
    return resolve_scan(module.scan, x.device)
