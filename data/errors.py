"""Errors raised by the data layer."""

__all__ = ["MarketDataError"]


class MarketDataError(ValueError):
    """A market frame or its source is invalid; the message names source, column and rows."""
