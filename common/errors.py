"""The base class of errors caused by a user's input (a file, a config key, a flag)."""

__all__ = ["UserInputError"]


class UserInputError(ValueError):
    """Bad input from the user; the message names the file, key, column or flag and what was
    expected. Command-line entry points print it as one line and exit with status 2."""
