"""Constants shared by several stages, defined once."""

__all__ = ["CONTRACT_MULTIPLIER", "TRADING_DAYS_PER_YEAR"]

TRADING_DAYS_PER_YEAR = 252
CONTRACT_MULTIPLIER = 100
