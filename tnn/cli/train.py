"""``tnn train``: sequential (data-reconstruction) training of a compressed model, fine-tuning, or
plain training of a dense model; checkpoints, ``--resume`` and ``torchrun`` data parallelism."""

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
from tnn.io import load_checkpoint
from tnn.models import model_info
from tnn.recipes import CHECKPOINT_FINETUNE, CHECKPOINT_SEQUENTIAL, Budget, RunData, compress_and_train
from tnn.train import Checkpointing, evaluate, finetune
from tnn.train import distributed as D


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = common.command_parser(
        subparsers,
        "train",
        "sequential training / fine-tuning of a compressed (or dense) model",
        "With --format: compress --model (pretrained --weights) into a TNN, then train it stage by stage\n"
        "to reproduce the pretrained network's stage outputs (MSE, batch norm frozen, Adam; budget\n"
        "--epochs/--steps PER STAGE), then optionally fine-tune end to end (--finetune-epochs/-steps,\n"
        "with --distill for knowledge distillation). Without --format: train the dense model with\n"
        "cross-entropy (budget --epochs/--steps in total).\n"
        "Checkpoints are written atomically to OUT every --checkpoint-every steps; --resume continues an\n"
        "interrupted run exactly. Data-parallel: torchrun --nproc_per_node N -m tnn train ...\n"
        "Outputs: OUT/model.pt, OUT/log.jsonl, OUT/log.csv, OUT/summary.json.",
        "  tnn train --model lenet5 --dataset digits --epochs 10 --out runs/lenet5\n"
        "  tnn train --model resnet32 --weights r32.th --format rtt --rate 0.1 --dataset cifar10 \\\n"
        "            --data-dir data --steps 300 --subset 5000 --cache-teacher --out runs/rtt\n"
        "  tnn train ... --out runs/rtt --resume          # continue after an interruption\n"
        "  torchrun --nproc_per_node 2 -m tnn train --model lenet5 --dataset digits --epochs 5 --out ddp",
    )
    common.add_model(p)
    common.add_compression(p)
    common.add_data(p)
    g = p.add_argument_group("training")
    budget = g.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=float, help="epochs (per stage for sequential training)")
    budget.add_argument("--steps", type=int, help="optimisation steps (per stage for sequential training)")
    g.add_argument("--lr", type=float, default=1e-3, help="learning rate (Adam)")
    g.add_argument(
        "--stages",
        nargs="+",
        metavar="MODULE",
        help="stage-boundary module names for sequential training (default: the model's stages)",
    )
    g.add_argument(
        "--cache-teacher",
        action="store_true",
        help="cache the pretrained stage outputs (float16) instead of recomputing them",
    )
    g.add_argument("--subset", type=int, help="train on the first N training images only")
    g.add_argument("--augment", action="store_true", help="data augmentation (random crop / flip)")
    ft = g.add_mutually_exclusive_group()
    ft.add_argument(
        "--finetune-epochs", type=float, help="end-to-end fine-tuning epochs (after sequential training)"
    )
    ft.add_argument(
        "--finetune-steps", type=int, help="end-to-end fine-tuning steps after sequential training"
    )
    g.add_argument("--finetune-lr", type=float, default=1e-4, help="fine-tuning learning rate (Adam)")
    g.add_argument(
        "--distill", action="store_true", help="fine-tune with distillation from the pretrained model"
    )
    g.add_argument("--temperature", type=float, default=4.0, help="distillation temperature")
    g.add_argument(
        "--alpha", type=float, default=0.9, help="distillation weight (1 - alpha on cross-entropy)"
    )
    g.add_argument("--eval-stages", action="store_true", help="evaluate test accuracy after every stage")
    g.add_argument("--limit", type=int, help="evaluate on the first N test images only")
    g.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints")
    g.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out")
    common.add_output(p, required=True)
    common.add_threads(p)
    common.add_common(p)
    return p


