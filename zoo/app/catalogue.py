"""The benchmarks: each defined once, here: task settings, models, seeds, budgets per tier, anchors.

A benchmark resolves, for a tier and a model, to a run config: plain JSON that says
everything the run depends on (``Benchmark.run_config``). The runner (``zoo.app.runner``)
executes a config, the record keeps it, and ``zoo reproduce`` runs it again from the
record, so a change here never changes what an old record means.

Tiers: ``smoke`` runs in seconds (CI), ``cpu`` fits a 2-core machine (minutes to about
an hour a run; ``scripts/cpu_hours.py`` prints what the whole tier costs), ``full`` is the
papers' budgets, for a GPU.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

from zoo.app.recipes import (ADDING_REFERENCE, LM_REFERENCE, REFERENCE_VARIANTS, Recipe, adding_frontier,
                              copy_frontier, smnist_frontier)
from zoo.cadence import DIAGNOSTICS_EVERY_N_STEPS
from zoo.errors import check_choice
from zoo.models.rnn import RNNConfig
from zoo.optim import OptimConfig
from zoo.registry import architecture

TIERS = ("smoke", "cpu", "full")
DEFAULT_SEEDS = (0, 1, 2)
# Every cpu and full run validates at least this often, so its record's learning curve has
# this many validation points (``tests/test_bench.py`` checks each budget).
MIN_VAL_POINTS = 20


@dataclass(frozen=True)
class Budget:
    """How long one run of a tier trains, and the task settings the tier changes (e.g. smaller test sets).

    Budgets are optimizer steps or epochs, never wall-clock time: the same command gives
    the same record on any machine. (Records from before this rule carry ``max_minutes``;
    ``zoo reproduce`` replays the steps they took.)
    """

    max_steps: int = -1
    max_epochs: int = -1
    limit_train_batches: int | float = 1.0
    limit_eval_batches: int | float = 1.0
    data: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] | None = None  # the tier's own seeds (smoke: one); default the benchmark's
    accelerator: str = "cpu"


@dataclass(frozen=True)
class Anchor:
    """A published number to show beside ours."""

    value: float
    model: str  # what the paper trained, in words
    source: str


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    data_class: str  # a DataModule: a short name of tasks.DATAMODULES or a class path (tasks.resolve_datamodule)
    data_args: dict[str, Any]
    models: dict[str, Recipe]
    tiers: dict[str, Budget]
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    stop_at_target: bool = True
    length_factors: tuple[float, ...] = ()  # test the trained model at these multiples of seq_len
    tolerance: float = 0.0  # |difference| in the test metric that ``zoo reproduce`` accepts as the same result
    anchors: tuple[Anchor, ...] = ()
    diagnostics_every_n_steps: int = DIAGNOSTICS_EVERY_N_STEPS
    note: str = ""  # what a reader must know to read the board right, printed under its description
    study: bool = False  # leaderboard: the gradient-problem table (activation x init x clip)
    # A study's grid: model name -> its value on each axis ({"activation": "tanh", "init": "identity",
    # "clip": "clip1"}), axes and values in the order the leaderboard shows them; models off the grid
    # (references) have none. Boards and figures read the grid from here, never from the model names.
    axes: dict[str, dict[str, str]] = field(default_factory=dict)

    def budget(self, tier: str) -> Budget:
        return self.tiers[check_choice(f"tier of benchmark {self.name!r}", tier, self.tiers)]

    def model(self, name: str) -> Recipe:
        return self.models[check_choice(f"model of benchmark {self.name!r}", name, self.models)]

    def tier_seeds(self, tier: str) -> tuple[int, ...]:
        return self.budget(tier).seeds or self.seeds

    def val_check_interval(self, tier: str) -> float | None:
        """The share of an epoch between validations when whole epochs would give fewer than ``MIN_VAL_POINTS``.

        None: once an epoch. Epoch budgets (sMNIST, language models) validate 1/k of the way
        through each epoch; step budgets of the synthetic tasks set ``batches_per_epoch``
        instead, since their epochs are only a validation cadence. Smoke budgets keep once
        an epoch: they exist to run in seconds.
        """
        budget = self.budget(tier)
        if tier == "smoke" or budget.max_epochs <= 0 or budget.max_epochs >= MIN_VAL_POINTS:
            return None
        return 1.0 / -(-MIN_VAL_POINTS // budget.max_epochs)

    def run_config(self, tier: str, model: str) -> dict[str, Any]:
        """Everything a run of ``model`` at ``tier`` depends on but its seed, as plain JSON."""
        budget, recipe = self.budget(tier), self.model(model)
        data_args = {**self.data_args, **budget.data}
        return {
            "benchmark": self.name,
            "tier": tier,
            "data": {"class": self.data_class, "args": data_args},
            "model": {
                "name": recipe.name,
                "backbone": asdict(recipe.backbone),
                "optim": recipe.optim.to_dict(),  # asdict, less an unset group_lrs (OptimConfig.to_dict)
                "module": dict(recipe.module),
            },
            "trainer": {
                "max_steps": budget.max_steps,
                "max_epochs": budget.max_epochs,
                "limit_train_batches": budget.limit_train_batches,
                "limit_val_batches": budget.limit_eval_batches,
                "limit_test_batches": budget.limit_eval_batches,
                "gradient_clip_val": recipe.clip_val,
                "gradient_clip_algorithm": recipe.clip_algorithm if recipe.clip_val else None,
                "accelerator": budget.accelerator,
                "deterministic": True,
                "val_check_interval": self.val_check_interval(tier),
            },
            "stop_at_target": self.stop_at_target,
            "lengths": [max(1, int(data_args["seq_len"] * f)) for f in self.length_factors],
            "diagnostics_every_n_steps": self.diagnostics_every_n_steps,
            "tolerance": self.tolerance,
        }


# ----------------------------------------------------------------------------- the adding problem
ADDING_SMOKE = Budget(max_steps=10, data={"val_size": 200, "test_size": 200, "batches_per_epoch": 5}, seeds=(0,))
# cpu: T=100 and 200 as in scripts/adding_reference.py; longer T capped at an hour a run.
ADDING_CPU_STEPS = {100: 3000, 200: 6000, 500: 5000, 1000: 3000}
ADDING_FULL_STEPS = {100: 20_000, 200: 20_000, 500: 50_000, 1000: 100_000}


def adding(seq_len: int) -> Benchmark:
    return Benchmark(
        name=f"adding_t{seq_len}",
        description=f"The adding problem at T={seq_len}: sum the two marked numbers; target test MSE 0.01 "
                    "(trivial: 0.1667). Hidden 128, batch 128, Adam 1e-3 (IRNN 1e-4), clip norm 1.0, for the "
                    "tanh, IRNN, leaky-ReLU and ELU RNNs, LSTM, GRU, their 2-layer stacks and bidirectional LSTM and "
                    "GRU; the frontier cells with their papers' settings where they give them (IndRNN Adam 2e-4 with "
                    "|u| <= 2^(1/T); coRNN Adam 2e-2, unclipped; expRNN RMSprop 2e-4, its orthogonal part 2e-5, "
                    "unclipped).",
        data_class="AddingProblem",
        data_args={"seq_len": seq_len},
        models={**ADDING_REFERENCE, **adding_frontier(seq_len), **REFERENCE_VARIANTS},
        tiers={
            "smoke": ADDING_SMOKE,
            "cpu": Budget(max_steps=ADDING_CPU_STEPS[seq_len]),
            "full": Budget(max_steps=ADDING_FULL_STEPS[seq_len], accelerator="auto"),
        },
        length_factors=(0.5, 1, 2, 4) if seq_len <= 200 else (),
        tolerance=0.002,
    )


# ----------------------------------------------------------------------------- the gradient-problem study
STUDY_ACTIVATIONS = ("tanh", "relu", "leaky_relu", "elu")
# init name -> (input_init, recurrent_init, bias_init)
STUDY_INITS: dict[str, tuple[str, str, float | None]] = {
    "default": ("default", "default", None),  # PyTorch's U(-1/sqrt(H), 1/sqrt(H))
    "xavier": ("xavier_uniform", "xavier_uniform", 0.0),
    "he": ("he_normal", "he_normal", 0.0),
    "orthogonal": ("xavier_uniform", "orthogonal", 0.0),
    "identity": ("xavier_uniform", "identity", 0.0),  # IRNN (Le et al. 2015)
}
STUDY_CLIPS: dict[str, float | None] = {"noclip": None, "clip1": 1.0}
STUDY_HIDDEN = 64
STUDY_OPTIM = OptimConfig(name="adam", lr=1e-3)


def study_model_name(activation: str, init: str, clip: str) -> str:
    return f"rnn_{activation}.{init}.{clip}"


def study_axes() -> dict[str, dict[str, str]]:
    """Each vanilla-RNN cell of the grid by model name: its activation, init and clip (``Benchmark.axes``)."""
    return {study_model_name(activation, init, clip): {"activation": activation, "init": init, "clip": clip}
            for activation, init, clip in itertools.product(STUDY_ACTIVATIONS, STUDY_INITS, STUDY_CLIPS)}


def study_models() -> dict[str, Recipe]:
    """Every vanilla-RNN cell of the grid, plus LSTM and GRU references (default init, clipped)."""
    models = {}
    for name, axes in study_axes().items():
        activation, init, clip = axes["activation"], axes["init"], axes["clip"]
        input_init, recurrent_init, bias = STUDY_INITS[init]
        backbone = RNNConfig(cell="rnn", nonlinearity=activation, hidden_size=STUDY_HIDDEN,
                             input_init=input_init, recurrent_init=recurrent_init, bias_init=bias)
        models[name] = Recipe(name, backbone, STUDY_OPTIM, clip_val=STUDY_CLIPS[clip])
    for cell in ("lstm", "gru"):
        name = f"{cell}.default.clip1"
        models[name] = Recipe(name, RNNConfig(cell=cell, hidden_size=STUDY_HIDDEN), STUDY_OPTIM, clip_val=1.0)
    return models


GRADIENT_STUDY = Benchmark(
    name="gradient_study",
    description="What cures vanishing and exploding gradients: vanilla-RNN activation x initialization x "
                f"clipping on the adding problem, hidden {STUDY_HIDDEN}, batch 64, Adam 1e-3, with LSTM and GRU "
                "as references. Each cell: diverged seeds, max gradient norm, clip share, steps to MSE 0.01, "
                "test MSE, longest length solved (of T/2, T, 2T, 4T) and the gradient decay through time.",
    data_class="AddingProblem",
    # Validation every 50 steps: 20 points on each run's learning curve at the cpu budget.
    data_args={"seq_len": 100, "batch_size": 64, "test_size": 2000, "batches_per_epoch": 50},
    models=study_models(),
    tiers={
        "smoke": ADDING_SMOKE,
        "cpu": Budget(max_steps=1000),
        "full": Budget(max_steps=10_000, data={"seq_len": 200, "test_size": 10_000}, accelerator="auto"),
    },
    length_factors=(0.5, 1, 2, 4),
    tolerance=0.002,
    note="The LSTM and GRU references get the study's budget, 1,000 steps at hidden 64. That bounds them, not their "
         "cells: on adding_t100 (hidden 128, 3,000 steps) the LSTM needs a median of about 2,600 steps to reach the "
         "target on validation; see [adding_t100.cpu.md](adding_t100.cpu.md) for where the gated cells solve it.",
    study=True,
    axes=study_axes(),
)

# ----------------------------------------------------------------------------- the first look (README's main job)
FIRST_LOOK = Benchmark(
    name="first_look",
    description="The seeds' story in minutes (README's main job): the adding problem at T=100, batch 64; a vanilla "
                "tanh RNN against the study's well-initialised ReLU RNN (identity recurrence, Xavier input, "
                "clipped; hidden 64), the GRU and the LSTM with chrono initialisation (T_max 100; hidden 128). "
                "Adam 1e-3, clip norm 1.0; every run stops at validation MSE 0.01 or its budget.",
    data_class="AddingProblem",
    data_args={"seq_len": 100, "batch_size": 64, "val_size": 500, "test_size": 2000, "batches_per_epoch": 50},
    models={
        "rnn_tanh_1x128": ADDING_REFERENCE["rnn_tanh_1x128"],
        "rnn_relu.identity.clip1": study_models()["rnn_relu.identity.clip1"],
        "gru_1x128": ADDING_REFERENCE["gru_1x128"],
        "lstm_1x128.chrono": Recipe("lstm_1x128.chrono", RNNConfig(cell="lstm", hidden_size=128, chrono_t_max=100)),
    },
    tiers={
        "smoke": ADDING_SMOKE,
        "cpu": Budget(max_steps=1500, seeds=(0,)),
        "full": Budget(max_steps=1500, accelerator="auto"),
    },
    tolerance=0.002,
)

# ----------------------------------------------------------------------------- copy memory
COPY_CPU_STEPS = {100: 2000, 200: 3000}


def copy_memory(seq_len: int) -> Benchmark:
    """Copy memory at delay ``seq_len``; two lengths, so that accuracy against T is a result (zoo/app/families.py)."""
    return Benchmark(
        name=f"copy_t{seq_len}",
        description=f"Copy memory (Arjovsky et al. 2016) with a delay of T={seq_len}: recall 10 symbols; accuracy over "
                    "all T+20 steps, target 10 symbols in 99% right; memoryless baseline cross-entropy 10 ln 8 / "
                    "(T+20). Hidden 128, batch 128, Adam 1e-3 (IRNN 1e-4), clip norm 1.0, for the seeds' RNNs, "
                    "LSTMs and GRUs (2-layer and bidirectional too); the frontier cells with the adding problem's "
                    "settings, expRNN with its paper's copy-task ones (190 units, RMSprop 2e-4, its orthogonal "
                    "part 2e-5, unclipped).",
        data_class="CopyMemory",
        data_args={"seq_len": seq_len},
        models={**{name: ADDING_REFERENCE[name] for name in ("lstm_1x128", "gru_1x128", "rnn_tanh_1x128")},
                "irnn_1x128": ADDING_REFERENCE["irnn_1x128"], **REFERENCE_VARIANTS, **copy_frontier(seq_len)},
        tiers={
            "smoke": ADDING_SMOKE,
            "cpu": Budget(max_steps=COPY_CPU_STEPS[seq_len]),
            "full": Budget(max_steps=20_000, accelerator="auto"),
        },
        tolerance=0.002,
    )


COPY_T100 = copy_memory(100)

# ----------------------------------------------------------------------------- sequential MNIST
# The LSTM's forget gate starts with a total bias of 3 (it keeps ~95 % of its cell a step):
# with PyTorch's default biases it keeps about half, the gradient from the label
# reaching the digit's pixels hundreds of steps back vanishes (10^-299 at init), and
# the model sat at chance for all of a 30-minute cpu run. With bias 3 the training
# loss leaves 2.30 within 100 steps here (1 and 5 did not); cf. Gers et al. 2000,
# Tallec & Ollivier 2018 (chrono initialization).
SMNIST_FORGET_BIAS = 3.0
SMNIST_MODELS = {
    "lstm_1x128": dataclasses.replace(
        ADDING_REFERENCE["lstm_1x128"],
        backbone=dataclasses.replace(ADDING_REFERENCE["lstm_1x128"].backbone, forget_bias=SMNIST_FORGET_BIAS)),
    **{name: ADDING_REFERENCE[name] for name in ("gru_1x128", "irnn_1x128")},
}


def with_forget_bias(recipe: Recipe) -> Recipe:
    """An LSTM recipe with sMNIST's forget-gate bias (``SMNIST_FORGET_BIAS``); any other recipe as it is."""
    if recipe.backbone.cell != "lstm":
        return recipe
    return dataclasses.replace(recipe, backbone=dataclasses.replace(recipe.backbone, forget_bias=SMNIST_FORGET_BIAS))


