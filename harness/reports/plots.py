"""Figures from a run folder: learning curves, gradient flow through time, throughput, gate activations.

Every function takes a run as loaded by :func:`harness.reports.results.read_run` and
returns a :class:`matplotlib.figure.Figure` built without pyplot, on the
non-interactive Agg canvas: nothing opens a window, nothing leaks into global
state, and tests can read the plotted data back from the axes.

A cell has the same colour in every figure of every run (:func:`cell_color`):
the one its ``CellSpec.color`` declares (recorded in ``config.json``), or one
derived from its name. Axis labels come from the task (``Task.loss_unit``)
and gate names from :mod:`harness.contract.gates`; nothing here knows a built-in by name.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from harness.contract import gates as vocabulary

FORMATS = ("png", "svg", "pdf")

DERIVED_COLORS = ("#8c564b", "#7f7f7f", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#5254a3")
"""Colours for cells that declare none, chosen by a hash of the name. The built-in cells declare the colours of
matplotlib's tab10 palette, which this list leaves out (but for the brown and grey no built-in uses), so a plugin's
cell never looks like a built-in."""

# Columns of a gate table that describe a row rather than hold a gate's value.
GATE_INDEX_COLUMNS = {"cell", "review", "origin", "position", "token", "in_vocab", "label", "layer", "unit", "step", "t",
                      "p_positive", "prediction", "sequence", "symbol", "phase", "target", "predicted"}
SHOWN_INPUT_COLUMNS = ("review", "sequence")
"""The column of a gate table that numbers its inspected inputs (sentiment: ``review``, copy: ``sequence``)."""


def cell_color(name: str, declared: Mapping[str, str | None] | None = None) -> str:
    """The colour of cell ``name``: ``declared[name]`` (its ``CellSpec.color``) when set, else one derived from the
    name, the same in every process (not Python's salted ``hash``)."""
    if declared and declared.get(name):
        return str(declared[name])
    digest = hashlib.sha1(name.encode("utf-8")).digest()
    return DERIVED_COLORS[digest[0] % len(DERIVED_COLORS)]


def run_colors(run: dict[str, Any]) -> dict[str, str | None]:
    """Cell name -> declared colour, as the run recorded it in ``config.json``."""
    return dict(run.get("config", {}).get("colors", {}) or {})


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # attach the Agg canvas explicitly: no GUI backend is ever chosen
    return fig


def _cells(run: dict[str, Any]) -> list[str]:
    """Cells in the order the run trained them."""
    return list(dict.fromkeys(run["summary"]["cell"].astype(str)))


def _title(run: dict[str, Any]) -> str:
    cfg = run.get("config", {})
    parts = [f"task {cfg.get('task', '?')}"]
    if "seq_len" in cfg:
        parts.append(f"T={cfg['seq_len']}")
    if "hidden_size" in cfg:
        parts.append(f"H={cfg['hidden_size']}")
    return f"{Path(run['folder']).name}: " + ", ".join(parts)


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


# ------------------------------------------------------------------ learning curves


def learning_curves(run: dict[str, Any]) -> Figure:
    """Loss (train solid, validation dashed, memoryless baseline dotted) and validation accuracy against step."""
    cfg = run.get("config", {})
    metrics = run.get("metrics", pd.DataFrame(columns=["cell", "step", "metric", "value"]))
    fig = _figure(11, 4.2)
    ax_loss, ax_acc = fig.subplots(1, 2)
    plotted = False
    colors = run_colors(run)
    for cell in _cells(run):
        mine = metrics[metrics["cell"].astype(str) == cell]
        color = cell_color(cell, colors)
        for metric, style, what in (("train_loss", "-", "train"), ("val_loss", "--", "validation")):
            m = mine[mine["metric"] == metric].sort_values("step")
            if len(m):
                ax_loss.plot(m["step"].to_numpy(), m["value"].to_numpy(), style, color=color, label=f"{cell} {what}")
                plotted = True
        m = mine[mine["metric"] == "val_accuracy"].sort_values("step")
        if len(m):
            ax_acc.plot(m["step"].to_numpy(), m["value"].to_numpy(), "-", color=color, label=f"{cell} validation")
    baseline = cfg.get("baseline")
    if baseline is None and len(run["summary"]):
        baseline = run["summary"]["baseline"].iloc[0]
    if baseline is not None and math.isfinite(float(baseline)):
        ax_loss.axhline(float(baseline), color="black", linestyle=":", linewidth=1.5,
                        label=f"memoryless baseline ({float(baseline):.4g})")
    ax_loss.set_xlabel("training step")
    ax_loss.set_ylabel(f"loss: {cfg.get('loss_unit') or 'task loss'}")
    ax_loss.set_title("loss")
    ax_acc.set_xlabel("training step")
    accuracy = str(cfg.get("accuracy", "accuracy")).removeprefix("test ")
    ax_acc.set_ylabel(f"validation {accuracy}\n(fraction, 0 to 1)")
    ax_acc.set_ylim(-0.02, 1.02)
    ax_acc.set_title("accuracy")
    if not plotted:
        _no_data(ax_loss, "no metrics logged")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    fig.suptitle(_title(run))
    return fig


# ------------------------------------------------------------------ gradient flow


def gradient_flow(run: dict[str, Any]) -> Figure:
    """``||dL/d s_t||`` against time step ``t`` on a log scale, one panel per state (h, c).

    Step 0 (initialisation) is dashed, the final step solid, any ``--grad-at``
    step in between dotted. Zero norms cannot sit on a log axis; they are left
    out of the line (the CSV keeps them).
    """
    grads = run.get("gradnorms", pd.DataFrame(columns=["cell", "step", "t", "state", "norm"]))
    states = list(dict.fromkeys(grads["state"].astype(str))) or ["h"]
    fig = _figure(5.5 * len(states), 4.2)
    axes = np.atleast_1d(fig.subplots(1, len(states), squeeze=False)[0])
    for ax, state in zip(axes, states):
        for cell in _cells(run):
            mine = grads[(grads["cell"].astype(str) == cell) & (grads["state"].astype(str) == state)]
            steps = sorted(mine["step"].unique())
            for step in steps:
                curve = mine[mine["step"] == step].sort_values("t")
                y = curve["norm"].to_numpy(dtype=float)
                y = np.where(y > 0, y, np.nan)
                if step == steps[0] and step == 0:
                    style, when = "--", "init"
                elif step == steps[-1]:
                    style, when = "-", f"step {step} (final)"
                else:
                    style, when = ":", f"step {step}"
                ax.plot(curve["t"].to_numpy(), y, style, color=cell_color(cell, run_colors(run)), marker=".", markersize=3,
                        label=f"{cell} {when}")
        ax.set_yscale("log")
        ax.set_xlabel("time step t of the sequence")
        ax.set_ylabel(f"gradient norm ||dL/d{state}_t||\n(loss units per state unit, log scale)")
        ax.set_title(f"gradient reaching {state}_t")
        ax.grid(alpha=0.3, which="both")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
        else:
            _no_data(ax, "no gradient norms recorded")
    fig.suptitle(_title(run) + " (vanishing gradients: the line falls towards t = 0)")
    return fig


# ------------------------------------------------------------------ throughput


def throughput(run: dict[str, Any]) -> Figure:
    """Training throughput per cell (tokens/s); cells without a number (skipped, failed) are named with why."""
    summary = run["summary"]
    cells, values, notes = [], [], []
    for row in summary.itertuples(index=False):
        value = float(row.tokens_per_s) if pd.notna(row.tokens_per_s) else math.nan
        cells.append(str(row.cell))
        values.append(value)
        # an "ok" cell without a number trained no more steps than the timer's warm-up
        notes.append("" if math.isfinite(value) else "too few steps to time" if row.status == "ok" else str(row.status))
    fig = _figure(7, 0.6 * max(len(cells), 2) + 1.6)
    ax = fig.subplots()
    y = np.arange(len(cells))
    heights = [v if math.isfinite(v) else 0.0 for v in values]
    for i, (cell, h) in enumerate(zip(cells, heights)):
        ax.barh(i, h, color=cell_color(cell, run_colors(run)), label=cell)
    top = max(heights, default=0.0)
    for i, (v, note) in enumerate(zip(values, notes)):
        text = f"{v:,.0f}" if math.isfinite(v) else f"no figure ({note})"
        ax.text(max(v, 0.0) if math.isfinite(v) else 0.0, i, f" {text}", va="center", fontsize="small")
    ax.set_yticks(y, cells)
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.25 if top > 0 else 1)
    ax.set_xlabel("training throughput (tokens/s = batch x sequence steps per second, after warm-up)")
    ax.set_ylabel("cell")
    cfg = run.get("config", {})
    ax.set_title(f"{_title(run)}; device {cfg.get('device', '?')}, {cfg.get('dtype', '?')}", fontsize="medium")
    if cells:
        ax.legend(fontsize="small", loc="best", title="cell")
    else:
        _no_data(ax, "no cells in summary.csv")
    if top >= 100:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.grid(alpha=0.3, axis="x")
    return fig


