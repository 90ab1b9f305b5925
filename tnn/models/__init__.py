"""Reference CNNs: LeNet-5, the CIFAR ResNets (option-A shortcuts) and ResNet-50 (torchvision layout).

- :func:`get_model` / :data:`MODELS` — build by name (``"lenet5"``, ``"resnet20/32/44/56/110"``,
  ``"resnet50"``); :func:`model_info` — each model's input shape, normalisation, dataset and the
  layers kept dense by default;
- :func:`load_pretrained` — load a checkpoint safely (``weights_only=True``) with exact key/shape checks;
- :func:`stages` / :func:`stage_modules` — the default stages of sequential training.
"""

from __future__ import annotations

from tnn.models.cifar_resnet import CIFAR_DEPTHS, CifarResNet, cifar_resnet, resnet32
from tnn.models.lenet import LeNet5, lenet5
from tnn.models.pretrained import extract_state_dict, load_pretrained
from tnn.models.registry import MODELS, ModelInfo, get_model, model_info
from tnn.models.resnet50 import ResNet50, resnet50
from tnn.models.stages import stage_modules, stages

__all__ = [
    "CIFAR_DEPTHS",
    "MODELS",
    "CifarResNet",
    "LeNet5",
    "ModelInfo",
    "ResNet50",
    "cifar_resnet",
    "extract_state_dict",
    "get_model",
    "lenet5",
    "load_pretrained",
    "model_info",
    "resnet32",
    "resnet50",
    "stage_modules",
    "stages",
]
