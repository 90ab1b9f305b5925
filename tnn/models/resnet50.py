"""ResNet-50 (v1.5) with torchvision's module layout and state_dict keys, without needing torchvision.

Layout (input ``(B, 3, 224, 224)``): ``conv1`` 7x7/2 -> ``bn1`` -> ReLU -> max-pool 3x3/2 -> ``layer1`` ..
``layer4`` (3, 4, 6, 3 bottleneck blocks of widths 64, 128, 256, 512, expansion 4; the stride sits on the
3x3 convolution and the projection shortcut is ``downsample.0`` (1x1 conv) + ``downsample.1`` (BN)) ->
global average pool -> ``fc`` 2048 -> ``num_classes``. 25,557,032 parameters for 1000 classes, so that
torchvision's ``resnet50`` weights load unchanged.
"""

from __future__ import annotations

import torch
from torch import nn


class Bottleneck(nn.Module):
    """Bottleneck block: 1x1 -> 3x3 (stride) -> 1x1 convs with BN, plus shortcut; ``4 * planes`` out."""

    expansion = 4

    def __init__(
        self, in_planes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50(nn.Module):
    """ResNet-50 with torchvision's keys (``conv1``, ``bn1``, ``layer1.0.downsample.0``, ..., ``fc``).

    Parameters
    ----------
    num_classes : int
        Classifier width (1000 for ImageNet).

    Notes
    -----
    ``stage_layout`` = ``(("conv1", "bn1", "layer1"), ("layer2",), ("layer3",), ("layer4",), ("fc",))``:
    the stem is trained together with ``layer1``; glue is the stem ReLU + max-pool and the global average
    pool + flatten before ``fc``. (``relu``, ``maxpool`` and ``avgpool`` are parameter-free modules, kept
    for torchvision compatibility.)
    """

    arch = "resnet50"
    stage_layout: tuple[tuple[str, ...], ...] = (
        ("conv1", "bn1", "layer1"),
        ("layer2",),
        ("layer3",),
        ("layer4",),
        ("fc",),
    )

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._in_planes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, 3, stride=1)
        self.layer2 = self._make_layer(128, 4, stride=2)
        self.layer3 = self._make_layer(256, 6, stride=2)
        self.layer4 = self._make_layer(512, 3, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * Bottleneck.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        out_planes = planes * Bottleneck.expansion
        downsample = None
        if stride != 1 or self._in_planes != out_planes:
            downsample = nn.Sequential(
                nn.Conv2d(self._in_planes, out_planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_planes),
            )
        layers = [Bottleneck(self._in_planes, planes, stride, downsample)]
        self._in_planes = out_planes
        layers += [Bottleneck(out_planes, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, 3, H, W)`` images (224x224 for ImageNet) to ``(B, num_classes)`` logits."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet50(num_classes: int = 1000) -> ResNet50:
    """Build :class:`ResNet50` (25,557,032 parameters for 1000 classes)."""
    return ResNet50(num_classes=num_classes)


__all__ = ["Bottleneck", "ResNet50", "resnet50"]