# ------------------------------------------------------------------ gates (sentiment, copy)


def gate_columns(gates: pd.DataFrame) -> list[str]:
    """Every gate-value column of a gate table, in vocabulary order (:func:`harness.contract.gates.ordered`); none dropped."""
    numeric = [c for c in gates.columns if c not in GATE_INDEX_COLUMNS and pd.api.types.is_numeric_dtype(gates[c])
               and gates[c].notna().any()]
    return vocabulary.ordered(numeric)


def gate_scales(names: Sequence[str], values: pd.DataFrame) -> list[tuple[tuple[float, float], str, list[str]]]:
    """Gates grouped by colour scale: ``((low, high), colour map, names)``. Gates in [0, 1] share one scale,
    signed ones in [-1, 1] another, and unbounded ones (a cell state) a symmetric scale fitted to their values."""
    groups: dict[tuple[float, float], list[str]] = {}
    for name in names:
        low, high = vocabulary.value_range(name)
        if low is None or high is None:
            top = float(np.nanmax(np.abs(values[name].to_numpy(dtype=float)))) if len(values) else 1.0
            low, high = -max(top, 1e-6), max(top, 1e-6)
        groups.setdefault((low, high), []).append(name)
    return [(scale, "viridis" if scale[0] >= 0 else "RdBu_r", members) for scale, members in groups.items()]


