"""Choosing the training recipe on held-out data — not a test.

Compresses the pretrained ResNet-32 in one format at one rate, applies the data-fitted initialisation
once (cached in ``OUT/init-<format>-r<rate>.pt``), then trains a copy of that initialisation under each
named variant of the budget for the same number of optimisation steps and reports the accuracy on the
held-out validation images (the last 5,000 CIFAR-10 training images; the test set is never read).
Every variant's result is written to ``OUT/<format>-r<rate>-<variant>.json`` as it finishes, and a
finished variant is never recomputed, so the script can be interrupted and rerun.

Usage (one thread per process; several processes may share ``OUT`` with disjoint ``--variants``)::

    .venv/bin/python benchmarks/recipe_choices.py --shared ../shared --format cp --rate 0.1 \
        --steps 200 --variants seq kd kd-lr3e-4 kd-pure --threads 1 --out runs/recipe-choices
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import torch

from tnn.compression import compress
from tnn.data.batches import fetch_batch
from tnn.io import atomic_write_text
from tnn.models import get_model, load_pretrained
from tnn.recipes import Budget, compress_and_train, load_run_data
from tnn.train.calibrate import fit_layers


def variants(steps: int) -> dict[str, dict[str, object]]:
    """Budget fields of each variant; every variant takes ``steps`` optimisation steps in all."""
    # "kd" is the `long` budget's fine-tuning (Adam 3e-3 chosen over 1e-3 by this script)
    kd = dict(steps_per_stage=0, finetune_steps=steps, distill=True, augment=True, schedule="cosine",
              warmup=0.05, finetune_lr=3e-3, alpha=0.9, temperature=4.0)
    return {
        "seq": dict(steps_per_stage=steps // 4, lr=3e-3),
        "seq-cos": dict(steps_per_stage=steps // 4, lr=3e-3, schedule="cosine"),
        "ce": {**kd, "distill": False},
        "kd": kd,
        "kd-lr3e-4": {**kd, "finetune_lr": 3e-4},
        "kd-lr1e-3": {**kd, "finetune_lr": 1e-3},
        "kd-lr1e-2": {**kd, "finetune_lr": 1e-2},
        "kd-pure": {**kd, "alpha": 1.0},
        "kd-noaug": {**kd, "augment": False},
        "kd-frozen-bn": {**kd, "finetune_freeze_bn": True},
        "seq-kd": {**kd, "steps_per_stage": steps // 8, "finetune_steps": steps // 2, "lr": 3e-3},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", default=os.environ.get("TNN_SHARED_DIR", "../shared"))
    p.add_argument("--out", default="runs/recipe-choices")
    p.add_argument("--format", default="cp")
    p.add_argument("--rate", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=200, help="optimisation steps of every variant")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--variants", nargs="+", default=list(variants(1)))
    p.add_argument("--fit-samples", type=int, default=512)
    p.add_argument("--fit-steps", type=int, default=300)
    p.add_argument("--val-limit", type=int, default=2000, help="validation images evaluated")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    table = variants(args.steps)
    unknown = [v for v in args.variants if v not in table]
    if unknown:
        p.error(f"unknown variants {unknown}; valid: {', '.join(table)}")
    shared = Path(args.shared)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = Budget("choices", steps_per_stage=0, batch_size=args.batch_size, val_size=5000,
                  val_limit=args.val_limit, augment=True, checkpoint_every=50)
    data = load_run_data("resnet32", "cifar10", base, shared / "datasets" / "cifar10", seed=args.seed)
    data.test = None  # choices are made on the validation images only
    teacher = load_pretrained(get_model("resnet32"), shared / "pretrained" / "resnet32-cifar10"
                              / "resnet32-d509ac18.th").eval()
    tag = f"{args.format}-r{args.rate:g}"
    init_path = out / f"init-{tag}.pt"
    torch.manual_seed(args.seed)
    student = compress(teacher, format=args.format, rate=args.rate, exclude=["conv1", "linear"])
    if init_path.exists():
        student.load_state_dict(torch.load(init_path, weights_only=True))
    else:
        t0 = time.perf_counter()
        inputs, _ = fetch_batch(data.train, torch.arange(args.fit_samples))
        fit_layers(student, teacher, inputs, steps=args.fit_steps)
        print(f"{tag}: data-fitted initialisation in {time.perf_counter() - t0:.0f} s", flush=True)
        torch.save(student.state_dict(), init_path)
    for name in args.variants:
        path = out / f"{tag}-{name}.json"
        if path.exists():
            print(f"{tag} {name}: finished, skipped", flush=True)
            continue
        budget = base.replace(name=f"choices-{name}", **table[name])
        t0 = time.perf_counter()
        result = compress_and_train(teacher, data, args.format, args.rate, budget,
                                    student=copy.deepcopy(student), checkpoint_dir=out / f"{tag}-{name}",
                                    seed=args.seed)
        row = {"format": args.format, "rate": args.rate, "variant": name, "fields": table[name],
               "steps": args.steps, "val_limit": args.val_limit,
               "wall_s": round(time.perf_counter() - t0, 1),
               **{k: v for k, v in result.figures.items() if k.startswith(("acc_", "steps_", "wall_"))}}
        atomic_write_text(path, json.dumps(row, indent=2) + "\n")
        print(f"{tag} {name}: validation accuracy {row['acc_final_val']:.4f} in {row['wall_s']:.0f} s",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
