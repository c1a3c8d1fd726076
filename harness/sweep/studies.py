"""``docs/reproductions.md``, built from the studies' sweep folders rather than typed by hand.

A study is a sweep file (``studies/*.toml``) with a ``[study]`` table (title,
source, reduction) and ``[[claims]]``: what the paper says about one cell at
one sequence length. For each claim the builder reads the sweep's
``sweep_summary.csv`` and states a verdict by a fixed rule (:data:`RULES`),
so a study that does not reproduce is reported as such, with the numbers.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.reports.report import markdown_table
from harness.sweep.files import CLAIM_KINDS, SweepRequest, load
from harness.sweep.folder import is_sweep, read_sweep

RULES = {
    "below_baseline": "reproduced when the whole 95% interval of test loss / baseline lies below 1; partly when "
                      "the mean does but the interval reaches 1; not reproduced when the mean is 1 or more",
    "at_baseline": "reproduced when the whole 95% interval of test loss / baseline lies at or above 0.9 (no gain "
                   "of 10% that holds over seeds); partly when the mean does but the interval dips below; not "
                   "reproduced when the mean is below 0.9 (the cell does beat the baseline)",
    "solves": "reproduced when the lower Wilson bound of the solve rate is at least 0.5; partly when some seeds "
              "solved; not reproduced when none did",
}

REPRODUCED, PARTLY, NOT, NOT_RUN = "reproduced", "partly reproduced", "not reproduced", "not run yet"
UNTESTABLE = "not testable at this budget"
UNTESTABLE_RULE = ("a claim whose study marks it `untestable` (the budget is too small for its outcome to say "
                   "anything about the claim) gets no verdict: the page gives the numbers and the study's reason")


@dataclass
class Study:
    """One study file and, once it has run, its sweep folder's tables."""

    file: Path
    request: SweepRequest
    sweep: dict[str, Any] | None

    @property
    def name(self) -> str:
        return self.file.stem

    @property
    def title(self) -> str:
        return self.request.study.get("title", self.name)


def read_study(file: Path | str, root: Path | str = ".") -> Study:
    """The study file and its sweep (at ``out``, relative to ``root``), if that has run."""
    file = Path(file)
    request = load(file)
    out = Path(root) / (request.out or f"results/studies/{file.stem}")
    return Study(file, request, read_sweep(out) if is_sweep(out) and (out / "units.csv").exists() else None)


def _ci(mean: float, lo: float, hi: float, fmt: str = ".3g") -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    if lo is None or math.isnan(lo):
        return f"{mean:{fmt}}"
    return f"{mean:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def judge(kind: str, row: pd.Series) -> tuple[str, str]:
    """The verdict for one claim on one summary row, and why, in numbers (:data:`RULES`)."""
    mean, lo, hi = row["loss_ratio_mean"], row["loss_ratio_lo"], row["loss_ratio_hi"]
    seeds = int(row["n_seeds"])
    if seeds == 0:
        return NOT_RUN, "no seed finished"
    interval = f"test loss / baseline {_ci(mean, lo, hi)} over {seeds} seed{'s' if seeds != 1 else ''}"
    one = math.isnan(lo)
    if kind == "below_baseline":
        if not one and hi < 1:
            return REPRODUCED, f"{interval}: the whole interval is below 1"
        if mean < 1:
            return PARTLY, f"{interval}: the mean is below 1 but " + ("one seed has no interval" if one else
                                                                         "the interval reaches 1")
        return NOT, f"{interval}: at or above the baseline"
    if kind == "at_baseline":
        if not one and lo >= 0.9:
            return REPRODUCED, f"{interval}: no gain of 10% over the baseline on any resample of the seeds"
        if mean >= 0.9:
            return PARTLY, f"{interval}: the mean is at the baseline but " + ("one seed has no interval" if one else
                                                                              "the interval dips below 0.9")
        return NOT, f"{interval}: the cell beats the baseline"
    solved, decided = int(row["solved"]), int(row["n_seeds"] + row["n_diverged"])
    text = f"{solved}/{decided} seeds solved (Wilson 95% interval {_ci(row['solve_rate'], row['solve_lo'], row['solve_hi'], '.2f')})"
    if row["solve_lo"] >= 0.5:
        return REPRODUCED, text
    if solved > 0:
        return PARTLY, text + ": some seeds, not most for sure"
    return NOT, text


def _matching(summary: pd.DataFrame, claim: dict[str, Any]) -> pd.DataFrame:
    rows = summary[summary["cell"].astype(str) == claim["cell"]]
    if "seq_len" in claim:
        rows = rows[rows["seq_len"] == claim["seq_len"]]
    for key, value in (claim.get("where") or {}).items():
        if key in rows.columns:
            rows = rows[rows[key] == value]
    return rows


