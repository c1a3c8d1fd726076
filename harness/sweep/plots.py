"""Figures and ``report.md`` for a sweep folder: every metric against the sequence length, with its interval.

Five figures, one line per cell (and per combination of the other swept
settings), each with its band: test loss / baseline (the baseline at 1
and the memory margin at 0.9 drawn in), the solve rate (Wilson band), the
gradient decay per step at initialisation and after training, throughput,
and the curves ||dL/dh_t|| against t themselves at the longest T.
A cell keeps the colour it has in every run's figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from harness.reports.plots import _figure, cell_color, save_figures
from harness.reports.report import _relative, markdown_table
from harness.sweep.folder import read_sweep

FIGURE_TEXT = {
    "loss_vs_length": ("Memory: test loss / baseline against T",
                       "Mean over seeds with its 95% bootstrap interval. 1 (dotted) is the memoryless baseline; below "
                       "the dashed margin a cell beats it by at least 10%. The memory horizon is the longest T whose "
                       "whole band lies below the margin."),
    "solve_rate": ("Solve rate against T", "Fraction of seeds that solved the task, with Wilson's 95% interval."),
    "gradient_decay": ("Gradient decay per step against T",
                       "Mean decay per step of ||dL/dh_t|| with its 95% interval, at initialisation (dashed) and after "
                       "training (solid). Below 1 the gradient vanishes going back in time."),
    "throughput": ("Throughput against T", "Training tokens per second, mean over seeds with its 95% interval."),
    "gradient_curves": ("Gradient flow: ||dL/dh_t|| against t",
                        "At the longest swept T, at initialisation and after training: the median over seeds (line) "
                        "and the range over seeds (band), log scale. Norms below float32's normal range (1.2e-38: denormals "
                        "or 0) are not drawn."),
}


def _lines(sweep: dict[str, Any]) -> list[tuple[str, str, pd.DataFrame]]:
    """``(label, cell, rows sorted by T)`` per cell and combination of the other swept settings."""
    table = sweep["sweep_summary"]
    others = [k for k in sweep["point_keys"] if k != "seq_len"]
    lines = []
    for key, rows in table.groupby(["cell", *others], sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        cell = str(key[0])
        label = cell + (f" ({', '.join(f'{k}={v}' for k, v in zip(others, key[1:]))})" if others else "")
        lines.append((label, cell, rows.sort_values("seq_len")))
    return lines


def _band(ax, x, mean, lo, hi, color, style="-", label=None) -> None:
    ax.plot(x, mean, style, color=color, marker="o", markersize=4, label=label)
    ok = np.isfinite(lo) & np.isfinite(hi)
    if ok.any():
        ax.fill_between(np.asarray(x)[ok], np.asarray(lo)[ok], np.asarray(hi)[ok], color=color, alpha=0.18,
                        linewidth=0)


def _axis(ax, sweep: dict[str, Any], ylabel: str) -> None:
    ax.set_xlabel("sequence length T (--seq-len)")
    ax.set_ylabel(ylabel)
    values = sorted(sweep["sweep_summary"]["seq_len"].dropna().unique())
    if len(values) > 1 and values[-1] / max(values[0], 1) >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xticks(values, [str(int(v)) for v in values])
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")


def _title(sweep: dict[str, Any]) -> str:
    meta = sweep["meta"]
    seeds = int(sweep["sweep_summary"]["n_units"].max()) if len(sweep["sweep_summary"]) else 0
    return f"{Path(sweep['folder']).name}: task {meta.get('task')}, up to {seeds} seeds per point"


def metric_figure(sweep: dict[str, Any], metric: str, ylabel: str, reference_lines: Sequence[tuple[float, str, str]] = (),
                  log: bool = False) -> Figure:
    """``M_mean`` with its ``M_lo``..``M_hi`` band against T, one line per cell (and other setting)."""
    fig = _figure(7.5, 4.6)
    ax = fig.subplots()
    colors = sweep["meta"].get("colors", {})
    for label, cell, rows in _lines(sweep):
        _band(ax, rows["seq_len"].to_numpy(float), rows[f"{metric}_mean"].to_numpy(float),
              rows[f"{metric}_lo"].to_numpy(float), rows[f"{metric}_hi"].to_numpy(float),
              cell_color(cell, colors), label=label)
    for y, style, text in reference_lines:
        ax.axhline(y, color="black", linestyle=style, linewidth=1.2, label=text)
    if log:
        ax.set_yscale("log")
    _axis(ax, sweep, ylabel)
    fig.suptitle(_title(sweep))
    return fig


def loss_vs_length(sweep: dict[str, Any]) -> Figure:
    margin = float(sweep["meta"].get("horizon", {}).get("margin", 0.9))
    return metric_figure(sweep, "loss_ratio", "test loss / memoryless baseline\n(1 = no memory, 0 = perfect)",
                         [(1.0, ":", "memoryless baseline"), (margin, "--", f"margin {margin:g}")])


def solve_rate(sweep: dict[str, Any]) -> Figure:
    fig = _figure(7.5, 4.6)
    ax = fig.subplots()
    colors = sweep["meta"].get("colors", {})
    for label, cell, rows in _lines(sweep):
        _band(ax, rows["seq_len"].to_numpy(float), rows["solve_rate"].to_numpy(float), rows["solve_lo"].to_numpy(float),
              rows["solve_hi"].to_numpy(float), cell_color(cell, colors), label=label)
    ax.set_ylim(-0.03, 1.03)
    _axis(ax, sweep, "solve rate (fraction of seeds)")
    fig.suptitle(_title(sweep))
    return fig


def gradient_decay(sweep: dict[str, Any]) -> Figure:
    fig = _figure(7.5, 4.6)
    ax = fig.subplots()
    colors = sweep["meta"].get("colors", {})
    for label, cell, rows in _lines(sweep):
        x = rows["seq_len"].to_numpy(float)
        for when, style in (("init", "--"), ("final", "-")):
            _band(ax, x, rows[f"grad_decay_{when}_mean"].to_numpy(float), rows[f"grad_decay_{when}_lo"].to_numpy(float),
                  rows[f"grad_decay_{when}_hi"].to_numpy(float), cell_color(cell, colors), style,
                  label=f"{label} {'at init' if when == 'init' else 'after training'}")
    ax.axhline(1.0, color="black", linestyle=":", linewidth=1.2, label="no decay")
    _axis(ax, sweep, "gradient decay per step of ||dL/dh_t||\n(< 1 vanishing, > 1 exploding)")
    fig.suptitle(_title(sweep))
    return fig


def throughput(sweep: dict[str, Any]) -> Figure:
    return metric_figure(sweep, "tokens_per_s", "training throughput (tokens/s)")


def gradient_curves(sweep: dict[str, Any]) -> Figure | None:
    """||dL/dh_t|| against t at the longest swept T, at initialisation and after training; None without curves."""
    from harness.measurements.gradflow import MEASURABLE
    from harness.sweep.curves import read_curves

    curves = read_curves(sweep)
    if curves.empty:
        return None
    longest = curves["seq_len"].max()
    curves = curves[curves["seq_len"] == longest]
    colors = sweep["meta"].get("colors", {})
    others = [c for c in curves.columns if c not in ("cell", "seq_len", "seed", "step", "t", "norm")]
    fig = _figure(11, 4.4)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, (title, pick) in zip(axes, (("at initialisation", "min"), ("after training", "max"))):
        for key, rows in curves.groupby(["cell", *others], sort=False):
            key = key if isinstance(key, tuple) else (key,)
            rows = rows[rows["step"] == getattr(rows["step"], pick)()]
            table = rows.pivot_table(index="t", columns="seed", values="norm").where(lambda v: v >= MEASURABLE)
            label = str(key[0]) + (f" ({', '.join(f'{k}={v}' for k, v in zip(others, key[1:]))})" if others else "")
            color = cell_color(str(key[0]), colors)
            t = table.index.to_numpy(float)
            ax.plot(t, table.median(axis=1, skipna=True), color=color, label=label)
            ax.fill_between(t, table.min(axis=1), table.max(axis=1), color=color, alpha=0.18, linewidth=0)
        ax.set_yscale("log")
        ax.set_xlabel("time step t")
        ax.set_title(f"{title} (T = {longest})")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("||dL/dh_t||")
    axes[0].legend(fontsize=8)
    fig.suptitle(_title(sweep))
    return fig


FIGURES = {"loss_vs_length": loss_vs_length, "solve_rate": solve_rate, "gradient_decay": gradient_decay,
           "throughput": throughput, "gradient_curves": gradient_curves}


def make_figures(sweep: dict[str, Any]) -> dict[str, Figure]:
    """Every figure that the sweep has data for (the gradient curves need the units' gradnorms.csv)."""
    if sweep["sweep_summary"] is None or sweep["sweep_summary"].empty:
        return {}
    figures = {name: build(sweep) for name, build in FIGURES.items()}
    return {name: fig for name, fig in figures.items() if fig is not None}


SUMMARY_SHOWN = {"cell": "cell", "seq_len": "T", "n_seeds": "seeds", "loss_ratio_mean": "test/baseline",
                 "loss_ratio_lo": "lo", "loss_ratio_hi": "hi", "solve_rate": "solve rate", "solve_lo": "solve lo",
                 "solve_hi": "solve hi", "grad_decay_final_mean": "grad decay/step final",
                 "loss_ratio_diff_mean": "vs reference", "better_fraction": "better on", "tokens_per_s_mean": "tokens/s"}


def report_markdown(sweep: dict[str, Any], figures: dict[str, list[Path]], where: Path) -> str:
    meta = sweep["meta"]
    table = sweep["sweep_summary"]
    keys = [k for k in sweep["point_keys"] if k != "seq_len"]
    last = (meta.get("invocations") or [{}])[-1]
    lines = [f"# Sweep report: {Path(sweep['folder']).name}", "",
             f"- task **{meta.get('task')}**{', preset ' + meta['preset'] if meta.get('preset') else ''}; cells "
             f"{', '.join(meta.get('cells', []))}; reference cell for the paired comparison: {meta.get('reference')}",
             f"- swept: {', '.join(sweep['point_keys']) or '(nothing but seeds)'}; {len(sweep['units'])} units; "
             f"last run with the {last.get('executor', '?')} executor, {last.get('jobs', '?')} at a time",
             "- intervals: 95% percentile bootstrap over seeds (means), Wilson (solve rates); rule in docs/sweeps.md",
             "", "## Memory horizon", ""]
    if sweep.get("horizon") is not None:
        lines += [f"- {s}" for s in sweep["horizon"]["sentence"]]
    shown = table[[c for c in ["cell", *keys, *SUMMARY_SHOWN] if c in table.columns]]
    shown = shown.loc[:, ~shown.columns.duplicated()].rename(columns=SUMMARY_SHOWN)
    formats = {"test/baseline": ".3f", "lo": ".3f", "hi": ".3f", "solve rate": ".2f", "solve lo": ".2f",
               "solve hi": ".2f", "grad decay/step final": ".3f", "vs reference": "+.3f", "better on": ".2f",
               "tokens/s": ",.0f"}
    lines += ["", "## Summary", "", markdown_table(shown, formats, default=".4g"), ""]
    for name, paths in figures.items():
        title, caption = FIGURE_TEXT.get(name, (name, ""))
        shown_path = next((p for p in paths if p.suffix in (".png", ".svg")), paths[0])
        lines += ["", f"## {title}", "", f"![{title}]({_relative(shown_path, where)})", "", caption]
    lines += ["", "Tables: units.csv (one row per unit), sweep_summary.csv, horizon.csv; formats in docs/sweeps.md.", ""]
    return "\n".join(lines)


@dataclass
class Rendered:
    folder: Path
    figures: dict[str, list[Path]] = field(default_factory=dict)
    report: Path | None = None


def render(folder: Path, dest: Path | None = None, formats: Sequence[str] = ("png",), report: str = "md") -> Rendered:
    """Figures (``dest/figures/``) and ``dest/report.md`` for the sweep in ``folder`` (``dest``: the folder itself)."""
    sweep = read_sweep(folder)
    dest = Path(dest) if dest is not None else Path(folder)
    done = Rendered(Path(folder))
    done.figures = save_figures(make_figures(sweep), dest / "figures", formats)
    if report != "none":
        if report == "html":
            raise ValueError("sweep reports are Markdown only; use --report md")
        dest.mkdir(parents=True, exist_ok=True)
        done.report = dest / "report.md"
        done.report.write_text(report_markdown(sweep, done.figures, dest))
    return done

