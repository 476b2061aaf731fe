"""Recurrent cells, one file each, and their registry: what a cell is lives in one ``Cell``.

Adding a cell is one file plus one registration line: the file defines its layer
module (the fast path), its step, its ``Cell`` and ends with ``register_cell(CELL)``;
the line is its import below, which runs that registration when ``zoo.cells`` is
imported (``zoo.models`` imports it, so every entry point sees every cell). A cell
defined elsewhere (a notebook, a test, a plugin) registers the same way from its own
module; nothing else in the zoo needs to change: the backbone builds it, the init,
the unrolled diagnostics, the spectra and ``run_stack`` read its descriptor.

The import order below is the registration order, which error messages list (rnn,
lstm, gru, then the frontier cells); ``list_cells`` sorts.
"""

from zoo.cells.base import (Cell, Option, cell_names, cell_of, get_cell, layer_parameters, list_cells, register_cell,
                            unregister_cell)

# The built-in cells: one import, one registration each (first the names above, which the cells' imports need).
from zoo.cells import rnn  # noqa: E402, F401  (isort: skip)
from zoo.cells import lstm  # noqa: E402, F401  (isort: skip)
from zoo.cells import gru  # noqa: E402, F401  (isort: skip)
# The frontier cells (issue 21).
from zoo.cells import indrnn  # noqa: E402, F401  (isort: skip)
from zoo.cells import cornn  # noqa: E402, F401  (isort: skip)
from zoo.cells import lem  # noqa: E402, F401  (isort: skip)
from zoo.cells import exprnn  # noqa: E402, F401  (isort: skip)
from zoo.cells import lru  # noqa: E402, F401  (isort: skip)
from zoo.cells import mingru  # noqa: E402, F401  (isort: skip)
from zoo.cells import minlstm  # noqa: E402, F401  (isort: skip)

__all__ = ["Cell", "Option", "cell_names", "cell_of", "get_cell", "layer_parameters", "list_cells", "register_cell",
           "unregister_cell"]