def claims_table(study: Study) -> pd.DataFrame:
    """One row per claim: the paper's words and number, the harness's numbers with intervals, the verdict."""
    rows = []
    summary = study.sweep["sweep_summary"] if study.sweep else None
    units = study.sweep["units"] if study.sweep else None
    for claim in study.request.claims:
        row = {"cell": claim["cell"], "T": claim.get("seq_len", "-"), "paper": claim["paper"],
               "paper value": claim.get("value", math.nan)}
        found = _matching(summary, claim) if summary is not None else pd.DataFrame()
        if found.empty:
            row.update({"seeds": 0, "harness test loss": "-", "test / baseline": "-", "solved": "-",
                        "verdict": NOT_RUN, "why": "the sweep has not run this point"})
        else:
            s = found.iloc[0]
            baseline = _baseline(units, claim)
            row.update({"seeds": int(s["n_seeds"]),
                        "harness test loss": _ci(s["loss_ratio_mean"] * baseline, s["loss_ratio_lo"] * baseline,
                                                 s["loss_ratio_hi"] * baseline),
                        "test / baseline": _ci(s["loss_ratio_mean"], s["loss_ratio_lo"], s["loss_ratio_hi"]),
                        "solved": f"{int(s['solved'])}/{int(s['n_seeds'] + s['n_diverged'])}"})
            row["verdict"], row["why"] = judge(claim["claim"], s)
            if claim.get("untestable"):  # the numbers stand; the rule's verdict would read as evidence it is not
                row["verdict"], row["why"] = UNTESTABLE, f"{claim['untestable']} (measured: {row['why']})"
        rows.append(row)
    return pd.DataFrame(rows)


def _baseline(units: pd.DataFrame, claim: dict[str, Any]) -> float:
    rows = units[units["cell"].astype(str) == claim["cell"]]
    if "seq_len" in claim:
        rows = rows[rows["seq_len"] == claim["seq_len"]]
    values = pd.to_numeric(rows["baseline"], errors="coerce").dropna()
    return float(values.iloc[0]) if len(values) else math.nan


def gradient_table(study: Study, curves: pd.DataFrame | None = None) -> pd.DataFrame:
    """Decay per step of ||dL/dh_t|| at initialisation, at each ``grad_at`` step and after training, per cell and
    T, mean [95% interval] over seeds; computed from the units' curves (:mod:`harness.sweep.curves`), or from the
    summary's two columns where the curves are gone."""
    from harness.sweep.curves import decay_table, read_curves

    curves = read_curves(study.sweep) if curves is None else curves
    keys = [k for k in study.sweep["point_keys"] if k != "seq_len"]
    if curves.empty:
        return pd.DataFrame([{"cell": r.cell, **{k: getattr(r, k) for k in keys}, "T": r.seq_len, "seeds": r.n_seeds,
                              "at init": _ci(r.grad_decay_init_mean, r.grad_decay_init_lo, r.grad_decay_init_hi, ".4f"),
                              "after training": _ci(r.grad_decay_final_mean, r.grad_decay_final_lo,
                                                    r.grad_decay_final_hi, ".4f")}
                             for r in study.sweep["sweep_summary"].itertuples()])
    table = decay_table(curves)
    last = int(table["step"].max())
    table["when"] = [("at init" if step == 0 else "after training" if step == last else f"after {step} steps")
                     for step in table["step"]]
    table["text"] = [_ci(d, lo, hi, ".4f") for d, lo, hi in zip(table["decay"], table["lo"], table["hi"])]
    order = list(dict.fromkeys(table.sort_values("step")["when"]))
    wide = table.pivot_table(index=["cell", *keys, "seq_len", "seeds"], columns="when", values="text",
                             aggfunc="first", sort=False)
    return wide[order].reset_index().rename(columns={"seq_len": "T"})


