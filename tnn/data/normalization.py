"""Per-model input normalisation: one table, the single source of truth for mean/std."""

from __future__ import annotations

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)

_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "lenet5": (MNIST_MEAN, MNIST_STD),
    # the public CIFAR ResNet checkpoints (resnet32-d509ac18.th, ...) were trained on RGB/255
    # normalised with ImageNet statistics, not CIFAR's; all CIFAR depths share this convention
    **{f"resnet{d}": (IMAGENET_MEAN, IMAGENET_STD) for d in (20, 32, 44, 56, 110)},
    "resnet50": (IMAGENET_MEAN, IMAGENET_STD),
}

#: The model whose normalisation a dataset uses when none is given.
DEFAULT_MODEL: dict[str, str] = {
    "mnist": "lenet5",
    "digits": "lenet5",
    "cifar10": "resnet32",
    "imagenet": "resnet50",
    "synthetic": "resnet32",
}


def normalization(model_name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel ``(mean, std)`` applied to ``uint8 / 255`` images for the given model.

    Parameters
    ----------
    model_name : str
        A name of :data:`tnn.models.MODELS`.

    Returns
    -------
    (mean, std) : tuple of tuple of float
        One value per input channel: ``((0.1307,), (0.3081,))`` for lenet5, ImageNet statistics
        ``((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))`` for the CIFAR ResNets and resnet50.
    """
    if not isinstance(model_name, str) or model_name.lower() not in _STATS:
        raise ValueError(f"no normalisation for model {model_name!r}; valid names: {', '.join(_STATS)}")
    return _STATS[model_name.lower()]