def _validate(args: argparse.Namespace) -> None:
    common.check_format(args.format)
    common.check_rate(args.rate)
    for flag in (
        "epochs",
        "steps",
        "lr",
        "subset",
        "finetune_epochs",
        "finetune_steps",
        "finetune_lr",
        "limit",
        "checkpoint_every",
        "batch_size",
        "temperature",
    ):
        common.check_positive(getattr(args, flag), "--" + flag.replace("_", "-"))
    if args.epochs is None and args.steps is None:
        raise CLIError("give a training budget: --epochs N or --steps N")
    if args.format is None and (args.stages or args.cache_teacher):
        raise CLIError("--stages and --cache-teacher apply to sequential training, which needs --format")
    if args.cache_teacher and args.augment:
        raise CLIError("--cache-teacher needs un-augmented inputs; drop --augment")
    if args.distill and args.format is None and not args.weights:
        raise CLIError("--distill needs a pretrained teacher (--weights)")
    if args.format is not None and not args.weights:
        raise CLIError("compressing needs pretrained weights: give --weights")
    if not 0.0 <= args.alpha <= 1.0:
        raise CLIError(f"--alpha must be in [0, 1], got {args.alpha}")


def _budget(args: argparse.Namespace) -> Budget:
    """The flags as a :class:`Budget` of the compress-and-train recipe."""
    return Budget(
        "cli", steps_per_stage=args.steps, epochs_per_stage=args.epochs, batch_size=args.batch_size,
        lr=args.lr, val_size=0, cache_teacher=args.cache_teacher, finetune_steps=args.finetune_steps or 0,
        finetune_epochs=args.finetune_epochs, finetune_lr=args.finetune_lr, distill=args.distill,
        temperature=args.temperature, alpha=args.alpha, eval_limit=args.limit,
        checkpoint_every=args.checkpoint_every,
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
    train = common.load_data(args, "train", augment=args.augment)
    if args.subset:
        train = IndexSubset(train, torch.arange(min(args.subset, len(train))))
    test = common.load_data(args, "test")
    out_dir = Path(args.out)
    if args.resume and not out_dir.is_dir():
        raise CLIError(f"--resume: {args.out} does not exist (nothing to resume)")
    summary: dict[str, Any] = {
        "model": args.model,
        "dataset": args.dataset,
        "format": args.format,
        "rate": args.rate if args.format else None,
    }
    t0 = time.perf_counter()
    with common.output_dir(args.out if main else None, keep_on_interrupt=True):
        if args.format is not None:
            pretrained = evaluate(teacher, test, limit=args.limit, device=device)
            summary["accuracy_pretrained"] = pretrained["accuracy"]
            student, saved = _resumed_student(args, out_dir)
            result = compress_and_train(
                teacher, RunData(train=train, test=test), args.format, args.rate, _budget(args),
                model_name=args.model, include=args.include, exclude=args.exclude,
                input_shape=model_info(args.model).input_shape, stages=args.stages, student=student,
                checkpoint_dir=out_dir, resume=args.resume, write_logs=main,
                metadata={k: v for k, v in saved.items() if k.startswith("acc_init")},
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
                accuracy_sequential=fig.get("acc_seq_test"), accuracy_finetuned=fig.get("acc_ft_test"),
                accuracy=fig["acc_final_test"], achieved_rate=report.achieved_rate,
                params_before=report.params_before, params_after=report.params_after,
            )
        else:
            torch.manual_seed(args.seed)
            model, metadata = teacher, {"model": args.model}
            hist = finetune(
                model, train, teacher=teacher if args.distill else None, temperature=args.temperature,
                alpha=args.alpha, steps=args.steps, epochs=args.epochs, batch_size=args.batch_size,
                optimizer="adam", lr=args.lr, seed=args.seed, device=device,
                checkpoint=Checkpointing(out_dir / CHECKPOINT_FINETUNE, every=args.checkpoint_every,
                                         resume=args.resume, metadata=metadata,
                                         log_path=out_dir / "log-finetune.jsonl" if main else None),
                progress=not args.quiet,
            )
            summary["accuracy_finetuned"] = summary["accuracy"] = evaluate(
                model, test, limit=args.limit, device=device)["accuracy"]
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
            for k in ("accuracy_pretrained", "accuracy_compressed", "accuracy_sequential",
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
