"""Constants shared by several stages, defined once."""

__all__ = ["CALENDAR_DAYS_PER_YEAR", "CONTRACT_MULTIPLIER", "PERCENT_PER_UNIT",
           "TRADING_DAYS_PER_YEAR", "VOL_POINTS_PER_UNIT"]

TRADING_DAYS_PER_YEAR = 252
CALENDAR_DAYS_PER_YEAR = 365.0  # option time: t_years = calendar days / this
CONTRACT_MULTIPLIER = 100
PERCENT_PER_UNIT = 100.0  # a fraction times this is a percentage
VOL_POINTS_PER_UNIT = 100.0  # an annualised volatility (decimal) times this is in vol points
