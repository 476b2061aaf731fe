"""expRNN: an RNN whose recurrent matrix is orthogonal by construction, the exponential of a skew-symmetric matrix.

Lezcano-Casado & Martínez-Rubio, "Cheap Orthogonal Constraints in Neural Networks: A Simple
Parametrization of the Orthogonal and Unitary Group", ICML 2019 (arXiv:1901.08428), Sections 3-5:

    A   = X⁺ − X⁺ᵀ,  X⁺ the strictly upper triangle of an unconstrained H x H parameter X
    W_hh = exp(A)                                  (orthogonal: exp(A)ᵀ exp(A) = exp(−A) exp(A) = I)
    h_t = modReLU(x_t W_ihᵀ + h_{t−1} W_hhᵀ, b),   modReLU(z, b) = sign(z) · relu(|z| + b)

with a learned bias b per unit and no other bias (the authors' input kernel has none).
Why: an orthogonal W_hh keeps ‖W_hh h‖ = ‖h‖, so the linear part of the recurrence neither
explodes nor vanishes over thousands of steps (the copy task at T = 2000), and the
parametrization is unconstrained: any optimizer on X keeps W_hh exactly orthogonal, at
the cost of one H x H matrix exponential per forward, not per step.

Settings (``RNNConfig.cell_options``):
    ``orthogonal_map``: "matrix_exp" (the paper's) or "cayley", (I + A/2)(I − A/2)⁻¹, the Cayley
        retraction as ``torch.nn.utils.parametrizations.orthogonal`` defines it (second-order
        close to exp(A), so the same A gives nearly the same matrix; the authors' own "cayley"
        mode is (I − A)⁻¹(I + A), which is about exp(2A)).
    ``init``: how A starts. "henaff" (Henaff et al. 2016): block-diagonal 2 x 2 rotations
        [[0, θ], [−θ, 0]] with θ ~ U(−π, π), so exp(A) is a random rotation in each plane;
        "cayley" (Helfrich et al. 2018): the same blocks with θ = −sqrt((1 − cos s)/(1 + cos s))
        = −tan(s/2), s ~ U(0, π/2). An odd H leaves the last unit unrotated (eigenvalue 1).

Parameters, per layer and direction, by the zoo's ``<base>_l<layer>[_reverse]`` convention:
``weight_ih`` (H, I), initialized He-normal as the authors do; ``skew_weight_hh`` (H, H), X,
the unconstrained parameter that the state dict saves and the optimizer updates (only its
strictly upper triangle matters: A reads X⁺); ``bias_hh`` (H,), modReLU's b, U(−0.01, 0.01).
The orthogonal matrix itself is computed: ``module.weight_hh_l0`` (``ExpRNN.recurrent_weight``)
and ``ExpRNN.recurrent_matrices()``. It is no parameter of its own because it must be a function
of X: a copy would be one more H x H tensor for the optimizer, the penalties and the parameter
count. So the spectra, which read parameters, do not see it yet (``recurrent_matrix=False``);
its spectral radius is 1 by construction, and ``recurrent_matrices`` gives it to whoever asks.

The paper trains X with its own, 10x smaller learning rate (RMSprop 7e-5 next to 7e-4 for
sMNIST): ``orthogonal_parameters`` picks the X's out of a model for such a parameter group.

Fast path: the input projection of all steps in one matmul, W_hh computed once per forward
of each layer and direction, then a loop of one (B, H) @ (H, H) matmul and three elementwise
ops a step, with a hand-written backward (``ExpRNNSequence``), through ``run_stack``.

Shapes: T time, B batch, I input size, H hidden size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from zoo.cells.base import (Cell, Option, Params, State, matrix_spectrum, register_cell, split_name,
                            stack_kwargs)
from zoo.errors import ZooError, check_choice
from zoo.models.sequence_kernels import POOL, _weight_grad, run_stack

if TYPE_CHECKING:
    from zoo.models.rnn import RNNConfig

ORTHOGONAL_MAPS = ("matrix_exp", "cayley")
SKEW_INITS = ("henaff", "cayley")
MODRELU_BIAS_RANGE = 0.01  # the authors' b ~ U(-0.01, 0.01)
# The recurrent init schemes that mean something here: 'default' is the `init` option's A, 'uniform'
# draws X's entries U(-init_range, init_range) instead (a small random A, exp(A) near the identity).
RECURRENT_INITS = ("default", "uniform")


# ----------------------------------------------------------------------------- the parametrization
def skew(x: torch.Tensor) -> torch.Tensor:
    """A = X⁺ − X⁺ᵀ from the strictly upper triangle X⁺ of ``x`` (H, H): skew-symmetric, every such A reachable."""
    upper = x.triu(1)
    return upper - upper.mT


def cayley(a: torch.Tensor) -> torch.Tensor:
    """(I + A/2)(I − A/2)⁻¹ for a skew-symmetric A: orthogonal. The two factors commute, so it is a solve."""
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    return torch.linalg.solve(eye - a / 2, eye + a / 2)


def orthogonal_matrix(x: torch.Tensor, orthogonal_map: str = "matrix_exp") -> torch.Tensor:
    """The recurrent matrix W_hh (H, H) of the unconstrained parameter X: exp(A) or the Cayley map of A = skew(X)."""
    a = skew(x)
    if orthogonal_map == "matrix_exp":
        return torch.matrix_exp(a)
    if orthogonal_map == "cayley":
        return cayley(a)
    return check_choice("cell_options.orthogonal_map", orthogonal_map, ORTHOGONAL_MAPS)  # raises: not a map


def modrelu(z: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """sign(z) · relu(|z| + b): a ReLU on the modulus that keeps the sign (the phase, for complex z)."""
    return torch.sign(z) * torch.relu(z.abs() + bias)


def _block_diagonal_skew_(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """X = A = block diag([[0, θ_i], [−θ_i, 0]]) in place: exp(A) rotates plane (2i, 2i+1) by θ_i."""
    with torch.no_grad():
        x.zero_()
        index = torch.arange(angles.numel(), device=x.device) * 2
        x[index, index + 1] = angles.to(x)
        x[index + 1, index] = -angles.to(x)
    return x


def henaff_skew_(x: torch.Tensor) -> torch.Tensor:
    """Henaff et al. 2016's init of A: 2 x 2 rotation blocks with angles U(−π, π)."""
    angles = torch.empty(x.shape[0] // 2, dtype=torch.float64).uniform_(-math.pi, math.pi)
    return _block_diagonal_skew_(x, angles)


def cayley_skew_(x: torch.Tensor) -> torch.Tensor:
    """Helfrich et al. 2018's init of A: the same blocks, entries −sqrt((1 − cos s)/(1 + cos s)), s ~ U(0, π/2)."""
    s = torch.empty(x.shape[0] // 2, dtype=torch.float64).uniform_(0.0, math.pi / 2)
    return _block_diagonal_skew_(x, -torch.sqrt((1 - torch.cos(s)) / (1 + torch.cos(s))))


SKEW_INITIALIZERS = {"henaff": henaff_skew_, "cayley": cayley_skew_}


# ----------------------------------------------------------------------------- the kernel
class ExpRNNSequence(torch.autograd.Function):
    """One direction of one modReLU RNN layer over T steps: h_t = modReLU(x_t W_ihᵀ + h_{t−1} W_hhᵀ, b).

    W_hh comes in computed (exp(A), once per forward): its gradient leaves here as a plain
    (H, H) matrix, and autograd carries it back through the matrix exponential to X.
    modReLU's derivatives are functions of its output: ∂h/∂z = 1 where h ≠ 0 (|z| + b > 0
    and z ≠ 0, sign(z)² = 1) and 0 elsewhere, ∂h/∂b = sign(h). So the backward needs only
    the saved h's, and its loop is one multiply and one matmul a step.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, h0: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, bias: torch.Tensor):
        # x: (T, B, I); h0: (B, H); w_ih: (H, I); w_hh: (H, H) orthogonal; bias: (H,) modReLU's b
        steps, batch, _ = x.shape
        hidden = w_hh.shape[0]
        hs = x.new_empty(steps + 1, batch, hidden)  # h_{t-1} at [t], h_t at [t + 1]: the output
        hs[0] = h0
        torch.mm(x.reshape(-1, x.shape[2]), w_ih.t(), out=hs[1:].view(-1, hidden))  # x W_ih^T, all steps
        modulus = POOL.take((batch, hidden), hs)
        w_t = w_hh.t()
        for previous, h in zip(hs.unbind(0), hs[1:].unbind(0)):
            h.addmm_(previous, w_t)  # z_t (B, H)
            torch.abs(h, out=modulus).add_(bias).relu_()  # relu(|z| + b)
            h.sign_().mul_(modulus)  # h_t
        POOL.give_back(modulus)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, w_ih, w_hh)
        ctx.hs = hs
        return hs[1:], hs[steps].clone()  # (T, B, H), (B, H)

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, d_h_n):
        x, w_ih, w_hh = ctx.saved_tensors
        hs = ctx.hs
        steps, batch, hidden = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
        out = hs[1:]
        sign = torch.sign(out, out=POOL.take((steps, batch, hidden), out))  # ∂h_t/∂b, every step at once
        active = torch.abs(sign, out=POOL.take((steps, batch, hidden), out))  # ∂h_t/∂z_t: 1 where h_t ≠ 0
        d_pre = POOL.take((steps, batch, hidden), out)
        dh = d_h_n.clone() if d_h_n is not None else out.new_zeros(batch, hidden)
        outs = d_out.unbind(0)[::-1] if d_out is not None else None
        for t, (factor, pre) in enumerate(zip(active.unbind(0)[::-1], d_pre.unbind(0)[::-1])):
            if outs is not None:
                dh.add_(outs[t])
            torch.mul(dh, factor, out=pre)  # ∂L/∂z_t
            dh = torch.mm(pre, w_hh)  # (B, H) @ (H, H): ∂L/∂h_{t-1}
        flat, x_flat = d_pre.view(-1, hidden), x.reshape(-1, x.shape[2])
        d_x = (flat @ w_ih).view_as(x) if ctx.needs_input_grad[0] else None
        d_bias = (d_pre * sign).sum((0, 1)) if ctx.needs_input_grad[4] else None  # sign² = active
        grads = (d_x, dh, _weight_grad(flat, x_flat), _weight_grad(flat, hs[:-1].reshape(-1, hidden)), d_bias)
        POOL.give_back(sign, active, d_pre)
        return grads


# ----------------------------------------------------------------------------- the layer stack
class ExpRNN(nn.Module):
    """A stack of expRNN layers, any depth, either direction; parameters by the zoo's names (see the module docstring).

    ``weight_hh_l<k>[_reverse]`` reads as an attribute, computed from X each time: the
    orthogonal matrix that layer uses (``recurrent_weight``).
    """

    cell = "exprnn"  # the zoo.cells cell whose parameters it carries (run_stack reads it)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0, orthogonal_map: str = "matrix_exp", init: str = "henaff") -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.dropout = bidirectional, dropout
        self.orthogonal_map = check_choice("cell_options.orthogonal_map", orthogonal_map, ORTHOGONAL_MAPS)
        self.init = check_choice("cell_options.init", init, SKEW_INITS)
        directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for suffix in ["", "_reverse"][:directions]:
                shapes = {"weight_ih": (hidden_size, layer_input), "skew_weight_hh": (hidden_size, hidden_size),
                          "bias_hh": (hidden_size,)}
                for base, shape in shapes.items():
                    self.register_parameter(f"{base}_l{layer}{suffix}", nn.Parameter(torch.empty(shape)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The authors' init: W_ih He-normal (fan in, relu gain), A by ``init``, b ~ U(−0.01, 0.01)."""
        for name, param in self._parameters.items():
            base = split_name(name)[0]
            if base == "weight_ih":
                nn.init.kaiming_normal_(param, nonlinearity="relu")
            elif base == "skew_weight_hh":
                SKEW_INITIALIZERS[self.init](param)
            else:
                nn.init.uniform_(param, -MODRELU_BIAS_RANGE, MODRELU_BIAS_RANGE)

    def recurrent_weight(self, layer: int, reverse: bool = False) -> torch.Tensor:
        """W_hh (H, H) of one layer and direction, orthogonal, differentiable in its X."""
        suffix = "_reverse" if reverse else ""
        return orthogonal_matrix(self._parameters[f"skew_weight_hh_l{layer}{suffix}"], self.orthogonal_map)

    def recurrent_matrices(self) -> dict[str, torch.Tensor]:
        """{"l0": W_hh, "l0_reverse": ..., "l1": ...}: every orthogonal matrix, keyed as the spectra key them."""
        return {f"l{layer}{'_reverse' if reverse else ''}": self.recurrent_weight(layer, reverse)
                for layer in range(self.num_layers) for reverse in (False, True)[:2 if self.bidirectional else 1]}

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            parts = split_name(name)
            if parts is not None and parts[0] == "weight_hh" and f"skew_{name}" in self.__dict__["_parameters"]:
                return self.recurrent_weight(parts[1], parts[2])
            raise

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None):
        # x: (B, T, I); h0: (L*D, B, H) -> (B, T, D*H), (L*D, B, H). The loop over time, with its
        # hand-written backward, is ExpRNNSequence (through _sequence).
        directions = 2 if self.bidirectional else 1
        if x.dim() != 3 or x.shape[2] != self.input_size:
            raise ZooError(f"exprnn expects input of shape (B, T, {self.input_size}), got {tuple(x.shape)}")
        if h0 is not None and tuple(h0.shape) != (self.num_layers * directions, x.shape[0], self.hidden_size):
            expected = (self.num_layers * directions, x.shape[0], self.hidden_size)
            raise ZooError(f"exprnn expects a state of shape {expected}, got {tuple(h0.shape)}")
        return run_stack(self, x, h0)


def orthogonal_parameters(model: nn.Module) -> Iterator[nn.Parameter]:
    """Every X (``skew_weight_hh_*``) of an expRNN in ``model``: the parameters the paper gives a 10x smaller lr."""
    for name, param in model.named_parameters():
        parts = split_name(name.rsplit(".", 1)[-1])
        if parts is not None and parts[0] == "skew_weight_hh":
            yield param


# ----------------------------------------------------------------------------- the Cell
def _check_map(setting: str, value: object) -> str:
    return check_choice(setting, value, ORTHOGONAL_MAPS)


def _check_init(setting: str, value: object) -> str:
    return check_choice(setting, value, SKEW_INITS)


def _validate(config: RNNConfig) -> None:
    if config.recurrent_init not in RECURRENT_INITS:
        raise ZooError(f"recurrent_init {config.recurrent_init!r} does not apply to cell 'exprnn': its recurrent "
                       f"matrix is exp(A) of a skew-symmetric A, which cell_options.init sets (henaff or cayley); "
                       f"valid choices for 'exprnn': {', '.join(RECURRENT_INITS)}")
    if config.recurrent_init != "default" and "init" in config.cell_options:
        raise ZooError(f"recurrent_init {config.recurrent_init!r} and cell_options.init "
                       f"{config.cell_options['init']!r} both set exprnn's A; give one of them")


def _build(input_size: int, config: RNNConfig) -> nn.Module:
    return ExpRNN(orthogonal_map=EXPRNN.option(config, "orthogonal_map"), init=EXPRNN.option(config, "init"),
                  **stack_kwargs(input_size, config))


def _step(params: Params, x_proj: torch.Tensor, state: State, config: RNNConfig) -> tuple[torch.Tensor, State]:
    # x_proj: (B, H) = x_t W_ih^T; state: (h_{t-1},), (B, H). The first step of a layer computes W_hh from X and
    # keeps it in `params` (a dict unrolled_forward builds for this one pass), so that, as in the fast path,
    # one matrix exponential serves every step.
    weight = params.get("weight_hh")
    if weight is None:
        weight = params["weight_hh"] = orthogonal_matrix(params["skew_weight_hh"],
                                                         EXPRNN.option(config, "orthogonal_map"))
    h = modrelu(x_proj + state[0] @ weight.t(), params["bias_hh"])
    return h, (h,)


def _sequence(module: nn.Module, params: Params, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
    # x: (T, B, I) -> (T, B, H), ((B, H),); W_hh once per call, then the loop
    weight = orthogonal_matrix(params["skew_weight_hh"], module.orthogonal_map)
    out, h = ExpRNNSequence.apply(x, state[0], params["weight_ih"], weight, params["bias_hh"])
    return out, (h,)


EXPRNN = Cell(
    name="exprnn",
    summary="the orthogonal expRNN",
    activation="modrelu",
    gates=("",),
    state=("h",),
    input_weights=("weight_ih",),
    recurrent_weights=("skew_weight_hh",),
    # W_hh is square, but a function of X rather than a parameter: the init's matrix schemes, which write
    # parameters, would write X, so they are refused; the spectra measure exp(A) itself through ``spectra``.
    recurrent_matrix=False,
    recurrence="its orthogonal recurrent matrix exp(A) is computed from skew_weight_hh, not stored",
    spectra=lambda module: {key: matrix_spectrum(w) for key, w in module.recurrent_matrices().items()},
    options={
        "orthogonal_map": Option("matrix_exp", _check_map, "matrix_exp (the paper's exp(A)) or cayley"),
        "init": Option("henaff", _check_init, "A's init: henaff (rotations U(-pi, pi)) or cayley (Helfrich et al.)"),
    },
    implementations=("auto",),
    validate=_validate,
    build=_build,
    step=_step,
    sequence=_sequence,
)

register_cell(EXPRNN)
