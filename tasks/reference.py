"""The reference models for the adding problem: the recipes the README's main job trains.

Hidden 128, batch 128, Adam lr 1e-3, gradient norm clipped at 1.0, stop once the
validation MSE reaches 0.01. IRNN (Le et al. 2015: relu, identity recurrent matrix,
zero biases) takes a smaller learning rate, as in the paper, because an identity
recurrence with relu amplifies a too-large step.
"""

from __future__ import annotations

from dataclasses import dataclass

from zoo.errors import check_choice
from zoo.models.rnn import RNNConfig
from zoo.optim import OptimConfig


@dataclass(frozen=True)
class Recipe:
    """One model and how it is trained: everything a results row depends on but the task."""

    name: str
    backbone: RNNConfig
    optim: OptimConfig = OptimConfig(name="adam", lr=1e-3)
    clip_val: float | None = 1.0
    clip_algorithm: str = "norm"


ADDING_REFERENCE: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe("lstm_1x128", RNNConfig(cell="lstm", hidden_size=128)),
        Recipe("gru_1x128", RNNConfig(cell="gru", hidden_size=128)),
        Recipe("rnn_tanh_1x128", RNNConfig(cell="rnn", nonlinearity="tanh", hidden_size=128)),
        Recipe(
            "irnn_1x128",
            RNNConfig(cell="rnn", nonlinearity="relu", hidden_size=128, recurrent_init="identity", bias_init=0.0),
            optim=OptimConfig(name="adam", lr=1e-4),
        ),
    )
}


def reference_recipe(name: str) -> Recipe:
    return ADDING_REFERENCE[check_choice("reference model", name, ADDING_REFERENCE)]
