"""A one-page report per run (Markdown or HTML) that embeds the figures and the summary table.

:func:`render` is what ``harness plot`` and the end of ``harness run`` call:
read the run folder, draw every figure into ``DEST/figures/``, and write
``DEST/report.md`` (or ``report.html``), where ``DEST`` is the run folder
unless told otherwise. Figures are linked by relative paths, so the report
folder can be moved or zipped whole.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from harness.reports.columns import SHOWN, display
from harness.reports.results import read_run
from harness.reports.summary import verdicts

REPORT_FORMATS = ("md", "html", "none")

FIGURE_TEXT = {
    "learning_curves": ("Learning curves",
                        "Training loss (solid) and validation loss (dashed) per cell against training step; the dotted "
                        "line is the memoryless baseline, the loss of the best predictor that ignores the input's "
                        "history. Right: validation accuracy."),
    "gradient_flow": ("Gradient flow through time",
                      "Norm of the loss's gradient with respect to the carried state at each time step, on a log "
                      "scale, at initialisation (dashed) and after training (solid). A line that falls steeply "
                      "towards t = 0 is the vanishing-gradient problem."),
    "throughput": ("Throughput", "Training tokens (batch x sequence steps) per second, after warm-up."),
    "gates": ("Gate activations", "Mean gate activation over the hidden units of the top layer, at each token of "
                                  "one inspected input (a review, a test sequence), in the order the cell reads "
                                  "them; gates in [0, 1] go from 0 = closed to 1 = open, the others have their own "
                                  "colour scale."),
}

def format_value(value: Any, spec: str = ".4g") -> str:
    """A table cell: numbers with ``spec``, NaN and None as ``-``, booleans as yes/no."""
    return display(value, spec)


def markdown_table(df: pd.DataFrame, formats: dict[str, str] | None = None, default: str = ".4g") -> str:
    """A GitHub-flavoured Markdown table (no ``tabulate`` needed); ``|`` in values is escaped."""
    formats = formats or {}
    columns = [str(c) for c in df.columns]

    def cell(value: Any, column: str) -> str:
        return format_value(value, formats.get(column, default)).replace("|", "\\|").replace("\n", " ")

    numeric = {c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])}
    lines = ["| " + " | ".join(columns) + " |",
             "|" + "|".join("---:" if c in numeric else ":---" for c in df.columns) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v, str(c)) for v, c in zip(row, df.columns)) + " |")
    return "\n".join(lines)


def summary_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """The shown summary columns (``harness.reports.columns.SUMMARY``), headed for people."""
    keep = [c for c in SHOWN if c.name in summary.columns]
    return summary[[c.name for c in keep]].rename(columns={c.name: c.header for c in keep})


SUMMARY_FORMATS = {c.header: c.fmt for c in SHOWN if c.fmt}
"""Number formats of :func:`summary_frame`'s columns."""


def _run_facts(run: dict[str, Any]) -> list[str]:
    cfg, env = run.get("config", {}), run.get("environment", {})
    facts = []
    if cfg:
        facts.append(f"task **{cfg.get('task', '?')}**, T={cfg.get('seq_len', '?')}, {cfg.get('steps', '?')} steps, "
                     f"batch {cfg.get('batch_size', '?')}, H={cfg.get('hidden_size', '?')}, "
                     f"layers {cfg.get('layers', '?')}, {cfg.get('optimizer', '?')} lr {cfg.get('lr', '?')}, "
                     f"clip {cfg.get('clip', '?')}, seed {cfg.get('seed', '?')}, "
                     f"{cfg.get('device', '?')} {cfg.get('dtype', '?')}")
        baseline = cfg.get("baseline")
        if baseline is not None:
            facts.append(f"memoryless baseline loss {float(baseline):.4f}; solved means {cfg.get('solved_rule', '?')}")
    if env:
        machine = env.get("gpu") or env.get("cpu") or env.get("platform") or "?"
        facts.append(f"torch {env.get('torch', '?')}, python {env.get('python', '?')}, on {machine}; "
                     f"git {env.get('git_commit', env.get('commit', '?'))}")
    return facts


