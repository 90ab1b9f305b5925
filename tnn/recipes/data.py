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
    ``train_augmented`` is the same training images with random augmentation (crop / flip), for the
    budgets that fine-tune on augmented data; sample ``i`` of both is the same image.
    """

    train: Any
    val: Any = None
    test: Any = None
    train_augmented: Any = None

    def sizes(self) -> dict[str, int]:
        return {f"n_{k}": len(v) for k, v in (("train", self.train), ("val", self.val), ("test", self.test))
                if v is not None}


def load_run_data(model: str, dataset: str, budget: Budget, data_dir: str | os.PathLike[str] | None = None,
                  seed: int = 0) -> RunData:
    """Training subset, held-out validation set and test set of ``dataset`` normalised for ``model``.

    ``train`` is un-augmented (teacher outputs are cached per image); with ``budget.augment`` the run
    data also holds ``train_augmented``. Image-folder datasets use the budget's ``image_size`` /
    ``resize``.
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
    augmented = None
    if budget.augment:
        full_augmented = get_dataset(dataset, "train", data_dir=data_dir, model=model, augment=True, **kw)
        augmented = IndexSubset(full_augmented, train_idx)
    return RunData(IndexSubset(full, train_idx), IndexSubset(full, val_idx), test, augmented)
