"""Market data: sources, validation, macro publication lags and causal features."""

from data.calendar import TRADING_DAYS_PER_YEAR, GapReport, bars_per_year, gap_report
from data.config import DataConfig
from data.errors import MarketDataError
from data.features import build_features
from data.market import SOURCES, frame_hash, load_market
from data.validation import check_segments_covered, validate_market_frame

__all__ = [
    "SOURCES",
    "TRADING_DAYS_PER_YEAR",
    "DataConfig",
    "GapReport",
    "MarketDataError",
    "bars_per_year",
    "build_features",
    "check_segments_covered",
    "frame_hash",
    "gap_report",
    "load_market",
    "validate_market_frame",
]
