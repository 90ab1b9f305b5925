"""The compress-and-train recipe: one call does compress, sequential training, fine-tuning, evaluation."""

from __future__ import annotations

import copy

import pytest
import torch

from tnn.data import get_dataset
from tnn.data.subsets import IndexSubset
from tnn.experiments.runner import load_teacher
from tnn.recipes import Budget, RunData, compress_and_train, get_budget
from tnn.train import EvaluateEvery, sequential_train


def _data(augmented: bool = False) -> RunData:
    train = get_dataset("synthetic", "train", model="lenet5", size=48)
    test = get_dataset("synthetic", "test", model="lenet5", size=32)
    aug = None
    if augmented:
        aug = IndexSubset(get_dataset("synthetic", "train", model="lenet5", size=48, augment=True),
                          torch.arange(48))
    return RunData(train=train, val=test, test=test, train_augmented=aug)


def _budget(**kw: object) -> Budget:
    fields = {"steps_per_stage": 2, "batch_size": 8, "finetune_steps": 3, **kw}
    return get_budget("smoke", "lenet5").replace(**fields)


def test_recipe_reports_every_phase() -> None:
    teacher = load_teacher("lenet5", None)
    result = compress_and_train(teacher, _data(), "tt", 0.2, _budget(), model_name="lenet5")
    fig = result.figures
    for key in ("acc_init_val", "acc_init_test", "acc_seq_val", "acc_seq_test", "acc_ft_val", "acc_ft_test"):
        assert 0.0 <= fig[key] <= 1.0, key
    assert fig["acc_final_test"] == fig["acc_ft_test"]
    assert fig["steps_seq"] == 2 * fig["stages"] and fig["steps_ft"] == 3
    assert result.report.format == "tt" and result.report.achieved_rate <= 0.25
    assert len(result.history().steps) == fig["steps_seq"] + 3


def test_recipe_sequential_phase_equals_sequential_train() -> None:
    """The recipe adds no training logic: its sequential phase is tnn.train.sequential_train."""
    teacher = load_teacher("lenet5", None)
    data = _data()
    budget = _budget(finetune_steps=0)
    result = compress_and_train(teacher, data, "rtt", 0.2, budget, seed=3)
    torch.manual_seed(3)
    from tnn.compression import compress

    student = compress(teacher, format="rtt", rate=0.2)
    sequential_train(student, teacher, data.train, steps_per_stage=2, batch_size=8, lr=budget.lr, seed=3,
                     cache_teacher=True)
    for (name, a), b in zip(result.student.state_dict().items(), student.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


def test_recipe_resumes_from_its_checkpoints(tmp_path) -> None:
    teacher = load_teacher("lenet5", None)
    data = _data()
    budget = _budget(schedule="cosine", warmup=0.2, checkpoint_every=1)
    full = compress_and_train(teacher, data, "cp", 0.2, budget, seed=1)
    # an interrupted run: the sequential phase stops after 3 steps (a callback asks to stop)
    from tnn.train import Callback

    class StopAt(Callback):
        def on_step_end(self, event):  # type: ignore[no-untyped-def]
            return event.global_step >= 3

    partial = compress_and_train(teacher, data, "cp", 0.2, budget.replace(finetune_steps=0), seed=1,
                                 checkpoint_dir=tmp_path, callbacks=[StopAt()])
    assert len(partial.sequential.steps) == 3
    resumed = compress_and_train(teacher, data, "cp", 0.2, budget, seed=1, checkpoint_dir=tmp_path)
    for (name, a), b in zip(full.student.state_dict().items(), resumed.student.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name


def test_evaluate_every_spans_both_phases() -> None:
    teacher = load_teacher("lenet5", None)
    data = _data()
    calls: list[int] = []

    def fake_accuracy(_model: object) -> float:
        calls.append(1)
        return 0.5

    every = EvaluateEvery(4, fake_accuracy)
    result = compress_and_train(teacher, data, "tk", 0.3, _budget(), callbacks=[every])
    total = result.figures["steps_seq"] + result.figures["steps_ft"]
    points = result.history().evaluations
    steps = [int(p["global_step"]) for p in points]
    assert steps[0] == 0 and steps[-1] == total and len(set(steps)) == len(steps)
    assert result.figures["steps_seq"] in steps  # the end of sequential training, then fine-tuning's
    seconds = [p["train_s"] for p in points]
    assert seconds == sorted(seconds)
    assert len(calls) == len(points)


def test_augmented_fine_tuning_needs_augmented_data() -> None:
    teacher = load_teacher("lenet5", None)
    with pytest.raises(ValueError, match="augmented images"):
        compress_and_train(teacher, _data(), "tt", 0.2, _budget(augment=True))
    result = compress_and_train(teacher, _data(augmented=True), "tt", 0.2,
                                _budget(augment=True, distill=True, schedule="cosine"))
    assert result.figures["steps_ft"] == 3


def test_given_student_is_trained_not_recompressed() -> None:
    teacher = load_teacher("lenet5", None)
    from tnn.compression import compress

    student = compress(teacher, format="svd", rate=0.3)
    before = copy.deepcopy(student.state_dict())
    result = compress_and_train(teacher, _data(), "svd", 0.3, _budget(), student=student)
    assert result.student is student and "acc_init_test" not in result.figures
    assert any(not torch.equal(before[k], v) for k, v in student.state_dict().items())


def test_budget_checks_its_new_fields() -> None:
    with pytest.raises(ValueError, match="schedule"):
        Budget("x", steps_per_stage=1, schedule="linear")
    with pytest.raises(ValueError, match="alpha"):
        Budget("x", steps_per_stage=1, alpha=2.0)
    with pytest.raises(ValueError, match="not both"):
        Budget("x", steps_per_stage=1, finetune_steps=3, finetune_epochs=1.0)
    line = Budget("x", steps_per_stage=0, finetune_epochs=2.0, distill=True).describe()
    assert "fine-tuning 2 epochs" in line and "distilled" in line
    with pytest.raises(ValueError, match="allocation must be one of"):
        Budget("x", steps_per_stage=1, allocation="greedy")
    assert "error allocation of the rate" in Budget("x", steps_per_stage=1, allocation="error").describe()
    assert "allocation" not in Budget("x", steps_per_stage=1).describe()


def test_recipe_compresses_with_the_budgets_allocation() -> None:
    teacher = load_teacher("lenet5", None)
    result = compress_and_train(teacher, _data(), "svd", 0.2, _budget(allocation="error", steps_per_stage=0,
                                                                      finetune_steps=0))
    report = result.student.tnn_report
    assert report.allocation == "error"
    selected = [r for r in report.layers if r.status == "compressed"]
    assert sum(r.params_after for r in selected) <= 0.2 * sum(r.params_before for r in selected) + 1


def test_data_fitted_initialisation_runs_once_and_is_reported(tmp_path) -> None:
    teacher = load_teacher("lenet5", None)
    budget = _budget(fit_samples=16, fit_steps=5, finetune_steps=0)
    result = compress_and_train(teacher, _data(), "rtt", 0.2, budget, checkpoint_dir=tmp_path)
    fig = result.figures
    assert 0.0 <= fig["acc_fit_val"] <= 1.0 and fig["wall_fit_s"] > 0
    # a resumed run takes the fitted weights (and their figures) from its checkpoint: no second fit
    again = compress_and_train(teacher, _data(), "rtt", 0.2, budget, checkpoint_dir=tmp_path)
    assert again.figures["acc_fit_val"] == fig["acc_fit_val"] and again.figures["wall_fit_s"] == 0
    for (name, a), b in zip(result.student.state_dict().items(), again.student.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name