# The seeds' other models on (p)sMNIST: the tanh RNN and the variants, the LSTMs with the same forget-gate bias.
SMNIST_VARIANTS = {name: with_forget_bias(recipe)
                   for name, recipe in {"rnn_tanh_1x128": ADDING_REFERENCE["rnn_tanh_1x128"],
                                        **REFERENCE_VARIANTS}.items()}
SMNIST_CPU_EPOCHS = 10  # about an hour a run here for the LSTM; the full tier has the papers' 50 and more
# The frontier papers' own test accuracies (issue 21), each from its table or its authors' repository; published
# figures not found in any source to hand (expRNN's Table 2; LRU, minGRU and minLSTM report no (p)sMNIST) are left out.
SMNIST_FRONTIER_ANCHORS: dict[bool, tuple[Anchor, ...]] = {
    False: (Anchor(0.990, "IndRNN 6x128", "Li et al. 2018, Table 1 (error 1.0 %)"),
            Anchor(0.994, "coRNN 256", "Rusch & Mishra 2021, results table of the authors' README (tk-rusch/coRNN)"),
            Anchor(0.995, "LEM 128", "Rusch et al. 2022, results table of the authors' README (tk-rusch/LEM, "
                                     "October 2021)")),
    True: (Anchor(0.960, "IndRNN 6x128", "Li et al. 2018, Table 1 (error 4.0 %)"),
           Anchor(0.973, "coRNN 256", "Rusch & Mishra 2021, results table of the authors' README (tk-rusch/coRNN)"),
           Anchor(0.966, "LEM 128", "Rusch et al. 2022, results table of the authors' README (tk-rusch/LEM, "
                                    "October 2021)")),
}
MNIST_SMOKE = Budget(max_epochs=1, limit_train_batches=3, limit_eval_batches=1, seeds=(0,))