def gate_heatmap(run: dict[str, Any], review: Any = None, max_tokens: int = 80) -> Figure | None:
    """Mean gate activation per token of one inspected input (a review, a sequence), for every cell; ``None``
    without ``gates.csv``.

    Each cell gets one heatmap per colour scale (:func:`gate_scales`): rows are gates, columns the input's tokens
    in order (x axis, the first ``max_tokens``), colour the gate's mean over hidden units. ``review`` picks the
    input by its number in the table's ``review`` or ``sequence`` column (:data:`SHOWN_INPUT_COLUMNS`).
    """
    gates = run.get("gates")
    if gates is None or gates.empty:
        return None
    key = next((c for c in SHOWN_INPUT_COLUMNS if c in gates.columns), None)
    if review is None:
        review = gates[key].iloc[0] if key else None
    if review is not None and key:
        chosen = gates[gates[key].astype(str) == str(review)]
        if chosen.empty:
            valid = ", ".join(map(str, list(dict.fromkeys(gates[key]))[:10]))
            raise ValueError(f"{key} {review!r} is not in gates.csv; {key}s there include {valid}")
        gates = chosen
    if "layer" in gates.columns:  # the top layer is the one the readout sees
        gates = gates[gates["layer"] == gates["layer"].max()]
    cells = list(dict.fromkeys(gates["cell"].astype(str)))
    panels = []  # (cell, scale, colour map, gate names)
    for cell in cells:
        mine = gates[gates["cell"].astype(str) == cell]
        for scale, cmap, names in gate_scales(gate_columns(mine), mine):
            panels.append((cell, scale, cmap, names))
    n_tokens = min(int(gates.groupby("cell").size().max()), max_tokens)
    rows = sum(len(names) for *_, names in panels)
    fig = _figure(min(max(8.0, 2.5 + 0.28 * n_tokens), 24), 1.4 + 0.45 * rows + 1.0 * len(panels))
    axes = np.atleast_1d(fig.subplots(len(panels), 1, squeeze=False,
                                      gridspec_kw={"height_ratios": [len(p[3]) + 1.5 for p in panels]})[:, 0])
    colors = run_colors(run)
    images = {}
    for ax, (cell, scale, cmap, names) in zip(axes, panels):
        mine = gates[gates["cell"].astype(str) == cell]
        if "position" in mine.columns:
            mine = mine.sort_values("position")
        mine = mine.iloc[:max_tokens]
        values = mine[names].to_numpy(dtype=float).T            # (gates, tokens)
        images[scale] = ax.imshow(values, aspect="auto", vmin=scale[0], vmax=scale[1], cmap=cmap,
                                  interpolation="nearest")
        ax.set_yticks(range(len(names)), [f"{n} gate" for n in names])
        tokens = mine["token"].astype(str).tolist() if "token" in mine.columns else [str(i) for i in range(len(mine))]
        upright = max(map(len, tokens), default=0) <= 2  # symbols such as copy's '_' and '>' read wrongly on their side
        ax.set_xticks(range(len(tokens)), tokens, rotation=0 if upright else 90, fontsize="small")
        ax.set_ylabel(f"{cell}", color=cell_color(cell, colors), fontweight="bold")
        ax.set_xlabel(f"token of the {key or 'input'}, in the order the cell reads them")
    label = ""
    if "origin" in gates.columns:
        label += f" ({gates['origin'].iloc[0]})"
    if "label" in gates.columns:
        label += f", label {gates['label'].iloc[0]}"
    shown = f"{key} {review}" if key else "gate table"
    fig.suptitle(f"{Path(run['folder']).name}: {shown}{label}\ngate activations, mean over hidden units")
    for scale, image in images.items():
        users = [ax for ax, panel in zip(axes, panels) if panel[1] == scale]
        what = "(0 = closed, 1 = open)" if scale == (0.0, 1.0) else f"({scale[0]:.3g} to {scale[1]:.3g})"
        fig.colorbar(image, ax=users, label=f"mean gate activation {what}")
    return fig


