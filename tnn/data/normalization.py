"""Per-model input normalisation (the statistics live in :func:`tnn.models.model_info`)."""

from __future__ import annotations

from tnn.models import MODELS, model_info

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
    try:
        info = model_info(model_name)
    except (TypeError, ValueError):
        valid = ", ".join(MODELS)
        raise ValueError(f"no normalisation for model {model_name!r}; valid names: {valid}") from None
    return info.mean, info.std
