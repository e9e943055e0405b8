"""Forecasts: price with the 75% and 90% bands, rolling coverage against nominal, and the
coverage and width tables by horizon and by regime."""

import pandas as pd
import streamlit as st

from dashboard import analytics, charts, loaders, ui


@st.cache_data(ttl=ui.CACHE_TTL_S, show_spinner=False)
def _panel(run: str) -> pd.DataFrame:
    return loaders.load_panel(run)


@st.cache_data(ttl=ui.CACHE_TTL_S, show_spinner=False)
def _close(run: str) -> pd.Series:
    return loaders.load_market_close(run, loaders.read_yaml(f"{run}/{loaders.CONFIG_NAME}"))


def render() -> None:
    st.title("Forecasts")
    picked = ui.selected_run()
    if picked is None:
        return
    label, run = picked
    panel = _panel(str(run))
    models = sorted(panel["model"].unique())
    horizons = sorted(int(h) for h in panel["horizon"].unique())
    left, right = st.columns(2)
    default = models.index("ensemble") if "ensemble" in models else 0
    model = left.selectbox("Model", models, index=default, key="fc_model")
    horizon = right.selectbox("Horizon (bars)", horizons, key="fc_horizon")
    first, last = panel["date"].min().date(), panel["date"].max().date()
    st.caption(f"run: {label}. Out-of-sample forecasts {first}..{last}; band at each target "
               "date t+h from the forecast made at the close of t.")
    try:
        close = _close(str(run))
    except loaders.DashboardInputError as exc:
        st.warning(str(exc))
        close = None
    if close is not None:
        realised = analytics.realised_intervals(panel, close, model, horizon)
        if realised.empty:
            st.info("No resolved forecasts for this model and horizon.")
        else:
            window = st.slider("Window (forecasts shown)", min_value=20,
                               max_value=max(21, len(realised)),
                               value=min(250, len(realised)), key="fc_window")
            st.altair_chart(charts.band_chart(realised.tail(window),
                                              f"{model}, h={horizon}: price, 75% and 90% bands"),
                            width="stretch")
            roll = analytics.rolling_coverage(realised)
            series = {f"{r} coverage": g.set_index("date")["coverage"]
                      for r, g in roll.groupby("interval")}
            chart = charts.line_chart(series, "coverage",
                                      f"rolling {analytics.ROLLING_COVERAGE_BARS}-forecast "
                                      "coverage (dashed: nominal 0.75 and 0.90)",
                                      rule_at=0.75)
            st.altair_chart(chart + charts.rule(0.90), width="stretch")
            st.markdown("**Coverage over every resolved forecast of the panel** (all dates, "
                        "training segment included):")
            rows = [{"model": model, "horizon": h,
                     **analytics.coverage_rows(analytics.realised_intervals(panel, close, model,
                                                                            h))}
                    for h in horizons]
            st.dataframe(pd.DataFrame(rows), hide_index=True)

    st.subheader("Forecast evaluation (forecast_eval/)")
    metrics = loaders.load_forecast_eval(run)
    if metrics is None:
        st.info(f"{run / 'forecast_eval'}: not found (`make run` writes it; or "
                f"`python -m forecasters --config {run / 'config.yaml'} --out "
                f"{run / 'forecast_eval'} --segment test`)")
        return
    st.markdown("By horizon")
    st.dataframe(analytics.interval_table(metrics), hide_index=True)
    st.markdown("By volatility regime (tercile of volatility at forecast time)")
    st.dataframe(analytics.interval_table(metrics, "by_vol_tercile"), hide_index=True)
    st.markdown("By year")
    st.dataframe(analytics.interval_table(metrics, "by_year"), hide_index=True)


ui.guarded(render)
