"""The one exception type of :mod:`flowforge.data`."""

from __future__ import annotations

from flowforge.errors import UserError


class DataError(UserError, ValueError):
    """Bad or missing data.

    The message names the file (and row/column where there is one) and says
    what to do about it, so the command line can print it without a traceback.
    """
