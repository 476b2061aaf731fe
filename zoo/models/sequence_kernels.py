"""LSTM, GRU and vanilla RNN layers over a whole sequence with a backward written by hand: the zoo's own CPU path.

Why it exists: PyTorch's fused CPU kernels for ``nn.LSTM`` and ``nn.GRU`` reach about a
third of the attainable matmul rate at sequential-MNIST shapes (scripts/throughput.py
measures it), and autograd over a Python loop is slower still, because every step records
a dozen graph nodes and the backward then walks them one at a time.

What this path does instead: inside the loop over time it keeps only what the recurrence
makes sequential, one (B, H) @ (H, G*H) matmul and a few elementwise ops a step, writing
into buffers allocated once. Everything else moves out of the loop into whole-sequence
operations that use every core: the input projection before it (one matmul for all
steps), and in the backward the gate derivatives, computed for all steps at once from
the saved activations, the weight gradients as one (G*H, T*B) @ (T*B, ·) matmul each,
and the bias sums. The backward loop is then two (vanilla) to six (GRU) ops a step.

The vanilla RNN has PyTorch's fused kernel for tanh and relu only; ``LoopRNN`` (any
activation) always runs ``RNNSequence``, and ``auto`` chooses for the LSTM and GRU.
Which function runs a layer is its cell's (``zoo.cells``: ``Cell.sequence``), and
``run_stack`` runs any cell's stack by it.

The functions agree with the fused kernels to about 1e-6 relative in outputs and
gradients (tests/test_sequence_kernels.py holds them to 1e-4). They are differentiable
once: no double backward.

Shapes: T time, B batch, H hidden, G gates (4 for the LSTM, 3 for the GRU, 1 vanilla). Every buffer
is time-major, (T, B, ...), so step t is one contiguous block.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.autograd.function import once_differentiable

from zoo.errors import ZooError
from zoo.runtime import env_flag

ENV_OWN_KERNELS = "ZOO_OWN_KERNELS"
# The vanilla cell's activations, here because this module's kernels, LoopRNN and the cell's unrolled step
# all implement them (and the cells' files, which sit below zoo.models.rnn, import this module).
NONLINEARITIES = ("tanh", "relu", "leaky_relu", "elu")
FUSED_NONLINEARITIES = ("tanh", "relu")  # the ones nn.RNN has a kernel for
LEAKY_RELU_SLOPE = 0.01  # PyTorch's default negative slope
ELU_ALPHA = 1.0
ACTIVATIONS = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "leaky_relu": lambda x: torch.nn.functional.leaky_relu(x, LEAKY_RELU_SLOPE),
    "elu": lambda x: torch.nn.functional.elu(x, ELU_ALPHA),
}


# Read from ZOO_OWN_KERNELS at first use, not at import: a bad value is then a ZooError inside
# the command that uses it, which the CLI reports in one line, rather than a traceback from `import zoo`.
_enabled: list[bool | None] = [None]


def own_kernels_enabled() -> bool:
    """Whether ``implementation='auto'`` may pick these kernels (run records store it, so a replay picks alike)."""
    if _enabled[0] is None:
        _enabled[0] = env_flag(ENV_OWN_KERNELS)
    return _enabled[0]


@contextlib.contextmanager
def own_kernels(enabled: bool) -> Iterator[None]:
    """Allow (or forbid) 'auto' to pick these kernels inside the block; ``ZOO_OWN_KERNELS=0`` forbids it for a process."""
    previous, _enabled[0] = _enabled[0], bool(enabled)
    try:
        yield
    finally:
        _enabled[0] = previous


def own_kernel_wins(cell: str, *, batch: int, seq_len: int, training: bool) -> bool:
    """Where these kernels beat PyTorch's fused CPU ones: scripts/kernel_speed.py on a 2-core EPYC, torch 2.13
    (leaderboards/throughput/kernels-cpu-2t-AMD_EPYC-torch2.13.0.csv; fused time / ours, one layer alone):

    - GRU, training (forward + backward): faster at every shape tried, 1.27x (word LM,
      2 x 200, batch 20; and H 512) to 2.24x (batch 128, T 1000); sMNIST 1.69x.
    - GRU, forward only: faster from batch 64 up (1.08-1.48x), about even or slower below (0.65-1.07x).
    - LSTM, training: the fused forward (oneDNN) is as fast as ours, so ours wins by its
      whole-sequence backward, which pays with large batches and long sequences: batch
      >= 64 and T >= 200 gave 1.01-1.28x (sMNIST 1.20x); batch 32 0.99x; short sequences
      and small batches 0.24-0.99x (the word LM 0.68x).
    - LSTM, forward only: slower everywhere (0.16-0.76x).
    """
    if cell == "gru":
        return training or batch >= 64
    return training and batch >= 64 and seq_len >= 200


def _weight_grad(d_pre: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """d_pre^T @ inputs, (G, T*B) @ (T*B, I): the weight gradient summed over every step and sample.

    For a narrow input (sMNIST's 1 pixel, the adding problem's 2 numbers) the BLAS call
    as written took 260 ms at T*B = 100k, I = 2 and the same product transposed 40 ms;
    for wide inputs the plain form is the faster.
    """
    if inputs.shape[1] < 32:
        return (inputs.t() @ d_pre).t()
    return d_pre.t() @ inputs


class BufferPool:
    """Whole-sequence buffers kept between training steps, so that each step writes into memory it has used before.

    Why: a (T, B, 4H) buffer at sMNIST shapes is 200 MB, which the allocator maps fresh
    from the OS on every call; the first write to each 4 KiB page then faults, which cost
    more here than the arithmetic (about 3.5 us a page on this machine's VM: some 0.3 s a
    training step). Only buffers that never leave the functions are pooled; what a
    caller can hold (the outputs) is allocated fresh. A buffer goes back to the pool when
    the autograd graph that saved it is freed (``_Lease``), never while a retained graph
    could still run its backward.
    """

    def __init__(self, max_bytes: int = 2 << 30) -> None:
        self.max_bytes = max_bytes
        self._free: dict[tuple, list[torch.Tensor]] = {}  # in order of last use, oldest first
        self._bytes = 0

    def take(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        # A buffer made under inference mode (validation, test) is an inference tensor, which
        # training may not write in place: the two kinds are pooled apart.
        key = (tuple(shape), like.dtype, like.device, torch.is_inference_mode_enabled())
        free = self._free.pop(key, None)
        if free:
            tensor = free.pop()
            self._bytes -= tensor.nbytes
            if free:
                self._free[key] = free  # back in, now the most recently used
            return tensor
        return like.new_empty(shape)

    def give_back(self, *tensors: torch.Tensor) -> None:
        for tensor in tensors:
            if tensor.nbytes > self.max_bytes:
                continue
            while self._bytes + tensor.nbytes > self.max_bytes:  # make room: the shapes used longest ago go
                oldest = next(iter(self._free))
                self._bytes -= self._free[oldest].pop().nbytes
                if not self._free[oldest]:
                    del self._free[oldest]
            key = (tuple(tensor.shape), tensor.dtype, tensor.device, tensor.is_inference())
            self._free[key] = self._free.pop(key, []) + [tensor]
            self._bytes += tensor.nbytes

    def clear(self) -> None:
        self._free.clear()
        self._bytes = 0


POOL = BufferPool()


class _Lease:
    """Pooled buffers saved on an autograd context; they return to the pool when the graph is freed."""

    def __init__(self, *tensors: torch.Tensor) -> None:
        self.tensors = tensors

    def __del__(self) -> None:
        POOL.give_back(*self.tensors)


class LSTMSequence(torch.autograd.Function):
    """One direction of one LSTM layer over T steps, input projection included.

    Gate order inside is (o, i, f, g), not PyTorch's (i, f, g, o): the three sigmoid
    gates are then one contiguous block (one op a step), and so are the three whose
    gradient scales with dc (i, f, g), which the backward fills in one broadcast multiply.
    ``run_stack`` rolls the weights into this order.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, w_ih: torch.Tensor, bias: torch.Tensor,
                w_hh: torch.Tensor):
        # x: (T, B, I); h0, c0: (B, H); w_ih: (4H, I), bias: (4H,) both biases summed, w_hh: (4H, H),
        # all in gate order (o, i, f, g)
        steps, batch, _ = x.shape
        width = w_hh.shape[0]
        hidden = width // 4
        gates = POOL.take((steps, batch, width), x)  # pre-activations, then activated gates in place
        cs = POOL.take((steps + 1, batch, hidden), x)  # c_{t-1} at [t], c_t at [t + 1]
        tanh_cs = POOL.take((steps, batch, hidden), x)  # tanh(c_t)
        hs = x.new_empty(steps + 1, batch, hidden)  # h_{t-1} at [t], h_t at [t + 1]; the output, so not pooled
        # g = tanh(a) is computed as 2 sigmoid(2a) - 1, so that one sigmoid over the whole (B, 4H) block
        # activates every gate: a serial tanh over (B, H) costs as much here as a parallel sigmoid over
        # (B, 4H). The 2 is folded into g's rows of the weights and bias.
        scale = x.new_ones(width, 1)
        scale[3 * hidden :] = 2.0
        torch.addmm(bias * scale[:, 0], x.reshape(-1, x.shape[2]), (w_ih * scale).t(),
                    out=gates.view(-1, width))  # every step's x W_ih^T (+ bias), g's rows doubled
        hs[0] = h0
        cs[0] = c0
        w_t = (w_hh * scale).t()
        # per-step views made in one call each (unbind), not one indexing op per step and tensor
        o, i, f, g = (gate.unbind(0) for gate in gates.split(hidden, dim=2))
        for t, (gate, h, c, tanh_c) in enumerate(zip(gates.unbind(0), hs.unbind(0), cs[1:].unbind(0),
                                                     tanh_cs.unbind(0))):
            gate.addmm_(h, w_t)  # (B, 4H) pre-activations
            gate.sigmoid_()
            g[t].mul_(2.0).sub_(1.0)  # = tanh of g's pre-activation
            torch.mul(f[t], cs[t], out=c)
            c.addcmul_(i[t], g[t])  # c_t = f c_{t-1} + i g
            torch.tanh(c, out=tanh_c)
            torch.mul(o[t], tanh_c, out=hs[t + 1])  # h_t = o tanh(c_t)
        ctx.set_materialize_grads(False)
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(x, w_ih, w_hh)
            ctx.buffers = (gates, hs, cs, tanh_cs)
            ctx.lease = _Lease(gates, cs, tanh_cs)
        else:
            POOL.give_back(gates, cs, tanh_cs)
        return hs[1:], hs[steps].clone(), cs[steps].clone()  # (T, B, H), (B, H), (B, H)

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, d_h_n, d_c_n):
        x, w_ih, w_hh = ctx.saved_tensors
        gates, hs, cs, tanh_cs = ctx.buffers
        steps, batch, width = gates.shape
        hidden = width // 4
        o, i, f, g = gates.split(hidden, dim=2)
        # For all steps at once: each pre-activation's gradient is dh_t or dc_t times one of these.
        #   dc_t = dc_{t+1} f_{t+1} + dh_t * o (1 - tanh(c_t)^2)
        #   d o~ = dh_t * tanh(c_t) o (1 - o)        d i~ = dc_t * g i (1 - i)
        #   d f~ = dc_t * c_{t-1} f (1 - f)          d g~ = dc_t * i (1 - g^2)
        dh_to_dc = POOL.take((steps, batch, hidden), gates)
        torch.ops.aten.tanh_backward.grad_input(o, tanh_cs, grad_input=dh_to_dc)
        factors = POOL.take((steps, batch, width), gates)  # order (o, i, f, g)
        f_o, f_i, f_f, f_g = factors.split(hidden, dim=2)
        torch.ops.aten.sigmoid_backward.grad_input(tanh_cs, o, grad_input=f_o)
        torch.ops.aten.sigmoid_backward.grad_input(g, i, grad_input=f_i)
        torch.ops.aten.sigmoid_backward.grad_input(cs[:-1], f, grad_input=f_f)
        torch.ops.aten.tanh_backward.grad_input(i, g, grad_input=f_g)
        by_dc = factors[:, :, hidden:].view(steps, batch, 3, hidden)
        d_pre = POOL.take((steps, batch, width), gates)  # gradient of the pre-activations
        d_pre_o = d_pre[:, :, :hidden]
        d_pre_by_dc = d_pre[:, :, hidden:].view(steps, batch, 3, hidden)
        dh = d_h_n.clone() if d_h_n is not None else gates.new_zeros(batch, hidden)
        dc = d_c_n.clone() if d_c_n is not None else gates.new_zeros(batch, hidden)
        per_step = zip(*(tensor.unbind(0)[::-1] for tensor in (dh_to_dc, f_o, d_pre_o, by_dc, d_pre_by_dc, f, d_pre)))
        outs = d_out.unbind(0)[::-1] if d_out is not None else None
        for t, (to_dc, factor_o, pre_o, factor_by_dc, pre_by_dc, forget, pre) in enumerate(per_step):
            if outs is not None:
                dh.add_(outs[t])
            dc.addcmul_(dh, to_dc)
            torch.mul(dh, factor_o, out=pre_o)
            torch.mul(dc.unsqueeze(1), factor_by_dc, out=pre_by_dc)
            dc.mul_(forget)  # the part of dc_{t-1} that flows through the cell
            dh = torch.mm(pre, w_hh)  # (B, 4H) @ (4H, H): dh_{t-1} through the recurrence
        flat = d_pre.view(-1, width)  # (T*B, 4H)
        x_flat = x.reshape(-1, x.shape[2])  # (T*B, I)
        d_x = (flat @ w_ih).view_as(x) if ctx.needs_input_grad[0] else None
        d_w_ih = _weight_grad(flat, x_flat)  # (4H, I)
        d_bias = flat.sum(0)
        d_w_hh = _weight_grad(flat, hs[:-1].reshape(-1, hidden))  # (4H, H)
        POOL.give_back(dh_to_dc, factors, d_pre)
        return d_x, dh, dc, d_w_ih, d_bias, d_w_hh


