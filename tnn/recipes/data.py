"""The data of one compress-and-train run: training subset, held-out validation set, test set."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from tnn.data import get_dataset
from tnn.data.subsets import IndexSubset, split_indices
from tnn.recipes.budgets import Budget


@dataclass
class RunData:
    """The datasets of a run: ``train`` (required), ``val`` (held out, for choices) and ``test``.

    ``val`` and ``test`` may be ``None``: the recipe evaluates on whichever are given.
    """

    train: Any
    val: Any = None
    test: Any = None

    def sizes(self) -> dict[str, int]:
        return {f"n_{k}": len(v) for k, v in (("train", self.train), ("val", self.val), ("test", self.test))
                if v is not None}


def load_run_data(model: str, dataset: str, budget: Budget, data_dir: str | os.PathLike[str] | None = None,
                  seed: int = 0) -> RunData:
    """Training subset, held-out validation set and test set of ``dataset`` normalised for ``model``.

    Un-augmented (teacher outputs are cached per image). Image-folder datasets use the budget's
    ``image_size`` / ``resize``.
    """
    kw: dict[str, Any] = {}
    if dataset == "imagenet":
        if budget.image_size is not None:
            kw["image_size"] = budget.image_size
        if budget.resize is not None:
            kw["resize"] = budget.resize
    full = get_dataset(dataset, "train", data_dir=data_dir, model=model, **kw)
    test = get_dataset(dataset, "test", data_dir=data_dir, model=model, **kw)
    train_idx, val_idx = split_indices(full, budget.val_size, budget.train_subset, seed=seed)
    return RunData(IndexSubset(full, train_idx), IndexSubset(full, val_idx), test)
