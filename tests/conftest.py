import zoo  # noqa: F401  (first, as in every entry point: flushes denormals before torch threads start)

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