class GRUSequence(torch.autograd.Function):
    """One direction of one GRU layer over T steps, PyTorch's equations and gate order (r, z, n):

    r = sigmoid(x W_ir + b_ir + h W_hr + b_hr), z likewise, n = tanh(x W_in + b_in + r (h W_hn + b_hn)),
    h' = (1 - z) n + z h = n + z (h - n).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, h0: torch.Tensor, w_ih: torch.Tensor, b_ih: torch.Tensor,
                w_hh: torch.Tensor, b_hh: torch.Tensor):
        # x: (T, B, I); h0: (B, H); w_ih: (3H, I); b_ih: (3H,); w_hh: (3H, H); b_hh: (3H,)
        steps, batch, _ = x.shape
        width = w_hh.shape[0]
        hidden = width // 3
        # x W_ih^T + b_ih, plus b_hh's r and z parts (its n part sits inside r (...)): pre-activations,
        # then the activated r, z, n in place
        gates = POOL.take((steps, batch, width), x)
        bias = torch.cat([b_ih[: 2 * hidden] + b_hh[: 2 * hidden], b_ih[2 * hidden :]])
        torch.addmm(bias, x.reshape(-1, x.shape[2]), w_ih.t(), out=gates.view(-1, width))
        gh_n = POOL.take((steps, batch, hidden), x)  # h_{t-1} W_hn^T + b_hn
        hs = x.new_empty(steps + 1, batch, hidden)  # the output, so not pooled
        hs[0] = h0
        w_rz_t, w_n_t, b_hn = w_hh[: 2 * hidden].t(), w_hh[2 * hidden :].t(), b_hh[2 * hidden :]
        # per-step views made in one call each (unbind), as in the LSTM
        per_step = zip(*(tensor.unbind(0) for tensor in (gates[:, :, : 2 * hidden], gates[:, :, :hidden],
                                                          gates[:, :, hidden : 2 * hidden], gates[:, :, 2 * hidden :],
                                                          gh_n, hs, hs[1:])))
        for rz, r, z, n, gh, previous, h in per_step:
            rz.addmm_(previous, w_rz_t)  # (B, 2H)
            rz.sigmoid_()
            torch.addmm(b_hn, previous, w_n_t, out=gh)  # (B, H)
            n.addcmul_(r, gh)
            n.tanh_()
            torch.lerp(n, previous, z, out=h)  # h_t = n + z (h_{t-1} - n)
        ctx.set_materialize_grads(False)
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(x, w_ih, w_hh)
            ctx.buffers = (gates, gh_n, hs)
            ctx.lease = _Lease(gates, gh_n)
        else:
            POOL.give_back(gates, gh_n)
        return hs[1:], hs[steps].clone()  # (T, B, H), (B, H)

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, d_h_n):
        x, w_ih, w_hh = ctx.saved_tensors
        gates, gh_n, hs = ctx.buffers
        steps, batch, width = gates.shape
        hidden = width // 3
        r, z, n = gates.split(hidden, dim=2)
        # For all steps at once:  d z~ = dh * (h_{t-1} - n) z (1 - z),   d n~ = dh * (1 - z)(1 - n^2),
        # d r~ = d n~ * gh_n r (1 - r),   d gh_n = d n~ * r,   dh_{t-1} = dh z + d(r, z)~ W_hrz + d gh_n W_hn
        by_dh = POOL.take((steps, batch, 2, hidden), gates)  # (z, n)
        torch.sub(hs[:-1], n, out=by_dh[:, :, 0])
        torch.ops.aten.sigmoid_backward.grad_input(by_dh[:, :, 0], z, grad_input=by_dh[:, :, 0])
        torch.sub(1, z, out=by_dh[:, :, 1])
        torch.ops.aten.tanh_backward.grad_input(by_dh[:, :, 1], n, grad_input=by_dh[:, :, 1])
        r_factor = POOL.take((steps, batch, hidden), gates)
        torch.ops.aten.sigmoid_backward.grad_input(gh_n, r, grad_input=r_factor)
        d_pre = POOL.take((steps, batch, width), gates)  # (r, z, n) pre-activations
        d_r, d_zn = d_pre[:, :, :hidden], d_pre[:, :, hidden:].view(steps, batch, 2, hidden)
        d_rz, d_n = d_pre[:, :, : 2 * hidden], d_pre[:, :, 2 * hidden :]
        d_gh_n = POOL.take((steps, batch, hidden), gates)
        w_rz, w_n = w_hh[: 2 * hidden], w_hh[2 * hidden :]
        dh = d_h_n.clone() if d_h_n is not None else gates.new_zeros(batch, hidden)
        per_step = zip(*(tensor.unbind(0)[::-1] for tensor in (by_dh, d_zn, d_n, r_factor, d_r, r, d_gh_n, z, d_rz)))
        outs = d_out.unbind(0)[::-1] if d_out is not None else None
        for t, (factor_zn, pre_zn, pre_n, factor_r, pre_r, reset, pre_gh_n, update, pre_rz) in enumerate(per_step):
            if outs is not None:
                dh.add_(outs[t])
            torch.mul(dh.unsqueeze(1), factor_zn, out=pre_zn)
            torch.mul(pre_n, factor_r, out=pre_r)
            torch.mul(pre_n, reset, out=pre_gh_n)
            previous = torch.mul(dh, update)
            previous.addmm_(pre_rz, w_rz)  # (B, 2H) @ (2H, H)
            dh = previous.addmm_(pre_gh_n, w_n)  # (B, H) @ (H, H)
        flat, flat_gh_n = d_pre.view(-1, width), d_gh_n.view(-1, hidden)  # (T*B, 3H), (T*B, H)
        x_flat, h_flat = x.reshape(-1, x.shape[2]), hs[:-1].reshape(-1, hidden)
        d_x = (flat @ w_ih).view_as(x) if ctx.needs_input_grad[0] else None
        d_w_ih = _weight_grad(flat, x_flat)  # (3H, I)
        d_b_ih = flat.sum(0)
        d_w_hh = torch.cat([_weight_grad(flat[:, : 2 * hidden], h_flat), _weight_grad(flat_gh_n, h_flat)])  # (3H, H)
        d_b_hh = torch.cat([d_b_ih[: 2 * hidden], flat_gh_n.sum(0)])
        POOL.give_back(by_dh, r_factor, d_pre, d_gh_n)
        return d_x, dh, d_w_ih, d_b_ih, d_w_hh, d_b_hh


class RNNSequence(torch.autograd.Function):
    """One direction of one vanilla RNN layer over T steps, h_t = act(x_t W_ih^T + b + h_{t-1} W_hh^T).

    Each activation's derivative is a function of its output (tanh: 1 - h^2; relu and
    leaky_relu: 1 or the slope by the sign of h; elu: 1 or h + alpha), so the backward
    computes all of them at once from the saved outputs, and its loop is one multiply
    and one matmul a step.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, h0: torch.Tensor, w_ih: torch.Tensor, bias: torch.Tensor, w_hh: torch.Tensor,
                nonlinearity: str, slope: float, alpha: float):
        # x: (T, B, I); h0: (B, H); w_ih: (H, I); bias: (H,) both biases summed; w_hh: (H, H)
        steps, batch, _ = x.shape
        hidden = w_hh.shape[0]
        hs = x.new_empty(steps + 1, batch, hidden)  # h_{t-1} at [t], h_t at [t + 1]: the output
        hs[0] = h0
        torch.addmm(bias, x.reshape(-1, x.shape[2]), w_ih.t(), out=hs[1:].view(-1, hidden))  # x W_ih^T + b
        activate = {"tanh": torch.tanh_, "relu": torch.relu_,
                    "leaky_relu": lambda h: torch.nn.functional.leaky_relu_(h, slope),
                    "elu": lambda h: torch.nn.functional.elu_(h, alpha)}[nonlinearity]
        w_t = w_hh.t()
        for previous, h in zip(hs.unbind(0), hs[1:].unbind(0)):
            activate(h.addmm_(previous, w_t))  # (B, H)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, w_ih, w_hh)
        ctx.hs, ctx.act = hs, (nonlinearity, slope, alpha)
        return hs[1:], hs[steps].clone()  # (T, B, H), (B, H)

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, d_h_n):
        x, w_ih, w_hh = ctx.saved_tensors
        hs, (nonlinearity, slope, alpha) = ctx.hs, ctx.act
        steps, batch, hidden = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
        out = hs[1:]
        derivative = POOL.take((steps, batch, hidden), out)  # d h_t / d pre-activation, every step at once
        one = torch.ones((), dtype=out.dtype)
        if nonlinearity == "tanh":
            torch.addcmul(one, out, out, value=-1, out=derivative)
        elif nonlinearity == "relu":
            torch.where(out > 0, one, torch.zeros((), dtype=out.dtype), out=derivative)
        elif nonlinearity == "leaky_relu":
            torch.where(out > 0, one, torch.full((), slope, dtype=out.dtype), out=derivative)
        else:
            torch.where(out > 0, one, out + alpha, out=derivative)
        d_pre = POOL.take((steps, batch, hidden), out)
        dh = d_h_n.clone() if d_h_n is not None else out.new_zeros(batch, hidden)
        outs = d_out.unbind(0)[::-1] if d_out is not None else None
        for t, (factor, pre) in enumerate(zip(derivative.unbind(0)[::-1], d_pre.unbind(0)[::-1])):
            if outs is not None:
                dh.add_(outs[t])
            torch.mul(dh, factor, out=pre)
            dh = torch.mm(pre, w_hh)  # (B, H) @ (H, H): dh_{t-1}
        flat, x_flat = d_pre.view(-1, hidden), x.reshape(-1, x.shape[2])
        d_x = (flat @ w_ih).view_as(x) if ctx.needs_input_grad[0] else None
        grads = (d_x, dh, _weight_grad(flat, x_flat), flat.sum(0), _weight_grad(flat, hs[:-1].reshape(-1, hidden)))
        POOL.give_back(derivative, d_pre)
        return (*grads, None, None, None)


