"""Synthetic boards for timing and testing the site: copies of one real record as other models and seeds.

They live here, not in tests/, because ``scripts/site_speed.py`` (the speed goal's measurement)
and the browser tests must time the very same board and the very same clicks.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

from zoo.records import outcome

# One sort and one filter click on a board, its layout included: what the speed goal (< 100 ms on
# a 1,000-row board) times, in the browser tests and in scripts/site_speed.py.
SORT_AND_FILTER = """
    const t0 = performance.now();
    document.querySelector('button[data-sort="param_count"]').click();
    document.querySelector('fieldset[data-facet="cell"] input[value="lstm"]').click();
    document.body.offsetHeight;  // the layout too, not just the script
    return performance.now() - t0;"""


def browser_paths() -> tuple[str | None, str | None]:
    """(chromium, chromedriver) on this machine, None for either that is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists()
                                              else None)
    return chromium, driver


def variant(record: dict, model: str, seed: int, mse: float | None, *, tier: str | None = None,
            benchmark: str | None = None, params: int | None = None, cell: str | None = None) -> dict:
    """A copy of ``record`` as another model/seed with test MSE ``mse`` (None: diverged), its state decided as a
    run's is."""
    r = copy.deepcopy(record)
    r["benchmark"] = r["config"]["benchmark"] = benchmark or r["benchmark"]
    r["tier"] = r["config"]["tier"] = tier or r["tier"]
    r["model"], r["seed"] = model, seed
    r["id"] = f"{r['benchmark']}.{r['tier']}.{model}.s{seed}"
    r["config"]["model"]["name"] = model
    r["environment"]["git"] = {"commit": "0" * 40, "dirty": False}
    if params is not None:
        r["params"] = params
    if cell is not None:
        r["config"]["model"]["backbone"]["cell"] = cell
    if mse is None:
        r.update(diverged=True, diverged_reason="diverged at step 3: loss is nan", lengths={}, longest_solved=None)
        r["metrics"]["test"] = {}
    else:
        r["metrics"]["test"] = {**r["metrics"]["test"], "mse": mse, "loss": mse}
        r["diverged"], r["diverged_reason"] = False, None
    r.update(outcome(r["task"], r["metrics"]["test"], r["diverged"]))
    return r


def big_board(template: dict, n: int, tier: str = "big") -> list[dict]:
    """``n`` models of one seed each, spread over cells and sizes, their curves left out to keep the build quick."""
    base = copy.deepcopy(template)
    base["curves"], base["gradients"] = None, {}
    cells = ("gru", "lstm", "rnn")
    return [variant(base, f"m{i:04d}", 0, 0.002 + (i * 7919 % n) / n * 0.01, tier=tier, params=1000 + (i * 37) % 5000,
                    cell=cells[i % 3]) for i in range(n)]
