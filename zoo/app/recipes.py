"""The reference recipes: a model and how it is trained, everything a results row depends on but the task.

The adding problem's are the ones the README's main job trains:

Hidden 128, batch 128, Adam lr 1e-3, gradient norm clipped at 1.0, stop once the
validation MSE reaches 0.01. IRNN (Le et al. 2015: relu, identity recurrent matrix,
zero biases) takes a smaller learning rate, as in the paper, because an identity
recurrence with relu amplifies a too-large step.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import ZooError, check_choice, check_float
from zoo.models.rnn import RNNConfig
from zoo.optim import CLIP_ALGORITHMS, OptimConfig  # CLIP_ALGORITHMS: Lightning's clip algorithms, listed once
from zoo.registry import architecture


@dataclass(frozen=True)
class Recipe:
    """One model and how it is trained: everything a results row depends on but the task."""

    name: str
    backbone: RNNConfig
    optim: OptimConfig = OptimConfig(name="adam", lr=1e-3)
    clip_val: float | None = 1.0
    clip_algorithm: str = "norm"
    module: dict[str, Any] = field(default_factory=dict)  # SequenceModel's other settings (tie_weights, io_dropout, l2...)

    def __post_init__(self) -> None:
        # The name becomes part of record and weight file names: <model>.s<seed>.json
        if not (isinstance(self.name, str) and MODEL_NAME.fullmatch(self.name)):
            raise ZooError(f"model name {self.name!r} must be letters, digits, '_', '-', '+' and '.', not starting "
                           "with '.' (it names the run's record and weight files)")
        if not isinstance(self.backbone, RNNConfig):
            raise ZooError(f"model {self.name!r}: backbone must be an RNNConfig, got {type(self.backbone).__name__}")
        if not isinstance(self.optim, OptimConfig):
            raise ZooError(f"model {self.name!r}: optim must be an OptimConfig, got {type(self.optim).__name__}")
        if self.clip_val is not None:
            check_float(f"model {self.name!r}: clip_val", self.clip_val, low=0.0)
            if self.clip_val <= 0:
                raise ZooError(f"model {self.name!r}: clip_val must be a number > 0 or unset (no clipping), "
                               f"got {self.clip_val!r}")
        if self.clip_algorithm not in CLIP_ALGORITHMS:
            raise ZooError(f"model {self.name!r}: unknown clip_algorithm {self.clip_algorithm!r}; valid choices: "
                           f"{', '.join(CLIP_ALGORITHMS)}")
        if not isinstance(self.module, dict):
            raise ZooError(f"model {self.name!r}: module must be a mapping of SequenceModel settings, "
                           f"got {type(self.module).__name__}")
        valid = module_settings()
        unknown = sorted(map(str, set(self.module) - set(valid)))
        if unknown:
            raise ZooError(f"model {self.name!r}: unknown module setting(s) {', '.join(unknown)}; "
                           f"valid settings: {', '.join(valid)}")


MODEL_NAME = re.compile(r"[A-Za-z0-9_+\-][A-Za-z0-9_.+\-]*")


def module_settings() -> tuple[str, ...]:
    """SequenceModel's settings besides task, backbone and optim (l1, l2, tie_weights, ...)."""
    import inspect

    from zoo.module import SequenceModel

    skip = {"self", "task", "backbone", "optim"}
    return tuple(name for name in inspect.signature(SequenceModel.__init__).parameters if name not in skip)


ADDING_REFERENCE: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe("lstm_1x128", architecture("lstm_1x128")),
        Recipe("gru_1x128", architecture("gru_1x128")),
        Recipe("rnn_tanh_1x128", architecture("rnn_tanh_1x128")),
        Recipe("irnn_1x128", architecture("irnn_1x128"), optim=OptimConfig(name="adam", lr=1e-4)),
    )
}

# The seeds' other models (issue 22) on the references' recipe (Adam 1e-3, clip norm 1.0, PyTorch's default init):
# the vanilla RNN with leaky ReLU and with ELU beside tanh and IRNN, 2-layer LSTM and GRU stacks, and bidirectional
# LSTM and GRU, which only whole-sequence tasks take (a language model refuses them: zoo.module.SequenceModel).
REFERENCE_VARIANTS: dict[str, Recipe] = {
    name: Recipe(name, architecture(name))
    for name in ("rnn_leaky_relu_1x128", "rnn_elu_1x128", "lstm_2x128", "gru_2x128", "bilstm_1x128", "bigru_1x128")
}

