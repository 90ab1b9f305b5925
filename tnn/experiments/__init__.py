"""The runner for the paper's tables and the convergence study (``tnn experiment``).

- :func:`run_experiment` — every cell (format x rate) of a table under a named :class:`Budget`,
  resumable by cell; writes ``results.csv``, ``results.md`` and ``accuracy_vs_rate.png``;
- :func:`run_convergence` — sequential versus end-to-end training from the same decomposition;
- :func:`get_budget` / :data:`BUDGETS` — the ``cpu``, ``paper`` and ``smoke`` budgets.
"""

from __future__ import annotations

from tnn.experiments.budgets import BUDGETS, Budget, get_budget
from tnn.experiments.convergence import run_convergence, steps_to_within
from tnn.experiments.runner import collect_rows, run_experiment

__all__ = ["BUDGETS", "Budget", "collect_rows", "get_budget", "run_convergence", "run_experiment",
           "steps_to_within"]
