"""The Linear Recurrent Unit (Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu, De, "Resurrecting Recurrent
Neural Networks for Long Sequences", ICML 2023), as a stack of the paper's blocks or of bare LRU layers.

The LRU, a complex diagonal linear recurrence with a real readout (N complex states, H features):

    x_t = Λ x_{t-1} + γ ⊙ (B u_t),        y_t = Re(C x_t) + D ⊙ u_t,
    Λ = diag(λ),  λ_j = exp(-exp(ν_j) + i exp(θ_j))      (exponential parametrisation: |λ_j| < 1 always),
    γ_j = exp(γ_log_j), initialised to sqrt(1 - |λ_j|^2)  (normalisation; trained, stored as its log).

Init (the paper's ring init): |λ_j| uniform on the ring r_min <= |λ| <= r_max (ν_log =
log(-½ log(U·(r_max² - r_min²) + r_min²))), phase U·max_phase (θ_log = log of it);
B = B_re + i B_im with entries N(0, 1/(2 H_in)) each part (Glorot-like: E|B|² = 1/H_in),
C likewise with N(0, 1/N), D ~ N(0, 1).

The block (``block``, on by default: the paper's model is a stack of them; Figure 1, §D),
pre-norm as in the authors' description "Norm-Recurrence-GLU-Skip":

    z = LayerNorm(u),  y = LRU(z),  g = dropout(GELU(y)),
    o = dropout((g W_1 + b_1) ⊙ sigmoid(g W_2 + b_2)),  out = u + o.

Layer 0 first maps the input (I features) to the model width H with a linear encoder
(``weight_ih``, ``bias_ih``: the paper's encoder); later blocks read the H-wide residual
stream. The block form is unidirectional (its residual stream is one width); ``block=False``
is the bare LRU layer (encoder where the layer's input is not H wide, then the LRU, nothing
after: a stack of them stays linear) and may be bidirectional.

The state: the zoo carries ``("h", "x")``: h (B, H) the layer's output at its last step
(what a last-step head reads), x (B, 2N) the complex LRU state as real numbers, interleaved
(re_1, im_1, re_2, ...): ``torch.view_as_real`` flattened, so a state is a real tensor like
every other cell's. A zero state is the empty (B, 0) tensor, because ``Cell.zero_state``
is not told N (see ``LRUCellDescriptor``).

Fast path: ``run_stack`` with ``_sequence``. With ``scan`` 'sequential' ('auto' on a CPU) the
layer's input map γ B, its loop over time and its readout Re(C x) + D ⊙ z are one function
with a hand-written backward (``zoo.models.complex_scan.LRUSequence``), the encoder, norm,
GELU and GLU whole-sequence ops around it; the state's h is that of the last step computed
again on its own, so that a head reading the last step sends the layer no gradient for the
others. With 'parallel' ('auto' elsewhere) the recurrence alone is the log-depth scan and the
rest plain autograd. The unrolled diagnostics run ``_project`` and ``_step``.

Shapes: B batch, T time, I input, H hidden (model width), N state size, L layers, D directions.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.cells.base import Cell, Option, Params, State, layer_parameters, register_cell, stack_kwargs
from zoo.errors import ZooError, check_choice, check_float, check_int
from zoo.models.complex_scan import SCANS, LRUSequence, linear_recurrence, resolve_scan
from zoo.models.sequence_kernels import run_stack

if TYPE_CHECKING:
    from zoo.models.rnn import RNNConfig

NORMS = ("layer", "none")
NORM_EPS = 1e-5  # torch's LayerNorm default


# ----------------------------------------------------------------------------- options
def _check_radius(setting: str, value: Any) -> float:
    value = check_float(setting, value, low=0.0)
    if value >= 1.0:
        raise ZooError(f"{setting} must be >= 0 and < 1 (|λ| >= 1 would make the recurrence grow without bound), "
                       f"got {value}")
    return value


def _check_phase(setting: str, value: Any) -> float:
    value = check_float(setting, value, low=0.0, high=2 * math.pi)
    if value <= 0.0:
        raise ZooError(f"{setting} must be > 0 and <= 2π ({2 * math.pi:.6f}), got {value}")
    return value


def _check_state_size(setting: str, value: Any) -> int | None:
    return None if value is None else check_int(setting, value, low=1, high=1 << 16)


def _check_bool(setting: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ZooError(f"{setting} must be true or false, got {value!r}")
    return value


OPTIONS = {
    "r_min": Option(0.9, _check_radius, "smallest |λ| of the ring init, 0 <= r_min < r_max"),
    "r_max": Option(0.999, _check_radius, "largest |λ| of the ring init, r_min < r_max < 1"),
    "max_phase": Option(2 * math.pi, _check_phase,
                        "the phases of λ start uniform on [0, max_phase], 0 < max_phase <= 2π"),
    "state_size": Option(None, _check_state_size, "N, the number of complex states per layer (unset: hidden_size)"),
    "block": Option(True, _check_bool, "the paper's block (norm, LRU, GELU, GLU, residual); false: the bare LRU layer"),
    "norm": Option("layer", lambda s, v: check_choice(s, v, NORMS), "the block's pre-norm: layer or none"),
    "block_dropout": Option(0.0, lambda s, v: check_float(s, v, low=0.0, high=1.0, high_open=True),
                            "the block's dropout after GELU and after the GLU (one mask per sequence), 0 <= p < 1"),
    "scan": Option("auto", lambda s, v: check_choice(s, v, SCANS),
                   "the recurrence: sequential (CPU loop), parallel (log-depth scan) or auto (sequential on a CPU)"),
}


def _options(config: RNNConfig) -> dict[str, Any]:
    return {name: LRU.option(config, name) for name in OPTIONS}


def _validate(config: RNNConfig) -> None:
    o = _options(config)
    if o["r_min"] >= o["r_max"]:
        raise ZooError(f"cell_options.r_min must be < cell_options.r_max, got r_min {o['r_min']} and "
                       f"r_max {o['r_max']}")
    if o["block"] and config.bidirectional:
        raise ZooError("the LRU block (cell_options.block true, the default) is unidirectional, as in the paper: its "
                       "residual stream has one width; use bidirectional false, or cell_options.block false for "
                       "bidirectional bare LRU layers")
    if not o["block"] and (o["norm"] != "layer" or o["block_dropout"] != 0.0):
        raise ZooError("cell_options.norm and cell_options.block_dropout belong to the LRU block, but "
                       "cell_options.block is false; leave them unset")
    if config.recurrent_init != "default":
        raise ZooError(f"recurrent_init {config.recurrent_init!r} does not apply to cell 'lru': its recurrence λ "
                       "starts on the ring set by cell_options.r_min, r_max and max_phase; valid choices for 'lru': "
                       "default")


# ----------------------------------------------------------------------------- the equations, shared by both paths
def eigenvalues(params: Params) -> torch.Tensor:
    """λ = exp(-exp(ν_log) + i exp(θ_log)): (N,) complex, |λ| < 1 for any ν_log."""
    return torch.exp(torch.complex(-torch.exp(params["nu_log"]), torch.exp(params["theta_log"])))


def _norm_and_encode(params: Params, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # x: (..., I) -> u (..., H) the block's input (residual stream), z (..., H) what the LRU reads
    u = F.linear(x, params["weight_ih"], params["bias_ih"]) if "weight_ih" in params else x
    z = F.layer_norm(u, u.shape[-1:], params["norm_weight"], params["norm_bias"], NORM_EPS) \
        if "norm_weight" in params else u
    return u, z


def _input_weight(params: Params) -> torch.Tensor:
    """γ ⊙ B as one real (2N, H_in) matrix whose rows interleave re and im, so z @ it.T views as complex."""
    gamma = torch.exp(params["gamma_log"]).unsqueeze(1)  # (N, 1)
    return torch.stack([gamma * params["B_re"], gamma * params["B_im"]], dim=1).flatten(0, 1)


def _drive(params: Params, z: torch.Tensor) -> torch.Tensor:
    # z: (..., H_in) -> γ ⊙ (B z): (..., N) complex, one real matmul
    out = F.linear(z, _input_weight(params))  # (..., 2N), re/im interleaved
    return torch.view_as_complex(out.unflatten(-1, (-1, 2)))


def _output_weight(params: Params) -> torch.Tensor:
    """(H, 2N) real with Re(C x) = view_as_real(x).flatten(-2) @ it.T: columns (C_re, -C_im) interleaved."""
    return torch.stack([params["C_re"], -params["C_im"]], dim=-1).flatten(-2)


def _block_out(params: Params, y: torch.Tensor, u: torch.Tensor, masks: tuple[torch.Tensor, torch.Tensor] | None
               ) -> torch.Tensor:
    # y: LRU output, u: block input, both (..., H) -> the block's output (..., H); masks: the two dropouts or None
    if "glu_weight" not in params:
        return y
    g = F.gelu(y)
    if masks is not None:
        g = g * masks[0]
    value, gate = F.linear(g, params["glu_weight"], params["glu_bias"]).chunk(2, dim=-1)
    o = value * torch.sigmoid(gate)
    if masks is not None:
        o = o * masks[1]
    return u + o


def _initial_state(state: State, like: torch.Tensor, size: int) -> torch.Tensor:
    """The complex x_0 (B, N) from the state's real x part (B, 2N), or zeros for the empty zero state (B, 0)."""
    x = state[1]
    if x.shape[-1] == 0:
        return torch.zeros(x.shape[0], size, dtype=like.dtype, device=like.device)
    if x.shape[-1] != 2 * size:
        raise ZooError(f"the LRU's state x must be (B, 2N) = (B, {2 * size}) per layer and direction (re and im "
                       f"interleaved), got width {x.shape[-1]}")
    return torch.view_as_complex(x.to(like.real.dtype).contiguous().unflatten(-1, (size, 2)))


