"""The figure of ``bench --scaling``: time and peak memory per call against the swept dimension, log-log.

It plots a table (``scaling.csv``, :func:`harness.measurements.scaling.scaling_table`) and nothing else.
As in every figure of the harness (:mod:`harness.reports.plots`), a cell keeps the colour its spec declares,
the figure is built on the Agg canvas without pyplot, and tests can read the plotted data back from the axes.
Forward+backward is solid with round markers, forward alone dashed with square ones; a noisy timing
(docs/measurements.md) has an open marker. Each legend entry carries the fitted log-log slope; a grey dotted
line of slope 1 gives the eye a reference for "linear".
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from harness.measurements.scaling import DIMENSIONS
from harness.reports.plots import cell_color

PASSES = (("forward+backward", "-", "o", "fwd+bwd"), ("forward", "--", "s", "fwd"))
"""(pass, line style, marker, legend name), in legend order."""
PANELS = (("median_s", "time_slope", "seconds per call (median), log scale", 1.0),
          ("peak_mem_bytes", "memory_slope", "peak memory per call (MiB), log scale", 1 / 2 ** 20))
"""(column, slope column, y label, scale applied to the column)."""


def _slope_text(slope: float) -> str:
    return f"slope {slope:.2f}" if np.isfinite(slope) else "no slope"


def _reference_line(ax, x: np.ndarray, y: np.ndarray) -> None:
    """A slope-1 line through the geometric mean of the points at the smallest x."""
    first = y[x == x.min()]
    first = first[np.isfinite(first) & (first > 0)]
    if not len(first):
        return
    x0, y0 = x.min(), float(np.exp(np.log(first).mean()))
    xs = np.array([x0, x.max()], dtype=float)
    ax.plot(xs, y0 * xs / x0, ":", color="0.55", linewidth=1.2, label="slope 1 (linear)", zorder=0)


def scaling_figure(table: pd.DataFrame, colors: Mapping[str, str | None] | None = None, title: str = "") -> Figure:
    """Two panels, time and memory, each ``log y`` against ``log x`` of the swept dimension, one line per (cell,
    pass) of ``table``; ``colors``: cell -> its spec's colour."""
    fig = Figure(figsize=(12, 6.5), layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas, attached explicitly: no GUI backend is ever chosen
    axes = fig.subplots(1, 2)
    dimension = str(table["dimension"].iloc[0]) if len(table) else "?"
    cells = list(dict.fromkeys(table["cell"].astype(str)))
    for ax, (column, slope_column, ylabel, scale) in zip(axes, PANELS):
        values = table["value"].to_numpy(dtype=float)
        ys = table[column].to_numpy(dtype=float) * scale
        plotted = False
        for cell in cells:
            color = cell_color(cell, colors)
            for name, style, marker, short in PASSES:
                mine = table[(table["cell"].astype(str) == cell) & (table["pass"] == name)].sort_values("value")
                x = mine["value"].to_numpy(dtype=float)
                y = mine[column].to_numpy(dtype=float) * scale
                keep = np.isfinite(y) & (y > 0)           # a log axis holds no zero (a pass that allocates nothing)
                if not keep.any():
                    continue
                slope = float(mine[slope_column].iloc[0])
                ax.plot(x[keep], y[keep], style, color=color, label=f"{cell} {short} ({_slope_text(slope)})")
                noisy = mine["noisy"].fillna(False).astype(bool).to_numpy() & keep
                ax.plot(x[keep & ~noisy], y[keep & ~noisy], marker, color=color, linestyle="none")
                ax.plot(x[noisy], y[noisy], marker, color=color, markerfacecolor="white", linestyle="none")
                plotted = True
        if plotted:
            _reference_line(ax, values, ys)
            ax.set_xscale("log")
            ax.set_yscale("log")
            swept = sorted(set(values.astype(int)))
            ax.set_xticks(swept, [f"{v:,}" for v in swept])   # the swept values themselves, not powers of ten
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.legend(fontsize="x-small", ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.14))
        else:
            ax.text(0.5, 0.5, "nothing measured", ha="center", va="center", transform=ax.transAxes, color="0.4")
        ax.set_xlabel(f"{dimension} ({DIMENSIONS.get(dimension, 'swept dimension')}), log scale")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_title("time per call")
    axes[1].set_title("peak memory per call (above parameters and input)")
    if len(table) and table["noisy"].fillna(False).astype(bool).any():
        title = (title + "\n" if title else "") + "open markers: noisy timings (docs/measurements.md)"
    if title:
        fig.suptitle(title)
    return fig
