"""How often a run does its periodic work, in optimizer steps: both cadences in one place.

They are two numbers because they cost and protect different things. A checkpoint
(``zoo.resume``) is cheap and bounds the work a killed run loses, so it is frequent; the
through-time gradient probe and the spectra (``zoo.diagnostics``) re-run a probe batch
unrolled step by step, so they are rarer (``scripts/diagnostics_cost.py`` measures what
they cost). Neither changes a run's numbers: both read the model, never the random streams.
"""

CHECKPOINT_EVERY_N_STEPS = 100
DIAGNOSTICS_EVERY_N_STEPS = 500
