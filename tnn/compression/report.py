"""The per-layer compression report: data (dataclass rows + totals) and a printed table."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tnn.io import to_jsonable

#: ``LayerReport.status`` values.
COMPRESSED = "compressed"  # replaced by a tensorial layer
DENSE = "dense"  # eligible but kept dense: the budget cannot be met (reason says why)
SKIPPED = "skipped"  # not selected by include/exclude

#: Layer kinds whose FLOPs the report counts (other convolutions are listed, their FLOPs not measured).
FLOP_KINDS = ("Conv2d", "Linear")


@dataclass
class LayerReport:
    """One ``Conv2d`` / ``Linear`` layer of the model.

    Attributes
    ----------
    name : str
        Qualified module name (as in ``model.named_modules()``).
    kind : str
        ``"Conv2d"`` or ``"Linear"``; another convolution's class name (``"Conv1d"``, ``"Conv3d"``,
        ``"ConvTranspose2d"``, ...) for a layer kept dense because no format supports it.
    shape : tuple of int
        Dense weight shape: ``(C_out, C_in/groups, k_h, k_w)`` or ``(out_features, in_features)``.
    format : str
        Format of the layer in the compressed model, ``"dense"`` when not replaced.
    ranks : any
        Ranks of the tensorial layer (format-specific; ``None`` for dense).
    params_before, params_after : int
        Parameters (weight + bias) of the layer before and after.
    flops_before, flops_after : int or None
        FLOPs for one sample (2 x multiply-accumulates, opt_einsum's convention), when the report was
        given an input shape.
    status : str
        ``"compressed"``, ``"dense"`` (budget infeasible) or ``"skipped"`` (include/exclude).
    reason : str
        Why a layer stayed dense or was skipped.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    format: str
    ranks: Any
    params_before: int
    params_after: int
    flops_before: int | None = None
    flops_after: int | None = None
    status: str = COMPRESSED
    reason: str = ""

    @property
    def rate(self) -> float:
        """Achieved compression rate of the layer: ``params_after / params_before``."""
        return self.params_after / self.params_before if self.params_before else 1.0

    def to_dict(self) -> dict[str, Any]:
        """Plain-value dict (JSON- and ``weights_only``-safe)."""
        data = asdict(self)
        data["shape"] = list(self.shape)
        data["ranks"] = to_jsonable(self.ranks)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerReport:
        """Inverse of :meth:`to_dict`."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        missing = {"name", "kind", "shape", "format", "ranks", "params_before", "params_after"} - set(known)
        if missing:
            raise ValueError(f"compression plan row lacks {sorted(missing)} (got keys {sorted(data)})")
        known["shape"] = tuple(int(s) for s in known["shape"])
        return cls(**known)


@dataclass
class CompressionReport:
    """What :func:`tnn.compress` did, layer by layer.

    Attributes
    ----------
    format : str
        Requested format.
    rate : float or None
        Requested compression rate (``None`` when rebuilt from a plan).
    layers : list of LayerReport
        One row per ``Conv2d`` / ``Linear`` module, in ``named_modules`` order.
    model_params_before, model_params_after : int
        Parameters of the whole model (including batch norm, biases, dense layers).
    allocation : str
        How the rate was spread over the layers: ``"uniform"``, ``"error"`` (one budget, see
        :mod:`tnn.compression.allocation`) or ``"plan"`` (rebuilt from a plan).
    """

    format: str
    rate: float | None
    layers: list[LayerReport] = field(default_factory=list)
    model_params_before: int = 0
    model_params_after: int = 0
    allocation: str = "uniform"

    @property
    def compressed(self) -> list[LayerReport]:
        """Rows of the layers that were replaced."""
        return [row for row in self.layers if row.status == COMPRESSED]

    @property
    def dense(self) -> list[LayerReport]:
        """Rows of eligible layers kept dense because their budget could not be met."""
        return [row for row in self.layers if row.status == DENSE]

    @property
    def params_before(self) -> int:
        """Parameters of all Conv2d/Linear layers before compression."""
        return sum(row.params_before for row in self.layers)

    @property
    def params_after(self) -> int:
        """Parameters of the same layers after compression."""
        return sum(row.params_after for row in self.layers)

    @property
    def achieved_rate(self) -> float:
        """``params_after / params_before`` over all Conv2d/Linear layers."""
        return self.params_after / self.params_before if self.params_before else 1.0

    @property
    def model_rate(self) -> float:
        """``model_params_after / model_params_before`` over the whole model."""
        return self.model_params_after / self.model_params_before if self.model_params_before else 1.0

    @property
    def flops_before(self) -> int | None:
        """Total FLOPs of the layers per sample, or None if not measured."""
        values = [row.flops_before for row in self.layers if row.kind in FLOP_KINDS]
        return None if not values or any(v is None for v in values) else int(sum(values))  # type: ignore[arg-type]

    @property
    def flops_after(self) -> int | None:
        values = [row.flops_after for row in self.layers if row.kind in FLOP_KINDS]
        return None if not values or any(v is None for v in values) else int(sum(values))  # type: ignore[arg-type]

    def plan(self) -> list[dict[str, Any]]:
        """The rows as plain dicts: what ``compress(model, plan=...)`` needs to rebuild the architecture."""
        return [row.to_dict() for row in self.layers]

    def to_dict(self) -> dict[str, Any]:
        """Plain-value dict with rows and totals (JSON- and ``weights_only``-safe)."""
        return {
            "format": self.format,
            "rate": self.rate,
            "allocation": self.allocation,
            "layers": self.plan(),
            "params_before": self.params_before,
            "params_after": self.params_after,
            "achieved_rate": self.achieved_rate,
            "model_params_before": self.model_params_before,
            "model_params_after": self.model_params_after,
            "model_rate": self.model_rate,
            "flops_before": self.flops_before,
            "flops_after": self.flops_after,
            "n_compressed": len(self.compressed),
            "n_dense": len(self.dense),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompressionReport:
        """Inverse of :meth:`to_dict` (totals that are derived are recomputed)."""
        if not isinstance(data, dict) or "layers" not in data:
            raise ValueError("a compression report dict needs a 'layers' list")
        return cls(
            format=str(data.get("format", "")),
            rate=data.get("rate"),
            layers=[LayerReport.from_dict(row) for row in data["layers"]],
            model_params_before=int(data.get("model_params_before", 0)),
            model_params_after=int(data.get("model_params_after", 0)),
            allocation=str(data.get("allocation", "uniform")),
        )

    def table(self) -> str:
        """A fixed-width text table: one line per layer, then the totals."""
        headers = ["layer", "shape", "format", "ranks", "params", "-> params", "rate", "FLOPs", "-> FLOPs"]
        lines = []
        for row in self.layers:
            ranks = "-" if row.ranks is None else _short(row.ranks)
            fmt = row.format if row.status != DENSE else "dense*"
            lines.append([
                row.name,
                "x".join(str(s) for s in row.shape),
                fmt if row.status != SKIPPED else "skipped",
                ranks,
                f"{row.params_before:,}",
                f"{row.params_after:,}",
                f"{row.rate:.3f}",
                _fmt_int(row.flops_before),
                _fmt_int(row.flops_after),
            ])
        total = [
            "total (conv/linear)", "", self.format, "",
            f"{self.params_before:,}", f"{self.params_after:,}", f"{self.achieved_rate:.3f}",
            _fmt_int(self.flops_before), _fmt_int(self.flops_after),
        ]
        whole = [
            "whole model", "", "", "",
            f"{self.model_params_before:,}", f"{self.model_params_after:,}", f"{self.model_rate:.3f}", "", "",
        ]
        widths = [max(len(str(r[i])) for r in [headers, *lines, total, whole]) for i in range(len(headers))]
        right = {4, 5, 6, 7, 8}

        def render(cells: list[str]) -> str:
            padded = (
                str(c).rjust(w) if i in right else str(c).ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
            return "  ".join(padded).rstrip()

        rule = "  ".join("-" * w for w in widths)
        out = [render(headers), rule, *(render(r) for r in lines), rule, render(total), render(whole)]
        if self.dense:
            out.append("* kept dense: " + "; ".join(f"{r.name} ({r.reason})" for r in self.dense))
        return "\n".join(out)

    def __str__(self) -> str:
        return self.table()


def _short(ranks: Any) -> str:
    plain = to_jsonable(ranks)
    if isinstance(plain, list):
        return "(" + ",".join(_short(v) for v in plain) + ")"
    if isinstance(plain, dict):
        return "{" + ",".join(f"{k}:{_short(v)}" for k, v in plain.items()) + "}"
    return str(plain)


def _fmt_int(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"