def run_facts(study: Study) -> list[str]:
    """The command, wall time, machine and date of the sweep that produced the tables."""
    command = f"python -m harness sweep --config {study.file.as_posix()}"
    if study.sweep is None:
        return [f"command: `{command}`"]
    meta = study.sweep["meta"]
    runs = meta.get("invocations", [])
    ran = list(dict.fromkeys(" ".join(["python -m harness", *map(str, r["command"])]) for r in runs if r.get("command")))
    facts = [f"command{'s' if len(ran) > 1 else ''} run: " + ", ".join(f"`{c}`" for c in ran)] if ran \
        else [f"command: `{command}`"]
    elapsed = sum(float(r.get("elapsed_s") or 0) for r in runs)
    last = runs[-1] if runs else {}
    facts.append(f"wall time {elapsed / 60:.1f} min over {len(runs)} invocation(s) ({last.get('executor', '?')} "
                 f"executor, {last.get('jobs', '?')} at a time, {last.get('threads_per_unit', '?')} thread(s) each); "
                 f"finished {last.get('finished', last.get('started', '?'))}")
    env = _environment(study)
    if env:
        facts.append(f"machine: {env.get('cpu', '?')}, {env.get('cpu_count', '?')} CPUs; torch {env.get('torch', '?')},"
                     f" Python {env.get('python', '?')}")
    units = study.sweep["units"]
    facts.append(f"units: {len(units)} ({', '.join(f'{n} {s}' for s, n in units['status'].value_counts().items())})")
    return facts


def _environment(study: Study) -> dict[str, Any]:
    import json

    for path in sorted((Path(study.sweep["folder"]) / "units").glob("*/environment.json"))[:1]:
        return json.loads(path.read_text())
    return {}


def copy_figures(study: Study, figures: Path, page: Path, has_curves: bool = False) -> list[tuple[str, str]]:
    """Copy the sweep's figures next to the page; -> (title, relative path) per figure."""
    from harness.sweep.plots import FIGURE_TEXT, render

    if study.sweep is None:
        return []
    folder = Path(study.sweep["folder"])
    if not all((folder / "figures" / f"{name}.png").exists() for name in FIGURE_TEXT):
        render(folder)  # drawn by an older harness, or not at all
    target = figures / study.name
    target.mkdir(parents=True, exist_ok=True)
    shown = []
    for name, (title, _) in FIGURE_TEXT.items():
        if name == "gradient_decay" and has_curves:
            continue  # the page's gradient table, computed from the curves at every measured step, says more
        source = folder / "figures" / f"{name}.png"
        if source.exists():
            shutil.copyfile(source, target / source.name)
            shown.append((title, Path(os.path.relpath(target / source.name, page.parent)).as_posix()))
    return shown


def study_markdown(study: Study, figures: Path, page: Path) -> str:
    lines = [f"## {study.title}", ""]
    if study.request.study.get("source"):
        lines.append(f"Source: {study.request.study['source']}. Study file: `{study.file.as_posix()}`.")
    reduced = study.request.study.get("reduced")
    lines += ["", f"**Budget: {'REDUCED: ' + reduced if reduced else 'the published one.'}**"]
    if study.request.study.get("full_command"):
        lines += ["", f"Full setting: {study.request.study['full_command']}"]
    lines += [""] + [f"- {fact}" for fact in run_facts(study)]
    if study.request.claims:
        lines += ["", markdown_table(claims_table(study), default=".3g"), ""]
    if study.sweep is not None:
        from harness.sweep.curves import read_curves

        curves = read_curves(study.sweep)  # read once: the gradient table and the figure choice both need it
        lines += ["Memory horizon (docs/sweeps.md):", ""] + [f"- {s}" for s in study.sweep["horizon"]["sentence"]]
        lines += ["", "Gradient flow: the average factor by which ||dL/dh_t|| shrinks (< 1) or grows (> 1) per step back "
                  "in time (over the steps where float32 still represents it; docs/measurements.md), mean [95% "
                  "interval] over seeds:", "", markdown_table(gradient_table(study, curves)), ""]
        for title, path in copy_figures(study, figures, page, has_curves=not curves.empty):
            lines += [f"![{title}]({path})", ""]
    return "\n".join(lines)


def _reduces(reduced: Study, full: Study) -> bool:
    """Whether ``reduced`` is a cut-down run of ``full``: its ``full_command`` names ``full``'s file."""
    command = reduced.request.study.get("full_command", "")
    return reduced is not full and re.search(rf"(^|[\s/]){re.escape(full.file.name)}(\s|$)", command) is not None