def smnist(permuted: bool) -> Benchmark:
    name = "psmnist" if permuted else "smnist"
    anchors = ((Anchor(0.880, "LSTM 128", "Arjovsky et al. 2016, Table 1"),
                Anchor(0.820, "IRNN 100", "Le et al. 2015"),
                *SMNIST_FRONTIER_ANCHORS[True])
               if permuted else
               (Anchor(0.982, "LSTM 128", "Arjovsky et al. 2016, Table 1"),
                Anchor(0.970, "IRNN 100", "Le et al. 2015"),
                *SMNIST_FRONTIER_ANCHORS[False]))
    return Benchmark(
        name=name,
        description=f"{'Permuted s' if permuted else 'S'}equential MNIST: 784 pixels one at a time "
                    f"{'in a fixed permutation (seed 0) ' if permuted else ''}then classify; 55,000 / 5,000 / "
                    "10,000 images. Hidden 128, batch 128, Adam 1e-3 (IRNN 1e-4), clip norm 1.0; "
                    f"the LSTMs' forget-gate bias starts at {SMNIST_FORGET_BIAS:g}; the frontier cells with their "
                    "papers' or authors' code's settings (zoo/app/recipes.py says which).",
        data_class="SequentialMNIST",
        data_args={"variant": "pixel", "permuted": permuted},
        models={**SMNIST_MODELS, **smnist_frontier(permuted), **SMNIST_VARIANTS},
        tiers={
            "smoke": MNIST_SMOKE,
            "cpu": Budget(max_epochs=SMNIST_CPU_EPOCHS),
            "full": Budget(max_epochs=50, accelerator="auto"),
        },
        tolerance=0.005,
        anchors=anchors,
    )


