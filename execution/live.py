"""Live trading: at each new bar's close, data -> forecasts -> observation -> policy -> risk
manager -> broker -> journal.

What the executor saw is kept, append-only, under ``OUT/live/``: ``bars.parquet`` (the tape: each
closed bar as first received; a later revision by the source is reported and ignored) and the
forecaster's state. Every later cycle and every restart recomputes from the tape, so each
journalled decision is recomputed from the same inputs and must agree.

One cycle (:meth:`LiveSession.cycle`):

1. reload the run's data source (yfinance, refreshed; or the CSV file a recorder appends to) and
   keep the bars whose close plus ``publication_delay_s`` is at or before now;
2. append the new bars to the tape and forecast them with the run's forecasters
   (:class:`forecasters.live.LiveForecaster`: refitted on the walk-forward's schedule, on rows
   whose labels had resolved);
3. build the environment over [live start, newest bar] (``last_bar_tradable``), the paper broker
   on it, and run :class:`execution.executor.ReplayExecutor`: journalled bars are replayed (the
   previous bar's fills and the new mark are journalled now that the bar has ended), bars that
   closed while the executor was not running are journalled as holds (no order after the fact),
   and the newest bar is decided and its orders sent.

Orders decided at a bar's close fill at that bar's quotes (the paper broker's rule, as in
``evaluate.py``); the fills and the next mark are journalled when the next bar arrives.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common.errors import UserInputError
from common.io import write_parquet_atomic
from data.calendar import bar_minutes, exchange_calendar
from data.features import build_features
from envs.market import bar_close_ns
from execution.brokers.base import BrokerError

__all__ = ["CycleOutcome", "ForecastTape", "LiveDataError", "LiveInputError", "LiveSession", "MarketTape", "closed_bars",
           "next_bar_due_ns", "now_ns"]

log = logging.getLogger("trade")
NEW_YORK = "America/New_York"
CALENDAR_NAME = "XNYS"
LIVE_START_KEY = "live_start"  # journal meta: the first bar traded live (ISO)
NS_PER_S = 10**9


class LiveInputError(UserInputError):
    """A live data source or state that cannot be traded on."""


class LiveDataError(LiveInputError):
    """The live data source could not be reached or read (the loop tries again later)."""


def now_ns() -> int:
    """Now, as New York wall-clock nanoseconds (the convention of bar decision times)."""
    return pd.Timestamp.now(tz=NEW_YORK).tz_localize(None).value


def closed_bars(frame: pd.DataFrame, at_ns: int, publication_delay_s: float) -> pd.DataFrame:
    """The rows of ``frame`` whose bar had closed, and whose data had been published
    (``publication_delay_s`` after the close), at ``at_ns``. A source that returns the session
    in progress (yfinance does, during trading hours) loses that partial bar here."""
    ends = bar_close_ns(frame.index, frame.attrs.get("bar_stamp"))
    keep = ends + int(publication_delay_s * NS_PER_S) <= at_ns
    out = frame.loc[keep]
    out.attrs.update(frame.attrs)
    return out


def next_bar_due_ns(newest: pd.Timestamp, index: pd.DatetimeIndex, bar_stamp: str | None,
                    publication_delay_s: float) -> int:
    """When the bar after ``newest`` (a bar of ``index``) should be published: its expected
    close on the exchange calendar plus the delay."""
    cal = exchange_calendar(CALENDAR_NAME)
    end_ns = int(bar_close_ns(index, bar_stamp)[index.get_loc(newest)])  # the index's interval
    end = pd.Timestamp(end_ns).tz_localize(NEW_YORK)
    minutes = bar_minutes(index) if len(index) > 1 else None
    if minutes is None:  # daily bars: the next session's close
        due = cal.next_close(end)
    else:
        due = end + pd.Timedelta(minutes=minutes)
        if not cal.is_open_on_minute(due - pd.Timedelta(minutes=1)):
            due = cal.next_open(due) + pd.Timedelta(minutes=minutes)
    due = pd.Timestamp(due).tz_convert(NEW_YORK).tz_localize(None)
    return due.value + int(publication_delay_s * NS_PER_S)


class MarketTape:
    """The closed bars the executor has received, as first received (append-only)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._frame = pd.read_parquet(self.path) if self.path.exists() else None

    @property
    def empty(self) -> bool:
        return self._frame is None

    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            raise LiveInputError(f"{self.path}: the tape is empty (no closed bar received yet)")
        return self._frame

    def extend(self, closed: pd.DataFrame) -> tuple[pd.DatetimeIndex, int]:
        """Append the bars of ``closed`` after the tape's last one; returns (new bars, number of
        earlier bars the source now gives with other values: reported, not applied)."""
        if self._frame is None:
            new, revised = closed.index, 0
            tape = closed.copy()
        else:
            tape = self._frame
            if list(closed.columns) != list(tape.columns):
                raise LiveInputError(f"{self.path}: the source's columns changed from "
                                     f"{list(tape.columns)} to {list(closed.columns)}")
            last = tape.index[-1]
            seen = closed.loc[:last]
            common = seen.index.intersection(tape.index)
            before = tape.loc[common].to_numpy(float)
            after = seen.loc[common].to_numpy(float)
            same = (before == after) | (np.isnan(before) & np.isnan(after))
            revised = int((~same.all(axis=1)).sum())
            new = closed.index[closed.index > last]
            if len(new):
                tape = pd.concat([tape, closed.loc[new]])
        tape.attrs.update(closed.attrs)
        if len(new):
            write_parquet_atomic(tape, self.path)
        self._frame = tape
        return pd.DatetimeIndex(new), revised


