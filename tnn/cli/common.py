"""Flags, model/data loading, output directories and JSON output shared by the commands."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

import tnn.formats as tnn_formats
from tnn.cli.errors import CLIError
from tnn.compression import load_model as load_model_file
from tnn.data import DATA_DIR_ENV, DATASETS, get_dataset
from tnn.formats import FORMATS
from tnn.io import atomic_write_text, to_jsonable
from tnn.io.preflight import check_output_dir
from tnn.models import MODELS, get_model
from tnn.recipes import BUDGETS, Budget, get_budget


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Raw descriptions; defaults shown, except ``None`` (nothing set) and ``False`` (a flag not given)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def command_parser(
    subparsers: argparse._SubParsersAction, name: str, summary: str, description: str, examples: str
) -> argparse.ArgumentParser:
    """A subcommand parser with a description and an examples epilog."""
    return subparsers.add_parser(
        name, help=summary, description=description, epilog="examples:\n" + examples,
        formatter_class=_Formatter,
    )


# ---------------------------------------------------------------- flags
def add_common(p: argparse.ArgumentParser) -> None:
    """``--device``, ``--seed``, ``--quiet``, ``--json``."""
    g = p.add_argument_group("run")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (auto: cuda if available)")
    g.add_argument("--seed", type=int, default=0, help="random seed (initialisation and batch order)")
    g.add_argument("--quiet", action="store_true", help="no progress bars or tables")
    g.add_argument("--json", action="store_true",
                   help="end with one JSON line of the figures on stdout (human output goes to stderr)")


def add_threads(p: argparse.ArgumentParser, default: int | None = None) -> None:
    """``--threads``: torch CPU threads (applied by :func:`device_of`)."""
    text = "torch CPU threads" + (" (default: torch's choice)" if default is None else "")
    p.add_argument("--threads", type=int, default=default, help=text)


def add_model(p: argparse.ArgumentParser, required: bool = True, random_weights: bool = False,
              weights: bool = True) -> None:
    """``--model`` and (unless not ``weights``) ``--weights``; with ``random_weights``, also
    ``--random-weights``: the explicit request for a randomly initialised model that :func:`load_model`
    otherwise refuses."""
    g = p.add_argument_group("model")
    g.add_argument("--model", required=required, help=f"model name: {', '.join(MODELS)}")
    if weights:
        g.add_argument("--weights", help="checkpoint to load: a pretrained state_dict or a tnn checkpoint "
                       "(a compressed model is rebuilt from its metadata)")
    if random_weights:
        g.add_argument("--random-weights", action="store_true",
                       help="use a randomly initialised --model instead of --weights (tests, timing)")


def add_data(p: argparse.ArgumentParser, required: bool = True, batch_size: bool = True) -> None:
    """``--dataset``, ``--data-dir`` and (unless a budget sets it) ``--batch-size``."""
    g = p.add_argument_group("data")
    g.add_argument("--dataset", required=required, help=f"dataset name: {', '.join(DATASETS)}")
    g.add_argument("--data-dir", help=f"data root (default: ${DATA_DIR_ENV}); unused by digits/synthetic")
    if batch_size:
        g.add_argument("--batch-size", type=int, default=128, help="batch size")


#: Flags that override one field of a named budget: flag -> (Budget field, type, help). A flag left out
#: keeps the budget's value. ``bool`` fields get ``--flag`` / ``--no-flag``.
BUDGET_FLAGS: dict[str, tuple[str, type, str]] = {
    "--steps-per-stage": ("steps_per_stage", int, "sequential-training steps per stage (0: none)"),
    "--epochs-per-stage": ("epochs_per_stage", float, "sequential-training epochs per stage"),
    "--batch-size": ("batch_size", int, "batch size"),
    "--lr": ("lr", float, "Adam learning rate of sequential training"),
    "--subset": ("train_subset", int, "training images used (after the validation hold-out)"),
    "--val-size": ("val_size", int, "training images held out for validation"),
    "--fit-samples": ("fit_samples", int, "images of the data-fitted initialisation (0: none)"),
    "--fit-steps": ("fit_steps", int, "Adam steps per layer of the data-fitted initialisation"),
    "--fit-lr": ("fit_lr", float, "learning rate of the data-fitted initialisation"),
    "--fit-ridge": ("fit_ridge", float, "ridge of the data fit towards each pretrained kernel (0: none)"),
    "--finetune-steps": ("finetune_steps", int, "end-to-end fine-tuning steps (0: none)"),
    "--finetune-epochs": ("finetune_epochs", float, "end-to-end fine-tuning epochs"),
    "--finetune-lr": ("finetune_lr", float, "Adam learning rate of fine-tuning"),
    "--distill": ("distill", bool, "fine-tune with distillation from the pretrained model"),
    "--temperature": ("temperature", float, "distillation temperature"),
    "--alpha": ("alpha", float, "distillation weight (1 - alpha on cross-entropy)"),
    "--augment": ("augment", bool, "fine-tune on randomly cropped / flipped images"),
    "--schedule": ("schedule", str, "learning-rate schedule of every phase: constant | cosine"),
    "--warmup": ("warmup", float, "warm-up fraction of every phase"),
    "--cache-teacher": ("cache_teacher", bool, "cache the pretrained stage outputs (float16)"),
    "--eval-limit": ("eval_limit", int, "test images evaluated"),
    "--val-limit": ("val_limit", int, "validation images evaluated"),
    "--checkpoint-every": ("checkpoint_every", int, "steps between checkpoints"),
    "--image-size": ("image_size", int, "crop size of image-folder datasets"),
    "--resize": ("resize", int, "shorter-side size of image-folder datasets"),
    "--allocation": ("allocation", str, "how the rate is spread over the layers: uniform (each layer "
                     "at the rate) | error (one budget, by reconstruction error)"),
    "--conv-steps": ("conv_steps", int, "convergence: total steps per method"),
    "--conv-eval-every": ("conv_eval_every", int, "convergence: steps between evaluations"),
    "--conv-eval-limit": ("conv_eval_limit", int, "convergence: test images per evaluation"),
}


def add_budget(p: argparse.ArgumentParser, default: str, aliases: dict[str, str] | None = None,
               skip: tuple[str, ...] = ()) -> None:
    """``--budget NAME`` and the override flags of :data:`BUDGET_FLAGS` (``aliases``: extra spellings,
    e.g. ``{"--steps-per-stage": "--steps"}``; ``skip``: flags the command does not offer)."""
    g = p.add_argument_group("budget", f"a named budget ({', '.join(BUDGETS)}) and overrides of its fields "
                                       "(default: the budget's value)")
    g.add_argument("--budget", choices=tuple(BUDGETS), default=default, help="named training budget")
    for flag, (field, kind, text) in BUDGET_FLAGS.items():
        if flag in skip:
            continue
        names = [flag] + ([aliases[flag]] if aliases and flag in aliases else [])
        if kind is bool:
            g.add_argument(*names, dest=field, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            g.add_argument(*names, dest=field, type=kind, default=None, help=text)


def budget_from_args(args: argparse.Namespace, model: str) -> Budget:
    """The budget ``--budget`` for ``model`` with the given override flags applied."""
    overrides = {field: getattr(args, field, None) for field, _, _ in BUDGET_FLAGS.values()}
    if overrides["steps_per_stage"] is not None and overrides["epochs_per_stage"] is not None:
        raise CLIError("give at most one of --steps-per-stage and --epochs-per-stage")
    if overrides["finetune_steps"] is not None and overrides["finetune_epochs"] is not None:
        raise CLIError("give at most one of --finetune-steps and --finetune-epochs")
    for field, value in overrides.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise CLIError(f"--{field.replace('_', '-')} must not be negative, got {value}")
    return get_budget(args.budget, model, **overrides)


def add_compression(p: argparse.ArgumentParser, required: bool = False) -> None:
    """``--format``, ``--rate``, ``--include``, ``--exclude``."""
    g = p.add_argument_group("compression")
    g.add_argument("--format", required=required, help=f"tensor format: {', '.join(FORMATS)}")
    g.add_argument("--rate", type=float, default=0.1, help="target compression rate in (0, 1]: kept fraction "
                   "of each layer's parameters")
    g.add_argument("--include", nargs="*", default=None, metavar="GLOB",
                   help="compress only layers whose name matches one of these patterns")
    g.add_argument("--exclude", nargs="*", default=None, metavar="GLOB",
                   help="keep layers whose name matches one of these patterns dense")


def add_output(p: argparse.ArgumentParser, required: bool = False, overwrite: bool = False) -> None:
    """``--out`` (and, with ``overwrite``, ``--overwrite``: replace a run already in it)."""
    p.add_argument("--out", required=required, help="output directory (created when the work succeeds)")
    if overwrite:
        p.add_argument("--overwrite", action="store_true",
                       help="replace the results of an earlier run in --out (default: refuse)")


def check_no_earlier_run(out: str | None, names: tuple[str, ...], resume: bool | None = None,
                         overwrite: bool = False) -> None:
    """Refuse to replace an earlier run in ``--out`` silently.

    Parameters
    ----------
    out : str or None
        The ``--out`` folder.
    names : tuple of str
        Files whose presence marks a run (checkpoints, the final model, the results).
    resume : bool or None
        ``--resume`` (``None``: the command cannot resume).
    overwrite : bool
        ``--overwrite``: the user means to replace the run.

    Raises
    ------
    CLIError
        ``--out`` holds one of ``names`` and neither ``--resume`` nor ``--overwrite`` is given, or both
        are given.
    """
    if resume and overwrite:
        raise CLIError("give at most one of --resume and --overwrite")
    if out is None or resume or overwrite or not Path(out).is_dir():
        return
    found = [name for name in names if (Path(out) / name).exists()]
    if found:
        hint = "continue it with --resume or replace it" if resume is not None else "replace it"
        raise CLIError(f"--out {out} already holds a run ({', '.join(found)}); {hint} with --overwrite, "
                       "or choose another --out")


def remove_files(folder: Path, names: tuple[str, ...]) -> None:
    """Remove the named files of an earlier run from ``folder`` (``--overwrite``)."""
    for name in names:
        (folder / name).unlink(missing_ok=True)


# ---------------------------------------------------------------- values
def device_of(args: argparse.Namespace) -> torch.device:
    """The device named by ``--device``; CLIError if CUDA is requested but absent. Applies ``--threads``."""
    threads = getattr(args, "threads", None)
    if threads is not None:
        if threads < 1:
            raise CLIError(f"--threads must be a positive integer, got {threads}")
        torch.set_num_threads(threads)
    value = str(args.device)
    if value == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(value)
    except RuntimeError as exc:
        raise CLIError(f"--device {value!r} is not a device; valid: auto, cpu, cuda, cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {value}: CUDA is not available on this machine; use --device cpu or auto")
    if dev.type not in ("cpu", "cuda"):
        raise CLIError(f"--device {value!r}: valid devices are auto, cpu, cuda, cuda:N")
    return dev


def check_rate(rate: float) -> float:
    """``--rate``: :func:`tnn.formats.check_rate`, reported with the flag's name."""
    try:
        return tnn_formats.check_rate(rate)
    except ValueError as exc:
        raise CLIError(f"--rate must be in (0, 1], got {rate}") from exc


