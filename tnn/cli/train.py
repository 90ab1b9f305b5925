"""``tnn train``: compress a pretrained model and train it with the recipe under a named budget, or
train a dense model; checkpoints, ``--resume`` and ``torchrun`` data parallelism."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from tnn.cli import common
from tnn.cli.errors import CLIError
from tnn.compression import compressed_metadata, rebuild_model, save_model
from tnn.data.subsets import IndexSubset
from tnn.io import load_checkpoint, to_jsonable
from tnn.models import model_info
from tnn.recipes import (
    CHECKPOINT_FINETUNE,
    CHECKPOINT_SEQUENTIAL,
    Budget,
    RunData,
    compress_and_train,
    load_run_data,
)
from tnn.train import Checkpointing, evaluate, finetune
from tnn.train import distributed as D

DEFAULT_BUDGET = "long"

#: Files whose presence in --out marks an earlier run: refused unless --resume or --overwrite.
RUN_FILES = (CHECKPOINT_SEQUENTIAL, CHECKPOINT_FINETUNE, "model.pt", "summary.json")

#: Budget fields that change neither the model nor the training schedule: --resume may change them.
RESUME_NEUTRAL = ("name", "checkpoint_every", "eval_limit", "val_limit", "conv_steps", "conv_eval_every",
                  "conv_eval_limit")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = common.command_parser(
        subparsers,
        "train",
        "compress a pretrained model and train it (the default recipe), or train a dense model",
        "With --format: compress --model (pretrained --weights) into a TNN and train it with the library's\n"
        f"compress-and-train recipe under the named --budget (default {DEFAULT_BUDGET!r}): decomposition of\n"
        "every kernel, sequential training stage by stage (MSE to the pretrained stage outputs), then\n"
        "end-to-end fine-tuning distilled from the pretrained network on augmented images (some budgets\n"
        "also first fit each compressed layer to the pretrained one on training images: --fit-samples);\n"
        "the override flags change single fields (--steps/--epochs: per stage). The budget's validation\n"
        "images are held out of training. Without --format: train the\n"
        "dense model with cross-entropy (--steps/--epochs in total, --lr, --batch-size).\n"
        "Checkpoints are written atomically to OUT every --checkpoint-every steps; --resume continues an\n"
        "interrupted run exactly (with the same settings); a run already in OUT is never replaced\n"
        "without --overwrite. Data-parallel: torchrun --nproc_per_node N -m tnn train ...\n"
        "Outputs: OUT/model.pt, OUT/log.jsonl, OUT/log.csv, OUT/summary.json.",
        "  tnn train --model resnet32 --weights r32.th --format rcp --rate 0.1 --dataset cifar10 \\\n"
        "            --data-dir data --out runs/rcp                # the default recipe\n"
        "  tnn train ... --budget cpu --out runs/rtt                # a quarter of the default budget\n"
        "  tnn train ... --out runs/rcp --resume                    # continue after an interruption\n"
        "  tnn train --model lenet5 --dataset digits --epochs 10 --out runs/lenet5   # dense training\n"
        "  torchrun --nproc_per_node 2 -m tnn train --model lenet5 --dataset digits --epochs 5 --out ddp",
    )
    common.add_model(p)
    common.add_compression(p)
    common.add_data(p, batch_size=False)
    common.add_budget(p, default=DEFAULT_BUDGET,
                      aliases={"--steps-per-stage": "--steps", "--epochs-per-stage": "--epochs",
                               "--eval-limit": "--limit"},
                      skip=("--conv-steps", "--conv-eval-every", "--conv-eval-limit"))
    g = p.add_argument_group("training")
    g.add_argument(
        "--stages",
        nargs="+",
        metavar="MODULE",
        help="stage-boundary module names for sequential training (default: the model's stages)",
    )
    g.add_argument("--eval-stages", action="store_true", help="evaluate test accuracy after every stage")
    g.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out")
    common.add_output(p, required=True, overwrite=True)
    common.add_threads(p)
    common.add_common(p)
    return p


def _validate(args: argparse.Namespace) -> None:
    common.check_no_earlier_run(args.out, RUN_FILES, resume=args.resume, overwrite=args.overwrite)
    common.check_format(args.format)
    common.check_rate(args.rate)
    if args.format is None:
        if args.steps_per_stage is None and args.epochs_per_stage is None:
            raise CLIError("give a training budget: --epochs N or --steps N")
        if args.stages:
            raise CLIError("--stages applies to sequential training, which needs --format")
        if args.distill and not args.weights:
            raise CLIError("--distill needs a pretrained teacher (--weights)")
    elif not args.weights:
        raise CLIError("compressing needs pretrained weights: give --weights")


def _settings(args: argparse.Namespace, budget: Budget | None) -> dict[str, Any]:
    """Every setting that changes the model or the training schedule, as stored in the checkpoints."""
    if budget is not None:
        schedule = budget.to_dict()
    else:  # dense training: the override flags are the schedule
        schedule = {field: getattr(args, field, None) for field, _, _ in common.BUDGET_FLAGS.values()}
    return to_jsonable({
        "dataset": args.dataset, "format": args.format, "rate": args.rate if args.format else None,
        "include": args.include, "exclude": args.exclude, "stages": args.stages, "seed": args.seed,
        "budget": {k: v for k, v in schedule.items() if k not in RESUME_NEUTRAL},
    })


def _flat(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` with the budget's fields as top-level entries."""
    return {**{k: v for k, v in settings.items() if k != "budget"}, **(settings.get("budget") or {})}