class ForecastTape:
    """The forecasts the executor traded on (``forecasts.parquet``, append-only), made by a
    :class:`forecasters.live.LiveForecaster` as each bar arrives."""

    def __init__(self, path: str | Path, forecaster) -> None:
        self.path = Path(path)
        self.forecaster = forecaster
        self._frame = pd.read_parquet(self.path) if self.path.exists() else None

    def panel(self, tape: pd.DataFrame, start: pd.Timestamp,
              features: pd.DataFrame | None = None) -> pd.DataFrame:
        """Forecasts (long format) of every bar of ``tape`` from ``start`` on (``features``:
        ``data.build_features(tape)``, computed here when not given)."""
        new = self.forecaster.update(tape, features)
        held = self._frame
        parts = [held] if held is not None else []
        known = set() if held is None else set(held["date"])
        parts.append(new[~new["date"].isin(known)])
        panel = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        needed = tape.index[tape.index >= start]
        missing = needed.difference(pd.DatetimeIndex(panel["date"].unique()))
        if len(missing):  # lost between the forecaster's state and this file (a crash)
            log.warning("recomputing %d forecast(s) lost in a crash: %s", len(missing),
                        [str(d.date()) for d in missing])
            panel = pd.concat([panel, self.forecaster.recompute(tape, missing)],
                              ignore_index=True)
        if held is None or len(panel) != len(held):
            panel = panel.sort_values(["date", "model", "horizon"], kind="stable")
            panel = panel.reset_index(drop=True)
            write_parquet_atomic(panel, self.path)
            self._frame = panel
        return panel[panel["date"] >= start].reset_index(drop=True)


@dataclass(frozen=True)
class CycleOutcome:
    """What one cycle did."""

    newest: pd.Timestamp | None  # the newest closed bar (None: none yet)
    new_bars: int  # bars appended to the tape
    revised_bars: int  # earlier bars the source revised (ignored)
    traded: bool  # whether the executor ran (a bar not yet decided)
    result: object | None  # the executor's outcome when it ran
    next_due_ns: int | None  # when the next bar should be published


