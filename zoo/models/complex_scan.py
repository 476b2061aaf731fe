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

Shapes: T time, B batch, N state size (the number of complex eigenvalues). Time-major, as
zoo.models.sequence_kernels: step t is one contiguous (B, N) block.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from zoo.errors import ZooError

SCANS = ("auto", "sequential", "parallel")


class DiagonalRecurrence(torch.autograd.Function):
    """x_t = λ ⊙ x_{t-1} + b_t for t = 1..T from x_0, complex; returns every x_t, (T, B, N).

    Forward: one ``addcmul`` a step into a buffer allocated once. Backward: the reverse
    recurrence for g and the running sum for dL/dλ, two ``addcmul`` a step. Differentiable
    once (no double backward).
    """

    @staticmethod
    def forward(ctx, lam: torch.Tensor, b: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        # lam: (N,) complex; b: (T, B, N) complex; x0: (B, N) complex
        b = b.contiguous()
        xs = torch.empty_like(b)  # (T, B, N)
        previous = x0
        for b_t, x_t in zip(b.unbind(0), xs.unbind(0)):
            torch.addcmul(b_t, lam, previous, out=x_t)  # x_t = b_t + λ x_{t-1}
            previous = x_t
        ctx.save_for_backward(lam, x0, xs)
        return xs

    @staticmethod
    @once_differentiable
    def backward(ctx, d_xs: torch.Tensor):
        lam, x0, xs = ctx.saved_tensors
        d_xs = d_xs.contiguous()
        conj_lam = lam.conj().resolve_conj()
        want_lam = ctx.needs_input_grad[0]
        d_b = torch.empty_like(d_xs)  # g_t for every t: dL/db_t
        d_lam_rows = torch.zeros_like(x0)  # Σ_t g_t conj(x_{t-1}), summed over the batch after the loop
        previous_conj = xs.conj().resolve_conj() if want_lam else xs  # one copy: a lazy conj view is copied a step
        following = torch.zeros_like(x0)  # g_{T+1} = 0
        for t in range(d_xs.shape[0] - 1, -1, -1):
            g_t = d_b[t]
            torch.addcmul(d_xs[t], conj_lam, following, out=g_t)  # g_t = d_t + conj(λ) g_{t+1}
            if want_lam:
                d_lam_rows.addcmul_(g_t, previous_conj[t - 1] if t else x0.conj().resolve_conj())  # g_t conj(x_{t-1})
            following = g_t
        d_lam = d_lam_rows.sum(0) if want_lam else None
        d_x0 = None
        if ctx.needs_input_grad[2]:
            d_x0 = conj_lam * d_b[0]
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


def linear_recurrence(lam: torch.Tensor, b: torch.Tensor, x0: torch.Tensor, scan: str = "auto") -> torch.Tensor:
    """x_t = λ x_{t-1} + b_t for every t, (T, B, N): ``scan`` 'sequential', 'parallel' or 'auto'.

    'auto' takes the sequential loop on a CPU (the fastest path there by far) and the
    parallel scan on any other device (where T small kernel launches cost more than log T big ones).
    """
    if scan not in SCANS:
        raise ZooError(f"scan must be one of {', '.join(SCANS)}, got {scan!r}")
    if scan == "auto":
        scan = "sequential" if b.device.type == "cpu" else "parallel"
    if b.shape[0] == 0:
        return b.clone()
    return sequential_scan(lam, b, x0) if scan == "sequential" else parallel_scan(lam, b, x0)