# expRNN (Lezcano-Casado & Martinez-Rubio 2019) as the authors' commands train it (the lezcano/expRNN README from
# January to September 2019, "Commands to Reproduce the Experiments"; the copy task's and sMNIST's values are also
# the defaults of its 1_copying.py and 2_mnist.py):
# RMSprop (PyTorch's defaults besides the lr), its orthogonal parameters X at a tenth of the lr, no clipping.
# sMNIST: 170 units, Cayley init, lr 7e-4 / 7e-5; psMNIST: 170 units, lr 1e-3 / 1e-4; copy: 190 units, Henaff
# init, lr 2e-4 / 2e-5.
EXPRNN_ORTHOGONAL = "*.skew_weight_hh_*"  # X of every layer and direction (zoo.cells.exprnn.orthogonal_parameters)


def exprnn_optim(lr: float, orthogonal_lr: float) -> OptimConfig:
    """RMSprop at ``lr``, expRNN's orthogonal parameters at ``orthogonal_lr`` (``OptimConfig.group_lrs``)."""
    return OptimConfig(name="rmsprop", lr=lr, group_lrs={EXPRNN_ORTHOGONAL: orthogonal_lr})


def adding_frontier(seq_len: int) -> dict[str, Recipe]:
    """The frontier cells (issue 21) on the adding problem at length ``seq_len``.

    Each takes its paper's or its authors' code's settings for this task where they give
    them; the rest take the references' recipe (Adam 1e-3, clip norm 1.0) and say so in a
    comment. The task's own settings (hidden 128, batch 128, the budget) are the benchmark's.
    """
    indrnn = architecture("indrnn_2x128")
    return {
        recipe.name: recipe
        for recipe in (
            # Li et al. 2018, Sec. 4.1: Adam lr 2e-4, relu, |u| <= 2^(1/T) for the task's T.
            Recipe("indrnn_2x128", dataclasses.replace(indrnn, cell_options={"recurrent_max_len": seq_len}),
                   OptimConfig(name="adam", lr=2e-4)),
            # Rusch & Mishra 2021, the authors' adding_task.py: Adam lr 2e-2, no clipping, dt 0.06, gamma 66, eps 15.
            Recipe("cornn_1x128", architecture("cornn_1x128"), OptimConfig(name="adam", lr=2e-2), clip_val=None),
            # LEM (Rusch et al. 2022), minGRU / minLSTM (Feng et al. 2024), LRU (Orvieto et al. 2023): their
            # papers give no recipe at this T, so the references' (Adam 1e-3, clip norm 1.0).
            Recipe("lem_1x128", architecture("lem_1x128")),
            Recipe("mingru_3x128", architecture("mingru_3x128")),
            Recipe("minlstm_3x128", architecture("minlstm_3x128")),
            Recipe("lru_1x128", architecture("lru_1x128")),
            # The bare LRU is linear from input to output, and the adding problem's answer is a product (marker x
            # value), so it cannot be solved by it (its 3 cpu seeds at T=100 sit at the trivial 0.1667). The paper
            # stacks LRUs in blocks with a GELU and a GLU between: lru_4x128 is that, on the references' recipe.
            Recipe("lru_4x128", architecture("lru_4x128")),
            # expRNN: the paper has no adding problem; 128 units with the authors' synthetic (copy) task's settings,
            # Henaff init, RMSprop 2e-4 with the orthogonal part at 2e-5, unclipped.
            Recipe("exprnn_1x128", architecture("exprnn_1x128"), exprnn_optim(2e-4, 2e-5), clip_val=None),
        )
    }


def copy_frontier(seq_len: int) -> dict[str, Recipe]:
    """The frontier cells on copy memory at delay ``seq_len`` (sequences of ``seq_len`` + 20 steps).

    Of their papers only expRNN's runs the copy task; the others take the architectures and
    settings they have on the adding problem (IndRNN's bound for this sequence length), with the
    references' recipe (Adam 1e-3, clip norm 1.0) where their papers give none for this task.
    """
    indrnn = architecture("indrnn_2x128")
    return {
        recipe.name: recipe
        for recipe in (
            # Li et al. 2018 (and the authors' README): Adam lr 2e-4, |u| <= 2^(1/T) for the sequence's T + 20 steps.
            Recipe("indrnn_2x128", dataclasses.replace(indrnn, cell_options={"recurrent_max_len": seq_len + 20}),
                   OptimConfig(name="adam", lr=2e-4)),
            # coRNN (the adding problem's dt 0.06, gamma 66, eps 15), LEM (dt 0.21), minGRU / minLSTM and LRU: no
            # copy recipe in their papers, so the references' optimizer.
            Recipe("cornn_1x128", architecture("cornn_1x128")),
            Recipe("lem_1x128", architecture("lem_1x128")),
            Recipe("mingru_3x128", architecture("mingru_3x128")),
            Recipe("minlstm_3x128", architecture("minlstm_3x128")),
            Recipe("lru_1x128", architecture("lru_1x128")),
            Recipe("lru_4x128", architecture("lru_4x128")),  # the paper's blocks (see adding_frontier)
            # Lezcano-Casado & Martinez-Rubio 2019, the copy task: 190 units, Henaff init, RMSprop 2e-4 / 2e-5.
            Recipe("exprnn_1x190", architecture("exprnn_1x190"), exprnn_optim(2e-4, 2e-5), clip_val=None),
        )
    }


