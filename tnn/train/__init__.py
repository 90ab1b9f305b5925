"""Training of compressed networks.

- :func:`sequential_train` — the paper's data-reconstruction stage: stage by stage, MSE to the
  pretrained network's stage outputs, batch norm frozen, Adam;
- :func:`finetune` — end-to-end cross-entropy, optionally with knowledge distillation;
- :func:`evaluate` — top-1 accuracy;
- checkpoints every ``checkpoint_every`` steps (atomic), exact resume, ``torchrun`` + DDP
  (:mod:`tnn.train.distributed`).
"""

from __future__ import annotations

from tnn.train.evaluate import accuracy, evaluate
from tnn.train.finetune import distillation_loss, finetune
from tnn.train.history import History
from tnn.train.loop import Callback, Checkpointing, EvaluateEvery, Phase, StepEvent, run_phases
from tnn.train.sequential import TeacherCache, sequential_phases, sequential_train
from tnn.train.stages import OUTPUT, StageForward, split_parameters

__all__ = [
    "OUTPUT",
    "Callback",
    "Checkpointing",
    "EvaluateEvery",
    "History",
    "Phase",
    "StepEvent",
    "StageForward",
    "TeacherCache",
    "distillation_loss",
    "accuracy",
    "evaluate",
    "finetune",
    "run_phases",
    "sequential_phases",
    "sequential_train",
    "split_parameters",
]
