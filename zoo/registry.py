"""Names to models, timm style: a bare ``@register_model`` on a function that returns a backbone config.

Architecture names say what the network is (``lstm_1x128``: one LSTM layer of 128
units); pretrained names add what it was trained on after a dot (``lstm_1x128.smnist``).
``list_models("lstm*")`` lists both kinds with shell wildcards, and ``create_model(name)``
builds either kind as a ``SequenceModel``, its released weights loaded with ``pretrained=True``.
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError, check_choice
from zoo.models.rnn import RNNConfig

if TYPE_CHECKING:
    from zoo.module import SequenceModel
    from zoo.task_spec import TaskSpec

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


# ----------------------------------------------------------------------------- create_model
# What the head reads and writes, for an architecture built without a task: see create_model.
INTERFACE_SETTINGS = ("task", "input_size", "output_size", "head")
DEFAULT_INTERFACE = {"input_size": 1, "output_size": 1, "head": "last"}
# The settings that leave every tensor's shape and value as the weights give them: the only ones
# create_model takes with pretrained=True (the others would change what the weights must fit, or be
# overwritten by them).
PRETRAINED_SETTINGS = ("dropout", "implementation", "io_dropout", "l1", "l2", "nonfinite", "optim")


def _module_settings() -> tuple[str, ...]:
    """SequenceModel's own settings besides task, backbone and optim (l1, l2, io_dropout, ...)."""
    from zoo.module import SequenceModel

    skip = {"self", "task", "backbone", "optim"}
    return tuple(n for n in inspect.signature(SequenceModel.__init__).parameters if n not in skip)


def _split(name: str, overrides: dict[str, Any], valid: tuple[str, ...]) -> tuple[dict, dict, dict]:
    """``overrides`` as (backbone, module, other) settings; one that is none of ``valid`` is an error naming both."""
    unknown = sorted(k for k in overrides if k not in valid)
    if unknown:
        raise ZooError(f"create_model({name!r}) got unknown setting(s) {', '.join(unknown)}; "
                       f"valid settings: {', '.join(valid)}")
    backbone_keys = {f.name for f in fields(RNNConfig)}
    module_keys = set(_module_settings())
    return ({k: v for k, v in overrides.items() if k in backbone_keys},
            {k: v for k, v in overrides.items() if k in module_keys},
            {k: v for k, v in overrides.items() if k not in backbone_keys | module_keys})


def _interface(name: str, given: dict[str, Any]) -> TaskSpec:
    """The TaskSpec of a model built from a bare architecture: ``task``, or the sizes and head, or the default."""
    from zoo.task_spec import TaskSpec

    if "task" in given:
        extra = sorted(k for k in given if k != "task")
        if extra:
            raise ZooError(f"create_model({name!r}) got task and {', '.join(extra)}; give the task alone (it sets "
                           "the sizes and the head) or input_size, output_size and head without it")
        return TaskSpec.coerce(given["task"])
    return TaskSpec(name="custom", **{**DEFAULT_INTERFACE, **given})


def _pretrained_name(name: str) -> str:
    """The pretrained name an architecture name stands for with pretrained=True: its only release."""
    from zoo.pretrained import manifest

    if name in manifest():
        return name
    releases = sorted(n for n in manifest() if n.split(".", 1)[0] == name)
    if len(releases) == 1:
        return releases[0]
    if not releases:
        raise ZooError(f"architecture {name!r} has no pretrained weights; pretrained models: "
                       f"{', '.join(sorted(manifest())) or 'none'}")
    raise ZooError(f"architecture {name!r} has {len(releases)} pretrained releases: {', '.join(releases)}; "
                   "name the one to load")