def _check_resume_settings(args: argparse.Namespace, out_dir: Path, settings: dict[str, Any]) -> None:
    """Refuse ``--resume`` when the checkpoints in ``out_dir`` were started with other settings."""
    flags = {field: flag for flag, (field, _, _) in common.BUDGET_FLAGS.items()}
    for name in (CHECKPOINT_SEQUENTIAL, CHECKPOINT_FINETUNE):
        path = out_dir / name
        if not (args.resume and path.exists()):
            continue
        saved = load_checkpoint(path).get("metadata") or {}
        now = _flat(settings)
        # a checkpoint written before the settings were stored: compare its rate at least
        stored = saved.get("settings")
        before = _flat(stored) if isinstance(stored, dict) else {"rate": saved.get("rate")}
        for key in now:
            if key in before and before[key] != now[key]:
                flag = flags.get(key, "--" + key.replace("_", "-"))
                raise CLIError(
                    f"--resume: {path} was started with {flag} {before[key]!r}, this command has "
                    f"{now[key]!r}; resume with the run's settings, or start a new run (--overwrite or "
                    "another --out)"
                )


def _resumed_student(args: argparse.Namespace, out_dir: Path) -> tuple[Any, dict[str, Any]]:
    """The compressed model of an interrupted run, rebuilt from its checkpoint's plan (no decomposition)."""
    ck_seq = out_dir / CHECKPOINT_SEQUENTIAL
    if not (args.resume and ck_seq.exists()):
        return None, {}
    saved = load_checkpoint(ck_seq).get("metadata") or {}
    if saved.get("format") != args.format or saved.get("model") != args.model:
        raise CLIError(
            f"--resume: {ck_seq} holds a {saved.get('model')!r} model in format "
            f"{saved.get('format')!r}, not {args.model!r} in {args.format!r}"
        )
    return rebuild_model(args.model, saved, source=f"checkpoint {str(ck_seq)!r}"), saved


