"""How far each format starts from the pretrained network (not a test).

Every Conv2d of the pretrained ResNet-32 except ``conv1`` is compressed with ``tnn.compress`` in each format
at each rate (factors from decomposing the pretrained kernels, the layers' default initialisation); prints
the mean and max relative reconstruction error ``||W_hat - W||_F / ||W||_F`` over those layers and the
decomposition time.

Usage::

    python benchmarks/init_error.py --weights resnet32-d509ac18.th --rates 0.05 0.1 0.2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tnn.formats import FORMATS


def load_resnet32(weights: str) -> torch.nn.Module:
    from tnn.models import get_model, load_pretrained

    return load_pretrained(get_model("resnet32"), weights)


def compressed_layers(model: torch.nn.Module, fmt: str, rate: float
                      ) -> list[tuple[torch.nn.Conv2d, torch.nn.Module]]:
    """``(dense conv, its replacement)`` for every Conv2d but ``conv1`` after ``tnn.compress``."""
    from tnn.compression import compress

    small = dict(compress(model, fmt, rate, exclude=["conv1", "linear"]).named_modules())
    return [(m, small[n]) for n, m in model.named_modules()
            if isinstance(m, torch.nn.Conv2d) and n != "conv1"]


def relative_error(conv: torch.nn.Conv2d, layer: torch.nn.Module) -> float:
    """``||W_hat - W||_F / ||W||_F`` (0 for a layer kept dense)."""
    w = conv.weight.detach()
    w_hat = layer.to_dense().weight.detach() if hasattr(layer, "to_dense") else w
    return float((w_hat - w).norm() / w.norm())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", required=True, help="pretrained ResNet-32 checkpoint")
    parser.add_argument("--formats", nargs="+", default=list(FORMATS))
    parser.add_argument("--rates", nargs="+", type=float, default=[0.05, 0.1])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = load_resnet32(args.weights)
    print("| format | rate | mean error | max error | compress s |")
    print("| --- | --- | ---: | ---: | ---: |")
    for rate in args.rates:
        for fmt in args.formats:
            t0 = time.perf_counter()
            pairs = compressed_layers(model, fmt, rate)
            wall = time.perf_counter() - t0
            errors = [relative_error(conv, layer) for conv, layer in pairs]
            print(f"| {fmt} | {rate:g} | {statistics.mean(errors):.3f} | {max(errors):.3f} | {wall:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