def create_model(name: str, pretrained: bool = False, **overrides: Any) -> SequenceModel:
    """A ``SequenceModel`` (a LightningModule, in train mode) by name, timm style.

    ``name`` is an architecture (``lstm_1x128``) or a pretrained name (``arch.tag``, such as
    ``gru_1x128.adding_t100``); ``list_models()`` lists both. ``overrides`` change the
    architecture's settings (any ``RNNConfig`` field: ``hidden_size=64``, ``num_layers``,
    ``dropout``, ``nonlinearity``, ...), the module's (``l1``, ``l2``, ``io_dropout``, ...) and
    ``optim`` (an ``OptimConfig`` or a dict of its fields); each is checked, and a bad name
    or value is one ``ZooError`` naming it and what is valid.

    The head, loss and metrics come from a task. A pretrained name carries its own (the
    card's). A bare architecture is a backbone only, so it takes ``task=`` (a ``TaskSpec``,
    e.g. ``datamodule.task_spec``, which is what ``zoo fit`` passes) or ``input_size``,
    ``output_size`` and ``head`` ("last" or "every"); given none, it gets the smallest
    trainable interface, one input feature per step and one number read after the last
    step under MSE (``DEFAULT_INTERFACE``), so that ``create_model("lstm_1x128")`` is a
    working model rather than an error, and any other interface is one argument away.

    ``pretrained=True`` loads the released weights into the network, checked by size and
    sha256 as ``zoo.pretrained.load`` does (an architecture name stands for its only
    release); only the settings that leave the weights as released are taken then
    (``PRETRAINED_SETTINGS``). Without it a pretrained name gives that release's network
    and training recipe, freshly initialized. ``zoo.pretrained.load`` gives the same weights
    in eval mode with the card, a language model's vocabulary and the input preprocessing.
    """
    from zoo import pretrained as released

    if not isinstance(name, str):
        raise ZooError(f"model name must be a string such as 'lstm_1x128', got {name!r}")
    if not isinstance(pretrained, bool):
        raise ZooError(f"pretrained must be True or False, got {pretrained!r}")
    check_choice("model", name, list_models())
    if pretrained:
        name = _pretrained_name(name)
    is_release = name not in _ARCHITECTURES
    valid = (*(f.name for f in fields(RNNConfig)), *_module_settings(), "optim",
             *(() if is_release else INTERFACE_SETTINGS))
    interface = sorted(k for k in overrides if k in INTERFACE_SETTINGS)
    if is_release and interface:
        raise ZooError(f"create_model({name!r}) cannot take {', '.join(interface)}: a pretrained name's task is its "
                       f"card's; for another task build the architecture, create_model({name.split('.')[0]!r}, ...)")
    if pretrained:
        fixed = sorted(k for k in overrides if k in valid and k not in PRETRAINED_SETTINGS)
        if fixed:
            raise ZooError(f"create_model({name!r}, pretrained=True) cannot take {', '.join(fixed)}: the released "
                           f"weights fix {'it' if len(fixed) == 1 else 'them'}; settings it takes: "
                           f"{', '.join(PRETRAINED_SETTINGS)} (or pretrained=False for a fresh network)")
        valid = PRETRAINED_SETTINGS
    try:
        backbone, module, other = _split(name, overrides, valid)
        optim = other.pop("optim", None)
        if is_release:
            card = released.entry(name)
            section = {"backbone": {**card["model"]["backbone"], **backbone},
                       "module": {**card["model"].get("module", {}), **module},
                       "optim": optim if optim is not None else card.get("recipe", {}).get("optim", {})}
            if pretrained:
                return released.load(name, model=section).model.train()
            return released.build_model(card, section)
        from zoo.module import SequenceModel

        section = {"backbone": {**architecture(name).to_dict(), **backbone}, "module": module, "optim": optim or {}}
        return SequenceModel.from_config(section, _interface(name, other))
    except ZooError as err:
        message = str(err)
        raise ZooError(message if message.startswith("create_model(") else f"create_model({name!r}): {message}") from None


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
def rnn_leaky_relu_1x128() -> RNNConfig:
    """The vanilla RNN with leaky ReLU (slope 0.01) and PyTorch's default init, beside the tanh reference."""
    return RNNConfig(cell="rnn", nonlinearity="leaky_relu", hidden_size=128)


@register_model
def rnn_elu_1x128() -> RNNConfig:
    """The vanilla RNN with ELU and PyTorch's default init, beside the tanh reference."""
    return RNNConfig(cell="rnn", nonlinearity="elu", hidden_size=128)


@register_model
def lstm_2x128() -> RNNConfig:
    """Two stacked LSTM layers of 128, no dropout between them."""
    return RNNConfig(cell="lstm", hidden_size=128, num_layers=2)


@register_model
def gru_2x128() -> RNNConfig:
    """Two stacked GRU layers of 128, no dropout between them."""
    return RNNConfig(cell="gru", hidden_size=128, num_layers=2)


@register_model
def bilstm_1x128() -> RNNConfig:
    """A bidirectional LSTM layer of 128 a direction: a whole-sequence head reads both directions' final states
    (256 features); refused on a language model, where the backward direction would see the future."""
    return RNNConfig(cell="lstm", hidden_size=128, bidirectional=True)


@register_model
def bigru_1x128() -> RNNConfig:
    """A bidirectional GRU layer of 128 a direction (see ``bilstm_1x128``)."""
    return RNNConfig(cell="gru", hidden_size=128, bidirectional=True)


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
def exprnn_1x128() -> RNNConfig:
    """expRNN at the adding problem's 128 units, Henaff init as the authors' synthetic (copy) task has it."""
    return RNNConfig(cell="exprnn", hidden_size=128, cell_options={"init": "henaff"})


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
