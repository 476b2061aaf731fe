"""coRNN and LEM layers over a whole sequence with a backward written by hand (the cells in zoo.cells.cornn and
zoo.cells.lem).

Why: autograd through a Python loop records a dozen graph nodes per step for these
cells and walks them one at a time in the backward; at sequential-MNIST shapes that
made a plain LEM loop 1.7-2.4x the fused LSTM's training step. As in
``zoo.models.sequence_kernels``, each function here keeps inside the loop over time
only what the recurrence makes sequential (the recurrent matmuls and a few
elementwise ops on (B, H) blocks, written into buffers allocated once), and moves
the rest to whole-sequence operations: the input projection before the loop (one
matmul for all steps), and in the backward the derivative factors of every step
computed at once from the saved activations, the weight gradients as one
(·, T*B) @ (T*B, ·) matmul each, and the bias sums.

Both recurrences are second-order systems written as two first-order states, y (the
output, the zoo's "h") and z:

- coRNN (Rusch & Mishra, ICLR 2021), the authors' update, a linear step in (y, z)
  around one tanh: z_t = c_z z_{t-1} + c_y y_{t-1} + c_a tanh(pre_t), y_t = y_{t-1} + dt z_t
  with pre_t = u_t V^T + b + y_{t-1} W^T + z_{t-1} 𝒲^T. The constants (c_z, c_y, c_a)
  carry the scheme: (1 - dt ε, -dt γ, dt) explicit, (1, -dt γ, dt) / (1 + dt ε) IMEX.
- LEM (Rusch, Mishra, Erichson & Mahoney, ICLR 2022), gate blocks (dt_bar, dt, z, y):
  z_t = z_{t-1} + dt σ(a_dt) (tanh(a_z) - z_{t-1}),  y_t = y_{t-1} + dt σ(a_dt_bar) (tanh(a_y) - y_{t-1}),
  with a_dt_bar, a_dt, a_z reading y_{t-1} and a_y reading the new z_t.

The functions are differentiable once (no double backward). Shapes: T time, B batch,
I input, H hidden; every buffer is time-major, (T, B, ...), so step t is one block.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from zoo.models.sequence_kernels import POOL, _Lease, _weight_grad


def cornn_coefficients(dt: float, gamma: float, epsilon: float, scheme: str) -> tuple[float, float, float]:
    """(c_z, c_y, c_a) of z_t = c_z z_{t-1} + c_y y_{t-1} + c_a tanh(pre_t) for the named scheme.

    'explicit' is the authors' code (tk-rusch/coRNN: the damping reads z_{t-1}); 'imex' is
    the paper's eq. (3), damping implicit in z_t: z_t (1 + dt ε) = z_{t-1} + dt (tanh - γ y_{t-1}).
    """
    if scheme == "imex":
        scale = 1.0 / (1.0 + dt * epsilon)
        return scale, -dt * gamma * scale, dt * scale
    return 1.0 - dt * epsilon, -dt * gamma, dt


class CoRNNSequence(torch.autograd.Function):
    """One direction of one coRNN layer over T steps, input projection included.

    Inside, the state is one (B, 2H) block [y | z] per step, so the two recurrent
    matrices act in one matmul: pre += [y | z] @ [W | 𝒲]^T, and the backward's
    d[y | z]_{t-1} gets both matrices' share in one (B, H) @ (H, 2H) matmul.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, y0: torch.Tensor, z0: torch.Tensor, w_ih: torch.Tensor, bias: torch.Tensor,
                w_hh: torch.Tensor, dt: float, c_z: float, c_y: float, c_a: float):
        # x: (T, B, I); y0, z0: (B, H); w_ih: (H, I); bias: (H,); w_hh: (2H, H) = [W; 𝒲] (W reads y, 𝒲 reads z)
        steps, batch, _ = x.shape
        hidden = w_hh.shape[1]
        acts = POOL.take((steps, batch, hidden), x)  # pre-activations, then tanh of them in place
        torch.addmm(bias, x.reshape(-1, x.shape[2]), w_ih.t(), out=acts.view(-1, hidden))  # every step's u V^T + b
        states = x.new_empty(steps + 1, batch, 2 * hidden)  # [y | z]_{t-1} at [t]; holds the output, so not pooled
        states[0, :, :hidden] = y0
        states[0, :, hidden:] = z0
        w_t = torch.cat([w_hh[:hidden], w_hh[hidden:]], dim=1).t()  # (2H, H) = [W | 𝒲]^T
        coef = x.new_tensor([c_y] * hidden + [c_z] * hidden)  # (2H,): what z_t takes of [y | z]_{t-1}
        mixed = x.new_empty(batch, 2 * hidden)
        for act, previous, new in zip(acts.unbind(0), states.unbind(0), states[1:].unbind(0)):
            act.addmm_(previous, w_t).tanh_()  # (B, H)
            torch.mul(previous, coef, out=mixed)
            z_new = torch.add(mixed[:, hidden:], mixed[:, :hidden], out=new[:, hidden:])
            z_new.add_(act, alpha=c_a)  # z_t = c_z z + c_y y + c_a tanh(pre)
            torch.add(previous[:, :hidden], z_new, alpha=dt, out=new[:, :hidden])  # y_t = y + dt z_t
        ctx.set_materialize_grads(False)
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(x, w_ih, w_hh)
            ctx.buffers = (acts, states)
            ctx.constants = (dt, c_z, c_y, c_a)
            ctx.lease = _Lease(acts)
        else:
            POOL.give_back(acts)
        return states[1:, :, :hidden], states[steps, :, :hidden].clone(), states[steps, :, hidden:].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, d_y_n, d_z_n):
        x, w_ih, w_hh = ctx.saved_tensors
        acts, states = ctx.buffers
        dt, c_z, c_y, c_a = ctx.constants
        steps, batch, hidden = acts.shape
        # Per step, with g = dz_t + dt dy_t the whole gradient reaching z_t:
        #   d pre_t = g c_a (1 - tanh^2),   dy_{t-1} = dy_t + c_y g + d pre_t W,   dz_{t-1} = c_z g + d pre_t 𝒲
        factor = POOL.take((steps, batch, hidden), acts)  # c_a (1 - tanh(pre)^2), every step at once
        torch.ops.aten.tanh_backward.grad_input(acts.new_full((), c_a).expand_as(acts), acts, grad_input=factor)
        d_pre = POOL.take((steps, batch, hidden), acts)
        grad = acts.new_zeros(batch, 2 * hidden)  # [dy | dz]
        if d_y_n is not None:
            grad[:, :hidden] = d_y_n
        if d_z_n is not None:
            grad[:, hidden:] = d_z_n
        dy, dz = grad[:, :hidden], grad[:, hidden:]
        w_cat = torch.cat([w_hh[:hidden], w_hh[hidden:]], dim=1)  # (H, 2H) = [W | 𝒲]
        outs = d_out.unbind(0)[::-1] if d_out is not None else None
        for t, (step_factor, pre) in enumerate(zip(factor.unbind(0)[::-1], d_pre.unbind(0)[::-1])):
            if outs is not None:
                dy.add_(outs[t])
            dz.add_(dy, alpha=dt)  # g: all that reaches z_t
            torch.mul(dz, step_factor, out=pre)
            dy.add_(dz, alpha=c_y)
            dz.mul_(c_z)
            grad.addmm_(pre, w_cat)  # (B, H) @ (H, 2H): both recurrent matrices' share
        flat = d_pre.view(-1, hidden)  # (T*B, H)
        d_x = (flat @ w_ih).view_as(x) if ctx.needs_input_grad[0] else None
        d_w_ih = _weight_grad(flat, x.reshape(-1, x.shape[2]))  # (H, I)
        d_bias = flat.sum(0)
        d_w_cat = _weight_grad(flat, states[:-1].reshape(-1, 2 * hidden))  # (H, 2H) = [dW | d𝒲]
        d_w_hh = torch.cat([d_w_cat[:, :hidden], d_w_cat[:, hidden:]], dim=0)  # (2H, H)
        POOL.give_back(factor, d_pre)
        return d_x, dy.clone(), dz.clone(), d_w_ih, d_bias, d_w_hh, None, None, None, None


