"""The environment's market tables on disk: built once per input, shared by every process.

Two kinds of table are stored, each under a hash of everything it depends on:

* the **market panel** (:class:`envs.market.MarketPanel`: spot, ATM vol, rate, the observation's
  market block, forecast summaries) of one segment, keyed by the market frame (values, index,
  ``bar_stamp`` and ``symbol``), its features, the forecast panel, the segment's dates, the
  surface config (its iv proxy too), the price scale and the minimum bar count;
* the **unit tables** (:class:`envs.portfolio.UnitTables`: every structure's unit at every bar,
  its quotes at entry and its path to expiry, or why none can be built), in blocks of
  :data:`envs.portfolio.TABLE_BLOCK_BARS` bars, keyed by the quote source's
  ``cache_key()`` (its class, every value of the bars, the surface, costs and grids), the
  strategy, cost and margin configs, the stress move and the volume cap.

Both keys also hold :data:`TABLE_CACHE_VERSION`, the block layout's version, a digest of the
source files that compute the tables (so an edit of the pricing code is a new key) and the
versions of the libraries they call. A change of any input is a new key, so tables are rebuilt,
never reused stale.

Files are compressed ``.npz`` (no pickles, read with ``allow_pickle=False``; about 0.8 MB per
block of 64 daily bars) written atomically: a killed
process leaves no half-written file, and a file that cannot be read back (truncated, another
layout) is rebuilt with a warning, never an error. Blocks are written the first time a process
builds them, so a training run's later processes (vectorised workers, evaluation, the next run)
load what the first built. Only quote sources with a ``cache_key`` whose quotes are elementwise
(the model source) have stored unit tables; the chain source builds its units lazily, one at a
time, and is not cached (its market panel is).

The folder is ``env.table_cache_dir`` of the experiment config (default: ``env_tables`` in the
user cache folder, :func:`common.paths.user_cache_root`; ``null`` turns the cache off).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import json
import logging
import os
import sys
import zipfile
import zlib
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from common.io import content_key, write_npz_atomic
from data import frame_hash
from envs.market import MarketPanel
from envs.portfolio import TABLE_BLOCK_BARS, TABLE_LAYOUT_VERSION, UnitTables

__all__ = ["TABLE_CACHE_VERSION", "MemoryUnitStore", "TableCache", "UnitTableStore",
           "market_panel_key"]

log = logging.getLogger(__name__)

TABLE_CACHE_VERSION = "1"  # bump when a stored table's meaning changes without a source edit
# Modules whose code computes the stored tables: an edit of any of them is a new key.
_SOURCE_MODULES = ("envs.market", "envs.observations", "envs.portfolio", "envs.table_cache",
                   "options.calendar", "options.costs", "options.iv_proxy", "options.positions",
                   "options.pricing", "options.quotes", "options.strategies",
                   "options.structures", "options.surface", "forecasters.panel",
                   "data.calendar")
_LIBRARIES = ("numpy", "pandas", "scipy", "arch", "exchange_calendars")
_PANEL_ARRAYS = ("close_ns", "spot", "atm_iv", "rate", "market_obs", "forecast_median",
                 "forecast_width_75", "implied_move")
# What a damaged file raises on reading (a bad zip, a bad deflate stream, a short array...).
_READ_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error)


@functools.cache
def code_version() -> str:
    """Digest of the table cache version, the block layout, the source files of the modules
    that compute the tables and the versions of the libraries they call."""
    parts: list = [TABLE_CACHE_VERSION, TABLE_LAYOUT_VERSION, TABLE_BLOCK_BARS]
    for name in _SOURCE_MODULES:
        module = sys.modules.get(name) or importlib.import_module(name)
        parts.append(Path(module.__file__).read_bytes())
    for name in _LIBRARIES:
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name} absent")
    return content_key(*parts)


def _frame_parts(frame: pd.DataFrame) -> tuple:
    return (frame_hash(frame), str(frame.index.dtype),
            {k: str(frame.attrs.get(k)) for k in ("bar_stamp", "symbol")})


def market_panel_key(frame: pd.DataFrame, features: pd.DataFrame, forecasts, start, end,
                     surface, price_scale: float, min_bars: int) -> str:
    """Hash of every input of :func:`envs.market.build_market_panel` and the code version."""
    return content_key(
        "market_panel", code_version(), *_frame_parts(frame), *_frame_parts(features),
        forecasts.dates.as_unit("ns").asi8, str(forecasts.dates.tz), list(forecasts.horizons),
        list(forecasts.quantile_levels), np.asarray(forecasts.values, dtype="float64"),
        forecasts.model, str(pd.Timestamp(start)), str(pd.Timestamp(end)),
        surface.model_dump(mode="json"), float(price_scale), int(min_bars))


def _panel_to_arrays(panel: MarketPanel) -> dict[str, np.ndarray]:
    dates = panel.dates
    meta = {"tz": None if dates.tz is None else str(dates.tz), "name": dates.name,
            "freq": dates.freqstr, "unit": dates.unit,
            "market_obs_names": list(panel.market_obs_names),
            "horizons": list(panel.horizons), "bars_per_year": panel.bars_per_year,
            "symbol": panel.symbol}
    return {"meta": np.array(json.dumps(meta)), "dates": dates.asi8,
            **{name: getattr(panel, name) for name in _PANEL_ARRAYS}}


def _panel_from_arrays(a: dict[str, np.ndarray]) -> MarketPanel:
    meta = json.loads(str(a["meta"]))
    dates = pd.DatetimeIndex(a["dates"].view(f"M8[{meta['unit']}]"), name=meta["name"])
    if meta["tz"] is not None:
        dates = dates.tz_localize("UTC").tz_convert(meta["tz"])
    if meta["freq"] is not None:
        # A custom business day ("C") keeps its holidays out of its string, so it cannot be
        # set back; nothing reads a panel's freq, and the dates themselves are exact.
        with contextlib.suppress(ValueError):
            dates.freq = meta["freq"]
    return MarketPanel(dates=dates, **{name: a[name] for name in _PANEL_ARRAYS},
                       market_obs_names=tuple(meta["market_obs_names"]),
                       horizons=tuple(meta["horizons"]),
                       bars_per_year=meta["bars_per_year"], symbol=meta["symbol"])


def _read_npz(path: Path) -> dict[str, np.ndarray] | None:
    """Every array of ``path``; None when there is no such file; raises on a bad one."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}
    except FileNotFoundError:
        return None


