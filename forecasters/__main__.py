"""``python -m forecasters --config configs/quick.yaml --out DIR``: walk-forward, metrics, plots.

With ``--tune MEMBER`` it runs (or joins) the Optuna study of that member instead, scored on the
validation segment, and writes the best parameters to ``forecast.tune.best_params_path``.
With ``--timeframes 5m 15m 1h 1d --csv BARS --horizons-hours 12 24 48 96 --out DIR`` it compares
the same hour horizons across timeframes instead (:mod:`forecasters.timeframes`).

The argument parsing and YAML resolution live in the CLI layer, :mod:`cli.forecasters`
(``forecasters`` never imports ``config``).
"""

import sys

if __name__ == "__main__":
    from cli.forecasters import main
    from common.cli import run_cli

    sys.exit(run_cli(main, prog="python -m forecasters"))