class LEMSequence(torch.autograd.Function):
    """One direction of one LEM layer over T steps, input projection included.

    Gate blocks in the weights' order (dt_bar, dt, z, y). The first three read y_{t-1}
    (one (B, H) @ (H, 3H) matmul a step), the last reads z_t (one (B, H) @ (H, H)).
    In the backward, the blocks scaled by dy (dt_bar and y, rows 0 and 3) are one
    strided view and those scaled by dz (dt and z, rows 1 and 2) one contiguous block,
    so each is one multiply a step.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, y0: torch.Tensor, z0: torch.Tensor, w_ih: torch.Tensor, b_ih: torch.Tensor,
                w_hh: torch.Tensor, b_hh: torch.Tensor, dt: float):
        # x: (T, B, I); y0, z0: (B, H); w_ih: (4H, I); b_ih, b_hh: (4H,); w_hh: (4H, H) = [W_1; W_2; W_z; W_y]
        steps, batch, _ = x.shape
        width = w_hh.shape[0]
        hidden = width // 4
        gates = POOL.take((steps, batch, width), x)  # pre-activations, then σ, σ, tanh, tanh in place
        torch.addmm(b_ih + b_hh, x.reshape(-1, x.shape[2]), w_ih.t(), out=gates.view(-1, width))
        ys = x.new_empty(steps + 1, batch, hidden)  # y_{t-1} at [t]: the output, so not pooled
        zs = POOL.take((steps + 1, batch, hidden), x)  # z_{t-1} at [t]
        ys[0] = y0
        zs[0] = z0
        w_y_t, w_rest_t = w_hh[3 * hidden :].t(), w_hh[: 3 * hidden].t()  # (H, H), (H, 3H)
        diff = x.new_empty(batch, hidden)
        views = (gates[:, :, : 3 * hidden], gates[:, :, : 2 * hidden], gates[:, :, :hidden],
                 gates[:, :, hidden : 2 * hidden], gates[:, :, 2 * hidden : 3 * hidden], gates[:, :, 3 * hidden :])
        per_step = zip(*(v.unbind(0) for v in views), ys.unbind(0), ys[1:].unbind(0), zs.unbind(0), zs[1:].unbind(0))
        for rest, sig, s_bar, s, cand_z, cand_y, y, y_new, z, z_new in per_step:
            rest.addmm_(y, w_rest_t)  # (B, 3H): every block that reads y_{t-1}
            sig.sigmoid_()
            cand_z.tanh_()
            torch.sub(cand_z, z, out=diff)
            torch.addcmul(z, s, diff, value=dt, out=z_new)  # z_t = z + dt σ (tanh - z)
            cand_y.addmm_(z_new, w_y_t).tanh_()  # (B, H): reads the new z_t
            torch.sub(cand_y, y, out=diff)
            torch.addcmul(y, s_bar, diff, value=dt, out=y_new)  # y_t = y + dt σ̄ (tanh - y)
        ctx.set_materialize_grads(False)
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(x, w_ih, w_hh)
            ctx.buffers = (gates, ys, zs)
            ctx.dt = dt
            ctx.lease = _Lease(gates, zs)
        else:
            POOL.give_back(gates, zs)
        return ys[1:], ys[steps].clone(), zs[steps].clone()  # (T, B, H), (B, H), (B, H)

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, d_y_n, d_z_n):
        x, w_ih, w_hh = ctx.saved_tensors
        gates, ys, zs = ctx.buffers
        dt = ctx.dt
        steps, batch, width = gates.shape
        hidden = width // 4
        s_bar, s, cand_z, cand_y = gates.split(hidden, dim=2)
        # For all steps at once (σ̄, σ the two step gates, c_z, c_y the tanh candidates):
        #   d a_dt_bar = dy dt (c_y - y_{t-1}) σ̄(1-σ̄)     d a_y = dy dt σ̄ (1 - c_y^2)
        #   g = dz + d a_y W_y (all that reaches z_t)
        #   d a_dt = g dt (c_z - z_{t-1}) σ(1-σ)          d a_z = g dt σ (1 - c_z^2)
        #   dz_{t-1} = g (1 - dt σ),   dy_{t-1} = dy (1 - dt σ̄) + d(a_dt_bar, a_dt, a_z) [W_1; W_2; W_z]
        factors = POOL.take((steps, batch, width), gates)  # same block order as the gates
        f_bar, f_s, f_z, f_y = factors.split(hidden, dim=2)
        torch.sub(cand_y, ys[:-1], out=f_bar)
        torch.ops.aten.sigmoid_backward.grad_input(f_bar, s_bar, grad_input=f_bar)
        torch.sub(cand_z, zs[:-1], out=f_s)
        torch.ops.aten.sigmoid_backward.grad_input(f_s, s, grad_input=f_s)
        torch.ops.aten.tanh_backward.grad_input(s, cand_z, grad_input=f_z)
        torch.ops.aten.tanh_backward.grad_input(s_bar, cand_y, grad_input=f_y)
        factors.mul_(dt)
        keep = POOL.take((steps, batch, 2 * hidden), gates)  # (1 - dt σ̄, 1 - dt σ): what y and z keep of themselves
        torch.mul(gates[:, :, : 2 * hidden], -dt, out=keep).add_(1.0)
        d_pre = POOL.take((steps, batch, width), gates)
        by_dy = factors.view(steps, batch, 4, hidden)[:, :, ::3]  # (T, B, 2, H): rows dt_bar and y
        by_dz = factors[:, :, hidden : 3 * hidden].view(steps, batch, 2, hidden)  # rows dt and z
        pre_by_dy = d_pre.view(steps, batch, 4, hidden)[:, :, ::3]
        pre_by_dz = d_pre[:, :, hidden : 3 * hidden].view(steps, batch, 2, hidden)
        pre_y, pre_rest = d_pre[:, :, 3 * hidden :], d_pre[:, :, : 3 * hidden]
        keep_y, keep_z = keep[:, :, :hidden], keep[:, :, hidden:]
        w_y, w_rest = w_hh[3 * hidden :], w_hh[: 3 * hidden]  # (H, H), (3H, H)
        dy = d_y_n.clone() if d_y_n is not None else gates.new_zeros(batch, hidden)
        dz = d_z_n.clone() if d_z_n is not None else gates.new_zeros(batch, hidden)
        tensors = (by_dy, pre_by_dy, by_dz, pre_by_dz, pre_y, pre_rest, keep_y, keep_z)
        per_step = zip(*(tensor.unbind(0)[::-1] for tensor in tensors))
        outs = d_out.unbind(0)[::-1] if d_out is not None else None
        for t, (f_dy, p_dy, f_dz, p_dz, p_y, p_rest, k_y, k_z) in enumerate(per_step):
            if outs is not None:
                dy.add_(outs[t])
            torch.mul(dy.unsqueeze(1), f_dy, out=p_dy)
            dz.addmm_(p_y, w_y)  # g = dz + d a_y W_y
            torch.mul(dz.unsqueeze(1), f_dz, out=p_dz)
            dz.mul_(k_z)
            dy.mul_(k_y).addmm_(p_rest, w_rest)  # (B, 3H) @ (3H, H)
        flat = d_pre.view(-1, width)  # (T*B, 4H)
        d_x = (flat @ w_ih).view_as(x) if ctx.needs_input_grad[0] else None
        d_w_ih = _weight_grad(flat, x.reshape(-1, x.shape[2]))  # (4H, I)
        d_bias = flat.sum(0)
        d_w_hh = torch.cat([_weight_grad(flat[:, : 3 * hidden], ys[:-1].reshape(-1, hidden)),  # read y_{t-1}
                            _weight_grad(flat[:, 3 * hidden :], zs[1:].reshape(-1, hidden))])  # read z_t
        POOL.give_back(factors, keep, d_pre)
        return d_x, dy, dz, d_w_ih, d_bias, d_w_hh, d_bias.clone(), None