# ------------------------------------------------------------------ all figures of a run

FIGURES: dict[str, Callable[[dict[str, Any]], Figure | None]] = {
    "learning_curves": learning_curves,
    "gradient_flow": gradient_flow,
    "throughput": throughput,
    "gates": gate_heatmap,
}


def parse_formats(text: str) -> tuple[str, ...]:
    """``"png,svg"`` -> ``("png", "svg")``; ValueError naming the valid formats otherwise."""
    formats = tuple(dict.fromkeys(f.strip().lower().lstrip(".") for f in text.split(",") if f.strip()))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"--format {text!r}: choose from {', '.join(FORMATS)} (comma-separated, e.g. png,svg)")
    return formats


def make_figures(run: dict[str, Any], review: Any = None) -> dict[str, Figure]:
    """Every figure that the run's tables support, by name (``review``: the one the gate heatmap shows)."""
    figures = {}
    for name, build in FIGURES.items():
        fig = build(run, review) if name == "gates" else build(run)
        if fig is not None:
            figures[name] = fig
    return figures


def save_figures(figures: dict[str, Figure], folder: Path, formats: Sequence[str] = ("png",),
                 dpi: int = 110) -> dict[str, list[Path]]:
    """Write each figure as ``folder/<name>.<format>``; returns name -> paths (PNG first when asked)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {}
    for name, fig in figures.items():
        for fmt in formats:
            path = folder / f"{name}.{fmt}"
            fig.savefig(path, format=fmt, dpi=dpi)
            written.setdefault(name, []).append(path)
    return written
