"""Model names and the factory :func:`get_model`."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from tnn.models.cifar_resnet import CIFAR_DEPTHS, cifar_resnet
from tnn.models.lenet import lenet5
from tnn.models.resnet50 import resnet50


def _cifar(depth: int) -> Callable[..., nn.Module]:
    def build(**kw: object) -> nn.Module:
        return cifar_resnet(depth, **kw)  # type: ignore[arg-type]

    return build


_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "lenet5": lenet5,
    **{f"resnet{d}": _cifar(d) for d in CIFAR_DEPTHS},
    "resnet50": resnet50,
}

#: Names accepted by :func:`get_model`.
MODELS: tuple[str, ...] = tuple(_BUILDERS)


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
    if not isinstance(name, str):
        raise TypeError(f"model name must be a str, got {type(name).__name__}")
    builder = _BUILDERS.get(name.lower())
    if builder is None:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODELS)}")
    try:
        return builder(**kw)
    except RuntimeError as exc:  # e.g. num_classes=-1 reaching a tensor constructor
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"cannot build model {name!r} with {kw}: {first}") from exc