class LiveSession:
    """The live loop of one executor folder.

    ``load_frame()`` reloads the market data; ``forecaster`` is a
    :class:`ForecastTape`; ``run_executor(frame, features, forecasts, live_start, missed)``
    builds the environment, broker and executor and runs one pass (see
    ``trade.py``); ``journal`` is the executor's :class:`execution.journal.Journal`.
    """

    def __init__(self, folder: Path, load_frame: Callable[[], pd.DataFrame], forecaster,
                 run_executor: Callable, journal, publication_delay_s: float,
                 clock: Callable[[], int] = now_ns,
                 progress: Callable[[str], None] = print) -> None:
        self.folder = Path(folder)
        self.load_frame = load_frame
        self.forecaster = forecaster
        self.run_executor = run_executor
        self.journal = journal
        self.publication_delay_s = publication_delay_s
        self.clock = clock
        self.progress = progress
        self.tape = MarketTape(self.folder / "bars.parquet")

    def live_start(self) -> pd.Timestamp | None:
        value = self.journal.meta().get(LIVE_START_KEY)
        return None if value is None else pd.Timestamp(value)

    def _set_live_start(self, when: pd.Timestamp) -> None:
        with self.journal.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                         (LIVE_START_KEY, when.isoformat()))

    def cycle(self, replay_decided: bool = False) -> CycleOutcome:
        """Fetch, forecast and trade whatever closed since the last cycle. ``replay_decided``
        runs the executor even when the newest bar is decided (the kill switch: it cancels the
        orders still working and journals why)."""
        frame = self.load_frame()
        closed = closed_bars(frame, self.clock(), self.publication_delay_s)
        if closed.empty and self.tape.empty:
            return CycleOutcome(None, 0, 0, False, None, None)
        new, revised = self.tape.extend(closed)
        if revised:
            log.warning("the source revised %d bar(s) already on the tape; the tape keeps what "
                        "was traded on", revised)
        tape = self.tape.frame()
        newest = tape.index[-1]
        due = next_bar_due_ns(newest, tape.index, tape.attrs.get("bar_stamp"),
                              self.publication_delay_s)
        start = self.live_start()
        if start is None:
            start = newest
            self._set_live_start(start)
            self.progress(f"live trading starts at the bar of {newest} (the newest closed bar)")
        features = build_features(tape)  # causal; shared by the forecaster and the env
        forecasts = self.forecaster.panel(tape, start, features)
        live_dates = tape.index[tape.index >= start]
        decided = self.journal.next_bar()
        if decided >= len(live_dates) and not replay_decided:  # the newest bar is decided
            return CycleOutcome(newest, len(new), revised, False, None, due)
        missed = {k: (f"missed: the bar of {live_dates[k]} closed while the executor was not "
                      f"running; no order after the fact")
                  for k in range(decided, len(live_dates) - 1)}
        result = self.run_executor(tape, features, forecasts, start, missed)
        return CycleOutcome(newest, len(new), revised, True, result, due)

    def run(self, once: bool, poll_s: float, stop: Callable[[], str | None],
            sleep: Callable[[float], None] = time.sleep) -> CycleOutcome:
        """Cycles until ``stop()`` gives a reason (kill switch) or, with ``once``, one cycle.

        Once a cycle has succeeded, an unreachable data source or broker (after the broker's
        own retries) is reported and tried again ``poll_s`` later: nothing of a failed cycle is
        journalled, so the next one starts from a consistent journal."""
        outcome = None
        while True:
            try:
                outcome = self.cycle()
            except (LiveDataError, BrokerError) as exc:
                if once or outcome is None:
                    raise
                self.progress(f"cycle failed ({exc}); trying again in {poll_s:g} s")
                due = None
            else:
                if once or (outcome.result is not None and outcome.result.stopped):
                    return outcome
                due = outcome.next_due_ns
            wait_s = poll_s if due is None else max(poll_s, (due - self.clock()) / NS_PER_S)
            self.progress(f"waiting {wait_s:,.0f} s for the next bar "
                          f"(due {pd.Timestamp(due) if due else '?'} New York time)")
            slept = 0.0
            while slept < wait_s:
                reason = stop()
                if reason is not None:
                    self.progress(f"stopping: {reason}")
                    return self.cycle(replay_decided=True)
                step = min(poll_s, wait_s - slept, 1.0)
                sleep(step)
                slept += step
