"""LeNet-5 as used in the model-compression literature (Caffe's ``lenet`` example).

Layout (input ``(B, 1, 28, 28)``)::

    conv1  20@5x5  -> (B, 20, 24, 24) -> max-pool 2 -> (B, 20, 12, 12)
    conv2  50@5x5  -> (B, 50,  8,  8) -> max-pool 2 -> (B, 50,  4,  4) -> flatten (B, 800)
    fc1    800->500 -> ReLU
    fc2    500->10

431,080 parameters. There is no non-linearity after the convolutions, as in the Caffe original.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LeNet5(nn.Module):
    """LeNet-5 (Caffe variant): conv 20@5x5, pool, conv 50@5x5, pool, fc 500, ReLU, fc ``num_classes``.

    Parameters
    ----------
    num_classes : int
        Width of the last layer (10 for MNIST / digits).
    in_channels : int
        Input channels (1 for grey-scale 28x28 images).

    Notes
    -----
    ``stage_layout`` lists the submodules of each default training stage, in forward order; the last
    name of each stage is the module whose output is that stage's output (see :func:`tnn.models.stages`).
    The max-pools, the flatten and the ReLU are fixed functional glue.
    """

    arch = "lenet5"
    stage_layout: tuple[tuple[str, ...], ...] = (("conv1",), ("conv2",), ("fc1",), ("fc2",))

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 20, kernel_size=5)
        self.conv2 = nn.Conv2d(20, 50, kernel_size=5)
        self.fc1 = nn.Linear(50 * 4 * 4, 500)
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, C, 28, 28)`` images to ``(B, num_classes)`` logits."""
        x = F.max_pool2d(self.conv1(x), 2)
        x = F.max_pool2d(self.conv2(x), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)


def lenet5(num_classes: int = 10, in_channels: int = 1) -> LeNet5:
    """Build :class:`LeNet5` (431,080 parameters for 10 classes and one input channel)."""
    return LeNet5(num_classes=num_classes, in_channels=in_channels)