def _sections(run: dict[str, Any]) -> list[str]:
    summary = run["summary"]
    grads = run.get("gradsummary", pd.DataFrame(columns=["cell", "state", "first", "last"]))
    return verdicts(summary, grads, run.get("config", {}).get("accuracy", "accuracy"))


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def report_markdown(run: dict[str, Any], figures: dict[str, list[Path]], where: Path) -> str:
    """The report text; figure links are relative to ``where`` (the report's folder)."""
    lines = [f"# Run report: {Path(run['folder']).name}", ""]
    lines += [f"- {fact}" for fact in _run_facts(run)]
    lines += ["", "## Summary", "", markdown_table(summary_frame(run["summary"]), SUMMARY_FORMATS), ""]
    lines += [f"- {line}" for line in _sections(run)]
    for name, paths in figures.items():
        title, caption = FIGURE_TEXT.get(name, (name.replace("_", " ").capitalize(), ""))
        shown = next((p for p in paths if p.suffix in (".png", ".svg")), paths[0])
        lines += ["", f"## {title}", "", f"![{title}]({_relative(shown, where)})", ""]
        if caption:
            lines.append(caption)
        others = [p for p in paths if p != shown]
        if others:
            lines += ["", "Also as: " + ", ".join(f"[{p.suffix[1:]}]({_relative(p, where)})" for p in others)]
    tables = _relative(Path(run["folder"]), where)
    lines += ["", f"Tables: {'this folder' if tables == '.' else f'`{tables}/`'} (summary.csv, metrics.csv, "
              "gradnorms.csv, gradsummary.csv; formats in docs/results.md).", ""]
    return "\n".join(lines)


def report_html(run: dict[str, Any], figures: dict[str, list[Path]], where: Path) -> str:
    """The same report as one HTML page."""
    esc = html.escape
    table = summary_frame(run["summary"]).copy()
    for column in table.columns:
        table[column] = [format_value(v.item() if hasattr(v, "item") else v,
                                      SUMMARY_FORMATS.get(column, ".4g")) for v in table[column]]
    body = [f"<h1>Run report: {esc(Path(run['folder']).name)}</h1>", "<ul>"]
    body += [f"<li>{esc(fact).replace('**', '')}</li>" for fact in _run_facts(run)]
    body += ["</ul>", "<h2>Summary</h2>", table.to_html(index=False, escape=True, border=0), "<ul>"]
    body += [f"<li>{esc(line)}</li>" for line in _sections(run)]
    body.append("</ul>")
    for name, paths in figures.items():
        title, caption = FIGURE_TEXT.get(name, (name.replace("_", " ").capitalize(), ""))
        shown = next((p for p in paths if p.suffix in (".png", ".svg")), paths[0])
        body += [f"<h2>{esc(title)}</h2>"]
        if shown.suffix == ".pdf":
            body.append(f'<p><a href="{esc(_relative(shown, where))}">{esc(title)} (PDF)</a></p>')
        else:
            body.append(f'<img src="{esc(_relative(shown, where))}" alt="{esc(title)}" style="max-width:100%">')
        if caption:
            body.append(f"<p>{esc(caption)}</p>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{esc(Path(run['folder']).name)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_report(run: dict[str, Any], figures: dict[str, list[Path]], dest: Path, fmt: str = "md") -> Path:
    """Write ``dest/report.md`` or ``dest/report.html``; returns its path."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if fmt == "md":
        path = dest / "report.md"
        path.write_text(report_markdown(run, figures, dest))
    elif fmt == "html":
        path = dest / "report.html"
        path.write_text(report_html(run, figures, dest))
    else:
        raise ValueError(f"report format {fmt!r}: choose md or html")
    return path


@dataclass
class Rendered:
    """What :func:`render` wrote for one run."""

    folder: Path
    figures: dict[str, list[Path]] = field(default_factory=dict)
    report: Path | None = None


def render(folder: Path, dest: Path | None = None, formats: Sequence[str] = ("png",), report: str = "md",
           review: Any = None) -> Rendered:
    """Figures (``dest/figures/``) and the report (``dest/report.<fmt>``) for the run in ``folder``.

    :param dest: where to write; the run folder itself by default.
    :param report: ``md``, ``html`` or ``none``.
    :param review: which review the gate heatmap shows (sentiment runs); the first by default.
    """
    from harness.reports import plots  # matplotlib is imported only when figures are wanted

    run = read_run(folder)
    dest = Path(dest) if dest is not None else Path(folder)
    figures = plots.make_figures(run, review)
    done = Rendered(Path(folder))
    done.figures = plots.save_figures(figures, dest / "figures", formats)
    if report != "none":
        done.report = write_report(run, done.figures, dest, report)
    return done
