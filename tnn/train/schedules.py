"""Learning-rate schedules: ``factor(step) -> float`` multipliers of an optimizer's initial rate.

A schedule is a pure function of the step within a phase, so a resumed phase follows the same curve
(see :class:`tnn.train.loop.Phase`'s ``lr_factor``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

#: Names accepted by :func:`schedule`.
SCHEDULES: tuple[str, ...] = ("constant", "cosine")


def schedule(name: str, steps: int, warmup: float = 0.0, final: float = 0.0) -> Callable[[int], float] | None:
    """The learning-rate factor of a phase of ``steps`` steps.

    Parameters
    ----------
    name : {"constant", "cosine"}
        ``constant``: 1 after the warm-up; ``cosine``: half a cosine from 1 down to ``final`` over the
        steps after the warm-up.
    steps : int
        Steps of the phase.
    warmup : float
        Fraction of the steps (``0 <= warmup < 1``) over which the factor rises linearly from
        ``1 / warmup_steps`` to 1.
    final : float
        The cosine's last factor (a fraction of the initial rate).

    Returns
    -------
    callable or None
        ``factor(step)``; ``None`` for a constant rate without warm-up (nothing to do).

    Raises
    ------
    ValueError
        Unknown name, or ``warmup`` / ``final`` out of range.
    """
    if name not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {name!r}; valid: {', '.join(SCHEDULES)}")
    if not 0.0 <= warmup < 1.0:
        raise ValueError(f"warmup must be a fraction in [0, 1), got {warmup!r}")
    if not 0.0 <= final <= 1.0:
        raise ValueError(f"final must be in [0, 1], got {final!r}")
    warm = int(round(warmup * steps))
    if name == "constant" and warm == 0:
        return None

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if name == "constant":
            return 1.0
        span = max(1, steps - warm)
        progress = min(1.0, (step - warm) / span)
        return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor
