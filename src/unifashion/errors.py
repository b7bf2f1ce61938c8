"""Errors a user can act on. The CLI prints their message as one line and exits non-zero."""


class UnifashionError(Exception):
    """Base class: the message names the input at fault and what is wrong with it."""


class DataError(UnifashionError):
    """A dataset file is missing, malformed or inconsistent (the message names file and line/row)."""


class ConfigError(UnifashionError):
    """A configuration value or command-line argument is invalid."""
