"""Plain torch.nn backbones: no Lightning inside, so they can be used on their own."""

from typing import Any

from zoo.models.rnn import NONLINEARITIES, LoopRNN, RNNBackbone, RNNConfig

__all__ = ["CELLS", "NONLINEARITIES", "LoopRNN", "RNNBackbone", "RNNConfig"]


def __getattr__(name: str) -> Any:
    if name == "CELLS":  # for code older than the registry: the registered cells' names (zoo.list_cells is the API)
        from zoo.cells import cell_names

        return cell_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