# ----------------------------------------------------------------------------- the unrolled diagnostics' step
def _project(params: Params, x: torch.Tensor) -> torch.Tensor:
    # x: (B, T, I) -> (B, T, 2N + 2H): [γ B z as re/im interleaved | D ⊙ z | u], everything a step needs but x_{t-1}
    u, z = _norm_and_encode(params, x)
    drive = torch.view_as_real(_drive(params, z)).flatten(-2)  # (B, T, 2N)
    return torch.cat([drive, params["D"] * z, u], dim=-1)


def _step(params: Params, x_proj: torch.Tensor, state: State, config: RNNConfig) -> tuple[torch.Tensor, State]:
    # x_proj: (B, 2N + 2H) from _project; state: (h_{t-1} (B, H), x_{t-1} (B, 2N) or (B, 0)) -> h_t, (h_t, x_t)
    size, hidden = params["nu_log"].shape[0], params["D"].shape[0]
    drive, skip, u = x_proj.split([2 * size, hidden, hidden], dim=-1)
    drive = torch.view_as_complex(drive.contiguous().unflatten(-1, (size, 2)))  # (B, N)
    x = eigenvalues(params) * _initial_state(state, drive, size) + drive  # x_t = λ x_{t-1} + γ B z_t
    x_real = torch.view_as_real(x).flatten(-2)  # (B, 2N)
    y = F.linear(x_real, _output_weight(params)) + skip  # Re(C x_t) + D z_t
    h = _block_out(params, y, u, None)
    return h, (h, x_real)


