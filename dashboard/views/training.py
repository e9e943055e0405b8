"""Training: the main TensorBoard scalars of the run (the full curves stay in TensorBoard)."""

import streamlit as st

from dashboard import charts, tb_scalars, ui


def render() -> None:
    st.title("Training")
    picked = ui.selected_run()
    if picked is None:
        return
    label, run = picked
    st.caption(f"run: {label}. Full curves: `tensorboard --logdir {run / 'tb'}`")
    scalars = tb_scalars.load_scalars(run)
    if not scalars:
        st.info(f"{run}: no TensorBoard event files under tb/ or seed_*/tb/")
        return
    tags = sorted({tag for per_run in scalars.values() for tag in per_run})
    main = [t for t in tb_scalars.MAIN_TAGS if t in tags]
    chosen = st.multiselect("Scalars", tags, default=main or tags[:4], key="tb_tags")
    for tag in chosen:
        series = {name: per_run[tag] for name, per_run in scalars.items() if tag in per_run}
        st.altair_chart(charts.line_chart(series, "value", tag, height=charts.SMALL_HEIGHT_PX,
                                          x_field="step"), width="stretch")


ui.guarded(render)
