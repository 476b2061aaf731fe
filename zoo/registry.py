"""Names to models, timm style: a bare ``@register_model`` on a function that returns a backbone config.

Architecture names say what the network is (``lstm_1x128``: one LSTM layer of 128
units); pretrained names add what it was trained on after a dot (``lstm_1x128.smnist``).
``list_models("lstm*")`` lists both kinds with shell wildcards.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from zoo.errors import ZooError, check_choice
from zoo.models.rnn import RNNConfig

_ARCHITECTURES: dict[str, Callable[[], RNNConfig]] = {}


def where_defined(fn: Callable[..., Any]) -> str:
    """``module.name (file:line)``: enough to find a registration in an error message."""
    code = getattr(fn, "__code__", None)
    place = f" ({code.co_filename}:{code.co_firstlineno})" if code is not None else ""
    return f"{fn.__module__}.{fn.__qualname__}{place}"


def register_model(fn: Callable[[], RNNConfig]) -> Callable[[], RNNConfig]:
    """Register ``fn`` under its own name; it returns the architecture's RNNConfig.

    A name registered twice is an error naming both places: silently keeping the second
    would change what every record and pretrained entry of that name means.
    """
    name = fn.__name__
    if name in _ARCHITECTURES:
        raise ZooError(f"model {name!r} is registered twice: by {where_defined(_ARCHITECTURES[name])} and by "
                       f"{where_defined(fn)}; give one of them another name")
    _ARCHITECTURES[name] = fn
    return fn


def architecture(name: str) -> RNNConfig:
    return _ARCHITECTURES[check_choice("architecture", name, sorted(_ARCHITECTURES))]()


def list_models(pattern: str = "*", *, pretrained: bool | None = None) -> list[str]:
    """Architectures and pretrained models whose names match ``pattern`` (fnmatch wildcards), sorted.

    ``pretrained=True`` lists only pretrained names (``arch.tag``), ``False`` only
    architectures, ``None`` both.
    """
    from zoo.pretrained import manifest

    if not isinstance(pattern, str):
        raise ZooError(f"pattern must be a string of shell wildcards such as 'lstm*', got {pattern!r}")
    if pretrained is not None and not isinstance(pretrained, bool):
        raise ZooError(f"pretrained must be True, False or None (both kinds), got {pretrained!r}")
    names: set[str] = set()
    if pretrained in (None, False):
        names |= set(_ARCHITECTURES)
    if pretrained in (None, True):
        names |= set(manifest())
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))


# ----------------------------------------------------------------------------- the architectures
@register_model
def lstm_1x128() -> RNNConfig:
    return RNNConfig(cell="lstm", hidden_size=128)


@register_model
def gru_1x128() -> RNNConfig:
    return RNNConfig(cell="gru", hidden_size=128)


@register_model
def rnn_tanh_1x128() -> RNNConfig:
    return RNNConfig(cell="rnn", nonlinearity="tanh", hidden_size=128)


@register_model
def irnn_1x128() -> RNNConfig:
    """Le et al. 2015: relu, identity recurrent matrix, zero biases."""
    return RNNConfig(cell="rnn", nonlinearity="relu", hidden_size=128, recurrent_init="identity", bias_init=0.0)


@register_model
def lstm_2x200() -> RNNConfig:
    """Zaremba et al. 2014, "small": every weight U(-0.1, 0.1)."""
    return RNNConfig(cell="lstm", hidden_size=200, num_layers=2, input_init="uniform", recurrent_init="uniform",
                     init_range=0.1)


@register_model
def lstm_1x512() -> RNNConfig:
    return RNNConfig(cell="lstm", hidden_size=512)


# ----------------------------------------------------------------------------- the frontier cells (issue 21)
@register_model
def indrnn_2x128() -> RNNConfig:
    """Li et al. 2018, the adding problem's IndRNN: 2 relu layers; a benchmark bounds |u| for its T."""
    return RNNConfig(cell="indrnn", hidden_size=128, num_layers=2)


@register_model
def indrnn_6x128() -> RNNConfig:
    """Li et al. 2018, sequential MNIST: 6 relu layers with batch norm, |u| <= 5^(1/784), the last layer's
    gains started in [0.2^(1/784), 5^(1/784)] (the authors' run script)."""
    return RNNConfig(cell="indrnn", hidden_size=128, num_layers=6,
                     cell_options={"recurrent_max_len": 784, "recurrent_max_gain": 5.0, "last_layer_min_gain": 0.2,
                                   "batch_norm": True})


@register_model
def cornn_1x128() -> RNNConfig:
    """Rusch & Mishra 2021, the adding problem: dt 0.06, gamma 66, epsilon 15 (the authors' code)."""
    return RNNConfig(cell="cornn", hidden_size=128, cell_options={"dt": 0.06, "gamma": 66.0, "epsilon": 15.0})


@register_model
def cornn_1x256() -> RNNConfig:
    """Rusch & Mishra 2021, sequential MNIST: dt 0.042, gamma 2.7, epsilon 4.7."""
    return RNNConfig(cell="cornn", hidden_size=256, cell_options={"dt": 0.042, "gamma": 2.7, "epsilon": 4.7})


@register_model
def lem_1x128() -> RNNConfig:
    """Rusch et al. 2022, sequential MNIST: dt 0.21."""
    return RNNConfig(cell="lem", hidden_size=128, cell_options={"dt": 0.21})


@register_model
def exprnn_1x170() -> RNNConfig:
    """Lezcano-Casado & Martinez-Rubio 2019, sequential MNIST at 170 units: exp map, Cayley init."""
    return RNNConfig(cell="exprnn", hidden_size=170, cell_options={"init": "cayley"})


@register_model
def exprnn_1x360() -> RNNConfig:
    return RNNConfig(cell="exprnn", hidden_size=360, cell_options={"init": "cayley"})


@register_model
def exprnn_1x190() -> RNNConfig:
    """The copy task's expRNN: 190 units, Henaff init."""
    return RNNConfig(cell="exprnn", hidden_size=190, cell_options={"init": "henaff"})


@register_model
def lru_1x128() -> RNNConfig:
    """Orvieto et al. 2023: one bare LRU layer (no block), |lambda| on [0.9, 0.999]."""
    return RNNConfig(cell="lru", hidden_size=128, cell_options={"block": False})


@register_model
def lru_4x128() -> RNNConfig:
    """Orvieto et al. 2023: four LRU blocks (norm, LRU, GELU, GLU, residual)."""
    return RNNConfig(cell="lru", hidden_size=128, num_layers=4, cell_options={"r_min": 0.9, "r_max": 0.999})


@register_model
def mingru_3x128() -> RNNConfig:
    """Feng et al. 2024: three minGRU layers (the paper's depth for selective copying)."""
    return RNNConfig(cell="mingru", hidden_size=128, num_layers=3)


@register_model
def minlstm_3x128() -> RNNConfig:
    """Feng et al. 2024: three minLSTM layers."""
    return RNNConfig(cell="minlstm", hidden_size=128, num_layers=3)