# ----------------------------------------------------------------------------- the fast path
def _folded_weights(params: Params) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(w, b, w_skip, b_skip) with γ B u = x w^T + b and D ⊙ u = x w_skip^T + b_skip, u = x W_ih^T + b_ih.

    A bare layer's encoder u is linear in x, so folding it into the weights makes γ B u cost
    T·B·2N·I instead of T·B·2N·H (an sMNIST input has I = 1), and D ⊙ u likewise; the same
    numbers up to rounding. w (2N, I) and b (2N,) have re and im interleaved; w_skip (H, I).
    """
    weight_ih, bias_ih = params["weight_ih"], params["bias_ih"]
    w_in = _input_weight(params)  # (2N, H)
    return w_in @ weight_ih, w_in @ bias_ih, params["D"].unsqueeze(1) * weight_ih, params["D"] * bias_ih


def _folded_input(params: Params, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """γ B u and D ⊙ u of a bare layer by ``_folded_weights``: x (T, B, I) -> (T, B, N) complex, (T, B, H)."""
    w_in, b_in, w_skip, b_skip = _folded_weights(params)
    drive = torch.view_as_complex(F.linear(x, w_in, b_in).unflatten(-1, (-1, 2)))
    return drive, F.linear(x, w_skip, b_skip)


def _sequence(module: nn.Module, params: Params, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
    # x: (T, B, I) -> (T, B, H), (h_T (B, H), x_T (B, 2N))
    steps = x.shape[0]
    block = "glu_weight" in params
    folded = not block and "weight_ih" in params and x.shape[-1] < params["D"].shape[0]
    size = params["nu_log"].shape[0]
    if steps and resolve_scan(module.scan, x.device) == "sequential":
        return _fused_sequence(module, params, x, state, folded)
    if folded:
        drive, skip = _folded_input(params, x)  # (T, B, N) complex, (T, B, H)
        u = None
    else:
        u, z = _norm_and_encode(params, x)  # (T, B, H) each
        drive, skip = _drive(params, z), params["D"] * z
    x0 = _initial_state(state, drive, size)
    xs = linear_recurrence(eigenvalues(params), drive, x0, module.scan)  # (T, B, N) complex
    xs_real = torch.view_as_real(xs).flatten(-2)  # (T, B, 2N)
    y = F.linear(xs_real, _output_weight(params)).add_(skip)  # Re(C x_t) + D ⊙ z_t: (T, B, H)
    masks = _block_masks(module, y) if block else None
    out = _block_out(params, y, u, masks) if block else y
    if steps == 0:
        return out, (state[0], torch.view_as_real(x0).flatten(-2))
    return out, (out[-1], xs_real[-1])


def _block_masks(module: nn.Module, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The block's two dropout masks, (1, B, H) each (one per sequence and feature, shared by all steps), or None."""
    if not (module.training and module.block_dropout > 0):
        return None
    keep = y.new_ones(2, 1, y.shape[1], y.shape[-1])
    return tuple(F.dropout(keep, module.block_dropout, training=True).unbind(0))


