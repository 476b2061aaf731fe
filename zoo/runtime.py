"""Process-wide CPU settings that must be in place before the first torch op.

Vanishing gradients are tiny numbers, and tiny (denormal) floats are slow on a CPU:
a fused LSTM step at sequential-MNIST shapes took 6.2 s with denormals and 0.59 s
with them flushed to zero. The flag lives in each thread's floating-point control
register, and a thread copies it from its parent when it starts, so it has to be set
before torch starts its intra-op thread pool, i.e. at import time of ``zoo``.

``ZOO_FLUSH_DENORMAL=0`` in the environment keeps denormals; ``zoo fit
--flush_denormal false`` does the same for one run (see ``zoo.app.cli``).
"""

from __future__ import annotations

import os

import torch

from zoo.errors import ZooError

ENV_FLUSH_DENORMAL = "ZOO_FLUSH_DENORMAL"


def env_flag(name: str) -> bool:
    """A switch in the environment: on unless set to 0/false/no/off; anything else is an error naming it."""
    value = os.environ.get(name, "1").strip().lower()
    if value in {"1", "true", "yes", "on", ""}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ZooError(f"{name}={value!r} is not a boolean; valid values: 1, 0, true, false, yes, no, on, off")


def flush_denormal_default() -> bool:
    """The setting asked for by the environment: on unless ``ZOO_FLUSH_DENORMAL`` is 0/false/no/off."""
    return env_flag(ENV_FLUSH_DENORMAL)


def set_flush_denormal(enabled: bool) -> bool:
    """Flush (or keep) denormals in this thread; returns whether flushing is now in effect.

    ``torch.set_flush_denormal`` returns False where the CPU lacks SSE3 (then nothing
    is flushed), so the returned value is what a run record should store.
    """
    supported = torch.set_flush_denormal(enabled)
    return bool(enabled and supported)


def flush_denormal_active() -> bool:
    """Whether denormals are being flushed in this thread, read off the arithmetic itself."""
    tiny = torch.tensor([1e-40], dtype=torch.float32)  # a float32 denormal
    return bool((tiny * 1.0).item() == 0.0)


FLUSH_DENORMAL = set_flush_denormal(flush_denormal_default())

# Deterministic runs (Lightning's ``deterministic=True``) would otherwise also fill every
# fresh tensor with NaN, a debugging aid that changes no result of a correct program
# but cost 200 fills and ~4 ms of a 85 ms PTB step here.
torch.utils.deterministic.fill_uninitialized_memory = False