def run(args: argparse.Namespace) -> int:
    out = common.Printer(args)
    _validate(args)
    device = D.setup_distributed(common.device_of(args))
    main = D.is_main()
    teacher, meta = common.load_model(args)
    if meta.get("plan"):
        raise CLIError(f"--weights {args.weights} is a compressed model; give the dense pretrained weights")
    if args.format is not None:
        budget = common.budget_from_args(args, args.model)
        data = load_run_data(args.model, args.dataset, budget, args.data_dir, seed=args.seed)
        limit = budget.eval_limit
    else:
        train = common.load_data(args, "train", augment=bool(args.augment))
        if args.train_subset:
            train = IndexSubset(train, torch.arange(min(args.train_subset, len(train))))
        data = RunData(train=train, test=common.load_data(args, "test"))
        limit = args.eval_limit
    out_dir = Path(args.out)
    if args.resume and not out_dir.is_dir():
        raise CLIError(f"--resume: {args.out} does not exist (nothing to resume)")
    settings = _settings(args, budget if args.format is not None else None)
    _check_resume_settings(args, out_dir, settings)
    summary: dict[str, Any] = {
        "model": args.model,
        "dataset": args.dataset,
        "format": args.format,
        "rate": args.rate if args.format else None,
    }
    t0 = time.perf_counter()
    with common.output_dir(args.out if main else None, keep_on_interrupt=True):
        if args.overwrite and main:
            common.remove_files(out_dir, RUN_FILES)
        if args.format is not None:
            pretrained = evaluate(teacher, data.test, limit=limit, device=device)
            summary["accuracy_pretrained"] = pretrained["accuracy"]
            student, saved = _resumed_student(args, out_dir)
            out(f"budget {budget.describe()}")
            result = compress_and_train(
                teacher, data, args.format, args.rate, budget,
                model_name=args.model, include=args.include, exclude=args.exclude,
                input_shape=model_info(args.model).input_shape, stages=args.stages, student=student,
                checkpoint_dir=out_dir, resume=args.resume, write_logs=main,
                metadata={**{k: v for k, v in saved.items() if k.startswith(("acc_init", "acc_fit"))},
                          "settings": settings},
                eval_each_stage=args.eval_stages, seed=args.seed, device=device, progress=not args.quiet,
            )
            model, fig, report = result.student, result.figures, result.report
            accuracy_compressed = fig.get("acc_init_test", saved.get("acc_init_test"))
            metadata = compressed_metadata(args.model, report, accuracy_compressed=accuracy_compressed)
            out(report.table())
            hist = result.history()
            summary.update(
                accuracy_compressed=accuracy_compressed,
                stages=list(result.sequential.phases) if result.sequential else [],
                accuracy_fitted=fig.get("acc_fit_test", saved.get("acc_fit_test")),
                accuracy_sequential=fig.get("acc_seq_test"), accuracy_finetuned=fig.get("acc_ft_test"),
                accuracy=fig["acc_final_test"], achieved_rate=report.achieved_rate,
                params_before=report.params_before, params_after=report.params_after,
            )
        else:
            torch.manual_seed(args.seed)
            model, metadata = teacher, {"model": args.model, "settings": settings}
            hist = finetune(
                model, data.train, teacher=teacher if args.distill else None,
                temperature=args.temperature or 4.0, alpha=0.9 if args.alpha is None else args.alpha,
                steps=args.steps_per_stage, epochs=args.epochs_per_stage, batch_size=args.batch_size or 128,
                optimizer="adam", lr=args.lr or 1e-3, seed=args.seed, device=device,
                checkpoint=Checkpointing(out_dir / CHECKPOINT_FINETUNE, every=args.checkpoint_every or 100,
                                         resume=args.resume, metadata=metadata,
                                         log_path=out_dir / "log-finetune.jsonl" if main else None),
                progress=not args.quiet,
            )
            summary["accuracy_finetuned"] = summary["accuracy"] = evaluate(
                model, data.test, limit=limit, device=device)["accuracy"]
        summary["wall_s"] = round(time.perf_counter() - t0, 3)
        summary["steps"] = len(hist.steps)
        if main:
            save_model(out_dir / "model.pt", model, {**metadata, "step": summary["steps"]})
            hist.write_jsonl(out_dir / "log.jsonl")
            hist.write_csv(out_dir / "log.csv")
            common.write_json(out_dir / "summary.json", summary)
    D.teardown_distributed()
    if main:
        parts = [
            f"{k} {summary[k]:.4f}"
            for k in ("accuracy_pretrained", "accuracy_compressed", "accuracy_fitted", "accuracy_sequential",
                      "accuracy_finetuned")
            if summary.get(k) is not None
        ]
        out(
            f"{args.model} {args.format or 'dense'}: "
            + ", ".join(parts + [f"final accuracy {summary['accuracy']:.4f}"])
            + f"; {summary['wall_s']:.1f} s; wrote {args.out}/model.pt"
        )
        out.result(summary)
    return 0