def verdicts_table(studies: list[Study]) -> pd.DataFrame:
    """One row per claim of every study: its verdict and the evidence in one line.

    A claim that its own study has not run points to a reduced study that ran the same cell and ``T``
    (a study whose ``full_command`` names this study's file), so an unrun published budget is not mistaken
    for a missing result.
    """
    tables = {id(s): claims_table(s) if s.request.claims else pd.DataFrame() for s in studies}
    rows = []
    for s in studies:
        for claim, (_, row) in zip(s.request.claims, tables[id(s)].iterrows()):
            if row["verdict"] != NOT_RUN:
                evidence = f"test / baseline {row['test / baseline']}, {row['seeds']} seed{'s' if row['seeds'] != 1 else ''}"
            else:
                evidence = "not run at this budget"
                for other in studies:
                    if not other.request.claims or not _reduces(other, s):
                        continue
                    theirs = tables[id(other)]
                    match = theirs[(theirs["cell"] == claim["cell"]) & (theirs["T"] == claim.get("seq_len", "-"))
                                   & (theirs["verdict"] != NOT_RUN)]
                    if not match.empty:
                        evidence += f"; reduced run ({other.title}): {match.iloc[0]['verdict']}"
            rows.append({"study": s.title, "budget": "REDUCED" if s.request.study.get("reduced") else "published",
                         "cell": claim["cell"], "T": claim.get("seq_len", "-"), "verdict": row["verdict"],
                         "evidence": evidence})
    return pd.DataFrame(rows, columns=["study", "budget", "cell", "T", "verdict", "evidence"])


KEPT_NOTE = ("*Kept from an earlier build of this page: this checkout has no sweep folder for the study, so its "
             "section and verdicts stand as they were built from the folder that ran it.*")


def previous_build(page: Path) -> tuple[dict[str, str], dict[str, list[dict[str, str]]]]:
    """The page as it stands: each study's section (by title) and its rows of the verdict table."""
    if not page.is_file():
        return {}, {}
    text = page.read_text()
    sections: dict[str, str] = {}
    for chunk in text.split("\n## ")[1:]:
        title, _, body = chunk.partition("\n")
        if title != "Verdicts":
            sections[title.strip()] = "## " + chunk.rstrip() + "\n"
    rows: dict[str, list[dict[str, str]]] = {}
    verdicts = text.partition("\n## Verdicts\n")[2].split("\n## ")[0]
    lines = [line for line in verdicts.splitlines() if line.startswith("|")]
    if len(lines) > 2:
        header = [c.strip() for c in lines[0].strip("|").split("|")]
        for line in lines[2:]:
            row = dict(zip(header, (c.strip() for c in line.strip("|").split("|"))))
            rows.setdefault(row.get("study", ""), []).append(row)
    return sections, rows


def _ran(section: str) -> bool:
    """Whether a section of the page reports a run (its facts give the sweep's units)."""
    return "\n- units: " in section


def build(files: list[Path], page: Path, figures: Path, root: Path = Path(".")) -> str:
    """The whole page; also copies each study's figures under ``figures``.

    A study whose sweep folder is not here but which the page already reports keeps its section and its verdict
    rows from the page as it stands (marked so), so that adding a study never erases another's recorded result.
    """
    studies = [read_study(f, root) for f in files]
    sections, previous_rows = previous_build(page)
    kept = {s.title for s in studies if s.sweep is None and _ran(sections.get(s.title, ""))}
    verdicts = verdicts_table(studies)
    for title in {s.title for s in studies if s.sweep is None} & set(previous_rows):
        if title in kept or any("reduced run" in r.get("evidence", "") for r in previous_rows[title]):
            verdicts = pd.concat([verdicts[verdicts["study"] != title],
                                  pd.DataFrame(previous_rows[title], columns=verdicts.columns)])
    order = {s.title: i for i, s in enumerate(studies)}
    verdicts = verdicts.sort_values("study", key=lambda t: t.map(order), kind="stable")
    verdicts["T"] = verdicts["T"].map(lambda t: int(t) if str(t).isdigit() else t)  # kept rows come back as text
    lines = ["# Reproductions", "",
             "Built by `python -m harness reproductions` from the sweep folders of the study files in `studies/`; "
             "do not edit by hand. Each claim of a paper is checked by a fixed rule:", ""]
    lines += [f"- **{kind}** ({CLAIM_KINDS[kind]}): {rule}." for kind, rule in RULES.items()]
    lines += [f"- **{UNTESTABLE}**: {UNTESTABLE_RULE}."]
    lines += ["", "Intervals are 95% percentile-bootstrap intervals over seeds (2 or 3 seeds: [min, max]); solve "
              "rates carry Wilson's interval (docs/sweeps.md). Test losses are in the task's units (copy: "
              "cross-entropy per step in nats; adding: mean squared error).", "", "## Verdicts", "",
              markdown_table(verdicts), ""]
    for study in studies:
        if study.title in kept:
            section = sections[study.title].replace(KEPT_NOTE + "\n\n", "")
            head, _, body = section.partition("\n\n")
            lines += [head, "", KEPT_NOTE, "", body.rstrip(), ""]
        else:
            lines += [study_markdown(study, figures, page), ""]
    return "\n".join(lines)
