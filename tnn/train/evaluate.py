"""Classification accuracy of a model on a dataset."""

from __future__ import annotations

import sys
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from tnn.data.batches import fetch_batch


def evaluate(
    model: nn.Module,
    dataset: Any,
    *,
    batch_size: int = 256,
    limit: int | None = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """Top-1 accuracy and mean cross-entropy of ``model`` (eval mode, no gradient).

    Parameters
    ----------
    model : nn.Module
        Maps ``(B, ...)`` inputs to logits ``(B, classes)``.
    dataset : Dataset
        Samples ``(x, y)``.
    limit : int, optional
        Use only the first ``limit`` samples.

    Returns
    -------
    dict
        ``{"accuracy": float, "correct": int, "n": int, "loss": float}``.
    """
    n = len(dataset)
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer, got {limit!r}")
        n = min(n, limit)
    if n == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    device = torch.device(device)
    was_training = model.training
    model.to(device).eval()
    correct, total_loss = 0, 0.0
    bar = None
    if progress:
        bar = tqdm(total=n, file=sys.stderr, unit="img", disable=not sys.stderr.isatty(), desc="evaluate")
    try:
        with torch.no_grad():
            for start in range(0, n, batch_size):
                idx = torch.arange(start, min(start + batch_size, n))
                x, y = fetch_batch(dataset, idx)
                x, y = x.to(device), y.to(device)
                logits = model(x)
                total_loss += float(F.cross_entropy(logits, y, reduction="sum"))
                correct += int((logits.argmax(dim=1) == y).sum())
                if bar is not None:
                    bar.update(len(idx))
    finally:
        model.train(was_training)
        if bar is not None:
            bar.close()
    return {"accuracy": correct / n, "correct": correct, "n": n, "loss": total_loss / n}


def accuracy(model: nn.Module, dataset: Any, limit: int | None = None,
             device: torch.device | str = "cpu") -> float | None:
    """Top-1 accuracy of ``model`` on ``dataset`` (first ``limit`` samples); ``None`` for no samples."""
    if dataset is None or len(dataset) == 0:
        return None
    return float(evaluate(model, dataset, limit=limit, device=device)["accuracy"])
