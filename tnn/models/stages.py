"""Default stages for sequential (data-reconstruction) training.

Every model of :mod:`tnn.models` declares ``stage_layout``: a tuple of stages in forward order, each a
tuple of top-level submodule names. The model's forward is exactly "apply the stages in order", with only
fixed parameter-free glue (ReLU, pooling, flatten) between the modules. The *last* module of each stage
is its boundary: the output of that module (as seen by a forward hook) is the stage's output.

Examples (stage outputs captured with ``model.get_submodule(name).register_forward_hook``)::

    lenet5    -> ["conv1", "conv2", "fc1", "fc2"]          (conv outputs before the max-pools,
                                                             fc1 before its ReLU)
    resnet32  -> ["layer1", "layer2", "layer3", "linear"]  (conv1/bn1 train with layer1)
    resnet50  -> ["layer1", "layer2", "layer3", "layer4", "fc"]
"""

from __future__ import annotations

from torch import nn


def stage_modules(model: nn.Module) -> list[tuple[str, ...]]:
    """Submodule names of each default training stage, in forward order.

    Parameters
    ----------
    model : nn.Module
        A model built by :func:`tnn.models.get_model` (also after compression, which keeps the names).

    Returns
    -------
    list of tuple of str
        E.g. ``[("conv1", "bn1", "layer1"), ("layer2",), ("layer3",), ("linear",)]`` for resnet32. The
        parameters of stage ``k`` are those of these modules.

    Raises
    ------
    TypeError
        If the model does not declare ``stage_layout``.
    """
    layout = getattr(model, "stage_layout", None)
    if layout is None:
        raise TypeError(
            f"{type(model).__name__} declares no stage_layout; stages are defined for the models of "
            "tnn.models (lenet5, resnet20/32/44/56/110, resnet50)"
        )
    names = dict(model.named_modules())
    for stage in layout:
        for name in stage:
            if name not in names:
                raise ValueError(f"stage module {name!r} of {type(model).__name__} is not a submodule")
    return [tuple(stage) for stage in layout]


def stages(model: nn.Module) -> list[str]:
    """Module names whose outputs are the stage outputs, in forward order (one per stage).

    Parameters
    ----------
    model : nn.Module
        A model of :mod:`tnn.models`.

    Returns
    -------
    list of str
        Top-level submodule names, e.g. ``["layer1", "layer2", "layer3", "linear"]`` for the CIFAR
        ResNets, ``["conv1", "conv2", "fc1", "fc2"]`` for lenet5. The last one's output is the logits.
        Register forward hooks on ``model.get_submodule(name)`` to capture teacher/student stage outputs;
        :func:`stage_modules` says which modules each stage trains.
    """
    return [stage[-1] for stage in stage_modules(model)]
