"""Optional dependencies: import them on demand, or say which extra of the distribution installs them."""

from __future__ import annotations

import importlib
from types import ModuleType

#: The distribution name on the package index (the import name is ``tnn``).
DISTRIBUTION = "tnn-tensorial"


class MissingExtraError(ModuleNotFoundError):
    """An optional dependency is not installed; the message names the extra that installs it."""


def install_hint(extra: str) -> str:
    """The command that installs ``extra``, e.g. ``pip install 'tnn-tensorial[demo]'``."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module``, or explain which extra installs it.

    Parameters
    ----------
    module : str
        Module to import, e.g. ``"matplotlib.pyplot"``.
    extra : str
        The optional-dependency group of ``pyproject.toml`` that provides it (``"demo"``, ``"export"``).
    purpose : str
        What needs it, for the message (e.g. ``"the demo's plot"``).

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    MissingExtraError
        The module (or one it needs) cannot be imported.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        raise MissingExtraError(
            f"{purpose} needs {top}, which is not installed: {install_hint(extra)}", name=top
        ) from exc


__all__ = ["DISTRIBUTION", "MissingExtraError", "install_hint", "require"]