# ----------------------------------------------------------------------------- language modelling
LM_SMOKE = Budget(max_epochs=1, limit_train_batches=5, limit_eval_batches=2, seeds=(0,))


def word_lm(name: str, corpus: str, model: str, *, batch_size: int, bptt: int, epochs: int, cpu_epochs: int,
            anchor: Anchor, origin: str, more_anchors: tuple[Anchor, ...] = ()) -> Benchmark:
    """A word-level language-model benchmark: one published recipe, its corpus settings and its perplexity."""
    return Benchmark(
        name=name,
        description=f"Word-level {corpus}, {origin}: {epochs} epochs, batch {batch_size}, BPTT {bptt}; "
                    "test perplexity.",
        data_class="LanguageModelling",
        data_args={"corpus": corpus, "batch_size": batch_size, "bptt": bptt},
        models={model: LM_REFERENCE[model]},
        tiers={
            "smoke": LM_SMOKE,
            "cpu": Budget(max_epochs=cpu_epochs),
            "full": Budget(max_epochs=epochs, accelerator="auto"),
        },
        stop_at_target=False,
        tolerance=1.0,
        anchors=(anchor, *more_anchors),
    )


PTB_WORD = word_lm("ptb_word", "ptb", "lstm_2x200", batch_size=20, bptt=20, epochs=13, cpu_epochs=13,
                   origin="Zaremba et al. 2014 'small'",
                   anchor=Anchor(115.9, "lstm_2x200", "Zaremba et al. 2014 'small', TensorFlow's ptb_word_lm "
                                                      "reproduction"),
                   # The frontier papers' PTB word perplexities (issue 21), with their own far larger budgets.
                   more_anchors=(Anchor(65.3, "res-IndRNN 11 layers", "Li et al. 2018, Table 3"),
                                 Anchor(72.8, "LEM, one layer", "Rusch et al. 2022, results table of the authors' "
                                                                "README (tk-rusch/LEM, October 2021)")))
WIKITEXT2_WORD = word_lm("wikitext2_word", "wikitext2", "lstm_2x200_tied", batch_size=20, bptt=35, epochs=40,
                         cpu_epochs=6, origin="pytorch/examples word_language_model --tied",
                         anchor=Anchor(100.3, "lstm_2x200_tied", "pytorch/examples word_language_model, 40 "
                                                                 "epochs, as users report it"))

PTB_CHAR = Benchmark(
    name="ptb_char",
    description="Character-level Penn Treebank (Mikolov's split, 50 symbols): 1 x 512 LSTM, embedding 128, "
                "batch 64, BPTT 100, Adam 2e-3, clip norm 1.0; test bits per character.",
    data_class="LanguageModelling",
    data_args={"corpus": "ptb_char", "batch_size": 64, "bptt": 100},
    models={"lstm_1x512": Recipe("lstm_1x512", architecture("lstm_1x512"),
                                 OptimConfig(name="adam", lr=2e-3), clip_val=1.0, module={"embedding_size": 128})},
    tiers={
        "smoke": LM_SMOKE,
        "cpu": Budget(max_epochs=3),
        "full": Budget(max_epochs=50, accelerator="auto"),
    },
    stop_at_target=False,
    tolerance=0.01,
    # The frontier papers' PTB character figures (issue 21), with their own far larger networks and budgets.
    anchors=(Anchor(1.26, "IndRNN 6 layers, 50 steps", "Li et al. 2018, Table 2"),
             Anchor(1.25, "LEM, one layer", "Rusch et al. 2022, results table of the authors' README (tk-rusch/LEM, "
                                            "October 2021)")),
)

BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        *(adding(t) for t in (100, 200, 500, 1000)),
        GRADIENT_STUDY,
        FIRST_LOOK,
        COPY_T100,
        copy_memory(200),
        smnist(permuted=False),
        smnist(permuted=True),
        PTB_WORD,
        WIKITEXT2_WORD,
        PTB_CHAR,
    )
}


def get_benchmark(name: str) -> Benchmark:
    return BENCHMARKS[check_choice("benchmark", name, BENCHMARKS)]


def check_tier(tier: str) -> str:
    return check_choice("tier", tier, TIERS)


__all__ = ["Anchor", "BENCHMARKS", "Benchmark", "Budget", "TIERS", "check_tier", "get_benchmark"]
