"""Plain torch.nn backbones: no Lightning inside, so they can be used on their own."""

from zoo.models.rnn import CELLS, NONLINEARITIES, LoopRNN, RNNBackbone, RNNConfig

__all__ = ["CELLS", "NONLINEARITIES", "LoopRNN", "RNNBackbone", "RNNConfig"]
