"""The one exception family robustq raises for user mistakes.

The CLI turns any :class:`RobustqError` into a single line on stderr and a
non-zero exit; anything else is a programming error and keeps its traceback.
"""

from __future__ import annotations


class RobustqError(Exception):
    """Base class for errors caused by user input (files, arguments, data)."""


class InputError(RobustqError):
    """A file or array given by the user is missing, malformed or inconsistent."""


class ConfigError(RobustqError):
    """An option or parameter value is out of range or unknown."""
