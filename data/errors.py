"""Errors raised by the data layer."""

from common.errors import UserInputError

__all__ = ["MarketDataError"]


class MarketDataError(UserInputError):
    """A market frame or its source is invalid; the message names source, column and rows."""
