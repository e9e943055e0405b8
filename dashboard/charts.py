"""Altair chart builders (interactive: zoom, pan and tooltips); inputs are plain frames."""

from __future__ import annotations

import altair as alt
import pandas as pd

__all__ = ["band_chart", "bar_chart", "equity_chart", "heatmap", "line_chart"]

HEIGHT_PX = 300
SMALL_HEIGHT_PX = 180
HEATMAP_ROW_PX = 44  # one year of the monthly-returns heatmap


def _long(series: dict[str, pd.Series], value: str, x_field: str = "date") -> pd.DataFrame:
    parts = [pd.DataFrame({x_field: s.index, value: s.to_numpy(), "series": name})
             for name, s in series.items()]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=[x_field, value, "series"])


def line_chart(series: dict[str, pd.Series], value: str, title: str,
               height: int = HEIGHT_PX, rule_at: float | None = None,
               x_field: str = "date", y_title: str | None = "",
               legend: bool = True) -> alt.Chart:
    """One line per named series over dates (or steps), with a hover tooltip. ``y_title``:
    the axis title ("" for ``value``, None for none: the chart's title says it); ``legend``:
    False for a single series named in the title."""
    data = _long(series, value, x_field)
    x_type = "T" if x_field == "date" else "Q"
    base = alt.Chart(data).mark_line(strokeWidth=1.4).encode(
        x=alt.X(f"{x_field}:{x_type}", title=None if x_type == "T" else x_field),
        y=alt.Y(f"{value}:Q", title=value if y_title == "" else y_title,
                scale=alt.Scale(zero=False)),
        color=alt.Color("series:N", title=None, scale=alt.Scale(scheme="tableau10"),
                        legend=alt.Legend() if legend else None),
        tooltip=["series:N", alt.Tooltip(f"{x_field}:{x_type}"),
                 alt.Tooltip(f"{value}:Q", format=",.4g")],
    ).properties(title=title, height=height)
    chart = base
    if rule_at is not None:
        chart = chart + alt.Chart(pd.DataFrame({"y": [rule_at]})).mark_rule(
            color="black", strokeDash=[4, 3]).encode(y="y:Q")
    return chart.interactive(bind_y=False)


def equity_chart(equity: dict[str, pd.Series], drawdown: dict[str, pd.Series]) -> alt.VConcatChart:
    """Equity curves (top) and their drawdowns from the running peak (bottom), x-linked."""
    zoom = alt.selection_interval(bind="scales", encodings=["x"])
    pick = alt.selection_point(fields=["series"], bind="legend")
    top = alt.Chart(_long(equity, "equity_usd")).mark_line(strokeWidth=1.4).encode(
        x=alt.X("date:T", title=None),
        y=alt.Y("equity_usd:Q", title="equity, USD", scale=alt.Scale(zero=False)),
        color=alt.Color("series:N", title="policy", scale=alt.Scale(scheme="tableau10")),
        opacity=alt.condition(pick, alt.value(1.0), alt.value(0.15)),
        tooltip=["series:N", "date:T", alt.Tooltip("equity_usd:Q", format=",.0f")],
    ).properties(height=HEIGHT_PX, title="Equity").add_params(zoom, pick)
    bottom = alt.Chart(_long(drawdown, "drawdown_pct")).mark_area(opacity=0.35).encode(
        x=alt.X("date:T", title=None, scale=alt.Scale(domain=zoom)),
        y=alt.Y("drawdown_pct:Q", title="drawdown, %", stack=None),
        color=alt.Color("series:N", title="policy", scale=alt.Scale(scheme="tableau10")),
        opacity=alt.condition(pick, alt.value(0.45), alt.value(0.03)),
        tooltip=["series:N", "date:T", alt.Tooltip("drawdown_pct:Q", format=".2f")],
    ).properties(height=SMALL_HEIGHT_PX, title="Drawdown from the running peak")
    return alt.vconcat(top, bottom).resolve_scale(color="shared")


def heatmap(table: pd.DataFrame, title: str) -> alt.LayerChart:
    """Monthly returns (rows years, columns months 1..12) as a red-green heatmap with labels."""
    data = table.rename_axis(index="year", columns="month").stack().rename("return_pct")
    data = data.reset_index()
    data["year"] = data["year"].astype(str)
    bound = max(float(data["return_pct"].abs().max()) if len(data) else 1.0, 1e-9)
    base = alt.Chart(data).encode(x=alt.X("month:O", title="month"),
                                  y=alt.Y("year:O", title=None))
    cells = base.mark_rect().encode(
        color=alt.Color("return_pct:Q", title="%", scale=alt.Scale(
            scheme="redyellowgreen", domain=[-bound, bound])),
        tooltip=["year:O", "month:O", alt.Tooltip("return_pct:Q", format=".2f")])
    labels = base.mark_text(fontSize=11).encode(text=alt.Text("return_pct:Q", format=".1f"))
    # A fixed height per year: a one-year table is a row of readable cells, not a strip.
    return (cells + labels).properties(title=title, height=alt.Step(HEATMAP_ROW_PX))


def band_chart(frame: pd.DataFrame, title: str) -> alt.LayerChart:
    """Close price with the 90% and 75% forecast bands (and the median) at the target dates."""
    base = alt.Chart(frame).encode(x=alt.X("target_date:T", title=None))
    layers = []
    for nominal, opacity in ((90, 0.18), (75, 0.3)):
        if f"lower_{nominal}" in frame.columns:
            layers.append(base.mark_area(opacity=opacity, color="#1f77b4").encode(
                y=alt.Y(f"lower_{nominal}:Q", title="price", scale=alt.Scale(zero=False)),
                y2=f"upper_{nominal}:Q",
                tooltip=[alt.Tooltip("target_date:T"),
                         alt.Tooltip(f"lower_{nominal}:Q", format=",.2f"),
                         alt.Tooltip(f"upper_{nominal}:Q", format=",.2f")]))
    if "median" in frame.columns:
        layers.append(base.mark_line(color="#1f77b4", strokeDash=[3, 2], strokeWidth=1)
                      .encode(y="median:Q"))
    layers.append(base.mark_line(color="black", strokeWidth=1.3).encode(
        y=alt.Y("close_target:Q", title="price"),
        tooltip=[alt.Tooltip("target_date:T"), alt.Tooltip("close_target:Q", format=",.2f")]))
    return alt.layer(*layers).properties(title=title, height=HEIGHT_PX).interactive(bind_y=False)


def bar_chart(frame: pd.DataFrame, x: str, y: str, color: str | None, title: str) -> alt.Chart:
    encoding = {"x": alt.X(f"{x}:T", title=None), "y": alt.Y(f"{y}:Q", title=y),
                "tooltip": [f"{x}:T", alt.Tooltip(f"{y}:Q", format=",.2f")]}
    if color:
        encoding["color"] = alt.Color(f"{color}:N", title=None)
        encoding["tooltip"].append(f"{color}:N")
    return alt.Chart(frame).mark_bar().encode(**encoding).properties(
        title=title, height=SMALL_HEIGHT_PX).interactive(bind_y=False)


def rule(y: float) -> alt.Chart:
    """A dashed horizontal reference line at ``y``."""
    return alt.Chart(pd.DataFrame({"y": [y]})).mark_rule(
        color="black", strokeDash=[4, 3]).encode(y="y:Q")
