"""Errors the command line reports as one line (``tnn: error: ...``) with exit status 2."""

from __future__ import annotations

from tnn.io.extras import MissingExtraError


class CLIError(Exception):
    """A user error: bad flag values, missing files, incompatible options."""


#: exception types reported as one line without a traceback
USER_ERRORS: tuple[type[BaseException], ...] = (
    CLIError, ValueError, TypeError, FileNotFoundError, MissingExtraError,
)
