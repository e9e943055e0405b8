"""The bar-by-bar executor of a replay: policy, risk manager, paper broker, journal.

Each bar, at its close: the policy acts on the observation; the risk manager may replace the
action by an exit or refuse its order; the orders (deterministic client order ids) go to the
broker; the bar ends (the paper broker fills at the bar's quotes and the market moves); the
journal records the bar in one transaction.

Restart: the journal says which bar comes next. The executor replays the segment from its first
bar -- the policy, the risk manager and the paper broker are deterministic, so every journalled
decision is recomputed and must agree (else :class:`JournalMismatchError`), and the broker's
positions are rebuilt; its durable order book answers the orders it already holds, so none is
placed twice. At the first new bar the journal is reconciled with the broker (positions, open
orders, orders the broker holds that the journal lacks: a crash between "submit" and "journal")
and every difference is reported before trading continues.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from agents.evaluation import EpisodeRecorder, EpisodeResult, policy_action
from envs.actions import ACTION_CLOSE, ACTION_HOLD, CloseAll, CloseSlot, Hold, encode
from execution.brokers.paper import PaperBroker
from execution.journal import Journal, JournalMismatchError
from execution.orders import MultiLegOrder, client_order_id
from execution.risk import KillSwitch, Refusal, RiskConfig, RiskState, check_order, exit_reason

__all__ = ["RISK_EXIT_REASON", "Decision", "ExecutorSettings", "ReplayExecutor",
           "ReplayOutcome", "risk_exit_label"]

log = logging.getLogger("trade")

RISK_EXIT_REASON = "risk_exit"  # exit_reason of positions closed by several risk rules at once


def risk_exit_label(whys) -> str:
    """The ledger's ``exit_reason`` for the risk manager's closes: ``risk_<rule>`` (the rule
    that :func:`execution.risk.exit_reason` names first: ``stop_loss``, ``take_profit``,
    ``dte_exit``), ``risk_exit`` when the positions closed together fired different rules."""
    rules = {why.split(":", 1)[0] for why in whys}
    return f"risk_{rules.pop()}" if len(rules) == 1 else RISK_EXIT_REASON


@dataclass(frozen=True)
class ExecutorSettings:
    run: str  # the run's name (part of every client order id)
    policy: str
    seed: int  # the episode's seed (evaluate.py's: 0 for PPO, the config's for baselines)
    bar_delay_s: float = 0.0  # a pause between the broker and the journal (crash tests)


@dataclass
class Decision:
    policy_action: str
    final_action: int
    reason: str
    orders: list[MultiLegOrder] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    canceled: bool = False  # an order of the decision is cancelled at the broker


@dataclass(frozen=True)
class ReplayOutcome:
    result: EpisodeResult
    bars_journalled: int  # bars written by this process
    bars_replayed: int  # bars recomputed from the journal
    differences: tuple[str, ...]  # what the reconciliation reported
    stopped: str | None  # why the executor stopped early (kill switch), or None


class ReplayExecutor:
    """Runs ``policy`` over the env's segment through a :class:`PaperBroker`."""

    def __init__(self, broker: PaperBroker, policy, journal: Journal, risk: RiskConfig,
                 kill: KillSwitch, settings: ExecutorSettings,
                 progress: Callable[[str], None] = print) -> None:
        self.broker = broker
        self.env = broker.env
        self.policy = policy
        self.journal = journal
        self.risk = risk
        self.kill = kill
        self.settings = settings
        self.progress = progress

    # ----------------------------------------------------------------- decisions
    def _order(self, t: int, intent: str, strategy: str, legs, price: float) -> MultiLegOrder:
        bar_time = pd.Timestamp(self.env.panel.dates[t])
        coid = client_order_id(self.settings.run, self.settings.policy, bar_time, intent, legs)
        return MultiLegOrder(coid, intent, strategy, legs, price, t, bar_time)

    def _close_orders(self, t: int, positions) -> list[MultiLegOrder]:
        out = []
        for pos in positions:
            legs, price = self.broker.close_terms(pos.trade_id)
            out.append(self._order(t, "close", pos.strategy, legs, price))
        return out

    def decide(self, t: int, action: int, mask, state: RiskState) -> Decision:
        """What to do at bar ``t`` when the policy asks ``action``."""
        env = self.env
        name = env.action_names[action]
        positions = self.broker.positions()
        slots = env.cfg.max_open_positions
        exits = [(k, p, why) for k, p in enumerate(positions)
                 if (why := exit_reason(p, self.risk)) is not None]
        decoded = env.decode(action)
        if exits:
            if len(exits) == len(positions) or slots <= 1:
                final = ACTION_CLOSE
            else:
                final = encode(CloseSlot(exits[0][0]), slots)
                exits = exits[:1]
            decision = Decision(name, final, "; ".join(why for _, _, why in exits),
                                self._close_orders(t, [p for _, p, _ in exits]))
            # the ledger's exit_reason (risk_stop_loss, ...); a labelled close is not held by
            # env.min_holding_bars
            env.label_close(risk_exit_label(why for _, _, why in exits))
        elif not mask[action]:
            return Decision(name, ACTION_HOLD, f"{name} is not allowed now (action mask)")
        elif isinstance(decoded, Hold):
            return Decision(name, ACTION_HOLD, "policy holds")
        elif isinstance(decoded, CloseAll):
            decision = Decision(name, action, "policy closes every position",
                                self._close_orders(t, positions))
        elif isinstance(decoded, CloseSlot):
            decision = Decision(name, action, f"policy closes slot {decoded.slot}",
                                self._close_orders(t, [positions[decoded.slot]]))
        else:
            strategy = decoded.strategy
            terms = self.broker.open_terms(strategy)
            if terms is None:  # the mask allowed it, so the simulator can build it
                raise RuntimeError(f"bar {t}: {name} allowed by the mask but not quotable")
            decision = Decision(name, action,
                                f"policy opens {terms.contracts} x {strategy} at "
                                f"{terms.net_price_per_share:+.2f}/share",
                                [self._order(t, "open", strategy, terms.legs,
                                             terms.net_price_per_share)])
        for order in decision.orders:
            refusal = check_order(order, state, self.risk)
            if refusal is not None:
                decision.refusals.append(refusal)
        if decision.refusals:
            decision.orders = []
            decision.final_action = ACTION_HOLD
            decision.reason = f"refused ({decision.refusals[0].rule}): {decision.reason}"
        return decision

    # ----------------------------------------------------------------- restart
    def reconcile(self, t: int) -> list[str]:
        """Differences between the journal and the broker before trading bar ``t``."""
        out = []
        journal_pos = {(p["trade_id"], p["contracts"],
                        tuple((leg["symbol"], leg["quantity_contracts"]) for leg in p["legs"]))
                       for p in self.journal.last_positions()}
        broker_pos = {(p.trade_id, p.contracts,
                       tuple((leg.symbol, leg.quantity_contracts) for leg in p.legs))
                      for p in self.broker.positions()}
        for p in sorted(journal_pos - broker_pos):
            out.append(f"position {p} in the journal, not at the broker")
        for p in sorted(broker_pos - journal_pos):
            out.append(f"position {p} at the broker, not in the journal")
        journal_open = set(self.journal.open_orders())
        broker_open = {o.client_order_id for o in self.broker.open_orders()}
        for coid in sorted(journal_open - broker_open):
            out.append(f"order {coid} open in the journal, not at the broker")
        out += self.broker.line_differences()
        unknown = self.broker.known_order_ids() - self.journal.order_ids()
        for coid in sorted(unknown):
            out.append(f"order {coid} held by the broker, missing from the journal (crash "
                       f"between submit and journal): adopted at bar {t}, not resubmitted")
        return out

    # ----------------------------------------------------------------- the loop
    def _bar_decision(self, t: int, obs, info, day_start: float, missed: str | None) -> Decision:
        env = self.env
        mask = env.action_masks()
        action = int(policy_action(self.policy, env, obs, info, mask))
        if missed is not None:  # the policy still sees the bar (its state stays consistent)
            return Decision(env.action_names[action], ACTION_HOLD, missed)
        state = RiskState(len(env.positions), env.equity, day_start)
        return self.decide(t, action, mask, state)

    def _submit(self, decision: Decision) -> dict:
        statuses = {order.client_order_id: self.broker.submit(order)
                    for order in decision.orders}
        refused = [s for s in statuses.values() if s.status in ("rejected", "canceled")]
        decision.canceled = any(s.status == "canceled" for s in refused)
        if refused:  # the broker refused it: nothing trades this bar
            decision.final_action = ACTION_HOLD
            decision.reason = f"broker {refused[0].status} the order ({refused[0].detail}): " \
                f"{decision.reason}"
        return statuses

    def _check_journalled(self, t: int, decision: Decision) -> None:
        held = self.journal.decision(t)
        final_name = self.env.action_names[decision.final_action]
        if decision.canceled and held is not None and held[0] == decision.policy_action:
            return  # its orders were cancelled after the decision (kill switch): held, unfilled
        if held != (decision.policy_action, final_name):
            raise JournalMismatchError(
                f"{self.journal.path}: bar {t} journalled {held}, the replay decides "
                f"{(decision.policy_action, final_name)}; the run, its data or the "
                f"code changed since (use a new --out)")

    def _restart_report(self, t: int, bar_time: str, replayed: int) -> list[str]:
        differences = self.reconcile(t)
        for line in differences:
            log.warning("reconcile: %s", line)
        self.progress(f"restart at bar {t} ({bar_time}): {replayed} bar(s) replayed from the "
                      f"journal, {len(differences)} difference(s) with the broker")
        return differences

    def run(self, missed: dict[int, str] | None = None) -> ReplayOutcome:
        """Replay the journalled bars, then trade the new ones.

        A bar whose decision is journalled is recomputed and must agree; when its fills and
        marks are not journalled yet (live trading: the decision was taken on the newest bar,
        and its fills and the next mark only exist now) they are written. ``missed`` (bar ->
        reason) names new bars that are journalled as holds without asking the risk manager or
        the broker: bars that closed while the executor was not running. On an env with
        ``last_bar_tradable`` the newest bar is decided and its orders sent; it is completed
        by the next run, on the env extended by the next bar.
        """
        env, broker, journal = self.env, self.broker, self.journal
        missed = {**journal.missed_bars(), **(missed or {})}
        obs, info = broker.reset(self.settings.seed)
        self.policy.reset(self.settings.seed)
        recorder = EpisodeRecorder(env, info)
        next_bar = journal.next_bar()
        marked = journal.equity_bars()
        if 0 not in marked:
            with journal.transaction():
                journal.write_equity(0, _iso(env.panel.dates[0]), broker.account())
        written = replayed = 0
        differences: list[str] = []
        stopped = None
        day_start = previous_equity = env.start_equity
        done = len(env.panel) == 1  # a live environment's first bar: nothing to replay
        terminated = False
        while True:
            newest = done  # only a live env (last_bar_tradable) acts on the bar it ended at
            if newest and (terminated or not env.last_bar_tradable):
                break
            t = broker.bar
            bar_time = _iso(env.panel.dates[t])
            replaying = t < next_bar
            if t > 0 and env.panel.dates[t].date() != env.panel.dates[t - 1].date():
                day_start = previous_equity  # the previous session's last mark
            previous_equity = env.equity
            if t == next_bar and t > 0:
                differences = self._restart_report(t, bar_time, replayed)
            # the newest bar's kill switch also cancels its orders if they were sent
            kill = self.kill.reason() if newest or not replaying else None
            if kill is not None:
                stopped = self._stop(t, bar_time, kill)
                break
            if newest:  # decide and send; it fills when it ends, in the next run
                if not replaying:
                    self._decide_newest(t, bar_time, obs, info, day_start, missed.get(t))
                    written += 1
                break
            if not replaying and t in missed:
                self._cancel_stale(t)
            equity_at_t = env.equity  # the bar's own mark, before the market moves on
            decision = self._bar_decision(t, obs, info, day_start, missed.get(t))
            statuses = self._submit(decision)
            if replaying:
                self._check_journalled(t, decision)
            outcome = broker.end_bar(decision.final_action,
                                     record=not (replaying and t + 1 in marked))
            obs, info = outcome.observation, outcome.info
            recorder.record(env, info)
            terminated = outcome.terminated
            done = outcome.terminated or outcome.truncated
            if replaying and t + 1 in marked:
                replayed += 1
                continue
            if self.settings.bar_delay_s:
                time.sleep(self.settings.bar_delay_s)
            self._journal_bar(t, bar_time, decision, statuses, outcome, decided=replaying)
            written += 1
            final_name = env.action_names[decision.final_action]
            verb = "filled" if replaying else f"{decision.policy_action} -> {final_name}"
            self.progress(f"{bar_time[:10]} bar {t}: {verb} ({decision.reason}); equity "
                          f"{equity_at_t:,.2f} USD")
        result = recorder.result(env, self.policy, info)
        return ReplayOutcome(result, written, replayed, tuple(differences), stopped)

    def _cancel_stale(self, t: int) -> None:
        """A missed bar: an order still working (sent before a crash, never journalled) is
        stale, since orders live until their bar ends; it is cancelled."""
        for order in self.broker.open_orders():
            log.warning("bar %d was missed: cancelling the stale order %s", t,
                        order.client_order_id)
            self.broker.cancel(order.client_order_id)

    def _decide_newest(self, t, bar_time, obs, info, day_start, missed) -> None:
        decision = self._bar_decision(t, obs, info, day_start, missed)
        statuses = self._submit(decision)
        if self.settings.bar_delay_s:
            time.sleep(self.settings.bar_delay_s)
        with self.journal.transaction():
            self._journal_decision(t, bar_time, decision, statuses)
        final_name = self.env.action_names[decision.final_action]
        sent = f"; {len(decision.orders)} order(s) sent" if decision.orders else ""
        self.progress(f"{bar_time[:10]} bar {t}: {decision.policy_action} -> {final_name} "
                      f"({decision.reason}){sent}; equity {self.env.equity:,.2f} USD")

    def _journal_decision(self, t, bar_time, decision, statuses) -> None:
        journal = self.journal
        journal.write_decision(t, bar_time, decision.policy_action,
                               self.env.action_names[decision.final_action], decision.reason)
        for refusal in decision.refusals:
            journal.write_refusal(t, bar_time, refusal.rule, refusal.detail)
        for order in decision.orders:
            now = self.broker.get_order(order.client_order_id)
            journal.write_order(order, now.status, now.broker_order_id,
                                now.detail or statuses[order.client_order_id].detail)

    def _journal_bar(self, t, bar_time, decision, statuses, outcome, decided: bool) -> None:
        """Bar ``t`` in one transaction: its decision and orders (unless ``decided``: already
        journalled), the fills, the positions and the equity after the market moved."""
        journal, broker = self.journal, self.broker
        after = _iso(self.env.panel.dates[broker.bar])
        with journal.transaction():
            if decided:
                for order in decision.orders:
                    now = broker.get_order(order.client_order_id)
                    journal.set_order_status(order.client_order_id, now.status, now.detail)
            else:
                self._journal_decision(t, bar_time, decision, statuses)
            for fill in outcome.fills:
                journal.write_fill(fill)
            journal.write_positions(broker.bar, after, broker.positions())
            journal.write_equity(broker.bar, after, broker.account())

    def _stop(self, t: int, bar_time: str, why: str) -> str:
        """The kill switch: cancel open orders, journal the refusal, stop."""
        canceled = [self.broker.cancel(order.client_order_id)
                    for order in self.broker.open_orders()]
        with self.journal.transaction():
            for order in canceled:
                self.journal.set_order_status(order.client_order_id, order.status,
                                              "cancelled by the kill switch")
            self.journal.write_refusal(t, bar_time, "kill_switch",
                                       f"no new order from bar {t}: {why}")
        self.progress(f"{bar_time[:10]} bar {t}: kill switch ({why}); open orders cancelled, "
                      f"stopping")
        return why


def _iso(value) -> str:
    return pd.Timestamp(value).isoformat()