def _fused_sequence(module: nn.Module, params: Params, x: torch.Tensor, state: State, folded: bool
                    ) -> tuple[torch.Tensor, State]:
    """``_sequence`` by ``LRUSequence`` (the CPU loop, drive and readout folded in): the same equations.

    The state's h is computed from the layer's last output y_T alone (for the block, its
    norm-LRU-GLU-skip of that one step again), so that a loss reading the last step only
    sends the LRU no gradient for the other steps' outputs.
    """
    size = params["nu_log"].shape[0]
    if folded:  # the encoder folded into γ B and D (``_folded_weights``)
        v, u = x, None
        w_in, b_in, skip, b_skip = _folded_weights(params)
    else:
        u, v = _norm_and_encode(params, x)  # (T, B, H) each
        w_in, b_in, skip, b_skip = _input_weight(params), None, params["D"], None
    like = x.new_empty(0)
    x0 = torch.view_as_real(_initial_state(state, torch.complex(like, like), size)).flatten(-2)  # (B, 2N)
    y, y_last, x_last = LRUSequence.apply(v, x0, eigenvalues(params), w_in, b_in, _output_weight(params), skip,
                                          b_skip)
    if "glu_weight" not in params:
        return y, (y_last, x_last)
    masks = _block_masks(module, y)
    last_masks = None if masks is None else tuple(mask[0] for mask in masks)
    return _block_out(params, y, u, masks), (_block_out(params, y_last, u[-1], last_masks), x_last)


