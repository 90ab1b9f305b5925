"""Training history: one record per optimisation step and one per finished phase (stage)."""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from typing import Any

from tnn.io import atomic_write_text


@dataclass
class History:
    """What a training run did, as plain data.

    Attributes
    ----------
    steps : list of dict
        One record per step: ``phase`` (name), ``phase_index``, ``step`` (within the phase, from 0),
        ``global_step``, ``loss``, ``time`` (seconds of training so far, summed over resumed runs).
    phases : list of dict
        One record per finished phase: ``phase``, ``phase_index``, ``steps``, ``wall_s``, ``final_loss``
        (mean of the last 10 step losses) and whatever the evaluation callback returned (e.g. ``accuracy``).
    evaluations : list of dict
        Evaluation points recorded during training (:class:`tnn.train.EvaluateEvery`): ``global_step``,
        ``train_s`` (training seconds so far) and ``value``. Checkpointed with the rest, so a resumed run
        keeps its curve.
    """

    steps: list[dict[str, Any]] = field(default_factory=list)
    phases: list[dict[str, Any]] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"steps": list(self.steps), "phases": list(self.phases), "evaluations": list(self.evaluations)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls(steps=list(data.get("steps", [])), phases=list(data.get("phases", [])),
                   evaluations=list(data.get("evaluations", [])))

    def extend(self, later: History) -> None:
        """Append a later run's records (its step counts and seconds continue this history's)."""
        steps_done = self.steps[-1]["global_step"] if self.steps else 0
        seconds = float(self.steps[-1]["time"]) if self.steps else 0.0
        self.steps.extend({**r, "global_step": r["global_step"] + steps_done, "time": r["time"] + seconds}
                          for r in later.steps)
        self.phases.extend(later.phases)
        # the later run's step 0 is this run's last point (same model): keep one of them
        repeated = bool(self.evaluations and later.evaluations and later.evaluations[0]["global_step"] == 0)
        start = 1 if repeated else 0
        self.evaluations.extend({**e, "global_step": e["global_step"] + steps_done,
                                 "train_s": round(e["train_s"] + seconds, 3)}
                                for e in later.evaluations[start:])

    def losses(self, phase: str | None = None) -> list[float]:
        """Step losses, optionally of one phase only."""
        return [r["loss"] for r in self.steps if phase is None or r["phase"] == phase]

    def write_jsonl(self, path: str | os.PathLike[str]) -> None:
        """All step and phase records, one JSON object per line (written atomically)."""
        lines = [json.dumps({"kind": "step", **r}) for r in self.steps]
        lines += [json.dumps({"kind": "phase", **r}) for r in self.phases]
        atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))

    def write_csv(self, path: str | os.PathLike[str]) -> None:
        """The step records as CSV (written atomically)."""
        buf = io.StringIO()
        fields = ["phase", "phase_index", "step", "global_step", "loss", "time"]
        writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for r in self.steps:
            writer.writerow(r)
        atomic_write_text(path, buf.getvalue())
