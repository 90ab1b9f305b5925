"""Compress-and-train recipes: the pipeline in one function, budgets as data.

- :func:`compress_and_train` — compress a pretrained network, train it sequentially, optionally
  fine-tune (distilled), evaluate after each step; checkpoints and resume;
- :class:`Budget`, :func:`get_budget`, :data:`BUDGETS` — how much training a run gets (``cpu``,
  ``paper``, ``demo``, ``smoke``);
- :class:`RunData`, :func:`load_run_data` — training subset, held-out validation set, test set.
"""

from __future__ import annotations

from tnn.recipes.budgets import BUDGETS, Budget, budget_names, get_budget
from tnn.recipes.data import RunData, load_run_data
from tnn.recipes.recipe import (
    CHECKPOINT_FINETUNE,
    CHECKPOINT_SEQUENTIAL,
    CHECKPOINTS,
    RecipeResult,
    compress_and_train,
    remove_checkpoints,
)

__all__ = [
    "BUDGETS",
    "CHECKPOINT_FINETUNE",
    "CHECKPOINT_SEQUENTIAL",
    "CHECKPOINTS",
    "Budget",
    "RecipeResult",
    "RunData",
    "budget_names",
    "compress_and_train",
    "get_budget",
    "load_run_data",
    "remove_checkpoints",
]
