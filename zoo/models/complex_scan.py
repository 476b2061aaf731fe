"""The complex diagonal linear recurrence x_t = λ ⊙ x_{t-1} + b_t over a whole sequence, two ways.

Why: the LRU (zoo.cells.lru) and any diagonal linear RNN spend their recurrence in this
one line. Autograd over a Python loop records a node per step and walks them back one at a
time; a textbook log-depth (Hillis–Steele) scan does T log T work, which on a CPU measured
about 16× an LSTM step. On a CPU the cheapest exact path is a loop that does one fused
elementwise op a step (``torch.addcmul`` on a (B, N) complex slice) with a backward written
by hand, which is the same recurrence run in reverse:

    g_t = dL/dx_t (direct) + conj(λ) ⊙ g_{t+1},   dL/db_t = g_t,
    dL/dλ = Σ_{t, batch} g_t ⊙ conj(x_{t-1}),      dL/dx_0 = conj(λ) ⊙ g_1,

the dL/dλ sum taken inside the reverse loop (one more addcmul a step: half the time of a
whole-sequence conj-multiply-reduce after it).

The conjugates are PyTorch's convention for complex gradients (the gradient of a real loss
L with respect to z is ∂L/∂z̄, so a holomorphic y = f(z) sends back conj(f'(z)) · grad_y);
``torch.autograd.gradcheck`` in complex128 checks it (tests/test_cell_lru.py).

``parallel_scan`` is the log-depth scan in plain torch ops (autograd does its backward):
log2(T) whole-tensor steps instead of T small ones, the better choice where a kernel launch
costs more than the work (a GPU). ``linear_recurrence`` picks one of the two by name.

``LRUSequence`` is the LRU layer's CPU fast path: the same loop and reverse loop with the
layer's input map (γ B, the drive) and its readout (Re(C x) + the D skip) folded in, as
``zoo.models.linear_recurrence.MinRNNSequence`` folds minGRU's gates. At sMNIST shapes
(B 128, T 784, H = N = 128) the step is three (T·B, 2N) x (2N, H) matmuls and a dozen
whole-sequence passes over 100 MB tensors, and the loop a tenth of it; measured there
(scripts/throughput.py, one thread on a loaded 2-core EPYC) the bare layer took 0.71x the
fused LSTM's step through autograd around ``DiagonalRecurrence``. Folded in, the drive and
the states share one pooled buffer (a fresh 100 MB tensor costs ~90 ms of page faults here,
see ``sequence_kernels.BufferPool``), the skip and the readout are one ``addmm`` pair into
the output, and the final output y_T comes back as its own tensor, so a head that reads the
last step only (sMNIST, adding) sends no gradient for the other T - 1 outputs: the readout's
two backward matmuls, over every step, are then not made at all. Measured alike after it: the
bare layer 0.21x the LSTM's step, the paper's block 0.87x (from 1.84x; its GLU and drive
matmuls over every step, five of them, stay).

Shapes: T time, B batch, N state size (the number of complex eigenvalues). Time-major, as
zoo.models.sequence_kernels: step t is one contiguous (B, N) block.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from zoo.errors import ZooError
from zoo.models.sequence_kernels import POOL, _Lease, _weight_grad

SCANS = ("auto", "sequential", "parallel")


def _scan_in_place(lam: torch.Tensor, xs: torch.Tensor) -> None:
    """xs[t] = λ ⊙ xs[t-1] + xs[t] for t = 1..T in place: xs (T+1, B, N) complex holds x_0, then b_1..b_T."""
    for previous, x_t in zip(xs.unbind(0), xs[1:].unbind(0)):
        x_t.addcmul_(lam, previous)  # (B, N)


def _reverse_scan(lam: torch.Tensor, grads: torch.Tensor, previous: torch.Tensor, first_direct: int = 0,
                  want_lam: bool = True) -> torch.Tensor | None:
    """The reverse recurrence on conjugated gradients, in place: h_t = conj(g_t) = conj(d_t) + λ ⊙ h_{t+1}.

    grads (T, B, N) complex holds conj(d_t), the direct part conjugated, for t >= ``first_direct``
    (d_t = 0 below it, where the slot's old contents are overwritten unread) and h_{T-1} already
    complete; previous (T, B, N) complex holds x_{t-1} at [t]. Returns dL/dλ = Σ_{t, batch} g_t ⊙
    conj(x_{t-1}) = conj(Σ h_t ⊙ x_{t-1}) (N,), or None when not ``want_lam``. Why conjugated: the
    running sum is then a plain ``addcmul`` a step, where conj(x_{t-1}) would be copied at every step.
    """
    rows = torch.zeros_like(grads[0]) if want_lam else None  # Σ_t h_t x_{t-1}, summed over the batch after
    for t in range(grads.shape[0] - 1, -1, -1):
        if t < grads.shape[0] - 1:
            if t >= first_direct:
                grads[t].addcmul_(lam, grads[t + 1])
            else:  # no direct gradient at this step: h_t = λ h_{t+1}
                torch.mul(grads[t + 1], lam, out=grads[t])
        if rows is not None:
            rows.addcmul_(grads[t], previous[t])
    return rows.sum(0).conj() if rows is not None else None


class DiagonalRecurrence(torch.autograd.Function):
    """x_t = λ ⊙ x_{t-1} + b_t for t = 1..T from x_0, complex; returns every x_t, (T, B, N).

    Forward: one ``addcmul`` a step into a buffer allocated once. Backward: the reverse
    recurrence for g and the running sum for dL/dλ, two ``addcmul`` a step. Differentiable
    once (no double backward).
    """

    @staticmethod
    def forward(ctx, lam: torch.Tensor, b: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        # lam: (N,) complex; b: (T, B, N) complex; x0: (B, N) complex
        xs = b.new_empty((b.shape[0] + 1, *x0.shape))  # x_{t-1} at [t], x_t at [t + 1]; xs[1:] is the output
        xs[0] = x0
        xs[1:] = b
        _scan_in_place(lam, xs)
        ctx.save_for_backward(lam, xs)
        return xs[1:]

    @staticmethod
    @once_differentiable
    def backward(ctx, d_xs: torch.Tensor):
        lam, xs = ctx.saved_tensors
        d_b = torch.conj_physical(d_xs)  # the direct part, conjugated, in a new buffer
        d_lam = _reverse_scan(lam, d_b, xs[:-1], want_lam=ctx.needs_input_grad[0])
        d_b.conj_physical_()  # g_t for every t: dL/db_t
        d_x0 = lam.conj() * d_b[0] if ctx.needs_input_grad[2] else None
        return d_lam, (d_b if ctx.needs_input_grad[1] else None), d_x0


def sequential_scan(lam: torch.Tensor, b: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """Every x_t of x_t = λ x_{t-1} + b_t by the loop with the hand-written backward: (T, B, N)."""
    return DiagonalRecurrence.apply(lam, b, x0)


def parallel_scan(lam: torch.Tensor, b: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """The same by a log-depth (Hillis–Steele) scan in plain torch ops, differentiated by autograd: (T, B, N).

    λ is the same at every step, so after the level with offset d every x_t holds the sum
    of its last 2d terms and the combine is x_t += λ^d x_{t-d}; x_0 enters as λ x_0 added to b_1.
    """
    steps = b.shape[0]
    x = torch.cat([(b[0] + lam * x0).unsqueeze(0), b[1:]], 0)  # (T, B, N)
    power, offset = lam, 1  # λ^d at offset d
    while offset < steps:
        x = torch.cat([x[:offset], x[offset:] + power * x[:-offset]], 0)
        power, offset = power * power, offset * 2
    return x


class LRUSequence(torch.autograd.Function):
    """One direction of one LRU layer on a CPU, its input map and readout folded in, backward by hand.

    ``apply(v (T, B, K), x0 (B, 2N), λ (N,) complex, w_in (2N, K), b_in (2N,) or None, w_out (H, 2N),
    skip, b_skip) -> y (T, B, H), y_T (B, H), x_T (B, 2N)``, every real (2N) width the complex state's
    re and im interleaved (``torch.view_as_real`` flattened, the zoo's state layout):

        x_t = λ ⊙ x_{t-1} + v_t w_in^T + b_in,      y_t = x_t w_out^T + skip(v_t),

    skip(v) = v skip^T + b_skip for a matrix ``skip`` (H, K), D ⊙ v for a vector (H,) (K = H), or none.
    y_T is y's last step again, as its own tensor: where a loss reads the last step only, y's
    gradient is None and the backward runs the reverse loop from y_T's alone, with no
    whole-sequence readout matmuls. With G_t the gradient reaching x_t (``_reverse_scan``):
        dL/dw_in = G^T v,  dL/db_in = Σ G,  dL/dv = G w_in + (d y) skip,  dL/dw_out = (d y)^T x,
        dL/dλ = Σ G_t conj(x_{t-1}),  dL/dx_0 = conj(λ) G_1.
    The states live in a pooled buffer (``sequence_kernels.POOL``); y is fresh (the caller holds it).
    Differentiable once.
    """

    @staticmethod
    def forward(ctx, v: torch.Tensor, x0: torch.Tensor, lam: torch.Tensor, w_in: torch.Tensor,
                b_in: torch.Tensor | None, w_out: torch.Tensor, skip: torch.Tensor | None,
                b_skip: torch.Tensor | None):
        steps, batch, width = v.shape
        hidden, double = w_out.shape
        v_flat = v.reshape(-1, width)  # (T*B, K)
        states = POOL.take((steps + 1, batch, double), v)  # x_{t-1} at [t], x_t at [t + 1]; re/im interleaved
        states[0] = x0
        drive = states[1:].view(-1, double)
        if b_in is None:
            torch.mm(v_flat, w_in.t(), out=drive)
        else:
            torch.addmm(b_in, v_flat, w_in.t(), out=drive)  # every step's b_t = v_t w_in^T + b_in
        _scan_in_place(lam, torch.view_as_complex(states.view(steps + 1, batch, -1, 2)))
        y = v.new_empty(steps, batch, hidden)  # the output: fresh, not pooled
        y_flat = y.view(-1, hidden)
        w_out_t = w_out.t().contiguous()  # (2N, H)
        if skip is not None and skip.dim() == 2:
            if b_skip is None:
                torch.mm(v_flat, skip.t(), out=y_flat)
            else:
                torch.addmm(b_skip, v_flat, skip.t(), out=y_flat)
            y_flat.addmm_(drive, w_out_t)
        else:
            torch.mm(drive, w_out_t, out=y_flat)  # Re(C x_t), every step
            if skip is not None:
                y.addcmul_(v, skip)  # + D ⊙ v_t
        ctx.set_materialize_grads(False)
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(v, lam, w_in, w_out, skip)
            ctx.states = states
            ctx.lease = _Lease(states)
        else:
            POOL.give_back(states)
        return y, y[steps - 1].clone(), states[steps].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, d_y, d_y_last, d_x_last):
        v, lam, w_in, w_out, skip = ctx.saved_tensors
        states = ctx.states
        steps, batch, width = v.shape
        hidden, double = w_out.shape
        # The output's gradient over steps [first, T): all of them, the last one (only y_T's came), or none.
        if d_y is not None:
            first = 0
            direct = POOL.take((steps, batch, hidden), v)
            direct.copy_(d_y)  # one pass, whatever d_y's strides (often a transposed (B, T, H) gradient)
            if d_y_last is not None:
                direct[-1] += d_y_last
        elif d_y_last is not None:
            first, direct = steps - 1, d_y_last.unsqueeze(0)
        else:
            first, direct = steps, v.new_zeros(0, batch, hidden)
        direct_flat = direct.reshape(-1, hidden)  # (T' * B, H), T' = T - first
        # The reverse loop runs on conj(G) (``_reverse_scan``): conjugating an interleaved real vector
        # negates its odd entries, which is folded into the small matrices on either side of it.
        conj_sign = w_out.new_tensor([1.0, -1.0]).repeat(double // 2)  # (2N,)
        grads = POOL.take((steps, batch, double), v)  # conj(G_t), re/im interleaved
        torch.mm(direct_flat, w_out * conj_sign, out=grads[first:].view(-1, double))
        if first == steps:
            grads[-1].zero_()
        if d_x_last is not None:
            grads[-1].addcmul_(d_x_last, conj_sign)
        complex_grads = torch.view_as_complex(grads.view(steps, batch, -1, 2))
        complex_states = torch.view_as_complex(states.view(steps + 1, batch, -1, 2))
        d_lam = _reverse_scan(lam, complex_grads, complex_states[:-1], first, ctx.needs_input_grad[2])
        need = ctx.needs_input_grad
        d_x0 = torch.view_as_real(lam * complex_grads[0]).flatten(-2) * conj_sign if need[1] else None
        grads_flat, v_flat = grads.view(-1, double), v.reshape(-1, width)
        d_w_in = _weight_grad(grads_flat, v_flat) * conj_sign.unsqueeze(1) if need[3] else None  # (2N, K)
        d_b_in = grads_flat.sum(0) * conj_sign if need[4] else None
        d_w_out = direct_flat.t() @ states[first + 1 :].view(-1, double) if need[5] else None  # (H, 2N)
        v_direct = v[first:]  # the inputs of the steps whose outputs have a gradient
        d_skip = d_b_skip = None
        if skip is not None and skip.dim() == 2:
            d_skip = _weight_grad(direct_flat, v_direct.reshape(-1, width)) if need[6] else None
            d_b_skip = direct_flat.sum(0) if need[7] else None
        elif skip is not None and need[6]:
            d_skip = (direct * v_direct).sum((0, 1))
        d_v = None
        if need[0]:
            d_v = (grads_flat @ (w_in * conj_sign.unsqueeze(1))).view_as(v)  # (T, B, K)
            if skip is not None and skip.dim() == 2:
                d_v[first:].view(-1, width).addmm_(direct_flat, skip)
            elif skip is not None:
                d_v[first:].addcmul_(direct, skip)
        POOL.give_back(grads, *((direct,) if d_y is not None else ()))
        return d_v, d_x0, d_lam, d_w_in, d_b_in, d_w_out, d_skip, d_b_skip


def resolve_scan(scan: str, device: torch.device) -> str:
    """'sequential' or 'parallel' for a run on ``device``: 'auto' is the loop on a CPU, the scan elsewhere."""
    if scan not in SCANS:
        raise ZooError(f"scan must be one of {', '.join(SCANS)}, got {scan!r}")
    if scan == "auto":
        return "sequential" if device.type == "cpu" else "parallel"
    return scan


def linear_recurrence(lam: torch.Tensor, b: torch.Tensor, x0: torch.Tensor, scan: str = "auto") -> torch.Tensor:
    """x_t = λ x_{t-1} + b_t for every t, (T, B, N): ``scan`` 'sequential', 'parallel' or 'auto'.

    'auto' takes the sequential loop on a CPU (the fastest path there by far) and the
    parallel scan on any other device (where T small kernel launches cost more than log T big ones).
    """
    scan = resolve_scan(scan, b.device)
    if b.shape[0] == 0:
        return b.clone()
    return sequential_scan(lam, b, x0) if scan == "sequential" else parallel_scan(lam, b, x0)
