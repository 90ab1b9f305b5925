"""ONNX export of (compressed) models, checked against PyTorch with onnxruntime.

:func:`export_onnx` runs ``torch.onnx.export(..., dynamo=True)`` on the model in eval mode with an
example input, saves the ``.onnx`` file atomically, and (by default) runs it in onnxruntime on that
input and on a second random input of the same shape, comparing with the PyTorch outputs.

With ``dynamic_batch=True`` the graph's first input dimension is symbolic (named ``"batch"``): the
tensorial layers then trace their batch-independent evaluation (kernel rebuilt from the factors in the
graph, which onnxruntime folds into a constant, then one ``Conv`` / ``Gemm``), since their per-shape
plans need concrete sizes. Otherwise (default) the graph has the example's fixed shape and each layer
traces the evaluation planned for it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tnn.io import atomic_write, require

__all__ = ["OnnxExport", "export_onnx", "onnx_max_abs_diff", "run_onnx"]

#: the tolerance of the issue: max |onnxruntime - torch| on float32 outputs
DEFAULT_ATOL = 1e-4


@dataclass
class OnnxExport:
    """What :func:`export_onnx` did.

    Attributes
    ----------
    path : Path
        The ``.onnx`` file.
    input_shape : tuple of int
        The example's input shape, batch included (the batch is symbolic in the graph if
        ``dynamic_batch``).
    output_shapes : list of tuple of int
        Shapes of the graph outputs.
    max_abs_diff : float or None
        Largest ``|onnxruntime - torch|`` over the checked inputs (``None`` if not checked).
    opset : int or None
        Requested opset (``None``: the exporter's default).
    """

    path: Path
    input_shape: tuple[int, ...]
    output_shapes: list[tuple[int, ...]]
    max_abs_diff: float | None
    opset: int | None
    dynamic_batch: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "input_shape": list(self.input_shape),
                "output_shapes": [list(s) for s in self.output_shapes],
                "max_abs_diff": self.max_abs_diff, "opset": self.opset, "dynamic_batch": self.dynamic_batch}


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's progress prints and warnings (torchvision absent, deprecations)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _outputs(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _outputs(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _outputs(v)]
    raise TypeError(
        f"model outputs must be tensors (or tuples/lists/dicts of them), got {type(value).__name__}"
    )


def _check_input(example_input: Any) -> torch.Tensor:
    if not isinstance(example_input, torch.Tensor):
        raise TypeError(f"example_input must be a torch.Tensor, got {type(example_input).__name__}")
    if not example_input.is_floating_point():
        raise TypeError(f"example_input must be a floating-point tensor, got dtype {example_input.dtype}")
    if example_input.dim() == 0 or any(s < 1 for s in example_input.shape):
        raise ValueError(f"example_input must have a positive size in every dimension, got shape "
                         f"{tuple(example_input.shape)}")
    return example_input


def require_onnx(check: bool = True) -> None:
    """Fail before any work when ONNX export (and, with ``check``, onnxruntime) is not installed.

    Raises
    ------
    tnn.io.MissingExtraError
        ``onnx`` / ``onnxscript`` (or ``onnxruntime``) cannot be imported; the message names the extra.
    """
    for module in ("onnx", "onnxscript") + (("onnxruntime",) if check else ()):
        require(module, "export", "ONNX export" if module != "onnxruntime" else "checking an ONNX export")


def run_onnx(path: str | os.PathLike[str], x: torch.Tensor) -> list[torch.Tensor]:
    """Run the ``.onnx`` file at ``path`` in onnxruntime (CPU) on ``x``; the outputs as tensors."""
    # imported on use: onnxruntime is an optional dependency (the 'export' extra)
    ort = require("onnxruntime", "export", "checking an ONNX file")

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"ONNX file {str(p)!r} does not exist")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    outs = session.run(None, {name: x.detach().cpu().numpy()})
    return [torch.from_numpy(o) for o in outs]


def onnx_max_abs_diff(
    model: nn.Module, path: str | os.PathLike[str], inputs: Sequence[torch.Tensor]
) -> float:
    """Largest ``|onnxruntime(path)(x) - model(x)|`` over ``inputs`` and all outputs."""
    worst = 0.0
    for x in inputs:
        with torch.no_grad():
            ref = _outputs(model(x))
        got = run_onnx(path, x)
        if len(got) != len(ref):
            raise RuntimeError(f"ONNX graph has {len(got)} outputs, the model {len(ref)}")
        for g, r in zip(got, ref, strict=True):
            if tuple(g.shape) != tuple(r.shape):
                raise RuntimeError(
                    f"ONNX output shape {tuple(g.shape)} differs from PyTorch's {tuple(r.shape)}"
                )
            worst = max(worst, float((g.to(r.dtype) - r.cpu()).abs().max()) if r.numel() else 0.0)
    return worst


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    example_input: torch.Tensor,
    *,
    opset: int | None = None,
    check: bool = True,
    atol: float = DEFAULT_ATOL,
    dynamic_batch: bool = False,
) -> OnnxExport:
    """Export ``model`` (dense or compressed) to ONNX and check it in onnxruntime.

    Parameters
    ----------
    model : nn.Module
        Put in eval mode for the export (and left in eval mode).
    path : path-like
        Destination ``.onnx`` file; its directory must exist. Written atomically.
    example_input : torch.Tensor
        ``(B, ...)`` float tensor fixing the graph's input shape (all but the batch if
        ``dynamic_batch``) and dtype.
    opset : int, optional
        ONNX opset version (default: the exporter's).
    check : bool
        Run the graph in onnxruntime on ``example_input`` and a second random input and compare with
        PyTorch; raise if the difference exceeds ``atol``.
    atol : float
        Tolerance of the check (default 1e-4).
    dynamic_batch : bool
        Make the first input dimension symbolic (``"batch"``); the check then also runs a batch of
        another size.

    Returns
    -------
    OnnxExport

    Raises
    ------
    TypeError
        ``model`` is not an ``nn.Module``; ``example_input`` is not a float tensor.
    ValueError
        Bad ``opset`` / ``atol``.
    RuntimeError
        The export failed, or onnxruntime's outputs differ from PyTorch's by more than ``atol``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"export_onnx expects an nn.Module, got {type(model).__name__}")
    x = _check_input(example_input)
    require_onnx(check)
    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, int) or opset < 7):
        raise ValueError(f"opset must be an int >= 7, got {opset!r}")
    if not isinstance(dynamic_batch, bool):
        raise TypeError(f"dynamic_batch must be a bool, got {type(dynamic_batch).__name__}")
    if not (isinstance(atol, (int, float)) and atol >= 0):
        raise ValueError(f"atol must be a non-negative number, got {atol!r}")
    dest = Path(path)
    if not dest.parent.is_dir():
        raise FileNotFoundError(f"directory {str(dest.parent)!r} does not exist (cannot write {str(dest)!r})")
    partial = dest.with_name(f".{dest.name}.partial")
    model.eval()
    with torch.no_grad():
        ref = _outputs(model(x))
    kwargs: dict[str, Any] = {"dynamo": True, "verbose": False}
    if opset is not None:
        kwargs["opset_version"] = opset
    if dynamic_batch:
        kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch")},)
    try:
        with _quiet_exporter():
            program = torch.onnx.export(model, (x,), **kwargs)
            program.save(str(partial))
    except Exception as exc:
        partial.unlink(missing_ok=True)
        first = " ".join(str(exc).split())[:300]
        raise RuntimeError(
            f"ONNX export of {type(model).__name__} failed: {type(exc).__name__}: {first}"
        ) from exc
    try:
        data = partial.read_bytes()
    finally:
        partial.unlink(missing_ok=True)
    atomic_write(dest, lambda handle: handle.write(data))
    diff = None
    if check:
        gen = torch.Generator().manual_seed(0)
        shape = (x.shape[0] + 2, *x.shape[1:]) if dynamic_batch else x.shape
        second = torch.randn(shape, generator=gen, dtype=x.dtype).to(x.device)
        diff = onnx_max_abs_diff(model, dest, [x, second])
        if not diff <= atol:
            raise RuntimeError(
                f"ONNX graph {str(dest)!r} differs from PyTorch by {diff:.3g} > atol {atol:g}"
            )
    return OnnxExport(path=dest, input_shape=tuple(x.shape), output_shapes=[tuple(r.shape) for r in ref],
                      max_abs_diff=diff, opset=opset, dynamic_batch=dynamic_batch)
