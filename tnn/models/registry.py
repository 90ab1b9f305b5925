"""Every fact about a named model in one table: builder, input shape, normalisation, dense layers.

Stage boundaries for sequential training are part of each architecture (its ``stage_layout`` class
attribute, read by :func:`tnn.models.stages`), since they name its submodules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from tnn.models.cifar_resnet import CIFAR_DEPTHS, cifar_resnet
from tnn.models.lenet import lenet5
from tnn.models.resnet50 import resnet50

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)


@dataclass(frozen=True)
class ModelInfo:
    """What the library knows about a named model.

    Attributes
    ----------
    name : str
    build : callable
        ``build(**kw) -> nn.Module``, a fresh randomly initialised model (``kw`` e.g. ``num_classes``).
    input_shape : tuple of int
        Shape of one input sample ``(C, H, W)``.
    mean, std : tuple of float
        Per-channel normalisation applied to ``uint8 / 255`` images (one value per input channel).
    dataset : str
        The dataset the model is made for (``tnn demo`` and tests pair them).
    dense_by_default : tuple of str
        Layer-name patterns that the demo keeps dense (layers too small to be worth compressing).
    """

    name: str
    build: Callable[..., nn.Module]
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    dataset: str
    dense_by_default: tuple[str, ...] = ()


def _cifar(depth: int) -> ModelInfo:
    def build(**kw: object) -> nn.Module:
        return cifar_resnet(depth, **kw)  # type: ignore[arg-type]

    # the public CIFAR ResNet checkpoints (resnet32-d509ac18.th, ...) were trained on RGB/255
    # normalised with ImageNet statistics, not CIFAR's; all CIFAR depths share this convention
    return ModelInfo(f"resnet{depth}", build, (3, 32, 32), IMAGENET_MEAN, IMAGENET_STD, "cifar10")


_INFO: dict[str, ModelInfo] = {
    "lenet5": ModelInfo("lenet5", lenet5, (1, 28, 28), MNIST_MEAN, MNIST_STD, "mnist",
                        dense_by_default=("conv1", "fc2")),
    **{f"resnet{d}": _cifar(d) for d in CIFAR_DEPTHS},
    "resnet50": ModelInfo("resnet50", resnet50, (3, 224, 224), IMAGENET_MEAN, IMAGENET_STD, "imagenet"),
}

#: Names accepted by :func:`get_model`.
MODELS: tuple[str, ...] = tuple(_INFO)


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of a model name (case-insensitive).

    Raises
    ------
    TypeError
        If ``name`` is not a string.
    ValueError
        If ``name`` is not a known model.
    """
    if not isinstance(name, str):
        raise TypeError(f"model name must be a str, got {type(name).__name__}")
    info = _INFO.get(name.lower())
    if info is None:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODELS)}")
    return info


def get_model(name: str, **kw: object) -> nn.Module:
    """Build a fresh (randomly initialised) model by name.

    Parameters
    ----------
    name : str
        One of :data:`MODELS`: ``"lenet5"`` (input ``(B, 1, 28, 28)``), ``"resnet20"``, ``"resnet32"``,
        ``"resnet44"``, ``"resnet56"``, ``"resnet110"`` (CIFAR, ``(B, 3, 32, 32)``) or ``"resnet50"``
        (ImageNet, ``(B, 3, 224, 224)``).
    **kw
        Passed to the builder, e.g. ``num_classes``.

    Returns
    -------
    nn.Module
        The model; its ``arch`` attribute is ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not a known model.
    """
    info = model_info(name)
    try:
        return info.build(**kw)
    except RuntimeError as exc:  # e.g. num_classes=-1 reaching a tensor constructor
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"cannot build model {name!r} with {kw}: {first}") from exc
