-- The paper/live executor's journal (SQLite, WAL mode). Times are ISO-8601 strings.
-- bar_time: the bar's decision time (its close); logged_at: wall-clock time of the write
-- (excluded when two journals are compared for equality).
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  -- keys: run, policy, mode (replay|live), broker (paper|alpaca), segment, started_at,
  --       limits (JSON of the risk manager's config), schema_version ('2')
CREATE TABLE IF NOT EXISTS decisions (
  bar_index INTEGER PRIMARY KEY, bar_time TEXT NOT NULL, logged_at TEXT NOT NULL,
  policy_action TEXT NOT NULL,      -- what the policy asked (action name, e.g. open_iron_condor)
  final_action TEXT NOT NULL,       -- what was done after the risk manager (e.g. hold)
  reason TEXT NOT NULL);            -- one line: why
CREATE TABLE IF NOT EXISTS orders (
  client_order_id TEXT PRIMARY KEY, bar_index INTEGER NOT NULL, bar_time TEXT NOT NULL,
  logged_at TEXT NOT NULL, intent TEXT NOT NULL,   -- open | close
  strategy TEXT NOT NULL,
  legs TEXT NOT NULL,               -- JSON list of {symbol, option_type, strike, expiry, quantity_contracts}
  net_limit_price REAL,             -- per share, + debit / - credit
  status TEXT NOT NULL,             -- submitted | filled | partially_filled | rejected | canceled
  broker_order_id TEXT, detail TEXT);
CREATE TABLE IF NOT EXISTS fills (
  fill_id TEXT PRIMARY KEY, client_order_id TEXT,  -- NULL for settlements at expiry
  bar_index INTEGER NOT NULL, bar_time TEXT NOT NULL, logged_at TEXT NOT NULL,
  symbol TEXT NOT NULL, quantity_contracts INTEGER NOT NULL, price_per_share REAL NOT NULL,
  mid_per_share REAL, commission_usd REAL NOT NULL, kind TEXT NOT NULL,  -- open|close|settle
  quote_source TEXT);               -- model|chain (valid quote), fallback (no valid quote:
                                    -- the source's fallback price), broker; NULL: not known
CREATE TABLE IF NOT EXISTS equity (
  bar_index INTEGER PRIMARY KEY, bar_time TEXT NOT NULL, logged_at TEXT NOT NULL,
  equity_usd REAL NOT NULL, cash_usd REAL NOT NULL, margin_used_usd REAL NOT NULL,
  delta_shares REAL, gamma_shares_per_usd REAL, theta_usd_per_day REAL,
  vega_usd_per_vol_point REAL, open_positions INTEGER NOT NULL, spot REAL);
CREATE TABLE IF NOT EXISTS positions (
  bar_index INTEGER NOT NULL, bar_time TEXT NOT NULL, trade_id INTEGER NOT NULL,
  strategy TEXT NOT NULL, contracts INTEGER NOT NULL, legs TEXT NOT NULL,
  dte_days REAL, unrealized_pnl_usd REAL, PRIMARY KEY (bar_index, trade_id));
CREATE TABLE IF NOT EXISTS refusals (
  id INTEGER PRIMARY KEY AUTOINCREMENT, bar_index INTEGER NOT NULL, bar_time TEXT NOT NULL,
  logged_at TEXT NOT NULL, rule TEXT NOT NULL,   -- e.g. stop_loss, max_contracts, kill_switch
  detail TEXT NOT NULL);
