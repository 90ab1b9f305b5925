"""The original CIFAR ResNets of He et al. (2016), with "option A" (parameter-free) shortcuts.

Depth ``6n + 2``: a 3x3 stem of 16 channels, three stages of ``n`` basic blocks with 16, 32 and 64
channels (the first block of stages 2 and 3 halves the resolution), global average pooling and a linear
classifier. Input ``(B, 3, 32, 32)``, output ``(B, num_classes)``.

The state_dict keys (``conv1``, ``bn1``, ``layer{1,2,3}.{i}.{conv1,bn1,conv2,bn2}``, ``linear``) are those
of the widely used public checkpoints (akamaster/pytorch_resnet_cifar10), which load with
:func:`tnn.models.load_pretrained` (their ``module.`` prefix is stripped there).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CIFAR_DEPTHS = (20, 32, 44, 56, 110)


class ShortcutA(nn.Module):
    """Option-A shortcut: stride-2 subsampling plus zero channels, ``(B, C, H, W) -> (B, 2C, H/2, W/2)``.

    Parameters
    ----------
    planes : int
        Output channels; ``planes // 4`` zero channels are added on each side (``planes = 2 C``).
    """

    def __init__(self, planes: int) -> None:
        super().__init__()
        self.pad = planes // 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0.0)

    def extra_repr(self) -> str:
        return f"pad={self.pad}"


class BasicBlock(nn.Module):
    """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`` with 3x3 convolutions, no biases."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = ShortcutA(planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """CIFAR ResNet of depth ``6n + 2`` with option-A shortcuts.

    Parameters
    ----------
    depth : int
        Total number of weighted layers, ``6n + 2`` (20, 32, 44, 56, 110, ...).
    num_classes : int
        Classifier width.

    Notes
    -----
    ``stage_layout`` = ``(("conv1", "bn1", "layer1"), ("layer2",), ("layer3",), ("linear",))``: the stem is
    trained together with ``layer1``; the outputs of ``layer1``, ``layer2``, ``layer3`` (post-ReLU block
    outputs) and ``linear`` (logits) are the stage outputs. Glue: the stem ReLU and the global average
    pooling + flatten before ``linear``.
    """

    stage_layout: tuple[tuple[str, ...], ...] = (
        ("conv1", "bn1", "layer1"),
        ("layer2",),
        ("layer3",),
        ("linear",),
    )

    def __init__(self, depth: int = 32, num_classes: int = 10) -> None:
        super().__init__()
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(
                f"CIFAR ResNet depth must be 6n + 2 with n >= 1 (e.g. {CIFAR_DEPTHS}), got {depth!r}"
            )
        n = (depth - 2) // 6
        self.arch = f"resnet{depth}"
        self.depth = depth
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(16, 16, n, stride=1)
        self.layer2 = self._make_layer(16, 32, n, stride=2)
        self.layer3 = self._make_layer(32, 64, n, stride=2)
        self.linear = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    @staticmethod
    def _make_layer(in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [BasicBlock(in_planes, planes, stride)]
        layers += [BasicBlock(planes, planes, 1) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, 3, 32, 32)`` images to ``(B, num_classes)`` logits."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)
        return self.linear(out)


def cifar_resnet(depth: int = 32, num_classes: int = 10) -> CifarResNet:
    """Build the CIFAR ResNet of the given depth (``6n + 2``)."""
    return CifarResNet(depth=depth, num_classes=num_classes)


def resnet32(num_classes: int = 10) -> CifarResNet:
    """Build ResNet-32 for CIFAR (0.46 M parameters), matching the public ``resnet32-d509ac18.th`` keys."""
    return CifarResNet(depth=32, num_classes=num_classes)