def run_stack(rnn: torch.nn.Module, x: torch.Tensor, hx=None):
    """``rnn(x, hx)`` for a batch-first stack of any registered cell that has a ``Cell.sequence``: ``nn.LSTM``,
    ``nn.GRU``, ``nn.RNN``, ``LoopRNN``, ``ZooLSTM``, ``ZooGRU`` by the functions above, same parameters.

    Returns what the module returns: output (B, T, D*H) and h_n (L*D, B, H), or a tuple
    (h_n, c_n) for a cell whose state has more than one tensor. The layers, directions,
    dropout and state handling are here; one direction of one layer is the cell's
    ``sequence`` (the hook where a parallel scan plugs in). Dropout between layers is
    ``F.dropout``: the same distribution as the fused kernel's, not the same mask.
    """
    from zoo.cells.base import cell_of, layer_parameters  # here, not at the top: the cells' files import this module

    cell = cell_of(rnn)
    if cell.sequence is None:
        raise ZooError(f"cell {cell.name!r} has no whole-sequence function (Cell.sequence), so run_stack cannot run it")
    hidden, directions = rnn.hidden_size, 2 if rnn.bidirectional else 1
    if hx is None:
        hx = cell.pack_state(cell.zero_state(x.shape[0], hidden, x, layers=rnn.num_layers * directions))
    if isinstance(rnn, torch.nn.RNNBase):  # PyTorch's own checks of the input and state sizes, and its messages
        rnn.check_forward_args(x, hx, None)
    initial = cell.unpack_state(hx)  # each (L*D, B, H)
    layer_input = x.transpose(0, 1)  # (T, B, I): time-major, as the kernels want
    finals: list[list[torch.Tensor]] = [[] for _ in cell.state]
    for layer in range(rnn.num_layers):
        outputs = []
        for direction in range(directions):
            index = layer * directions + direction
            inputs = layer_input.flip(0) if direction else layer_input
            out, state = cell.sequence(rnn, layer_parameters(rnn, layer, bool(direction)), inputs,
                                       tuple(part[index] for part in initial))
            outputs.append(out.flip(0) if direction else out)  # (T, B, H), time order
            for final, part in zip(finals, state):
                final.append(part)  # (B, H)
        layer_input = torch.cat(outputs, dim=2) if directions == 2 else outputs[0]  # (T, B, D*H)
        if rnn.dropout > 0 and rnn.training and layer < rnn.num_layers - 1:
            layer_input = torch.nn.functional.dropout(layer_input, rnn.dropout, training=True)
    output = layer_input.transpose(0, 1)  # (B, T, D*H)
    return output, cell.pack_state(tuple(torch.stack(final) for final in finals))