def _write(arrays: dict[str, np.ndarray], path: Path) -> bool:
    try:
        write_npz_atomic(arrays, path, compress=True)  # a quarter of the size, read as fast
        return True
    except OSError as exc:  # a read-only or full disk costs speed, not the run
        log.warning("table cache: cannot write %s (%s); going on without it", path, exc)
        return False


class TableCache:
    """The table cache under one folder (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory).expanduser()

    def market_panel(self, key: str, build: Callable[[], MarketPanel]) -> MarketPanel:
        """The panel stored under ``key``, else ``build()`` written there."""
        path = self.directory / f"panel_{key}.npz"
        try:
            arrays = _read_npz(path)
            if arrays is not None:
                panel = _panel_from_arrays(arrays)
                log.info("market panel %s..%s (%d bars): loaded from the table cache %s",
                         panel.dates[0].date(), panel.dates[-1].date(), len(panel), path)
                return panel
        except _READ_ERRORS as exc:
            log.warning("table cache: %s cannot be read (%s); rebuilding it", path, exc)
        panel = build()
        if _write(_panel_to_arrays(panel), path):
            log.info("market panel %s..%s (%d bars): built and written to the table cache %s",
                     panel.dates[0].date(), panel.dates[-1].date(), len(panel), path)
        return panel

    def unit_store(self, tables: UnitTables) -> UnitTableStore | None:
        """The store of ``tables``' blocks, or None (and a log line) when its quote source
        cannot be cached."""
        source = tables.source
        if not tables.batched or not callable(getattr(source, "cache_key", None)):
            log.info("unit tables: %s quotes are built lazily and not cached",
                     getattr(source, "name", type(source).__name__))
            return None
        key = content_key(
            "unit_tables", code_version(), source.cache_key(),
            tables.cfg.model_dump(mode="json"), tables.costs.model_dump(mode="json"),
            tables.margin_cfg.model_dump(mode="json"), tables.stress, tables.max_volume_share)
        store = UnitTableStore(self.directory / f"units_{key}", tables.n_blocks)
        have = store.stored_blocks()
        log.info("unit tables: table cache %s holds %d of %d blocks; %s", store.directory,
                 have, tables.n_blocks, "loading them as needed" if have == tables.n_blocks
                 else "the others are built and written there as first needed")
        return store


class UnitTableStore:
    """One :class:`UnitTables`' blocks, one ``.npz`` file each (``UnitTables.attach_store``)."""

    def __init__(self, directory: Path, n_blocks: int) -> None:
        self.directory = directory
        self.n_blocks = n_blocks
        self.loaded = self.written = self.rebuilt = 0  # blocks, for tests and benchmarks

    def path(self, block: int) -> Path:
        return self.directory / f"block_{block:04d}.npz"

    def stored_blocks(self) -> int:
        return sum(self.path(b).exists() for b in range(self.n_blocks))

    def load(self, block: int) -> dict[str, np.ndarray] | None:
        try:
            arrays = _read_npz(self.path(block))
        except _READ_ERRORS as exc:
            self.unreadable(block, exc)
            return None
        if arrays is not None:
            self.loaded += 1
            log.debug("unit tables: block %d loaded from %s", block, self.path(block))
        return arrays

    def unreadable(self, block: int, error: Exception) -> None:
        self.rebuilt += 1
        log.warning("table cache: %s cannot be read (%s: %s); rebuilding it", self.path(block),
                    type(error).__name__, error)

    def save(self, block: int, arrays: dict[str, np.ndarray]) -> None:
        if _write(arrays, self.path(block)):
            self.written += 1
            log.debug("unit tables: block %d written to %s", block, self.path(block))


class MemoryUnitStore:
    """One :class:`UnitTables`' blocks as compressed ``.npz`` bytes in this process's memory
    (about a fifth of the unit objects' size): where the blocks that tables keeping only a few
    (:meth:`UnitTables.keep_blocks`) drop come back from when there is no table cache on disk."""

    def __init__(self) -> None:
        self._blocks: dict[int, bytes] = {}
        self.loaded = self.written = self.rebuilt = 0  # blocks, as UnitTableStore counts them

    def load(self, block: int) -> dict[str, np.ndarray] | None:
        data = self._blocks.get(block)
        if data is None:
            return None
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        self.loaded += 1
        return arrays

    def unreadable(self, block: int, error: Exception) -> None:
        self.rebuilt += 1
        self._blocks.pop(block, None)
        log.warning("unit tables: block %d kept in memory cannot be read back (%s: %s); "
                    "rebuilding it", block, type(error).__name__, error)

    def save(self, block: int, arrays: dict[str, np.ndarray]) -> None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        self._blocks[block] = buffer.getvalue()
        self.written += 1