class LRULayers(nn.Module):
    """A stack of LRU blocks (or bare LRU layers), all layers and directions, parameters by the zoo's names.

    Per layer k and direction (suffix ``_l{k}`` / ``_l{k}_reverse``): ``nu_log``, ``theta_log``,
    ``gamma_log`` (N,); ``B_re``, ``B_im`` (N, H); ``C_re``, ``C_im`` (H, N); ``D`` (H,); the
    encoder ``weight_ih`` (H, I_k), ``bias_ih`` (H,) at layer 0 and wherever a layer's input is
    not H wide; and for the block ``norm_weight``, ``norm_bias`` (H,), ``glu_weight`` (2H, H),
    ``glu_bias`` (2H,) (the GLU's value and gate halves stacked).
    """

    cell = "lru"  # the zoo.cells cell whose parameters it carries (run_stack reads it)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0, *, state_size: int | None = None, r_min: float = 0.9, r_max: float = 0.999,
                 max_phase: float = 2 * math.pi, block: bool = True, norm: str = "layer", block_dropout: float = 0.0,
                 scan: str = "auto") -> None:
        super().__init__()
        if block and bidirectional:
            raise ZooError("the LRU block is unidirectional; use block=False for bidirectional LRU layers")
        if not 0.0 <= r_min < r_max < 1.0:
            raise ZooError(f"the LRU's ring needs 0 <= r_min < r_max < 1, got r_min {r_min} and r_max {r_max}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.dropout = bidirectional, dropout
        self.state_size = state_size or hidden_size
        self.r_min, self.r_max, self.max_phase = r_min, r_max, max_phase
        self.block, self.norm = block, check_choice("norm", norm, NORMS)
        self.block_dropout, self.scan = block_dropout, check_choice("scan", scan, SCANS)
        directions = 2 if bidirectional else 1
        n, h = self.state_size, hidden_size
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for suffix in ["", "_reverse"][:directions]:
                shapes: dict[str, tuple[int, ...]] = {}
                if layer == 0 or layer_input != h:
                    shapes |= {"weight_ih": (h, layer_input), "bias_ih": (h,)}
                if block and norm == "layer":
                    shapes |= {"norm_weight": (h,), "norm_bias": (h,)}
                shapes |= {"nu_log": (n,), "theta_log": (n,), "gamma_log": (n,), "B_re": (n, h), "B_im": (n, h),
                           "C_re": (h, n), "C_im": (h, n), "D": (h,)}
                if block:
                    shapes |= {"glu_weight": (2 * h, h), "glu_bias": (2 * h,)}
                for base, shape in shapes.items():
                    self.register_parameter(f"{base}_l{layer}{suffix}", nn.Parameter(torch.empty(shape)))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The paper's init: λ on the ring, γ = sqrt(1 - |λ|^2), B and C Glorot-like complex, D ~ N(0, 1);
        the encoder and the GLU as ``nn.Linear``, the norm as ``nn.LayerNorm``."""
        for layer in range(self.num_layers):
            for reverse in [False, True][: 2 if self.bidirectional else 1]:
                p = layer_parameters(self, layer, reverse)
                n = p["nu_log"].shape[0]
                tiny = torch.finfo(p["nu_log"].dtype).tiny
                radius_sq = torch.rand(n).mul_(self.r_max**2 - self.r_min**2).add_(self.r_min**2).clamp_(min=tiny)
                p["nu_log"].copy_(torch.log(-0.5 * torch.log(radius_sq)))  # |λ| = exp(-exp(ν_log)) = sqrt(radius_sq)
                p["theta_log"].copy_(torch.log(torch.rand(n).clamp_(min=tiny) * self.max_phase))
                p["gamma_log"].copy_(0.5 * torch.log1p(-radius_sq.clamp(max=1 - 1e-7)))  # log sqrt(1 - |λ|^2)
                for name in ("B_re", "B_im"):
                    nn.init.normal_(p[name], std=1.0 / math.sqrt(2 * p[name].shape[1]))
                for name in ("C_re", "C_im"):
                    nn.init.normal_(p[name], std=1.0 / math.sqrt(n))
                nn.init.normal_(p["D"])
                for weight, bias in (("weight_ih", "bias_ih"), ("glu_weight", "glu_bias")):
                    if weight in p:
                        bound = 1.0 / math.sqrt(p[weight].shape[1])
                        nn.init.kaiming_uniform_(p[weight], a=math.sqrt(5))
                        nn.init.uniform_(p[bias], -bound, bound)
                if "norm_weight" in p:
                    nn.init.ones_(p["norm_weight"])
                    nn.init.zeros_(p["norm_bias"])

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        # x: (B, T, I); state: (h (L*D, B, H), x (L*D, B, 2N)) -> (B, T, D*H), the same state's shapes
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ZooError(f"LRU layers expect input of shape (B, T, {self.input_size}), got {tuple(x.shape)}")
        return run_stack(self, x, state)

    def eigenvalue_radii(self) -> dict[str, dict[str, float]]:
        """{"l0": {"radius_max": max |λ|, "radius_min": min |λ|}, ...}: the LRU's stand-in for spectra."""
        result = {}
        for layer in range(self.num_layers):
            for reverse in [False, True][: 2 if self.bidirectional else 1]:
                radius = eigenvalues(layer_parameters(self, layer, reverse)).detach().abs().double()
                key = f"l{layer}" + ("_reverse" if reverse else "")
                result[key] = {"radius_max": float(radius.max()), "radius_min": float(radius.min())}
        return result


def _build(input_size: int, config: RNNConfig) -> nn.Module:
    return LRULayers(**stack_kwargs(input_size, config), **_options(config))


class LRUCellDescriptor(Cell):
    """The ``Cell`` of the LRU: its zero state's x part is the empty (B, 0) tensor that ``_sequence`` and
    ``_step`` read as zeros, since ``zero_state`` is told the hidden size H but not the state size N (2N reals)."""

    def zero_state(self, batch: int, hidden: int, like: torch.Tensor, layers: int | None = None) -> State:
        lead = (batch,) if layers is None else (layers, batch)
        return like.new_zeros((*lead, hidden)), like.new_zeros((*lead, 0))


LRU = LRUCellDescriptor(
    name="lru",
    summary="the Linear Recurrent Unit (Orvieto et al. 2023)",
    activation="linear",
    gates=("",),
    state=("h", "x"),
    input_weights=("weight_ih", "B_re", "B_im"),
    recurrent_weights=("nu_log", "theta_log"),
    recurrent_matrix=False,
    recurrence="its recurrence is the complex diagonal lambda = exp(-exp(nu_log) + i exp(theta_log))",
    spectra=lambda module: {key: {"radius": r["radius_max"], "sigma_max": r["radius_max"]}
                            for key, r in module.eigenvalue_radii().items()},
    options=OPTIONS,
    implementations=("auto",),
    validate=_validate,
    build=_build,
    step=_step,
    project=_project,
    sequence=_sequence,
)

register_cell(LRU)