def check_format(name: str | None) -> str | None:
    """``--format``: :func:`tnn.formats.check_format`; ``None`` (flag not given) passes."""
    return None if name is None else tnn_formats.check_format(name)


def check_positive(value: int | float | None, flag: str) -> None:
    if value is not None and value <= 0:
        raise CLIError(f"{flag} must be positive, got {value}")


def input_shape(model_name: str) -> tuple[int, int, int]:
    """Per-sample input shape of a model of :mod:`tnn.models`."""
    if model_name == "lenet5":
        return (1, 28, 28)
    if model_name == "resnet50":
        return (3, 224, 224)
    return (3, 32, 32)


def load_model(args: argparse.Namespace) -> tuple[nn.Module, dict[str, Any]]:
    """Build ``--model`` and load ``--weights`` with :func:`tnn.compression.load_model`.

    A tnn checkpoint or ``.safetensors`` file whose metadata holds a compression ``plan`` is rebuilt as
    that compressed architecture (no decomposition) before its weights are loaded; ``--model`` defaults
    to the model the file names.

    Returns
    -------
    (model, metadata)
        The model in train mode; ``metadata`` is the file's (empty without ``--weights`` or for foreign
        checkpoints).
    """
    if not args.weights:
        if not args.model:
            raise CLIError("--model is required (the checkpoint does not name its model)")
        model = get_model(args.model)
        if getattr(args, "random_weights", None) is False:
            raise CLIError(f"--weights is missing: give the pretrained weights of {args.model}, or "
                           "--random-weights to use a randomly initialised model on purpose")
        return model, {}
    if getattr(args, "random_weights", False):
        raise CLIError("give --weights or --random-weights, not both")
    model, meta = load_model_file(args.weights, model_name=args.model)
    args.model = args.model or meta.get("model")
    return model.train(), meta


