"""Errors caused by the user's input, reported by the CLI without a traceback."""


class UserError(Exception):
    """Base of errors whose message names the problem and the fix."""


class RunError(UserError):
    """A run directory is missing, incomplete or in the way."""


class TrainingDiverged(UserError):
    """The loss or the gradient became NaN or infinite."""


class ConfigError(UserError, ValueError):
    """A user error in a configuration file or override."""
