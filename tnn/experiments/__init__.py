"""The runner for the paper's tables and the convergence study (``tnn experiment``).

- :func:`run_experiment` — every cell (format x rate) of a table under a named budget, resumable by
  cell; writes ``results.csv``, ``results.md`` and ``accuracy_vs_rate.png``;
- :func:`run_convergence` — sequential versus end-to-end training from the same decomposition.

Each cell is one call of :func:`tnn.recipes.compress_and_train`; budgets live in :mod:`tnn.recipes`.
"""

from __future__ import annotations

from tnn.experiments.convergence import parameter_epochs, run_convergence, steps_to_within
from tnn.experiments.runner import collect_rows, run_experiment

__all__ = ["collect_rows", "parameter_epochs", "run_convergence", "run_experiment", "steps_to_within"]