def load_data(args: argparse.Namespace, split: str, augment: bool = False) -> Any:
    """``tnn.data.get_dataset(--dataset, split, --data-dir)`` normalised for ``--model``."""
    return get_dataset(args.dataset, split, data_dir=args.data_dir, augment=augment, model=args.model)


# ---------------------------------------------------------------- output
class Printer:
    """Human output: stdout, or stderr when ``--json`` (stdout then ends with the JSON line)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.json = bool(getattr(args, "json", False))
        self.quiet = bool(getattr(args, "quiet", False))

    def __call__(self, *parts: object) -> None:
        if not self.quiet:
            print(*parts, file=sys.stderr if self.json else sys.stdout, flush=True)

    def result(self, figures: dict[str, Any]) -> None:
        """The final JSON line (only with ``--json``)."""
        if self.json:
            print(json.dumps(to_jsonable(figures)), flush=True)


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(to_jsonable(data), indent=2) + "\n")


@contextlib.contextmanager
def output_dir(path: str | None, keep_on_interrupt: bool = False) -> Iterator[Path | None]:
    """Create ``--out`` for the block; remove it again if we created it and the block fails.

    With ``keep_on_interrupt`` (training), a ``KeyboardInterrupt`` keeps it so ``--resume`` can continue,
    and so does any other failure once a checkpoint (``*.pt``) is in it: the last good checkpoint of a
    run stopped by a non-finite loss survives.
    """
    if path is None:
        yield None
        return
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {path} exists and is not a directory")
    created = not out.exists()
    top = out  # the outermost folder this call creates, removed on failure
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    if created:
        try:
            out.mkdir(parents=True)
        except OSError as exc:
            raise CLIError(f"--out {path}: cannot create the directory ({exc.strerror or exc})") from exc

    try:  # unwritable or read-only: fail before the work, not when saving its result
        check_output_dir(out, what="--out")
    except BaseException:
        if created:
            shutil.rmtree(top, ignore_errors=True)
        raise
    try:
        yield out
    except KeyboardInterrupt:
        if created and not keep_on_interrupt:
            shutil.rmtree(top, ignore_errors=True)
        raise
    except BaseException:
        if created and not (keep_on_interrupt and any(out.glob("*.pt"))):
            shutil.rmtree(top, ignore_errors=True)
        raise