def smnist_frontier(permuted: bool) -> dict[str, Recipe]:
    """The frontier cells on (permuted) sequential MNIST with their papers' or authors' code's settings.

    expRNN's orthogonal parameters train at their own learning rate (``exprnn_optim``). LRU,
    minGRU and minLSTM have no (p)sMNIST recipe in their papers: they take the references'
    (Adam 1e-3, clip norm 1.0), LRU in the paper's stacked blocks.
    """
    lem = architecture("lem_1x128")
    cornn = architecture("cornn_1x256")
    if permuted:
        lem = dataclasses.replace(lem, cell_options={"dt": 0.31})
        cornn = dataclasses.replace(cornn, cell_options={"dt": 0.076, "gamma": 0.4, "epsilon": 8.0})
    return {
        recipe.name: recipe
        for recipe in (
            # Rusch et al. 2022, the authors' (p)sMNIST_task.py: Adam, sMNIST lr 0.0018 dt 0.21 clip 1.0;
            # psMNIST lr 0.0073 dt 0.31 clip 1.1.
            Recipe("lem_1x128", lem, OptimConfig(name="adam", lr=0.0073 if permuted else 0.0018),
                   clip_val=1.1 if permuted else 1.0),
            # Rusch & Mishra 2021: Adam, sMNIST lr 0.0021 (dt 0.042, gamma 2.7, eps 4.7), psMNIST lr 0.0054
            # (dt 0.076, gamma 0.4, eps 8.0); no clipping in the authors' code.
            Recipe("cornn_1x256", cornn, OptimConfig(name="adam", lr=0.0054 if permuted else 0.0021), clip_val=None),
            # Li et al. 2018, Table 1's 6-layer IndRNN with batch norm: Adam lr 2e-4.
            Recipe("indrnn_6x128", architecture("indrnn_6x128"), OptimConfig(name="adam", lr=2e-4)),
            # Lezcano-Casado & Martinez-Rubio 2019 (see EXPRNN_ORTHOGONAL): 170 units, Cayley init, RMSprop,
            # sMNIST lr 7e-4 / orthogonal 7e-5, psMNIST lr 1e-3 / orthogonal 1e-4, unclipped.
            Recipe("exprnn_1x170", architecture("exprnn_1x170"),
                   exprnn_optim(1e-3, 1e-4) if permuted else exprnn_optim(7e-4, 7e-5), clip_val=None),
            Recipe("lru_4x128", architecture("lru_4x128")),
            Recipe("mingru_3x128", architecture("mingru_3x128")),
            Recipe("minlstm_3x128", architecture("minlstm_3x128")),
        )
    }


def reference_recipe(name: str) -> Recipe:
    return ADDING_REFERENCE[check_choice("reference model", name, ADDING_REFERENCE)]


# The word-level language models' recipes; their corpus, batch, BPTT, epochs and published
# perplexity are the benchmark's (zoo/app/catalogue.py), not the model's.
# Our loss is the mean over a window's steps, as in pytorch/examples. Zaremba et al. (and
# TensorFlow's ptb_word_lm) sum it over the window's 20 steps, so their lr 1 and clip norm 5
# are our lr 20 and clip 0.25: the same updates.
LM_REFERENCE: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        # Zaremba et al. 2014 "small": every weight U(-0.1, 0.1), no dropout; lr halved after each
        # epoch from the 5th on.
        Recipe("lstm_2x200", architecture("lstm_2x200"),
               OptimConfig(name="sgd", lr=20.0, schedule="step", step_size=1, gamma=0.5, decay_start=4),
               clip_val=0.25, module={"tie_weights": False, "io_dropout": 0.0}),
        # pytorch/examples word_language_model defaults with --tied: PyTorch's LSTM init, dropout 0.2
        # on embeddings, between layers and before the decoder; lr / 4 whenever the validation loss
        # does not improve.
        Recipe("lstm_2x200_tied", RNNConfig(cell="lstm", hidden_size=200, num_layers=2, dropout=0.2),
               OptimConfig(name="sgd", lr=20.0, schedule="plateau", gamma=0.25, patience=0),
               clip_val=0.25, module={"tie_weights": True, "io_dropout": 0.2}),
    )
}
